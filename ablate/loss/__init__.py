"""Center loss: variants behind one signature, update rules, conventions and the float64 reference.

    center_loss(features, labels, centers, *, variant="gather", convention="mean", placement=LOCAL, validate=True)
    update_centers(centers, features, labels, *, alpha, rule="paper", convention="mean", variant="gather",
                   placement=LOCAL, validate=True)
    CenterLoss(num_classes, feat_dim, *, variant, convention, rule, alpha, placement=LOCAL, validate=True)
"""

from ablate.loss.conventions import CONVENTIONS, convention_scale
from ablate.loss.functional import center_loss, update_centers
from ablate.loss.module import CenterLoss
from ablate.loss.placement import LOCAL, Local, Placement
from ablate.loss.plugins import PLUGIN_ERRORS, variant_from_function
from ablate.loss.registry import (DEFAULT_VARIANT, Variant, available_variants, baseline_variant, get_variant,
                                  register_variant, variant_names)
from ablate.loss.updates import RULES

__all__ = [
    "CONVENTIONS", "DEFAULT_VARIANT", "LOCAL", "PLUGIN_ERRORS", "RULES", "CenterLoss", "Local", "Placement", "Variant",
    "available_variants",
    "baseline_variant", "center_loss", "convention_scale", "get_variant", "register_variant", "update_centers",
    "variant_from_function", "variant_names",
]
