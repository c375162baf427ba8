"""The variant registry: everything about each way of computing center loss, in one entry.

An entry holds the loss, the update it fuses (and for which rules), where it runs, whether its time there
measures it, its byte model and peak memory, and how the listing describes it. CLI choices, grid cells, the
bench suites and cost model, the report and the tests read the registry; a variant's name appears in no other
module's logic. Installed packages add variants through the entry-point group "ablate.variants" (see
ablate.loss.plugins); they are loaded on the first look-up.
"""

import os
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ablate.kernels import FUSED_RULES
from ablate.loss.compiled import compile_available, compiled_bytes, compiled_center_loss
from ablate.loss.gather import gather_bytes, gather_center_loss
from ablate.loss.naive import naive_bytes, naive_center_loss, naive_peak_bytes
from ablate.loss.updates import torch_update_bytes
from ablate.traffic import element_sizes


def runs_anywhere(device: torch.device) -> bool:
    return True


def few_rows_peak_bytes(mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype) -> int:
    """A generous estimate of the memory beyond its inputs of a variant that holds a few (B, D) temporaries."""
    return int(6 * batch * dim * element_sizes(dtype)[1])


@dataclass(frozen=True)
class Variant:
    """A way of computing center loss, and everything the suite needs to know about it.

    loss(features (B, D), labels (B,), centers (C, D), convention) -> 0-dim tensor.
    loss_bytes(mode, batch, classes, dim, dtype) -> bytes one loss call moves in mode forward | backward | full
    (ablate.traffic says how to count); None: no byte model (its GB/s is left blank).
    update(centers, features, labels, alpha, rule, convention) -> None, in place, for the rules in update_rules;
    the other rules run the torch rows of ablate.loss.updates. update_bytes(batch, classes, dim, dtype): its bytes.
    available(device): it can run there; runs_on says what that needs, in words.
    timed(device): its time there measures the variant itself (an interpreted kernel measures Python).
    peak_bytes(mode, batch, classes, dim, dtype): memory one loss call needs beyond its inputs (cells over budget
    skip).
    compiles: its first call builds code (seconds), so the quick suite leaves it out.
    baseline: the variant the bench report divides the others' times by.
    """

    name: str
    loss: Callable
    work: str
    memory: str
    loss_bytes: Optional[Callable] = None
    available: Callable = runs_anywhere
    runs_on: str = "any device"
    timed: Callable = runs_anywhere
    update: Optional[Callable] = None
    update_rules: tuple = ()
    update_bytes: Optional[Callable] = None
    peak_bytes: Callable = few_rows_peak_bytes
    compiles: bool = False
    baseline: bool = False
    source: str = "built-in"  # or the distribution and entry point it came from

    def fuses(self, rule: str) -> bool:
        """True if this variant's own update implements `rule`."""
        return self.update is not None and rule in self.update_rules

    def bytes_moved(self, mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype,
                    rule: str = "paper") -> Optional[int]:
        """Bytes one call in `mode` (forward, backward, full, update by `rule`) moves; None without a model."""
        if mode == "update":
            if not self.fuses(rule):
                return torch_update_bytes(batch, classes, dim, dtype)
            return None if self.update_bytes is None else int(self.update_bytes(batch, classes, dim, dtype))
        return None if self.loss_bytes is None else int(self.loss_bytes(mode, batch, classes, dim, dtype))

    def peak_memory(self, mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype) -> int:
        """A generous estimate of the memory one call in `mode` needs beyond its inputs (an update holds rows)."""
        if mode == "update":
            return few_rows_peak_bytes(mode, batch, classes, dim, dtype)
        return int(self.peak_bytes(mode, batch, classes, dim, dtype))


