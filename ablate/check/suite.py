"""The conformance suite of `ablate check`: a Target against the float64 reference (ablate.loss.reference).

Every check gives a Finding. The convention, gradient and edge-case checks run in float64 and decide whether the
target agrees with the reference (exit status 0); the dtype, bad-input and timing findings describe it.
"""

import math
from dataclasses import asdict, dataclass
from typing import Optional

import torch

from ablate.bench.suites import Timing
from ablate.bench.timer import quantiles_ms, time_interleaved, warm_up
from ablate.bench.workloads import call, clustered_inputs
from ablate.check.target import target_note
from ablate.loss.conventions import convention_scale
from ablate.loss.naive import CLAMP_MIN
from ablate.loss.reference import reference_grads, reference_loss

# The conventions a center loss may compute: name -> (ablate convention whose reference it rescales, factor).
CANDIDATES = {"sum": ("half_sum", 2.0), "sum/B": ("mean", 1.0), "sum/2B": ("half_mean", 1.0),
              "sum/2": ("half_sum", 1.0)}
JUDGED = ("convention", "gradient", "edge case")  # the sections that decide the exit status
# float64 against float64: an implementation rounds differently from the reference loop (a distance matrix cancels
# ||x||^2 against 2 x.c), a few 1e-16 relative per operation; 1e-8 leaves room for that and nothing else.
LOSS_RTOL = 1e-8
GRAD_RTOL = 1e-8
# A convention matches when every batch's loss is within this of its reference: far below the factor of 2 or B
# between conventions, above naive's clamp offset ((C-1)*1e-12 on losses of about D), reported on its own.
CONVENTION_RTOL = 1e-6
# A gradient k times the reference, k != 1, with the rest below this: a constant factor (a sign, a missing 1/2).
FACTOR_RTOL = 1e-6
# Per dtype, 4 eps: the rounding of the inputs' differences plus a sum accumulated in float32 (tests/loss/test_loss.py).
DTYPE_RTOL = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 4 * 2**-8, torch.float16: 4 * 2**-11}
# float16 also runs at a feature norm whose square overflows it (300^2 > 65504) while the distances (30) do not.
FLOAT16_LARGE_NORM = 300.0
DIM = 7  # odd, and not a class count, so that a (C, D) tensor is never mistaken for a (D, C) one


@dataclass
class Finding:
    """One line of the verdict table. passed: True, False, or None where nothing is judged."""

    section: str
    check: str
    verdict: str
    passed: Optional[bool]
    detail: str = ""


def make_inputs(batch, classes, *, labels=None, center_norm=1.0, distance=1.0, seed=0):
    """float64 features (B, D), labels (B,), centers (C, D) on the CPU: centers of norm center_norm, each feature at
    about `distance` from its center (labels uniform unless given)."""
    return clustered_inputs(batch, classes, DIM, torch.float64, "cpu", feature_norm=center_norm,
                            spread=distance / center_norm, seed=seed, labels=labels)


@dataclass
class Convention:
    """What the target computes: name (a key of CANDIDATES), and clamp: its loss carries naive's clamp offset."""

    name: str
    clamp: bool = False

    def expected(self, features, labels, centers) -> tuple:
        """(loss, dL/dx, dL/dc) of the reference under this convention, the clamp offset included, in float64."""
        convention, factor = CANDIDATES[self.name]
        x, c = features.double(), centers.double()
        loss = factor * float(reference_loss(x, labels, c, convention))
        grad_x, grad_c = (factor * g for g in reference_grads(x, labels, c, convention))
        return loss + (self.offset(x.shape[0], c.shape[0]) if self.clamp else 0.0), grad_x, grad_c

    def offset(self, batch: int, classes: int) -> float:
        """naive's clamp artifact: its B*(C-1) masked zeros raised to 1e-12, times the convention's factor."""
        convention, factor = CANDIDATES[self.name]
        return batch * (classes - 1) * CLAMP_MIN * factor * convention_scale(convention, batch)


