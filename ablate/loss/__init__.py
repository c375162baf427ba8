"""Center loss: variants behind one signature, update rules, conventions and the float64 reference.

    center_loss(features, labels, centers, *, variant="gather", convention="mean")
    update_centers(centers, features, labels, *, alpha, rule="paper", convention="mean", variant="gather")
    CenterLoss(num_classes, feat_dim, *, variant, convention, rule, alpha)
"""

from ablate.loss.conventions import CONVENTIONS, convention_scale
from ablate.loss.functional import center_loss, update_centers
from ablate.loss.module import CenterLoss
from ablate.loss.registry import VARIANTS, available_variants, get_variant
from ablate.loss.updates import RULES

__all__ = [
    "CONVENTIONS", "RULES", "VARIANTS", "CenterLoss", "available_variants", "center_loss",
    "convention_scale", "get_variant", "update_centers",
]
