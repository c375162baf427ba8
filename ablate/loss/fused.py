"""The `fused` variant's entry points: the Triton kernels of ablate.kernels.fused under the registry's signatures,
the convention turned into the kernels' scale here. Importing this module imports Triton."""

import torch

from ablate.kernels.fused import fused_bytes, fused_center_loss, fused_update_centers
from ablate.loss.conventions import convention_scale


def fused_loss(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, convention: str = "mean"
               ) -> torch.Tensor:
    """features (B, D), labels (B,), centers (C, D) -> 0-dim loss under `convention`."""
    return fused_center_loss(features, labels, centers, convention_scale(convention, features.shape[0]))


def fused_update(centers: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, alpha: float, rule: str,
                 convention: str) -> None:
    """One step of `rule` (one of ablate.kernels.FUSED_RULES) on centers (C, D), in place; the convention does not
    enter these rules."""
    fused_update_centers(centers, features, labels, alpha=alpha, rule=rule)


def fused_update_bytes(batch: int, classes: int, dim: int, dtype: torch.dtype) -> int:
    """Bytes one update_centers(..., variant="fused") call moves (ablate.kernels.fused.fused_bytes)."""
    return fused_bytes("update", batch, classes, dim, dtype)
