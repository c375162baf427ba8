"""The steps of center loss on the rows one process holds: what every placement is built from.

These take choices already resolved into registry entries (Variant, Rule, Convention) and checked (alpha), and
inputs already validated or trusted; the public functions (ablate.loss.functional), `CenterLoss` and the
placements (ablate.loss.placement, ablate.distributed.centers) decide what to resolve and check, once.
"""

import torch

from ablate.loss.conventions import Convention
from ablate.loss.rules import Rule
from ablate.loss.updates import torch_updated_rows
from ablate.loss.validation import all_finite
from ablate.loss.variant import Variant


def squared_distance_sum(variant: Variant, features: torch.Tensor, labels: torch.Tensor,
                         centers: torch.Tensor) -> torch.Tensor:
    """sum_i ||x_i - c_{y_i}||^2 through the variant (its half_sum loss, doubled: exact in floating point).

    features (b, D), labels (b,) int64 in [0, rows of centers), centers (rows, D) -> 0-dim, at least float32.
    An empty batch gives a zero still connected to the features and the centers, so that every rank's
    backward runs the same collectives and a DDP finds a gradient (zero) for every parameter.
    """
    acc = torch.promote_types(features.dtype, torch.float32)
    if features.shape[0] == 0:
        return (features - centers.index_select(0, labels)).sum(dtype=acc)
    return (variant.loss(features, labels, centers, "half_sum") * 2).to(acc)


def check_features_finite(features: torch.Tensor) -> None:
    """A ValueError when features (B, D) hold an inf or NaN (one host synchronization)."""
    if not all_finite(features):
        raise ValueError("features must be finite to update the centers; the centers were left untouched")


def nonfinite_step_error(rule: Rule, alpha: float, where: str = "") -> ValueError:
    """The error of a step whose new centers are not all finite (the centers are then left untouched)."""
    return ValueError(f"the {rule.name!r} step with alpha={alpha} gave non-finite centers{where}; "
                      "the centers were left untouched")


def step_centers(centers: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, *, alpha: float, rule: Rule,
                 convention: Convention, variant: Variant, validate: bool = True) -> None:
    """One step of `rule` on the rows of centers (C, D) named by labels (B,) int64, from features (B, D), in place.

    The variant's own update where it fuses the rule (it checks its result's finiteness itself), else the torch
    rows of ablate.loss.updates. validate: refuse non-finite features and a non-finite result, leaving the
    centers untouched (two host synchronizations); False skips both.
    """
    if validate:
        check_features_finite(features)
    fused = variant.update if variant.fuses(rule.name) else None
    if fused is not None:  # a variant's own functions take names: they are its extension interface
        fused(centers, features, labels, alpha, rule.name, convention.name)
        return
    classes, rows = torch_updated_rows(centers, features, labels, alpha=alpha, rule=rule, convention=convention)
    if validate and not all_finite(rows):
        raise nonfinite_step_error(rule, alpha)
    centers.index_copy_(0, classes, rows)
