"""`Variant`: a way of computing center loss and everything the suite needs to know about it (one registry entry
of ablate.loss.registry). Importing this module imports no torch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def runs_anywhere(device_type: str) -> bool:
    return True


def few_rows_peak_bytes(mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype) -> int:
    """A generous estimate of the memory beyond its inputs of a variant that holds a few (B, D) temporaries."""
    from ablate.traffic import element_sizes

    return int(6 * batch * dim * element_sizes(dtype)[1])


@dataclass(frozen=True)
class Variant:
    """A way of computing center loss, and everything the suite needs to know about it.

    loss(features (B, D), labels (B,), centers (C, D), convention) -> 0-dim tensor.
    loss_bytes(mode, batch, classes, dim, dtype) -> bytes one loss call moves in mode forward | backward | full
    (ablate.traffic says how to count); None: no byte model (its GB/s is left blank).
    update(centers, features, labels, alpha, rule, convention) -> None, in place, for the rules in update_rules;
    the other rules run the torch rows of ablate.loss.updates. update_bytes(batch, classes, dim, dtype): its bytes.
    available(device_type): it can run on that kind of device ("cpu", "cuda", "mps": ablate.loss.devices); runs_on
    says what that needs, in words. Asked about the CPU it should not import torch, so that listing the variants
    stays quick.
    timed(device_type): its time there measures the variant itself (an interpreted kernel measures Python).
    peak_bytes(mode, batch, classes, dim, dtype): memory one loss call needs beyond its inputs (cells over budget
    skip).
    compiles: its first call builds code (seconds), so the quick suite leaves it out.
    baseline: the variant the bench report divides the others' times by.
    cpu_step_s, cpu_update_step_s, compile_s: what a training step on the CPU costs with it beyond one with gather,
    and beyond that with its own update (the rules in update_rules), and its first call in a process, in CPU seconds
    of one thread (ablate.grid.estimate; 0: not measured, as gather).
    """

    name: str
    loss: Callable
    work: str
    memory: str
    loss_bytes: Callable | None = None
    available: Callable[[str], bool] = runs_anywhere
    runs_on: str = "any device"
    timed: Callable[[str], bool] = runs_anywhere
    update: Callable | None = None
    update_rules: tuple[str, ...] = ()
    update_bytes: Callable | None = None
    peak_bytes: Callable = few_rows_peak_bytes
    compiles: bool = False
    baseline: bool = False
    source: str = "built-in"  # or the distribution and entry point it came from
    cpu_step_s: float = 0.0
    cpu_update_step_s: float = 0.0
    compile_s: float = 0.0

    def fuses(self, rule: str) -> bool:
        """True if this variant's own update implements `rule`."""
        return self.update is not None and rule in self.update_rules

    def bytes_moved(self, mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype,
                    rule: str = "paper") -> int | None:
        """Bytes one call in `mode` (forward, backward, full, update by `rule`) moves; None without a model."""
        if mode == "update":
            if not self.fuses(rule):
                from ablate.loss.updates import torch_update_bytes

                return torch_update_bytes(batch, classes, dim, dtype)
            return None if self.update_bytes is None else int(self.update_bytes(batch, classes, dim, dtype))
        return None if self.loss_bytes is None else int(self.loss_bytes(mode, batch, classes, dim, dtype))

    def peak_memory(self, mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype) -> int:
        """A generous estimate of the memory one call in `mode` needs beyond its inputs (an update holds rows)."""
        if mode == "update":
            return few_rows_peak_bytes(mode, batch, classes, dim, dtype)
        return int(self.peak_bytes(mode, batch, classes, dim, dtype))
