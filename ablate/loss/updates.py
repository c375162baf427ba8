"""Center-update rules, in torch, touching only the rows named by the batch's labels.

Every rule moves class j by a multiple of delta_j = sum_{i: y_i = j} (c_j - x_i), all deltas taken
from the centers before the step:
    paper  c_j -= alpha * delta_j / (1 + n_j)        Eq. 4 / Algorithm 1
    sgd    c_j -= alpha * 2 * s * delta_j            plain SGD (lr alpha) on dL_C/dc_j, s the convention's factor
    ema    c_j -= alpha * delta_j                    FaceNet's moving average, alpha = 1 - decay
Cost O(B*D + B log B) (a sort of the labels); nothing of size C*D is read or written.

Stability: with n_j samples of class j in a batch, c_j's error (its distance to the mean of those samples)
is multiplied by (1 - step_j * n_j) per step; it grows once step_j * n_j > 2. Over n_j = 1..B that is
    paper  alpha * n_j / (1 + n_j) < alpha <= 1            always stable
    sgd    2 * alpha * s * n_j <= 2 * alpha * s * B        stable for alpha <= 1 / (s * B): 1 under mean, 2 under
                                                           half_mean, 2 / B under half_sum
    ema    alpha * n_j <= alpha * B                        stable for alpha <= 2 / B
`check_stable` refuses a setting that can grow, whatever the labels of a batch. B is the batch the centers step
on: the global batch when several processes train (ablate.train.config passes batch_size x nproc).
"""

import torch

from ablate.loss.conventions import convention_scale
from ablate.traffic import LABEL_BYTES, element_sizes, expected_distinct_classes, total

RULES = ("paper", "sgd", "ema")


def row_step_sizes(rule: str, alpha: float, counts: torch.Tensor, convention: str, batch_size: int) -> torch.Tensor:
    """The multiplier of delta_j for each present class; counts (U,) -> (U, 1) float64."""
    counts = counts.to(torch.float64).unsqueeze(1)
    if rule == "paper":
        return alpha / (1.0 + counts)
    if rule == "sgd":
        return torch.full_like(counts, alpha * 2.0 * convention_scale(convention, batch_size))
    if rule == "ema":
        return torch.full_like(counts, alpha)
    raise ValueError(f"unknown rule {rule!r}; expected one of {', '.join(RULES)}")


def check_stable(rule: str, alpha: float, convention: str, batch_size: int) -> None:
    """Refuse (ValueError, with the reason and the largest stable alpha) a rule whose center error can grow: when
    step_j * n_j > 2 for a class that fills the whole batch (n_j = batch_size), the worst case of any batch."""
    worst = float(row_step_sizes(rule, alpha, torch.tensor([batch_size]), convention, batch_size)[0, 0]) * batch_size
    if worst <= 2:
        return
    per_alpha = worst / alpha  # step_j * n_j is proportional to alpha under sgd and ema
    raise ValueError(
        f"rule {rule!r} with alpha {alpha:g} is unstable at batch_size {batch_size} (convention {convention!r}): a "
        f"class with n_j samples in a batch has its center's error multiplied by (1 - s * n_j) per step, here with "
        f"s = {per_alpha / batch_size:g} * alpha, and the error grows once s * n_j > 2; a batch of one class "
        f"(n_j = {batch_size}) gives s * n_j = {worst:g}. Use alpha <= {2 / per_alpha:.4g}, a smaller batch, or "
        "rule 'paper' (stable for alpha <= 1).")


def torch_updated_rows(centers, features, labels, *, alpha: float, rule: str, convention: str,
                       batch_size: int = None):
    """The new values of the touched rows, without writing them.

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
