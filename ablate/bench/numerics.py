"""Numerics: each variant's loss and gradients in each dtype against the float64 reference.

Inputs are rounded to the dtype first and the reference sees those rounded values upcast, so
the errors are the computation's own. Relative errors: |L - L_ref| / |L_ref| for the loss,
||G - G_ref|| / ||G_ref|| (Frobenius) for each gradient. This is where the naive form's
cancellation ||x||^2 + ||c||^2 - 2 x.c shows in bfloat16 and float16.
"""

import math

import torch

from ablate.bench.suites import NumericsSpec
from ablate.bench.workloads import clustered_inputs
from ablate.loss import center_loss
from ablate.loss.dtypes import DTYPES
from ablate.loss.reference import reference_grads, reference_loss
from ablate.runs.schema import ERROR_COLUMNS


def _rel_error(value: torch.Tensor, ref: torch.Tensor) -> float:
    value = value.detach().to("cpu", torch.float64)
    err = float((value - ref).norm() / ref.norm())
    return err if math.isfinite(err) else math.inf


def numerics_case(variants, dtype: str, convention: str, feature_norm: float, spec: NumericsSpec, device) -> list:
    """One row per variant for one dtype, convention and feature norm (columns: NUMERICS_COLUMNS of
    ablate.runs.schema)."""
    features, labels, centers = clustered_inputs(spec.batch, spec.classes, spec.dim, DTYPES[dtype], device,
                                                 feature_norm=feature_norm, spread=spec.spread)
    x64, y_cpu, c64 = features.to("cpu", torch.float64), labels.cpu(), centers.to("cpu", torch.float64)
    ref_loss = reference_loss(x64, y_cpu, c64, convention)
    ref_gx, ref_gc = reference_grads(x64, y_cpu, c64, convention)
    rows = []
    for variant in variants:
        row = {"variant": variant, "dtype": dtype, "convention": convention, "batch": spec.batch,
               "classes": spec.classes, "dim": spec.dim, "feature_norm": feature_norm,
               **{c: math.nan for c in ERROR_COLUMNS}, "note": ""}
        x = features.detach().clone().requires_grad_(True)
        c = centers.detach().clone().requires_grad_(True)
        try:
            loss = center_loss(x, labels, c, variant=variant, convention=convention)
            loss.backward()
        except Exception as exc:  # e.g. naive refuses float16; recorded, and float32 ones fail the check
            row["note"] = f"{type(exc).__name__}: {exc}"
        else:
            row.update(loss_rel_error=_rel_error(loss, ref_loss), grad_features_rel_error=_rel_error(x.grad, ref_gx),
                       grad_centers_rel_error=_rel_error(c.grad, ref_gc))
        rows.append(row)
    return rows
