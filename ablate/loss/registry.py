"""The variant registry: one name, one loss function, one availability check, one cost line.

CLI choices, benchmarks and tests all come from here (`VARIANTS`, `available_variants`).
"""

import os
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ablate.loss.compiled import compile_available, compiled_center_loss
from ablate.loss.gather import gather_center_loss
from ablate.loss.naive import naive_center_loss


@dataclass(frozen=True)
class Variant:
    """A way of computing center loss.

    loss(features (B, D), labels (B,), centers (C, D), convention) -> 0-dim tensor.
    update: None for the torch row-wise rules, else (centers, features, labels, alpha, rule, convention) -> None.
    """

    name: str
    loss: Callable
    is_available: Callable[[torch.device], bool]
    work: str
    memory: str
    update: Optional[Callable] = None
    update_rules: tuple = ("paper", "sgd", "ema")


def _always(device: torch.device) -> bool:
    return True


def triton_available(device: torch.device) -> bool:
    """Triton kernels run on CUDA with Triton installed, or on the CPU under TRITON_INTERPRET=1."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    if device.type == "cuda":
        return torch.cuda.is_available()
    return device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"


def _fused_loss(features, labels, centers, convention):
    from ablate.kernels.fused import fused_center_loss

    return fused_center_loss(features, labels, centers, convention)


def _fused_update(centers, features, labels, alpha, rule, convention):
    from ablate.kernels.fused import fused_update_centers

    fused_update_centers(centers, features, labels, alpha=alpha, rule=rule, convention=convention)


REGISTRY = {
    v.name: v
    for v in (
        Variant("naive", naive_center_loss, _always, "O(B*C*D)", "O(B*C) temporaries"),
        Variant("gather", gather_center_loss, _always, "O(B*D)", "O(B*D) temporaries"),
        Variant("fused", _fused_loss, triton_available, "O(B*D), one pass", "O(B) saved",
                update=_fused_update, update_rules=("paper", "ema")),
        Variant("compiled", compiled_center_loss, compile_available, "O(B*D)", "O(B*D), fused by inductor"),
    )
}
VARIANTS = tuple(REGISTRY)


def get_variant(name: str) -> Variant:
    """The registered variant called `name`; a ValueError lists the valid names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; expected one of {', '.join(VARIANTS)}") from None


def available_variants(device="cpu") -> tuple:
    """The names of the variants that can run on `device` (a string or torch.device)."""
    device = torch.device(device)
    return tuple(name for name, v in REGISTRY.items() if v.is_available(device))
