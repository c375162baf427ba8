"""The popular B x C distance-matrix form of center loss, kept faithful on purpose.

Work O(B*C*D) (one (B, D) x (D, C) matmul) and several (B, C) temporaries, although only B of
the B*C distances are used. Its artifacts, which the suite measures rather than hides:
- the clamp to [1e-12, 1e12] runs over the whole masked matrix, so each of the B*(C-1) masked
  zeros becomes 1e-12: (C-1)*1e-12 is added to the loss under the "mean" convention;
- the clamp zeroes the gradient of any sample whose computed distance is below 1e-12, negative
  values from cancellation included;
- ||x||^2 + ||c||^2 - 2 x.c cancels: in bf16 its error is of order eps * ||x||^2, far larger
  than the small intra-class distances center loss drives toward;
- in float16 it cannot run at all: the clamp's upper bound 1e12 overflows float16 (max 65504).
"""

import torch

from ablate.loss.conventions import convention_scale

CLAMP_MIN, CLAMP_MAX = 1e-12, 1e12


def naive_center_loss(features, labels, centers, convention: str = "mean") -> torch.Tensor:
    """features (B, D), labels (B,), centers (C, D) -> 0-dim loss in the input dtype."""
    if features.dtype == torch.float16:
        raise TypeError(
            "variant 'naive' cannot run in float16: its clamp to [1e-12, 1e12] overflows float16 (max 65504); "
            "use bfloat16, float32 or float64, or another variant"
        )
    batch_size, num_classes = features.shape[0], centers.shape[0]
    distmat = (
        features.pow(2).sum(dim=1, keepdim=True).expand(batch_size, num_classes)
        + centers.pow(2).sum(dim=1, keepdim=True).expand(num_classes, batch_size).t()
    )  # (B, C)
    distmat = distmat.addmm(features, centers.t(), beta=1, alpha=-2)  # (B, C)
    classes = torch.arange(num_classes, device=features.device, dtype=labels.dtype)
    mask = labels.unsqueeze(1).expand(batch_size, num_classes).eq(classes.expand(batch_size, num_classes))  # (B, C)
    dist = distmat * mask.to(distmat.dtype)  # (B, C)
    # The popular form divides by B; the other conventions rescale that same sum.
    return dist.clamp(min=CLAMP_MIN, max=CLAMP_MAX).sum() * convention_scale(convention, batch_size)


def naive_artifact(num_classes: int, batch_size: int, convention: str = "mean") -> float:
    """The constant the clamp adds to the loss: B*(C-1) masked zeros raised to 1e-12, then scaled."""
    return batch_size * (num_classes - 1) * CLAMP_MIN * convention_scale(convention, batch_size)
