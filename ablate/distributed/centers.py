"""Center placements across ranks, exact: every rank's step is the step on the global batch.

`Replicated(group)` and `Sharded(num_classes, group)` implement ablate.loss.placement.Placement with the
local steps of ablate.loss.local; `form_placement` builds the one a cell's `distributed` form names.

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
`loss`, `update` and `Sharded.full_centers` are collectives: every rank of the group must call them, in the
same order. validate=False skips the checks of the tensors (the local slice's label range, the finiteness of
the features and of the step, and sharded's all-ranks-finite flag); what the forms need stays: the ranks' row
counts, read on the host, the global B of the replicated loss, and the size of the rows a shard owns (nonzero).
"""

import torch

from ablate.distributed.groups import all_sum, gather_batch, gather_rows, rank_and_world, shard_range
from ablate.loss.conventions import Convention
from ablate.loss.local import check_features_finite, nonfinite_step_error, squared_distance_sum, step_centers
from ablate.loss.placement import LOCAL, Placement
from ablate.loss.rules import Rule
from ablate.loss.updates import torch_updated_rows
from ablate.loss.validation import all_finite, check_inputs
from ablate.loss.variant import Variant


def _check_local(features: torch.Tensor, labels: torch.Tensor, centers_dtype: torch.dtype,
                 centers_device: torch.device, num_classes: int) -> None:
    """Shapes, dtypes, devices and label range of this rank's slice against a (C, D) table (none allocated)."""
    if features.dim() == 2 and features.shape[0] == 0 and labels.dim() == 1 and labels.shape[0] == 0:
        return  # a rank may hold no rows of a batch smaller than the world
    table = torch.empty((), dtype=centers_dtype, device=centers_device).expand(num_classes, features.shape[-1])
    check_inputs(features, labels, table)


class Replicated(Placement):
    """Every rank of `group` (default: the whole world) holds the whole (C, D) table, the same on every rank.

    features (b_r, D), labels (b_r,) of this rank; centers (C, D).
    """

    form = "replicated"

    def __init__(self, group=None):
        self.group = group

    @classmethod
    def for_classes(cls, num_classes: int, group=None) -> "Replicated":
        return cls(group)

    def held_classes(self, num_classes: int) -> tuple[int, int]:
        rank_and_world(self.group)  # a clear error where no process group is started
        return 0, num_classes

    def centers_grad_multiplier(self) -> int:
        return 1  # DDP averages the ranks' W * (their part of dL/dc): dL/dc

    def loss(self, features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, *, variant: Variant,
             convention: Convention, validate: bool) -> torch.Tensor:
        """The loss of the global batch under `convention`, the same value on every rank."""
        rank_and_world(self.group)
        if validate:
            _check_local(features, labels, centers.dtype, centers.device, centers.shape[0])
        local = squared_distance_sum(variant, features, labels.long(), centers)
        totals = all_sum(torch.stack([local, local.new_tensor(features.shape[0])]), self.group, differentiable=True)
        return totals[0] * convention.scale(int(totals[1]))

    def update(self, centers: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, *, alpha: float, rule: Rule,
               convention: Convention, variant: Variant, validate: bool) -> None:
        """Every rank takes the one-process step of the gathered global batch, in place: the tables stay equal."""
        rank_and_world(self.group)
        if validate:
            _check_local(features, labels, centers.dtype, centers.device, centers.shape[0])
        all_features, all_labels, _ = gather_batch(features.detach(), labels, self.group)  # (B, D), (B,) int64
        step_centers(centers, all_features, all_labels, alpha=alpha, rule=rule, convention=convention,
                     variant=variant, validate=validate)

    def full_centers(self, centers: torch.Tensor) -> torch.Tensor:
        return centers.detach()

    def __repr__(self) -> str:
        return "Replicated()" if self.group is None else f"Replicated(group={self.group!r})"


