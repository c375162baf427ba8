"""The space center loss works in (ablate.objectives.CENTER_SPACES): what the training loop, the followers of a
shared training and the evaluation each put a cell's features in before they meet its centers."""

import torch
import torch.nn.functional as F

from ablate.objectives import NORMALIZED


def in_center_space(features: torch.Tensor, center_space: str) -> torch.Tensor:
    """features (B, D) in the space center loss works in: themselves, or each divided by its norm (a zero feature
    stays zero)."""
    return F.normalize(features, dim=1) if center_space == NORMALIZED else features
