"""The public functions: `center_loss` and `update_centers`.

Both take the centers as a placement holds them (`placement`, default `LOCAL`: the whole (C, D) table in this
process; ablate.distributed.centers: across ranks). Choices are given by name and resolved here, once per call,
into registry entries (Variant, Rule, Convention) that the placement and its local steps take (no host
synchronization); `validate=False` skips the checks of the tensors (shapes, dtypes, devices, label range,
finiteness), the only host synchronizations the suite adds: for a hot loop whose inputs are known good.
`CenterLoss` resolves its choices once, when it is built, and calls its placement directly.
"""

import torch

from ablate.loss.conventions import CONVENTIONS
from ablate.loss.placement import LOCAL, Placement, check_placement
from ablate.loss.registry import DEFAULT_VARIANT, get_variant
from ablate.loss.rules import RULES


def center_loss(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, *,
                variant: str = DEFAULT_VARIANT, convention: str = "mean", placement: Placement = LOCAL,
                validate: bool = True) -> torch.Tensor:
    """Center loss of features (B, D) with integer labels (B,) in [0, C) against centers (C, D).

    Returns a 0-dim tensor in float32 (float64 for float64 inputs), differentiable w.r.t.
    features and centers. convention: "mean" (sum/B), "half_mean" (sum/2B), "half_sum" (sum/2).
    placement: how the centers are held; LOCAL (default) the whole table here. Across ranks
    (ablate.distributed.centers) features and labels are this rank's slice, centers its table or shard,
    and the value is the loss of the global batch; see there for the gradients.
    validate: False skips the tensor checks (and their host synchronizations; see the module docstring).
    """
    convention_entry = CONVENTIONS.get(convention)
    variant_entry = get_variant(variant)
    return check_placement(placement).loss(features, labels, centers, variant=variant_entry,
                                           convention=convention_entry, validate=validate)


@torch.no_grad()
def update_centers(centers: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, *, alpha: float,
                   rule: str = "paper", convention: str = "mean", variant: str = DEFAULT_VARIANT,
                   placement: Placement = LOCAL, validate: bool = True) -> None:
    """Move the centers (C, D) toward features (B, D) of labels (B,) in place, by `rule`.

    Only rows named by `labels` are read or written. Refuses non-finite features and any step
    whose result is not finite; the centers are then left untouched.
    placement: as in `center_loss`; across ranks a collective after which every rank's centers have taken
    the step of the global batch.
    validate: False skips the tensor checks, the finiteness checks included (a variant's fused update still
    checks its own result).
    """
    rule_entry = RULES.get(rule)
    rule_entry.check_alpha(alpha)
    convention_entry = CONVENTIONS.get(convention)
    variant_entry = get_variant(variant)
    check_placement(placement).update(centers, features.detach(), labels, alpha=alpha, rule=rule_entry,
                                      convention=convention_entry, variant=variant_entry, validate=validate)