class Sharded(Placement):
    """Rank r of `group` (default: the whole world) holds rows [lo, hi) of the (C, D) table (groups.shard_range).

    features (b_r, D), labels (b_r,) in [0, C) of this rank; centers: its shard (hi - lo, D). Torch row-wise
    rules (a variant's fused update is not used).
    """

    form = "sharded"

    def __init__(self, num_classes: int, group=None):
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"Sharded needs num_classes, the total C (an int >= 1), got {num_classes!r}")
        self.num_classes, self.group = num_classes, group

    @classmethod
    def for_classes(cls, num_classes: int, group=None) -> "Sharded":
        return cls(num_classes, group)

    def _range(self) -> tuple[int, int]:
        rank, world = rank_and_world(self.group)
        return shard_range(self.num_classes, rank, world)

    def _own_shard(self, shard: torch.Tensor) -> tuple[int, int]:
        """(lo, hi) of this rank's classes; a ValueError when `shard` does not hold exactly those rows."""
        rank, world = rank_and_world(self.group)
        lo, hi = shard_range(self.num_classes, rank, world)
        if shard.dim() != 2 or shard.shape[0] != hi - lo:
            raise ValueError(f"rank {rank} of {world} owns classes [{lo}, {hi}) of C={self.num_classes}: its shard "
                             f"must be ({hi - lo}, D), got shape {tuple(shard.shape)}")
        return lo, hi

    def held_classes(self, num_classes: int) -> tuple[int, int]:
        if num_classes != self.num_classes:
            raise ValueError(f"the centers have {num_classes} classes but the placement shards {self.num_classes}: "
                             f"build it as Sharded({num_classes}, group)")
        return self._range()

    def centers_grad_multiplier(self) -> int:
        return rank_and_world(self.group)[1]  # a shard is in no DDP: its own optimizer divides W * dL/dc by W

    def loss(self, features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, *, variant: Variant,
             convention: Convention, validate: bool) -> torch.Tensor:
        """The loss of the global batch, the same value on every rank, each rank summing the terms it owns."""
        lo, hi = self._own_shard(centers) if validate else self._range()
        if validate:
            _check_local(features, labels, centers.dtype, centers.device, self.num_classes)
        all_features, all_labels, counts = gather_batch(features, labels, self.group, differentiable=True)
        owned = ((all_labels >= lo) & (all_labels < hi)).nonzero().squeeze(1)  # (b_own,)
        local = squared_distance_sum(variant, all_features.index_select(0, owned), all_labels[owned] - lo, centers)
        total = all_sum(local.unsqueeze(0), self.group, differentiable=True)[0]
        return total * convention.scale(sum(counts))

    def update(self, centers: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, *, alpha: float, rule: Rule,
               convention: Convention, variant: Variant, validate: bool) -> None:
        """Each rank steps the rows it owns by `rule` on the gathered global batch, in place.

        validate: non-finite features or a non-finite result anywhere are refused by all ranks together (an
        all-reduce of a flag), so either every shard moves or none does.
        """
        lo, hi = self._own_shard(centers) if validate else self._range()
        if validate:
            _check_local(features, labels, centers.dtype, centers.device, self.num_classes)
        all_features, all_labels, counts = gather_batch(features.detach(), labels, self.group)  # (B, D), (B,)
        if validate:
            check_features_finite(all_features)
        owned = ((all_labels >= lo) & (all_labels < hi)).nonzero().squeeze(1)
        step = None
        if owned.numel():
            step = torch_updated_rows(centers, all_features.index_select(0, owned), all_labels[owned] - lo,
                                      alpha=alpha, rule=rule, convention=convention, batch_size=sum(counts))
        if validate:
            finite = torch.tensor([1.0 if step is None or all_finite(step[1]) else 0.0], device=centers.device)
            if all_sum(finite, self.group) < rank_and_world(self.group)[1]:
                raise nonfinite_step_error(rule, alpha, " on some rank")
        if step is not None:
            centers.index_copy_(0, *step)

    def full_centers(self, centers: torch.Tensor) -> torch.Tensor:
        """The whole (C, D) table from every rank's shard (for evaluation; it costs C * D per rank)."""
        _, world = rank_and_world(self.group)
        self._own_shard(centers)
        counts = [hi - lo for lo, hi in (shard_range(self.num_classes, r, world) for r in range(world))]
        return gather_rows(centers.detach(), counts, self.group)

    def __repr__(self) -> str:
        group = "" if self.group is None else f", group={self.group!r}"
        return f"Sharded({self.num_classes}{group})"


PLACEMENTS: dict[str, type[Replicated] | type[Sharded]] = {placement.form: placement
                                                            for placement in (Replicated, Sharded)}
FORMS = tuple(PLACEMENTS)  # how the (C, D) centers live across ranks, as a cell's `distributed` names them


def form_placement(form: str | None, num_classes: int, group=None) -> Placement:
    """The placement a cell's `distributed` form names for a (num_classes, D) table over `group`: None -> LOCAL."""
    if form is None:
        return LOCAL
    if form not in PLACEMENTS:
        raise ValueError(f"unknown distributed form {form!r}; expected one of {', '.join(FORMS)} (or None: one "
                         "process)")
    return PLACEMENTS[form].for_classes(num_classes, group)
