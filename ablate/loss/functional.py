"""The public functions: `center_loss` and `update_centers`."""

import torch

from ablate.loss.conventions import CONVENTIONS
from ablate.loss.registry import DEFAULT_VARIANT, get_variant
from ablate.loss.rules import RULES
from ablate.loss.updates import torch_updated_rows
from ablate.loss.validation import all_finite, check_inputs


def center_loss(features, labels, centers, *, variant: str = DEFAULT_VARIANT, convention: str = "mean",
                distributed: str = None, group=None, num_classes: int = None) -> torch.Tensor:
    """Center loss of features (B, D) with integer labels (B,) in [0, C) against centers (C, D).

    Returns a 0-dim tensor in float32 (float64 for float64 inputs), differentiable w.r.t.
    features and centers. convention: "mean" (sum/B), "half_mean" (sum/2B), "half_sum" (sum/2).
    distributed: None (one process), "replicated" or "sharded" (centers: this rank's rows, of num_classes
    in all): a collective over `group` (default: the whole world) whose value is the loss of the global
    batch, every rank's features being its slice; see ablate.distributed.centers for the gradients.
    """
    CONVENTIONS.check(convention)
    impl = get_variant(variant)
    if distributed is not None:
        from ablate.distributed.centers import distributed_center_loss

        return distributed_center_loss(distributed, features, labels, centers, variant=variant, convention=convention,
                                       group=group, num_classes=num_classes)
    check_inputs(features, labels, centers)
    labels = labels.long()  # any integer dtype in; the variants index with int64 (a no-op for int64)
    loss = impl.loss(features, labels, centers, convention)
    return loss.to(torch.promote_types(features.dtype, torch.float32))


@torch.no_grad()
def update_centers(centers, features, labels, *, alpha: float, rule: str = "paper",
                   convention: str = "mean", variant: str = DEFAULT_VARIANT, distributed: str = None, group=None,
                   num_classes: int = None) -> None:
    """Move the centers (C, D) toward features (B, D) of labels (B,) in place, by `rule`.

    Only rows named by `labels` are read or written. Refuses non-finite features and any step
    whose result is not finite; the centers are then left untouched.
    distributed: None (one process), "replicated" or "sharded" (as in `center_loss`): a collective
    after which every rank's centers have taken the step of the global batch.
    """
    update_rule = RULES.get(rule)
    CONVENTIONS.check(convention)
    impl = get_variant(variant)
    if distributed is not None:
        from ablate.distributed.centers import distributed_update

        update_rule.check_alpha(alpha)
        distributed_update(distributed, centers, features, labels, alpha=alpha, rule=rule, convention=convention,
                           variant=variant, group=group, num_classes=num_classes)
        return
    check_inputs(features, labels, centers)
    update_rule.check_alpha(alpha)
    labels = labels.long()
    if not all_finite(features):
        raise ValueError("features must be finite to update the centers; the centers were left untouched")
    if impl.fuses(rule):
        # The kernel writes in place; it checks finiteness itself before committing.
        impl.update(centers, features.detach(), labels, alpha, rule, convention)
        return
    classes, rows = torch_updated_rows(centers, features.detach(), labels, alpha=alpha, rule=rule, convention=convention)
    if not all_finite(rows):
        raise ValueError(f"the {rule!r} step with alpha={alpha} gave non-finite centers; the centers were left untouched")
    centers.index_copy_(0, classes, rows)
