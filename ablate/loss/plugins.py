"""Variants from installed packages, through the entry-point group "ablate.variants".

A package declares, in its pyproject.toml,

    [project.entry-points."ablate.variants"]
    mine = "pkg.mod:VARIANT"

where VARIANT is an ablate.loss.Variant (its name becomes the entry point's), or a function
(features (B, D), labels (B,), centers (C, D)) -> 0-dim loss under the "mean" convention (sum/B), which
`variant_from_function` wraps. The variant registry (ablate.loss.registry.VARIANTS) loads them with `as_variant`
on its first look-up in every process, so grid worker processes see the same variants as the command that started
them. A plugin that fails (its import raises, it names something that is not a variant, its name is taken) is left
out and kept in PLUGIN_ERRORS with its error; the built-in variants never depend on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ablate.loss.conventions import convention_scale
from ablate.loss.variant import Variant

if TYPE_CHECKING:
    import torch


def variant_from_function(name: str, fn: Callable, *, convention: str = "mean", work: str = "unknown",
                          memory: str = "unknown", **fields: Any) -> Variant:
    """A Variant around fn(features (B, D), labels (B,), centers (C, D)) -> loss under `convention`; the loss of
    any other convention is that loss rescaled. `fields`: any other Variant field (loss_bytes, available, ...)."""
    convention_scale(convention, 1)  # an unknown convention fails here, not at the first call

    def loss(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, wanted: str) -> torch.Tensor:
        batch = features.shape[0]
        return fn(features, labels, centers) * (convention_scale(wanted, batch) / convention_scale(convention, batch))

    return Variant(name, loss, work, memory, **fields)


def as_variant(name: str, obj: Any, source: str) -> Variant:
    """The Variant an entry point named `name` loaded: a Variant (renamed to `name`) or a loss function."""
    if isinstance(obj, Variant):
        return replace(obj, name=name, source=source)
    if callable(obj):
        return replace(variant_from_function(name, obj), source=source)
    raise TypeError(f"expected an ablate.loss.Variant or a function (features, labels, centers) -> loss, "
                    f"got {type(obj).__name__}")
