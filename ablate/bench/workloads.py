"""What is timed: inputs at realistic norms, and one call of a variant in a mode.

Modes (features require grad, as in training; the centers do not, as under the paper's rule):
    forward   the variant's loss, building the autograd graph
    backward  the gradient w.r.t. the features of a graph built once (retain_graph)
    full      forward + backward
    update    one `update_centers` step by `rule` through the public function, its input checks
              and finiteness guard included, as every training step pays them
The loss modes call the variant's function directly: `center_loss`'s input checks are the same for
every variant and cost a host synchronisation on CUDA, which would blur the kernels' times.
"""

from typing import Callable

import torch

from ablate.loss import get_variant, update_centers

UPDATE_ALPHA = 0.5  # the paper's final setting


def clustered_inputs(batch: int, classes: int, dim: int, dtype: torch.dtype, device, *, feature_norm: float = 10.0,
                     spread: float = 0.1, seed: int = 0, labels=None):
    """Features near their class centers, as after training.

    centers (C, D): random directions of norm `feature_norm`; labels (B,) uniform in [0, C) unless given;
    features (B, D) = their center + noise of norm about spread * feature_norm.
    Returns (features, labels, centers), each on `device`, features and centers in `dtype`.
    """
    device = torch.device(device)
    gen = torch.Generator(device).manual_seed(seed)
    work = torch.float64 if dtype == torch.float64 else torch.float32  # drawn in float32, then rounded to dtype
    directions = torch.randn(classes, dim, generator=gen, device=device, dtype=work)
    centers = feature_norm * directions / directions.norm(dim=1, keepdim=True)  # (C, D)
    if labels is None:
        labels = torch.randint(0, classes, (batch,), generator=gen, device=device)  # (B,)
    labels = torch.as_tensor(labels, dtype=torch.int64, device=device)
    noise = torch.randn(len(labels), dim, generator=gen, device=device, dtype=work)
    noise = noise * (spread * feature_norm / dim ** 0.5)  # (B, D)
    features = centers[labels] + noise  # (B, D)
    return features.to(dtype), labels, centers.to(dtype)


def input_bytes(batch: int, classes: int, dim: int, dtype: torch.dtype) -> int:
    """The memory `clustered_inputs` holds at its peak: the float32 directions, centers and noise, the
    features (B, D), their copies in `dtype`, and the labels. Computed from the sizes alone, before any
    allocation, so that a point too large for the device is skipped instead of failing."""
    e = torch.empty((), dtype=dtype).element_size()
    return int((classes * dim + batch * dim) * (2 * 4 + e) + batch * dim * 4 + batch * 8)


def call(variant: str, mode: str, features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, *,
         rule: str = "paper", convention: str = "mean") -> Callable[[], None]:
    """A no-argument function running one call of `variant` in `mode` on these inputs (see the module docstring).

    features (B, D) (set to require grad here), labels (B,), centers (C, D), updated in place by "update".
    """
    impl = get_variant(variant)
    if mode == "update":
        def update():
            update_centers(centers, features.detach(), labels, alpha=UPDATE_ALPHA, rule=rule, convention=convention,
                           variant=variant)
        return update

    features.requires_grad_(True)
    if mode == "forward":
        def forward():
            impl.loss(features, labels, centers, convention)
        return forward
    if mode == "backward":
        loss = impl.loss(features, labels, centers, convention)

        def backward():
            features.grad = None
            loss.backward(retain_graph=True)
        return backward
    if mode == "full":
        def full():
            features.grad = None
            impl.loss(features, labels, centers, convention).backward()
        return full
    raise ValueError(f"unknown mode {mode!r}; expected forward, backward, full or update")