def triton_available(device: torch.device) -> bool:
    """Triton kernels run on CUDA with Triton installed, or on the CPU under TRITON_INTERPRET=1."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    if device.type == "cuda":
        return torch.cuda.is_available()
    return device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"


def on_cuda(device: torch.device) -> bool:
    return device.type == "cuda"


# The fused variant's module imports Triton, an optional dependency: reach it only when the variant is used.
def _fused_loss(features, labels, centers, convention):
    from ablate.kernels.fused import fused_center_loss

    return fused_center_loss(features, labels, centers, convention)


def _fused_update(centers, features, labels, alpha, rule, convention):
    from ablate.kernels.fused import fused_update_centers

    fused_update_centers(centers, features, labels, alpha=alpha, rule=rule, convention=convention)


def _fused_bytes(mode, batch, classes, dim, dtype):
    from ablate.kernels.fused import fused_bytes

    return fused_bytes(mode, batch, classes, dim, dtype)


def _fused_update_bytes(batch, classes, dim, dtype):
    return _fused_bytes("update", batch, classes, dim, dtype)


REGISTRY = {
    v.name: v
    for v in (
        Variant("naive", naive_center_loss, "O(B*C*D)", "O(B*C) temporaries", naive_bytes,
                peak_bytes=naive_peak_bytes, baseline=True),
        Variant("gather", gather_center_loss, "O(B*D)", "O(B*D) temporaries", gather_bytes),
        Variant("fused", _fused_loss, "O(B*D), one pass", "O(B) saved", _fused_bytes, available=triton_available,
                runs_on="CUDA with Triton, or the CPU under TRITON_INTERPRET=1", timed=on_cuda,
                update=_fused_update, update_rules=FUSED_RULES, update_bytes=_fused_update_bytes, compiles=True),
        Variant("compiled", compiled_center_loss, "O(B*D)", "O(B*D), fused by inductor", compiled_bytes,
                available=compile_available, runs_on="where torch.compile can build code (a C++ compiler; Triton on "
                "CUDA)", compiles=True),
    )
}
DEFAULT_VARIANT = "gather"


def register_variant(variant: Variant) -> Variant:
    """Add `variant` to the registry; a name already taken is an error."""
    if not isinstance(variant, Variant):
        raise TypeError(f"expected an ablate.loss.Variant, got {type(variant).__name__}")
    if variant.name in REGISTRY:
        raise ValueError(f"a variant named {variant.name!r} is already registered ({REGISTRY[variant.name].source})")
    REGISTRY[variant.name] = variant
    return variant


def variant_names() -> tuple:
    """Every registered variant's name, built-ins first, then installed plugins in load order."""
    from ablate.loss.plugins import load_plugins

    load_plugins()
    return tuple(REGISTRY)


def get_variant(name: str) -> Variant:
    """The registered variant called `name`; a ValueError lists the valid names otherwise."""
    names = variant_names()
    if name not in REGISTRY:
        raise ValueError(f"unknown variant {name!r}; expected one of {', '.join(names)}")
    return REGISTRY[name]


def device_present(device: torch.device) -> bool:
    """Whether torch can compute on `device` here: the CPU, CUDA or MPS when torch sees one; never meta (shapes
    only) nor a device type whose backend is not installed (xla, ...)."""
    backends = {"cpu": lambda: True, "cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
    return backends.get(device.type, lambda: False)()


def available_variants(device="cpu") -> tuple:
    """The names of the variants that can run on `device` (a string or torch.device). A plugin whose
    availability check raises is taken as unavailable, its error kept in PLUGIN_ERRORS."""
    from ablate.loss.plugins import PLUGIN_ERRORS

    device = torch.device(device)
    if not device_present(device):
        return ()
    names = []
    for name in variant_names():
        variant = REGISTRY[name]
        try:
            if variant.available(device):
                names.append(name)
        except Exception as exc:
            if variant.source == "built-in":
                raise
            PLUGIN_ERRORS[name] = f"available({device}) raised {type(exc).__name__}: {exc}"
    return tuple(names)


def baseline_variant() -> str:
    """The name of the variant marked baseline (the popular form the others are measured against)."""
    return next(name for name in variant_names() if REGISTRY[name].baseline)
