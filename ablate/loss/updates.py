"""The center-update rules of ablate.loss.rules, in torch, touching only the rows named by the batch's labels.

Cost O(B*D + B log B) (a sort of the labels); nothing of size C*D is read or written.
"""

import torch

from ablate.loss.conventions import Convention
from ablate.loss.rules import Rule
from ablate.traffic import LABEL_BYTES, element_sizes, expected_distinct_classes, total


def row_step_sizes(rule: Rule, alpha: float, counts: torch.Tensor, convention: Convention,
                   batch_size: int) -> torch.Tensor:
    """The multiplier of delta_j for each present class, by the rule's step; counts (U,) -> (U, 1) float64."""
    counts = counts.to(torch.float64).unsqueeze(1)  # (U, 1)
    step = rule.step(alpha, counts, convention.scale(batch_size))
    return step if isinstance(step, torch.Tensor) else torch.full_like(counts, step)  # a step the same for every n_j


def torch_updated_rows(centers: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, *, alpha: float,
                       rule: Rule, convention: Convention, batch_size: int | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """The new values of the touched rows, without writing them (rule and convention: registry entries).

    centers (C, D), features (B, D), labels (B,) -> (classes (U,), rows (U, D) in the centers' dtype).
    batch_size: the B of the convention's factor when these rows are part of a larger batch (default B).
    """
    classes, slot, counts = torch.unique(labels, return_inverse=True, return_counts=True)  # (U,), (B,), (U,)
    work_dtype = torch.promote_types(centers.dtype, torch.float32)
    old = centers.index_select(0, classes).to(work_dtype)  # (U, D)
    delta = old.index_select(0, slot) - features.to(work_dtype)  # (B, D): c_{y_i} - x_i
    delta_sum = torch.zeros_like(old).index_add_(0, slot, delta)  # (U, D)
    step = row_step_sizes(rule, alpha, counts, convention, batch_size or features.shape[0]).to(work_dtype)  # (U, 1)
    return classes, torch.addcmul(old, step, delta_sum, value=-1).to(centers.dtype)  # old - step * delta_sum


def torch_update_bytes(batch: int, classes: int, dim: int, dtype: torch.dtype) -> int:
    """Bytes one `update_centers` call by these torch rules moves, its checks included (see ablate.traffic;
    U distinct labels in the batch, at its expected value)."""
    B, C, D = batch, classes, dim
    e, a = element_sizes(dtype)
    i = LABEL_BYTES
    U = expected_distinct_classes(B, C)
    cast = e != a
    return total([
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
    ])