CONVENTION_BATCHES = ((8, 5, 0), (13, 5, 1), (8, 50, 2))  # (B, C, seed): two batch sizes, two class counts


def identify_convention(target) -> tuple:
    """(Convention or None, findings): the candidate whose reference the loss matches on every batch of
    CONVENTION_BATCHES, and any constant offset left over (named when it is naive's clamp artifact)."""
    batches = [make_inputs(b, c, seed=s) for b, c, s in CONVENTION_BATCHES]
    outcomes = [target.call(f"the convention batch B={b}, C={c}", *inputs)
                for (b, c, _), inputs in zip(CONVENTION_BATCHES, batches)]
    failed = next((o for o in outcomes if o.error or o.loss is None or not math.isfinite(o.loss)), None)
    if failed is not None:
        return None, [Finding("convention", "loss", "none", False, failed.error or f"loss {failed.loss}")]
    errors: dict[str, float] = {}
    for name in CANDIDATES:
        expected = [Convention(name).expected(*inputs)[0] for inputs in batches]
        errors[name] = max(abs(o.loss - e) / abs(e) for o, e in zip(outcomes, expected))
    best = min(errors, key=errors.__getitem__)
    if errors[best] > CONVENTION_RTOL:
        return None, [Finding("convention", "loss", "none", False,
                              f"no convention matches; closest {best}, relative error {errors[best]:.3g}")]
    convention = Convention(best)
    residuals = [o.loss - convention.expected(*inputs)[0] for o, inputs in zip(outcomes, batches)]
    offsets = [convention.offset(*CONVENTION_BATCHES[k][:2]) for k in range(len(batches))]
    findings = [Finding("convention", "loss", best, True, f"matches the reference within {errors[best]:.2g} "
                        f"relative on {len(batches)} batches")]
    if all(abs(r - p) <= 0.01 * p for r, p in zip(residuals, offsets)):
        convention.clamp = True
        findings.append(Finding("convention", "constant offset", f"{residuals[0]:+.3g} at B={CONVENTION_BATCHES[0][0]}"
                                f", C={CONVENTION_BATCHES[0][1]}", None, "a clamp artifact: B*(C-1) masked zeros "
                                "raised to 1e-12, times the convention's factor ((C-1)*1e-12 under sum/B)"))
    elif max(abs(r) for r in residuals) > LOSS_RTOL * max(abs(o.loss) for o in outcomes):
        findings.append(Finding("convention", "constant offset", f"{residuals[0]:+.3g}", None,
                                "an offset the loss carries beyond the convention, not naive's clamp"))
    return convention, findings


def compare_gradient(got, expected, what: str) -> Finding:
    """got against the reference gradient: equal, a constant factor of it (named), or wrong."""
    if got is None:
        return Finding("gradient", what, "no gradient", False, "autograd gives none")
    if not torch.isfinite(got).all():
        return Finding("gradient", what, "non-finite", False, "NaN or inf in the gradient")
    scale = float(expected.norm()) or 1.0
    error = float((got - expected).norm()) / scale
    if error <= GRAD_RTOL:
        return Finding("gradient", what, "ok", True, f"relative error {error:.2g}")
    factor = float((got * expected).sum()) / scale ** 2
    rest = float((got - factor * expected).norm()) / scale
    if rest <= FACTOR_RTOL:
        meaning = {-1.0: "wrong sign", 2.0: "twice the reference: the 1/2 of a half convention is missing",
                   0.5: "half the reference: an extra 1/2"}.get(round(factor, 3), "a constant factor off")
        return Finding("gradient", what, f"{factor:.3g} x reference", False, meaning)
    return Finding("gradient", what, "wrong", False, f"relative error {error:.3g}")


