"""Variants from installed packages, through the entry-point group "ablate.variants".

A package declares, in its pyproject.toml,

    [project.entry-points."ablate.variants"]
    mine = "pkg.mod:VARIANT"

where VARIANT is an ablate.loss.Variant (its name becomes the entry point's), or a function
(features (B, D), labels (B,), centers (C, D)) -> 0-dim loss under the "mean" convention (sum/B), which
`variant_from_function` wraps. Every process loads the plugins on its first look-up in the registry, so grid
worker processes see the same variants as the command that started them. A plugin that fails (its import
raises, it names something that is not a variant, its name is taken) is left out and kept in PLUGIN_ERRORS
with its error; the built-in variants never depend on it.
"""

from dataclasses import replace
from importlib.metadata import entry_points

from ablate.loss.conventions import convention_scale
from ablate.loss.registry import Variant, register_variant

ENTRY_POINT_GROUP = "ablate.variants"
PLUGIN_ERRORS: dict = {}  # entry-point name -> "ErrorType: message"
_state = {"loaded": False}


def variant_from_function(name: str, fn, *, convention: str = "mean", work: str = "unknown",
                          memory: str = "unknown", **fields) -> Variant:
    """A Variant around fn(features (B, D), labels (B,), centers (C, D)) -> loss under `convention`; the loss of
    any other convention is that loss rescaled. `fields`: any other Variant field (loss_bytes, available, ...)."""
    convention_scale(convention, 1)  # an unknown convention fails here, not at the first call

    def loss(features, labels, centers, wanted: str):
        batch = features.shape[0]
        return fn(features, labels, centers) * (convention_scale(wanted, batch) / convention_scale(convention, batch))

    return Variant(name, loss, work, memory, **fields)


def as_variant(name: str, obj, source: str) -> Variant:
    """The Variant an entry point named `name` loaded: a Variant (renamed to `name`) or a loss function."""
    if isinstance(obj, Variant):
        return replace(obj, name=name, source=source)
    if callable(obj):
        return replace(variant_from_function(name, obj), source=source)
    raise TypeError(f"expected an ablate.loss.Variant or a function (features, labels, centers) -> loss, "
                    f"got {type(obj).__name__}")


def load_plugins() -> None:
    """Register the variant of every "ablate.variants" entry point once per process; failures go to PLUGIN_ERRORS."""
    if _state["loaded"]:
        return
    _state["loaded"] = True  # first: a plugin that looks up the registry while it loads must not recurse
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        source = f"{entry.dist.name if entry.dist else 'unknown distribution'}: {entry.value}"
        try:
            register_variant(as_variant(entry.name, entry.load(), source))
        except Exception as exc:  # any failure of someone else's code is recorded, never raised
            PLUGIN_ERRORS[entry.name] = f"{type(exc).__name__}: {exc}".strip()
