"""`CenterLoss`: an nn.Module that owns the centers and knows its variant, convention, rule and placement, resolved
from their names once, when it is built."""

import torch
from torch import nn

from ablate.loss.conventions import CONVENTIONS, Convention
from ablate.loss.devices import device_present, device_type
from ablate.loss.initial import initial_centers
from ablate.loss.placement import LOCAL, Placement, check_placement
from ablate.loss.registry import DEFAULT_VARIANT, available_variants, get_variant
from ablate.loss.rules import RULES, Rule
from ablate.loss.variant import Variant


class CenterLoss(nn.Module):
    """Center loss with its own centers (C, D): a Parameter for a rule that is a gradient step ("sgd"), a buffer
    otherwise.

    One training step with softmax + lambda * center loss (rule "paper", the paper's Algorithm 1)::

        crit = CenterLoss(num_classes=10, feat_dim=2, variant="gather", convention="mean",
                          rule="paper", alpha=0.5)
        features, logits = model(images)                     # (B, D), (B, C)
        loss = F.cross_entropy(logits, labels) + lam * crit(features, labels)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        crit.update(features.detach(), labels)               # Eq. 4; no gradient reaches the centers

    With rule "sgd" the centers are a Parameter: either call `update` (plain SGD, lr alpha, on
    dL_C/dc), or, as the popular implementation does, give them their own
    `torch.optim.SGD([crit.centers], lr=alpha)`, multiply their gradient by 1/(lam * centers_grad_multiplier)
    and step.

    placement: where the centers live (ablate.loss.placement). Local() (default): the whole table here. Across
    ranks (a process group started, every rank seeded alike), ablate.distributed's Replicated(group) keeps the
    whole table on every rank and Sharded(num_classes, group) only this rank's rows [lo, hi) (`class_range`);
    forward and update are then collectives giving the one-process result on the global batch (see
    ablate.distributed.centers). Replicated centers under rule "sgd" with their own optimizer belong in
    a DistributedDataParallel, whose average of the ranks' gradients is the one-process gradient.

    Every choice is resolved and checked here, at construction: `variant`, `convention` and `rule` are then the
    registry entries (ablate.loss.Variant, Convention, Rule) that forward and update hand to the placement. A
    variant that cannot run on `device` here (fused on a CPU without TRITON_INTERPRET=1) is refused. The rule's
    stability (ablate.loss.rules: the center error grows once a class's step times its count in the batch exceeds
    2) depends on the batch: given batch_size, a rule and alpha unstable at it are refused here, as a grid refuses
    the cell (an update is not refused by its batch's size alone: its labels decide whether a center overshoots).
    Across ranks the step is the global batch's: a training passes batch_size x ranks.
    validate=False: forward and update skip the checks of the tensors and their host synchronizations (see
    ablate.loss.functional).
    """

    def __init__(self, num_classes: int, feat_dim: int, *, variant: str = DEFAULT_VARIANT, convention: str = "mean",
                 rule: str = "paper", alpha: float = 0.5, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None, placement: Placement = LOCAL, validate: bool = True,
                 batch_size: int | None = None):
        super().__init__()
        for name, value in (("num_classes", num_classes), ("feat_dim", feat_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        # Every choice fails here, not at the first forward or update.
        self.variant: Variant = get_variant(variant)
        self.convention: Convention = CONVENTIONS.get(convention)
        self.rule: Rule = RULES.get(rule)
        self.rule.check_alpha(alpha)
        if batch_size is not None:  # the batch a grid trains with: refused as the grid refuses it (Rule.check_stable)
            if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
                raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
            self.rule.check_stable(alpha, self.convention.name, batch_size)
        kind = device_type(device if device is not None else torch.get_default_device())
        if device_present(kind) and self.variant.name not in available_variants(kind):
            raise ValueError(f"variant {self.variant.name!r} cannot run on {kind} here: it needs "
                             f"{self.variant.runs_on}; available there: {', '.join(available_variants(kind))}")
        check_placement(placement)
        if not isinstance(validate, bool):
            raise TypeError(f"validate must be True or False, got {validate!r}")
        self.alpha = alpha
        self.num_classes, self.placement, self.validate = num_classes, placement, validate
        self.class_range = placement.held_classes(num_classes)
        self.centers_grad_multiplier = placement.centers_grad_multiplier()
        # (C, D), or this rank's rows of it
        centers = initial_centers(num_classes, feat_dim, self.class_range, dtype=dtype, device=device)
        self.centers: torch.Tensor
        if self.learns_by_gradient:
            self.centers = nn.Parameter(centers)
        else:
            self.register_buffer("centers", centers)

    @property
    def learns_by_gradient(self) -> bool:
        """The rule is SGD on dL_C/dc (`Rule.gradient_step`): the centers are a Parameter, and an optimizer of their
        own may take the step from their gradient."""
        return self.rule.gradient_step

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """features (B, D), labels (B,) -> 0-dim loss under this module's convention."""
        return self.placement.loss(features, labels, self.centers, variant=self.variant, convention=self.convention,
                                   validate=self.validate)

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """One step of this module's rule on the rows named by labels (B,); features (B, D) are detached."""
        self.placement.update(self.centers.data, features.detach(), labels, alpha=self.alpha, rule=self.rule,
                              convention=self.convention, variant=self.variant, validate=self.validate)

    def full_centers(self) -> torch.Tensor:
        """The whole (C, D) table, detached: gathered from every rank's shard when sharded (a collective)."""
        return self.placement.full_centers(self.centers)

    def extra_repr(self) -> str:
        held = "" if self.class_range == (0, self.num_classes) else f", classes={self.class_range}"
        return (f"{self.num_classes}, {self.centers.shape[1]}, variant={self.variant.name}, "
                f"convention={self.convention.name}, rule={self.rule.name}, alpha={self.alpha}, "
                f"placement={self.placement!r}{held}")