def check_gradients(target, convention: Convention) -> list:
    inputs = make_inputs(*CONVENTION_BATCHES[0][:2], seed=3)
    outcome = target.call("the gradient check", *inputs)
    _, grad_x, grad_c = convention.expected(*inputs)
    if outcome.error:
        return [Finding("gradient", "dL/dx", "raises", False, outcome.error)]
    findings = [compare_gradient(outcome.grad_features, grad_x, "dL/dx")]
    if outcome.grad_centers is None:
        findings.append(Finding("gradient", "dL/dc", "no gradient", None, "the centers get no gradient: they move by "
                                "an update rule of their own (the paper's Eq. 4 does so)"))
    else:
        findings.append(compare_gradient(outcome.grad_centers, grad_c, "dL/dc"))
    return findings


def _non_contiguous(batch, classes):
    x, y, c = make_inputs(batch, classes, seed=7)
    wide = torch.zeros(batch, 2 * DIM, dtype=torch.float64)
    wide[:, ::2] = x
    long_labels = torch.zeros(2 * batch, dtype=torch.int64)
    long_labels[::2] = y
    return wide[:, ::2], long_labels[::2], c.t().contiguous().t()  # strided rows, strided labels, transposed centers


EDGE_CASES = {
    "B=1": lambda: make_inputs(1, 5, labels=[3], seed=4),
    "duplicate labels": lambda: make_inputs(9, 5, labels=[2] * 9, seed=5),
    "absent classes": lambda: make_inputs(8, 10, labels=[0, 7, 7, 0, 0, 7, 0, 7], seed=6),
    "non-contiguous inputs": lambda: _non_contiguous(8, 5),
    "small distances": lambda: make_inputs(8, 5, distance=1e-3, seed=8),
    "large feature norms": lambda: make_inputs(8, 5, center_norm=1e4, distance=10.0, seed=9),
}


def check_edge_cases(target, convention: Convention) -> list:
    findings = []
    for name, build in EDGE_CASES.items():
        inputs = build()
        outcome = target.call(f"the edge case {name}", *inputs)
        loss, grad_x, _ = convention.expected(*inputs)
        if outcome.error:
            findings.append(Finding("edge case", name, "raises", False, outcome.error))
        elif outcome.loss is None or not math.isfinite(outcome.loss):
            findings.append(Finding("edge case", name, "non-finite loss", False, f"loss {outcome.loss}"))
        elif abs(outcome.loss - loss) > LOSS_RTOL * abs(loss):
            error = abs(outcome.loss - loss) / abs(loss)
            findings.append(Finding("edge case", name, "wrong loss", False, f"{outcome.loss:.6g} against the "
                                    f"reference's {loss:.6g} (relative error {error:.3g})"))
        else:
            gradient = compare_gradient(outcome.grad_features, grad_x, "dL/dx")
            findings.append(Finding("edge case", name, "ok" if gradient.passed else f"dL/dx {gradient.verdict}",
                                    gradient.passed, gradient.detail))
    return findings


def check_dtypes(target, convention: Optional[Convention]) -> list:
    """Loss and dL/dx error of each dtype against the reference on the same rounded inputs, at a feature norm of 10
    and at a large one (float16's square overflow)."""
    findings = []
    rows = [(dtype, 10.0) for dtype in DTYPE_RTOL] + [(torch.float16, FLOAT16_LARGE_NORM)]
    for dtype, norm in rows:
        x, y, c = (t.to(dtype) if t.is_floating_point() else t
                   for t in make_inputs(64, 10, center_norm=norm, distance=0.1 * norm, seed=10))
        name, tolerance = f"{str(dtype).removeprefix('torch.')} at feature norm {norm:g}", DTYPE_RTOL[dtype]
        outcome = target.call(f"the dtype check {name}", x, y, c)
        if outcome.error:
            findings.append(Finding("dtype", name, "unsupported", None, outcome.error))
            continue
        if convention is None:
            findings.append(Finding("dtype", name, "runs", None, "no convention to compare with"))
            continue
        loss, grad_x, _ = convention.expected(x, y, c)
        if outcome.loss is None or not math.isfinite(outcome.loss):
            findings.append(Finding("dtype", name, "non-finite loss", False, f"loss {outcome.loss} on finite inputs "
                                    f"(an overflow: {dtype} holds at most {torch.finfo(dtype).max:.5g})"))
            continue
        error = abs(outcome.loss - loss) / abs(loss)
        grad_error = (float((outcome.grad_features - grad_x).norm() / grad_x.norm())
                      if outcome.grad_features is not None else math.nan)
        ok = error <= tolerance and grad_error <= tolerance
        findings.append(Finding("dtype", name, f"error {error:.2g}", ok, f"loss relative error {error:.3g}, dL/dx "
                                f"{grad_error:.3g} (tolerance {tolerance:.2g}, 4 eps)"))
    return findings


