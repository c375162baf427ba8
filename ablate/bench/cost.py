"""Bytes each variant moves per mode, and the peak memory it needs: the cost model behind GB/s and skips.

bytes_moved counts, for every operation a variant runs (forward, then autograd's backward for the
features' gradient, or the update), each operand read once and each result written once, as if
each operation were one kernel. The ops are listed below, one line each, as the code in
ablate/loss writes them. Eager torch may split an op into more kernels, so for `naive`, `gather`
and the torch update these are lower bounds of the true traffic. `compiled` is counted as one
pass per graph (forward, then backward, each reading its inputs once and writing its outputs
once), which inductor's fusion approaches;
`fused` takes its own count from ablate.kernels.fused.fused_bytes.

Symbols: B batch, C classes, D feature dim, e bytes per element of the dtype, a bytes per
element of the accumulation dtype (float32 for half types), i = 8 bytes per int64 label.
The benchmarks differentiate w.r.t. the features only: under the paper's rule no gradient reaches
the centers (they move by the update mode instead).
"""

import torch

from ablate.loss import get_variant
from ablate.traffic import LABEL_BYTES, expected_distinct_classes


def _sizes(dtype: torch.dtype):
    e = torch.empty((), dtype=dtype).element_size()
    return e, max(e, 4)


def _total(ops) -> int:
    """ops: (bytes read, bytes written) per operation."""
    return int(sum(r + w for r, w in ops))


def gather_ops(mode: str, B: int, D: int, e: int, a: int) -> list:
    i = LABEL_BYTES
    cast = e != a  # half inputs are cast to float32 before squaring
    forward = [
        (B * i + B * D * e, B * D * e),  # centers.index_select(0, labels)   -> (B, D)
        (2 * B * D * e, B * D * e),      # features - rows                     -> diff (B, D)
        *([(B * D * e, B * D * a)] if cast else []),  # diff.to(float32)
        (B * D * a, B * D * a),          # .pow(2)                             -> (B, D)
        (B * D * a, a),                  # .sum()                              -> scalar
    ]
    backward = [
        (B * D * a, B * D * a),          # pow backward: 2 * acc * grad       -> (B, D)
        *([(B * D * a, B * D * e)] if cast else []),  # to() backward: cast the gradient back
        # sub backward hands the gradient to the features as is; index_select gets none (centers need no grad)
    ]
    return {"forward": forward, "backward": backward, "full": forward + backward}[mode]


def naive_ops(mode: str, B: int, C: int, D: int, e: int) -> list:
    i = LABEL_BYTES
    BC = B * C
    forward = [
        (B * D * e, B * D * e),            # features.pow(2)                   -> (B, D)
        (B * D * e, B * e),                # .sum(dim=1)                       -> (B, 1)
        (C * D * e, C * D * e),            # centers.pow(2)                    -> (C, D)
        (C * D * e, C * e),                # .sum(dim=1)                       -> (C, 1)
        ((B + C) * e, BC * e),             # expanded ||x||^2 + ||c||^2        -> distmat (B, C)
        (BC * e + (B + C) * D * e, BC * e),  # addmm(distmat, x, c.t(), alpha=-2) -> (B, C)
        (0, C * i),                        # arange(C)                         -> (C,)
        ((B + C) * i, BC),                 # labels.eq(classes), expanded      -> mask (B, C) bool
        (BC, BC * e),                      # mask.to(dtype)                    -> (B, C)
        (2 * BC * e, BC * e),              # distmat * mask                    -> (B, C)
        (BC * e, BC * e),                  # .clamp(1e-12, 1e12)               -> (B, C)
        (BC * e, e),                       # .sum()                            -> scalar
    ]
    backward = [
        (BC * e, BC * e),                  # clamp backward: keep grad where in range -> (B, C)
        (2 * BC * e, BC * e),              # mul backward: grad * mask         -> (B, C)
        (BC * e + C * D * e, B * D * e),   # addmm backward: -2 * grad @ centers -> (B, D)
        (BC * e, B * e),                   # add backward: grad summed over C  -> (B, 1)
        (B * D * e + B * e, B * D * e),    # pow backward: 2 * x * grad        -> (B, D)
        (2 * B * D * e, B * D * e),        # the two feature gradients summed  -> (B, D)
    ]
    return {"forward": forward, "backward": backward, "full": forward + backward}[mode]


