"""The one readable float64 reference every variant and update rule is tested against.

Plain loops over the batch, straight from the definitions in DESIGN.md; slow on purpose.
"""

import torch

from ablate.loss.conventions import convention_scale


def reference_loss(features, labels, centers, convention: str = "mean") -> torch.Tensor:
    """sum_i ||x_i - c_{y_i}||^2 times the convention's factor, in float64.

    features (B, D), labels (B,), centers (C, D). Differentiable (for gradcheck).
    """
    x, c = features.double(), centers.double()
    total = x.new_zeros(())
    for i in range(x.shape[0]):
        diff = x[i] - c[int(labels[i])]
        total = total + (diff * diff).sum()
    return total * convention_scale(convention, x.shape[0])


def reference_grads(features, labels, centers, convention: str = "mean"):
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


def reference_update(centers, features, labels, *, alpha: float, rule: str, convention: str = "mean") -> torch.Tensor:
    """The centers after one step of `rule`, in float64, every delta taken from the centers before the step.

    paper: c_j -= alpha * sum_{y_i=j} (c_j - x_i) / (1 + n_j)          (Eq. 4)
    sgd:   c_j -= alpha * dL/dc_j under `convention`                     (plain SGD, lr alpha)
    ema:   c_{y_i} -= alpha * (c_{y_i} - x_i) for every sample, summed  (moving average)
    Returns a new (C, D) tensor.
    """
    x, old = features.double(), centers.double()
    new = old.clone()
    classes = sorted({int(y) for y in labels})
    for j in classes:
        members = [i for i in range(x.shape[0]) if int(labels[i]) == j]
        delta = sum(old[j] - x[i] for i in members)
        if rule == "paper":
            new[j] = old[j] - alpha * delta / (1 + len(members))
        elif rule == "sgd":
            new[j] = old[j] - alpha * 2 * convention_scale(convention, x.shape[0]) * delta
        elif rule == "ema":
            new[j] = old[j] - alpha * delta
        else:
            raise ValueError(f"unknown rule {rule!r}")
    return new
