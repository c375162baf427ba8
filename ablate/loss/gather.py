"""Center loss by indexing each sample's own center: O(B*D) work, nothing of size B x C."""

import torch

from ablate.loss.conventions import convention_scale
from ablate.traffic import LABEL_BYTES, by_mode, element_sizes, total


def squared_distance_sum(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """features (B, D), labels (B,), centers (C, D) -> 0-dim sum_i ||x_i - c_{y_i}||^2, in at least float32."""
    diff = features - centers.index_select(0, labels)  # (B, D), input dtype
    acc = diff.to(torch.promote_types(diff.dtype, torch.float32))  # half inputs sum in fp32
    return acc.pow(2).sum()


def gather_center_loss(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, convention: str = "mean"
                       ) -> torch.Tensor:
    """features (B, D), labels (B,), centers (C, D) -> 0-dim loss, summed in at least float32."""
    return squared_distance_sum(features, labels, centers) * convention_scale(convention, features.shape[0])


def gather_bytes(mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype) -> int:
    """Bytes one call moves in `mode`, op by op as gather_center_loss runs them (see ablate.traffic)."""
    B, D = batch, dim
    e, a = element_sizes(dtype)
    i = LABEL_BYTES
    cast = e != a  # half inputs are cast to float32 before squaring
    forward = [
        (B * i + B * D * e, B * D * e),  # centers.index_select(0, labels)   -> (B, D)
        (2 * B * D * e, B * D * e),      # features - rows                     -> diff (B, D)
        *([(B * D * e, B * D * a)] if cast else []),  # diff.to(float32)
        (B * D * a, B * D * a),          # .pow(2)                             -> (B, D)
        (B * D * a, a),                  # .sum()                              -> scalar
    ]
    backward = [
        (B * D * a, B * D * a),          # pow backward: 2 * acc * grad       -> (B, D)
        *([(B * D * a, B * D * e)] if cast else []),  # to() backward: cast the gradient back
        # sub backward hands the gradient to the features as is; index_select gets none (centers need no grad)
    ]
    return total(by_mode(mode, forward, backward))
