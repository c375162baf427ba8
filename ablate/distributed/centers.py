"""Center loss and center updates across ranks, exact: every rank's step is the step on the global batch.

Each rank holds its own slice of the global batch (features (b_r, D), labels (b_r,)); the global batch
is their concatenation in rank order, B = sum_r b_r. Two forms of the (C, D) centers:

replicated  every rank holds the whole table.
    loss    each rank sums ||x_i - c_{y_i}||^2 over its own rows; one all-reduce of (sum, b_r) gives
            the global sum and B: 2 numbers per step, whatever B, C or D.
    update  all-gather of labels and features ((W - 1) / W * B * (D * e + 8) bytes received per rank,
            whatever C), then the one-process step on the global batch, the same on every rank: Eq. 4's
            n_j are global counts, and every rank's table stays bitwise identical. The alternative, an
            all-reduce of a dense (C, D) delta and (C,) counts, moves 2 (W - 1) / W * C * (D + 1) * e
            per step: at C = 10^6, D = 128, fp32, W = 2, 516 MB per rank per step, against 133 kB for
            the gather at B = 512.
sharded     rank r holds rows [lo, hi) of the table (groups.shard_range): memory C * D / W per rank.
    loss    features (differentiably, torch.distributed.nn) and labels are all-gathered; each rank sums
            the terms of the samples whose class it owns; one all-reduce gives the global loss. The
            backward reduce-scatters the gathered gradient, so every rank's features get the gradient
            of the terms other ranks computed.
    update  all-gather of labels and features; each rank steps its own rows only.

Gradients follow DistributedDataParallel's convention: all ranks call backward, and the gradient left
on rank r's features is W * dL/dx_i, the share that F.cross_entropy over a B/W slice leaves, so that
DDP's average over ranks of the model's gradient is the one-process gradient on the global batch.
The centers get W * (rank r's part of dL/dc) on each rank (replicated: DDP's average of those is dL/dc)
or W * dL/dc_shard (sharded: no average; a shard's own optimizer divides by W).
Every function is a collective: every rank of the group must call it, in the same order.
"""

import torch

from ablate.distributed.groups import FORMS, all_sum, gather_batch, gather_rows, rank_and_world, shard_range
from ablate.loss.conventions import convention_scale
from ablate.loss.registry import get_variant
from ablate.loss.updates import torch_updated_rows
from ablate.loss.validation import all_finite, check_inputs


def _squared_distance_sum(variant: str, features, labels, centers) -> torch.Tensor:
    """sum_i ||x_i - c_{y_i}||^2 through the variant (its half_sum loss, doubled: exact in floating point).

    features (b, D), labels (b,) in [0, rows of centers), centers (rows, D) -> 0-dim, at least float32.
    An empty batch gives a zero still connected to the features and the centers, so that every rank's
    backward runs the same collectives and a DDP finds a gradient (zero) for every parameter.
    """
    acc = torch.promote_types(features.dtype, torch.float32)
    if features.shape[0] == 0:
        return (features - centers.index_select(0, labels)).sum(dtype=acc)
    return (get_variant(variant).loss(features, labels, centers, "half_sum") * 2).to(acc)


def _check_local(features, labels, centers_dtype, centers_device, num_classes: int) -> None:
    """Shapes, dtypes, devices and label range of this rank's slice against a (C, D) table (none allocated)."""
    if features.dim() == 2 and features.shape[0] == 0 and labels.dim() == 1 and labels.shape[0] == 0:
        return  # a rank may hold no rows of a batch smaller than the world
    table = torch.empty((), dtype=centers_dtype, device=centers_device).expand(num_classes, features.shape[-1])
    check_inputs(features, labels, table)


def replicated_center_loss(features, labels, centers, *, variant: str = "gather", convention: str = "mean",
                           group=None) -> torch.Tensor:
    """The loss of the global batch under `convention`, the same value on every rank (see the module docstring).

    features (b_r, D), labels (b_r,) of this rank; centers (C, D), the same on every rank.
    """
    rank_and_world(group)
    _check_local(features, labels, centers.dtype, centers.device, centers.shape[0])
    local = _squared_distance_sum(variant, features, labels.long(), centers)
    totals = all_sum(torch.stack([local, local.new_tensor(features.shape[0])]), group, differentiable=True)
    return totals[0] * convention_scale(convention, int(totals[1]))


def replicated_update(centers, features, labels, *, alpha: float, rule: str, convention: str = "mean",
                      variant: str = "gather", group=None) -> None:
    """Every rank applies the one-process `update_centers` step to the gathered global batch, in place."""
    from ablate.loss.functional import update_centers  # functional dispatches here: import at call time

    rank_and_world(group)
    _check_local(features, labels, centers.dtype, centers.device, centers.shape[0])
    all_features, all_labels, _ = gather_batch(features.detach(), labels, group)  # (B, D), (B,)
    update_centers(centers, all_features, all_labels, alpha=alpha, rule=rule, convention=convention, variant=variant)


