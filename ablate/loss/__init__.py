"""Center loss: variants behind one signature, update rules, conventions and the float64 reference.

    center_loss(features, labels, centers, *, variant="gather", convention="mean", placement=LOCAL, validate=True)
    update_centers(centers, features, labels, *, alpha, rule="paper", convention="mean", variant="gather",
                   placement=LOCAL, validate=True)
    CenterLoss(num_classes, feat_dim, *, variant, convention, rule, alpha, placement=LOCAL, validate=True)

The names below are imported when first asked for (PEP 562), so that importing a submodule (the registries, read
without torch by `ablate variants` and the report) does not import the functions and the module, which need torch.
"""

import importlib
from typing import Any

_EXPORTS = {
    "CONVENTIONS": "ablate.loss.conventions", "Convention": "ablate.loss.conventions",
    "convention_scale": "ablate.loss.conventions",
    "center_loss": "ablate.loss.functional", "update_centers": "ablate.loss.functional",
    "CenterLoss": "ablate.loss.module",
    "variant_from_function": "ablate.loss.plugins",
    "DEFAULT_VARIANT": "ablate.loss.registry", "PLUGIN_ERRORS": "ablate.loss.registry",
    "VARIANTS": "ablate.loss.registry", "available_variants": "ablate.loss.registry",
    "baseline_variant": "ablate.loss.registry", "get_variant": "ablate.loss.registry",
    "register_variant": "ablate.loss.registry", "variant_names": "ablate.loss.registry",
    "RULES": "ablate.loss.rules", "Rule": "ablate.loss.rules",
    "Variant": "ablate.loss.variant",
    "DEVICES": "ablate.loss.devices",
    "LOCAL": "ablate.loss.placement", "Local": "ablate.loss.placement", "Placement": "ablate.loss.placement",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # the next look-up finds it without this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
