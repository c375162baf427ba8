"""Where the centers live: the `Placement` protocol, and `Local` (one process holds the whole table).

A placement computes the loss and the update on the centers as it holds them. `Local` is the default of
`center_loss`, `update_centers` and `CenterLoss`; ablate.distributed.centers adds `Replicated` (every rank
holds the whole table) and `Sharded` (each rank holds its own rows), which are collectives built on the same
local steps (ablate.loss.local).

validate (every method that takes inputs): True checks shapes, dtypes, devices and the label range, and refuses
non-finite features or a non-finite step (host synchronizations: on CUDA each waits for the device); False trusts
the inputs and adds no synchronization of its own. Choices arrive resolved, as registry entries (Variant, Rule,
Convention), and checked (alpha): the public functions and `CenterLoss` resolve names once, at their entry.
"""

from abc import ABC, abstractmethod

import torch

from ablate.loss.conventions import Convention
from ablate.loss.local import step_centers
from ablate.loss.rules import Rule
from ablate.loss.validation import check_inputs
from ablate.loss.variant import Variant


class Placement(ABC):
    """How the (C, D) centers are held, and the loss and update on them as held.

    An abstract base class rather than a typing.Protocol: `center_loss` checks its placement on every call, and
    isinstance against a runtime-checkable Protocol inspects every method each time (tens of microseconds, more
    than a small loss costs) where against a base class it is a cached subclass test.
    """

    @abstractmethod
    def held_classes(self, num_classes: int) -> tuple[int, int]:
        """The classes [lo, hi) whose centers this process holds, of num_classes in all."""
        ...

    @abstractmethod
    def centers_grad_multiplier(self) -> int:
        """What an optimizer of the centers held here divides their gradient by (beyond lambda) to step as one
        process would: 1 unless a data-parallel wrapper's average does not apply to them."""
        ...

    @abstractmethod
    def loss(self, features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, *, variant: Variant,
             convention: Convention, validate: bool) -> torch.Tensor:
        """features (b, D), labels (b,), centers as held (hi - lo, D) -> 0-dim loss of the whole batch."""
        ...

    @abstractmethod
    def update(self, centers: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, *, alpha: float, rule: Rule,
               convention: Convention, variant: Variant, validate: bool) -> None:
        """One step of `rule` of the whole batch on the centers as held (hi - lo, D), in place."""
        ...

    @abstractmethod
    def full_centers(self, centers: torch.Tensor) -> torch.Tensor:
        """The whole (C, D) table from the centers as held, detached."""
        ...


class Local(Placement):
    """The whole (C, D) table in this process: the loss and step of features (B, D) and labels (B,) in [0, C)."""

    def held_classes(self, num_classes: int) -> tuple[int, int]:
        return 0, num_classes

    def centers_grad_multiplier(self) -> int:
        return 1

    def loss(self, features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, *, variant: Variant,
             convention: Convention, validate: bool) -> torch.Tensor:
        if validate:
            check_inputs(features, labels, centers)
        labels = labels.long()  # any integer dtype in; the variants index with int64 (a no-op for int64)
        loss = variant.loss(features, labels, centers, convention.name)  # a variant's functions take names
        return loss.to(torch.promote_types(features.dtype, torch.float32))

    def update(self, centers: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, *, alpha: float, rule: Rule,
               convention: Convention, variant: Variant, validate: bool) -> None:
        if validate:
            check_inputs(features, labels, centers)
        step_centers(centers, features, labels.long(), alpha=alpha, rule=rule, convention=convention, variant=variant,
                     validate=validate)

    def full_centers(self, centers: torch.Tensor) -> torch.Tensor:
        return centers.detach()

    def __repr__(self) -> str:
        return "Local()"


LOCAL = Local()


def check_placement(placement: object) -> Placement:
    """`placement` itself when it implements the Placement protocol; a TypeError naming the placements otherwise."""
    if not isinstance(placement, Placement):
        raise TypeError(f"placement must be a Placement (ablate.loss.Local(), or ablate.distributed's "
                        f"Replicated(group) or Sharded(num_classes, group)), got {placement!r}")
    return placement
