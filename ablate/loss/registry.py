"""The variant registry: everything about each way of computing center loss, in one entry.

An entry (ablate.loss.variant.Variant) holds the loss, the update it fuses (and for which rules), where it runs,
whether its time there measures it, its byte model and peak memory, and how the listing describes it. CLI
choices, grid cells, the bench suites and cost model, the report and the tests read the registry; a variant's
name appears in no other module's logic. Installed packages add variants through the entry-point group
"ablate.variants" (see ablate.loss.plugins), loaded on the first look-up.

Reading the registry imports no torch: the built-ins name their functions with `lazy("module:attribute")`, and
their availability on the CPU is decided without it (`available_variants("cpu")`, `ablate variants`).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import TYPE_CHECKING

from ablate.kernels import FUSED_RULES
from ablate.loss.devices import device_present, device_type
from ablate.loss.plugins import as_variant
from ablate.loss.variant import Variant
from ablate.registry import Registry, lazy

if TYPE_CHECKING:
    import torch


def triton_available(kind: str) -> bool:
    """Triton kernels run on CUDA with Triton installed, or on the CPU under TRITON_INTERPRET=1."""
    if importlib.util.find_spec("triton") is None:
        return False
    if kind == "cuda":
        return device_present("cuda")
    return kind == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"


def compile_available(kind: str) -> bool:
    """True where torch.compile can generate code: a C++ compiler on the CPU (inductor's C++ backend), Triton on
    CUDA. A Python that dynamo refuses still fails at the first call, with torch's own error."""
    if kind == "cpu":
        return any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++"))
    if kind == "cuda":
        import torch._dynamo
        from torch.utils._triton import has_triton

        return torch._dynamo.is_dynamo_supported() and has_triton()
    return False


def on_cuda(kind: str) -> bool:
    return kind == "cuda"


VARIANTS: Registry[Variant] = Registry("variant", entry_point_group="ablate.variants", from_entry_point=as_variant)
VARIANTS.register(Variant(
    "naive", lazy("ablate.loss.naive:naive_center_loss"), "O(B*C*D)", "O(B*C) temporaries",
    lazy("ablate.loss.naive:naive_bytes"), peak_bytes=lazy("ablate.loss.naive:naive_peak_bytes"), baseline=True,
    cpu_step_s=0.000456))
VARIANTS.register(Variant(
    "gather", lazy("ablate.loss.gather:gather_center_loss"), "O(B*D)", "O(B*D) temporaries",
    lazy("ablate.loss.gather:gather_bytes")))
VARIANTS.register(Variant(  # Triton, an optional dependency, is imported only when the variant is used
    "fused", lazy("ablate.loss.fused:fused_loss"), "O(B*D), one pass", "O(B) saved",
    lazy("ablate.kernels.fused:fused_bytes"), available=triton_available,
    runs_on="CUDA with Triton, or the CPU under TRITON_INTERPRET=1", timed=on_cuda,
    update=lazy("ablate.loss.fused:fused_update"), update_rules=FUSED_RULES,
    update_bytes=lazy("ablate.loss.fused:fused_update_bytes"), compiles=True,
    cpu_step_s=0.0123, cpu_update_step_s=0.0283, compile_s=3.4))  # on the CPU: Triton's interpreter
VARIANTS.register(Variant(
    "compiled", lazy("ablate.loss.compiled:compiled_center_loss"), "O(B*D)", "O(B*D), fused by inductor",
    lazy("ablate.loss.compiled:compiled_bytes"), available=compile_available,
    runs_on="where torch.compile can build code (a C++ compiler; Triton on CUDA)", compiles=True,
    cpu_step_s=0.000671, compile_s=3.7))
DEFAULT_VARIANT = "gather"
PLUGIN_ERRORS = VARIANTS.plugin_errors  # entry-point name -> "ErrorType: message", and availability checks raised


def register_variant(variant: Variant) -> Variant:
    """Add `variant` to the registry; a name already taken is an error."""
    if not isinstance(variant, Variant):
        raise TypeError(f"expected an ablate.loss.Variant, got {type(variant).__name__}")
    return VARIANTS.register(variant)


def variant_names() -> tuple[str, ...]:
    """Every registered variant's name, built-ins first, then installed plugins in load order."""
    return VARIANTS.names()


def get_variant(name: str) -> Variant:
    """The registered variant called `name`; a ValueError lists the valid names otherwise."""
    return VARIANTS.get(name)


def available_variants(device: str | torch.device = "cpu") -> tuple[str, ...]:
    """The names of the variants that can run on `device` (a name such as "cpu" or "cuda:1", or a torch.device).
    A plugin whose availability check raises is taken as unavailable, its error kept in PLUGIN_ERRORS."""
    kind = device_type(device)
    if not device_present(kind):
        return ()
    names = []
    for variant in VARIANTS:
        try:
            if variant.available(kind):
                names.append(variant.name)
        except Exception as exc:
            if variant.source == "built-in":
                raise
            PLUGIN_ERRORS[variant.name] = f"available({kind}) raised {type(exc).__name__}: {exc}"
    return tuple(names)


def baseline_variant() -> str:
    """The name of the variant marked baseline (the popular form the others are measured against)."""
    return next(variant.name for variant in VARIANTS if variant.baseline)