def _own_shard(shard, num_classes: int, group) -> tuple:
    """(lo, hi) of this rank's classes; a ValueError when `shard` does not hold exactly those rows."""
    rank, world = rank_and_world(group)
    lo, hi = shard_range(num_classes, rank, world)
    if shard.dim() != 2 or shard.shape[0] != hi - lo:
        raise ValueError(f"rank {rank} of {world} owns classes [{lo}, {hi}) of C={num_classes}: its shard must be "
                         f"({hi - lo}, D), got shape {tuple(shard.shape)}")
    return lo, hi


def sharded_center_loss(features, labels, shard, *, num_classes: int, variant: str = "gather",
                        convention: str = "mean", group=None) -> torch.Tensor:
    """The loss of the global batch, the same value on every rank, with each rank holding only its rows.

    features (b_r, D), labels (b_r,) in [0, C) of this rank; shard (hi - lo, D): rows [lo, hi) of the centers.
    """
    lo, hi = _own_shard(shard, num_classes, group)
    _check_local(features, labels, shard.dtype, shard.device, num_classes)
    all_features, all_labels, counts = gather_batch(features, labels, group, differentiable=True)  # (B, D), (B,)
    owned = ((all_labels >= lo) & (all_labels < hi)).nonzero().squeeze(1)  # (b_own,)
    local = _squared_distance_sum(variant, all_features.index_select(0, owned), all_labels[owned] - lo, shard)
    total = all_sum(local.unsqueeze(0), group, differentiable=True)[0]
    return total * convention_scale(convention, sum(counts))


@torch.no_grad()
def sharded_update(shard, features, labels, *, num_classes: int, alpha: float, rule: str, convention: str = "mean",
                   group=None) -> None:
    """Each rank steps the rows it owns by `rule` on the gathered global batch, in place (torch row-wise rules).

    As `update_centers`, refuses non-finite features or a non-finite result; the decision is taken by all
    ranks together, so either every shard moves or none does.
    """
    lo, hi = _own_shard(shard, num_classes, group)
    _check_local(features, labels, shard.dtype, shard.device, num_classes)
    all_features, all_labels, counts = gather_batch(features.detach(), labels, group)  # (B, D), (B,)
    if not all_finite(all_features):
        raise ValueError("features must be finite to update the centers; the centers were left untouched")
    owned = ((all_labels >= lo) & (all_labels < hi)).nonzero().squeeze(1)
    step = None
    if owned.numel():
        step = torch_updated_rows(shard, all_features.index_select(0, owned), all_labels[owned] - lo, alpha=alpha,
                                  rule=rule, convention=convention, batch_size=sum(counts))
    finite = torch.tensor([1.0 if step is None or all_finite(step[1]) else 0.0], device=shard.device)
    if all_sum(finite, group) < rank_and_world(group)[1]:
        raise ValueError(f"the {rule!r} step with alpha={alpha} gave non-finite centers on some rank; "
                         "the centers were left untouched")
    if step is not None:
        shard.index_copy_(0, *step)


def gather_shards(shard, num_classes: int, group=None) -> torch.Tensor:
    """The whole (C, D) table from every rank's shard (for evaluation; it costs C * D per rank)."""
    _, world = rank_and_world(group)
    _own_shard(shard, num_classes, group)
    counts = [hi - lo for lo, hi in (shard_range(num_classes, r, world) for r in range(world))]
    return gather_rows(shard.detach(), counts, group)


def _num_classes(form: str, centers, num_classes) -> int:
    if form == "replicated":
        return centers.shape[0]
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"distributed='sharded' needs num_classes, the total C (an int >= 1), got {num_classes!r}")
    return num_classes


def check_form(form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"unknown distributed form {form!r}; expected one of {', '.join(FORMS)} (or None: one process)")


def distributed_center_loss(form: str, features, labels, centers, *, variant: str, convention: str, group=None,
                            num_classes: int = None) -> torch.Tensor:
    """`center_loss` across ranks in `form` ("replicated" | "sharded"; sharded: centers is this rank's shard)."""
    check_form(form)
    if form == "replicated":
        return replicated_center_loss(features, labels, centers, variant=variant, convention=convention, group=group)
    return sharded_center_loss(features, labels, centers, num_classes=_num_classes(form, centers, num_classes),
                               variant=variant, convention=convention, group=group)


def distributed_update(form: str, centers, features, labels, *, alpha: float, rule: str, convention: str,
                       variant: str, group=None, num_classes: int = None) -> None:
    """`update_centers` across ranks in `form` (sharded: centers is this rank's shard; torch row-wise rules)."""
    check_form(form)
    if form == "replicated":
        replicated_update(centers, features, labels, alpha=alpha, rule=rule, convention=convention, variant=variant,
                          group=group)
        return
    sharded_update(centers, features, labels, num_classes=_num_classes(form, centers, num_classes), alpha=alpha,
                   rule=rule, convention=convention, group=group)
