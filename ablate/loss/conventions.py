"""Loss conventions: what the summed squared distance is divided by, one registry entry each.

    mean       sum_i ||x_i - c_{y_i}||^2 / B       the most used PyTorch implementation
    half_mean  sum_i ||x_i - c_{y_i}||^2 / (2B)    the original Caffe layer
    half_sum   sum_i ||x_i - c_{y_i}||^2 / 2       the paper's Eq. 2

lambda means a different weight under each convention, so every result names its convention.
"""

from __future__ import annotations

from dataclasses import dataclass

from ablate.registry import Registry


@dataclass(frozen=True)
class Convention:
    """sum_i ||x_i - c_{y_i}||^2 times `factor`, divided by the batch B when `per_sample`."""

    name: str
    factor: float
    per_sample: bool
    formula: str
    description: str

    def scale(self, batch_size: int) -> float:
        """The factor that turns the batch's summed squared distance into this convention's loss."""
        return self.factor / batch_size if self.per_sample else self.factor


CONVENTIONS: Registry[Convention] = Registry("convention")
CONVENTIONS.register(Convention("mean", 1.0, True, "sum/B", "the most used PyTorch implementation"))
CONVENTIONS.register(Convention("half_mean", 0.5, True, "sum/2B", "the original Caffe layer"))
CONVENTIONS.register(Convention("half_sum", 0.5, False, "sum/2", "the paper's Eq. 2"))


def convention_scale(convention: str, batch_size: int) -> float:
    """The factor that turns sum_i ||x_i - c_{y_i}||^2 into the loss under `convention` (a ValueError naming the
    conventions for an unknown one)."""
    return CONVENTIONS.get(convention).scale(batch_size)


def conventions_help() -> str:
    """'mean = sum/B (the most used PyTorch implementation), ...': the conventions in words, for option help."""
    return ", ".join(f"{c.name} = {c.formula} ({c.description})" for c in CONVENTIONS)
