"""Center loss by indexing each sample's own center: O(B*D) work, nothing of size B x C."""

import torch

from ablate.loss.conventions import convention_scale


def gather_center_loss(features, labels, centers, convention: str = "mean") -> torch.Tensor:
    """features (B, D), labels (B,), centers (C, D) -> 0-dim loss, summed in at least float32."""
    diff = features - centers.index_select(0, labels)  # (B, D), input dtype
    acc = diff.to(torch.promote_types(diff.dtype, torch.float32))  # half inputs sum in fp32
    return acc.pow(2).sum() * convention_scale(convention, features.shape[0])
