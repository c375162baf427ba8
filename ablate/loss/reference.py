"""The one readable float64 reference every variant and update rule is tested against.

Plain loops over the batch, straight from the definitions of Wen et al. (ECCV 2016): the loss of Eq. 2 under each
convention of ablate.loss.conventions, its gradients (Eq. 3), and each rule's step as ablate.loss.rules defines it
(the README's "Conventions: what lambda multiplies" and "Center-update rules"); slow on purpose.
"""

import torch

from ablate.loss.conventions import convention_scale
from ablate.loss.rules import RULES


def reference_loss(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, convention: str = "mean"
                   ) -> torch.Tensor:
    """sum_i ||x_i - c_{y_i}||^2 times the convention's factor, in float64.

    features (B, D), labels (B,), centers (C, D). Differentiable (for gradcheck).
    """
    x, c = features.double(), centers.double()
    total = x.new_zeros(())
    for i in range(x.shape[0]):
        diff = x[i] - c[int(labels[i])]
        total = total + (diff * diff).sum()
    return total * convention_scale(convention, x.shape[0])


def reference_grads(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, convention: str = "mean"
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form gradients in float64: dL/dx_i = 2s (x_i - c_{y_i}), dL/dc_j = 2s sum_{y_i=j} (c_j - x_i).

    Returns (grad_features (B, D), grad_centers (C, D)); s is the convention's factor.
    """
    x, c = features.double(), centers.double()
    s = convention_scale(convention, x.shape[0])
    grad_x = torch.zeros_like(x)
    grad_c = torch.zeros_like(c)
    for i in range(x.shape[0]):
        j = int(labels[i])
        grad_x[i] = 2 * s * (x[i] - c[j])
        grad_c[j] += 2 * s * (c[j] - x[i])
    return grad_x, grad_c


def reference_update(centers: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, *, alpha: float, rule: str,
                     convention: str = "mean") -> torch.Tensor:
    """The centers after one step of `rule`, in float64, every delta taken from the centers before the step.

    centers (C, D), features (B, D), labels (B,) -> a new (C, D) tensor; each class's step is the rule's
    `reference` (ablate.loss.rules) on its center and its samples' rows.
    """
    reference = RULES.get(rule).reference
    x, old = features.double(), centers.double()
    scale = convention_scale(convention, x.shape[0])
    new = old.clone()
    for j in sorted({int(y) for y in labels}):
        members = [x[i] for i in range(x.shape[0]) if int(labels[i]) == j]
        new[j] = reference(old[j], members, alpha, scale)
    return new