def floor_ops(mode: str, B: int, D: int, e: int) -> list:
    """One pass per graph: forward and backward each read labels, features and their B center rows once."""
    i = LABEL_BYTES
    forward = [(B * i + 2 * B * D * e, e)]                 # read x, y, c[y]; write the loss
    backward = [(B * i + 2 * B * D * e, B * D * e)]        # read x, y, c[y]; write dL/dx
    return {"forward": forward, "backward": backward, "full": forward + backward}[mode]


def torch_update_ops(B: int, C: int, D: int, e: int, a: int) -> list:
    """`update_centers` through ablate.loss.updates (U distinct labels in the batch, at its expected value)."""
    i = LABEL_BYTES
    U = expected_distinct_classes(B, C)
    cast = e != a
    return [
        (2 * B * i, 0),                    # labels.min(), labels.max() (input check)
        (B * D * e, a), (a, 1),            # all_finite(features): sum, isfinite of the sum
        (B * i, 3 * B * i),                # unique(labels): sort -> classes, inverse, counts
        (U * i + U * D * e, U * D * e),    # centers.index_select(0, classes) -> old (U, D)
        *([(U * D * e, U * D * a), (B * D * e, B * D * a)] if cast else []),  # old, features to float32
        (B * i + U * D * a, B * D * a),    # old.index_select(0, slot)       -> (B, D)
        (2 * B * D * a, B * D * a),        # minus features                   -> delta (B, D)
        (0, U * D * a),                    # zeros_like(old)                  -> (U, D)
        (B * i + B * D * a + U * D * a, U * D * a),  # index_add_(delta)      -> delta_sum (U, D)
        (2 * U * D * a + U * a, U * D * a),  # addcmul(old, step, delta_sum, value=-1) -> rows (U, D)
        *([(U * D * a, U * D * e)] if cast else []),  # rows.to(dtype)
        (U * D * e, a), (a, 1),            # all_finite(rows): sum, isfinite of the sum
        (U * i + U * D * e, U * D * e),    # centers.index_copy_(0, classes, rows)
    ]


def bytes_moved(variant: str, mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype,
                rule: str = "paper") -> int:
    """Bytes read plus written by one call of `variant` in `mode` (see the module docstring)."""
    e, a = _sizes(dtype)
    impl = get_variant(variant)
    if variant == "fused" and (mode != "update" or rule in impl.update_rules):
        from ablate.kernels.fused import fused_bytes

        return int(fused_bytes(mode, batch, classes, dim, dtype))
    if mode == "update":
        return _total(torch_update_ops(batch, classes, dim, e, a))
    if variant == "naive":
        return _total(naive_ops(mode, batch, classes, dim, e))
    if variant == "gather":
        return _total(gather_ops(mode, batch, dim, e, a))
    if variant == "compiled":
        return _total(floor_ops(mode, batch, dim, e))
    raise ValueError(f"no byte model for variant {variant!r}; add one to ablate/bench/cost.py")


def peak_bytes_estimate(variant: str, mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype) -> int:
    """A generous estimate of the memory one call needs beyond its inputs, to skip cells that cannot fit.

    naive holds up to about five (B, C) tensors at once in forward plus backward (mask, masked and
    clamped distances, their gradients) and one boolean mask; the O(B*D) variants hold a few (B, D).
    """
    e, a = _sizes(dtype)
    if variant == "naive" and mode != "update":
        return int(batch * classes * (5 * e + 1) + 4 * batch * dim * e)
    return int(6 * batch * dim * a)


def memory_skip_note(variant: str, mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype,
                     budget_bytes: float) -> str:
    """Why this cell is skipped ("" if its estimated peak memory fits in budget_bytes)."""
    need = peak_bytes_estimate(variant, mode, batch, classes, dim, dtype)
    if need <= budget_bytes:
        return ""
    return f"skipped: needs about {need / 1e9:.1f} GB, over the memory budget of {budget_bytes / 1e9:.1f} GB"
