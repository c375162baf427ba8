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
from ablate.traffic import LABEL_BYTES, by_mode, element_sizes, total

CLAMP_MIN, CLAMP_MAX = 1e-12, 1e12


def naive_center_loss(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, convention: str = "mean"
                      ) -> torch.Tensor:
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


def naive_bytes(mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype) -> int:
    """Bytes one call moves in `mode`, op by op as naive_center_loss runs them (see ablate.traffic); eager torch
    may split an op into more kernels, so this is a lower bound."""
    B, C, D = batch, classes, dim
    e, _ = element_sizes(dtype)
    i = LABEL_BYTES
    BC = B * C
    forward = [
        (B * D * e, B * D * e),            # features.pow(2)                   -> (B, D)
        (B * D * e, B * e),                # .sum(dim=1)                       -> (B, 1)
        (C * D * e, C * D * e),            # centers.pow(2)                    -> (C, D)
        (C * D * e, C * e),                # .sum(dim=1)                       -> (C, 1)
        ((B + C) * e, BC * e),             # expanded ||x||^2 + ||c||^2        -> distmat (B, C)
        (BC * e + (B + C) * D * e, BC * e),  # addmm(distmat, x, c.t(), alpha=-2) -> (B, C)
        (0, C * i),                        # arange(C)                         -> (C,)
        ((B + C) * i, BC),                 # labels.eq(classes), expanded      -> mask (B, C) bool
        (BC, BC * e),                      # mask.to(dtype)                    -> (B, C)
        (2 * BC * e, BC * e),              # distmat * mask                    -> (B, C)
        (BC * e, BC * e),                  # .clamp(1e-12, 1e12)               -> (B, C)
        (BC * e, e),                       # .sum()                            -> scalar
    ]
    backward = [
        (BC * e, BC * e),                  # clamp backward: keep grad where in range -> (B, C)
        (2 * BC * e, BC * e),              # mul backward: grad * mask         -> (B, C)
        (BC * e + C * D * e, B * D * e),   # addmm backward: -2 * grad @ centers -> (B, D)
        (BC * e, B * e),                   # add backward: grad summed over C  -> (B, 1)
        (B * D * e + B * e, B * D * e),    # pow backward: 2 * x * grad        -> (B, D)
        (2 * B * D * e, B * D * e),        # the two feature gradients summed  -> (B, D)
    ]
    return total(by_mode(mode, forward, backward))


def naive_peak_bytes(mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype) -> int:
    """A generous estimate of the memory one call needs beyond its inputs: up to about five (B, C) tensors at once
    in forward plus backward (mask, masked and clamped distances, their gradients), one boolean mask, a few (B, D)."""
    e, _ = element_sizes(dtype)
    return int(batch * classes * (5 * e + 1) + 4 * batch * dim * e)