def check_bad_input(target) -> list:
    """What the target does with a label out of range and a NaN feature: raise (good), or return NaN or a value.

    On CUDA a label out of range is not tried: an indexing kernel would trip a device-side assert, which ends the
    process's use of the GPU (the timing after it included)."""
    findings = []
    x, y, c = make_inputs(8, 5, seed=11)
    out_of_range = y.clone()
    out_of_range[0] = c.shape[0]
    nan_features = x.clone()
    nan_features[0, 0] = math.nan
    for name, inputs in (("label out of range", (x, out_of_range, c)), ("NaN feature", (nan_features, y, c))):
        if name == "label out of range" and target.device.type == "cuda":
            findings.append(Finding("bad input", name, "not tried", None, "a device-side assert on CUDA would end "
                                    "this process's use of the GPU; run the check with --device cpu to see it"))
            continue
        outcome = target.call(f"the bad-input check {name}", *inputs)
        if outcome.error and outcome.raised:
            findings.append(Finding("bad input", name, "error", True, outcome.error))
        elif outcome.error:  # the harness refused what the target returned: no credit for refusing the input
            findings.append(Finding("bad input", name, "invalid output", False, outcome.error))
        elif outcome.loss is None or not math.isfinite(outcome.loss):
            findings.append(Finding("bad input", name, "silent NaN", None, f"returns {outcome.loss} without an error"))
        else:
            findings.append(Finding("bad input", name, "silent wrong value", False,
                                    f"returns {outcome.loss:.6g} without an error"))
    return findings


TIMING_CLASSES = (10, 1000, 10000)
TIMING_BATCH, TIMING_DIM = 256, 128
TIMING = Timing(rounds=3, round_ms=30.0, threads=1)


def timing_rows(target, variants, device: torch.device, classes=TIMING_CLASSES) -> list:
    """Median ms of forward + backward (w.r.t. the features) at B=256, D=128, float32, per C: the target and each
    built-in variant, interleaved in this process. [{"classes": C, name: ms, ...}]"""
    rows = []
    for num_classes in classes:
        features, labels, centers = clustered_inputs(TIMING_BATCH, num_classes, TIMING_DIM, torch.float32, device)
        features.requires_grad_(True)
        loss_fn, _ = target.bind(centers, centers_grad=False)

        def target_full():
            features.grad = None
            loss_fn(features, labels).backward()

        fns = {"target": target_full, **{v: call(v, "full", features, labels, centers) for v in variants}}
        row = {"classes": num_classes}
        for name, fn in list(fns.items()):
            try:
                warm_up(fn, device)
            except Exception as exc:
                row[name] = target_note(exc)
                del fns[name]
        for name, times in time_interleaved(fns, device, TIMING).items():
            row[name] = quantiles_ms(times)["time_ms_p50"]
        rows.append(row)
    return rows


def run_suite(target) -> list:
    """Every correctness finding of the target, in table order."""
    convention, findings = identify_convention(target)
    if convention is not None:
        findings += check_gradients(target, convention) + check_edge_cases(target, convention)
    return findings + check_dtypes(target, convention) + check_bad_input(target)


def agrees(findings) -> bool:
    """True when the float64 checks pass: some convention matches, its gradients and edge cases too."""
    judged = [f for f in findings if f.section in JUDGED]
    return any(f.section == "convention" and f.check == "loss" and f.passed for f in judged) and \
        not any(f.passed is False for f in judged)


def as_dicts(findings) -> list:
    return [asdict(f) for f in findings]
