"""The gather form through torch.compile; available only where torch.compile can build kernels
(ablate.loss.registry.compile_available)."""

import functools
from collections.abc import Callable

import torch

from ablate.loss.conventions import convention_scale
from ablate.loss.gather import squared_distance_sum
from ablate.traffic import LABEL_BYTES, by_mode, element_sizes, total

# dynamo keeps one cache per code object and adds an entry per guard state it meets: dtype, device, which inputs
# require grad, torch's thread count (the convention is applied outside the compiled function, so it adds none).
# Past config.recompile_limit (8 by default) it would silently run the function eagerly, and `compiled` would be
# timed as eager code. 64 covers 4 dtypes x 2 grad states x 2 thread counts x 2 devices with room; raising a
# limit changes nothing for other compiled code but how many specializations it may keep.
RECOMPILE_LIMIT = 64


@functools.cache
def _compiled_sum() -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    return torch.compile(squared_distance_sum, dynamic=True)  # dynamic: one graph serves every batch size


def compiled_center_loss(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, convention: str = "mean"
                         ) -> torch.Tensor:
    """features (B, D), labels (B,), centers (C, D) -> 0-dim loss; same math as `gather`.

    The convention's factor multiplies the compiled sum outside the graph: a Python float inside it would be a
    guard, and every convention would compile its own graph."""
    return _compiled_sum()(features, labels, centers) * convention_scale(convention, features.shape[0])


def compiled_bytes(mode: str, batch: int, classes: int, dim: int, dtype: torch.dtype) -> int:
    """One pass per graph, which inductor's fusion approaches: forward and backward each read labels, features and
    their B center rows once (see ablate.traffic)."""
    B, D = batch, dim
    e, _ = element_sizes(dtype)
    i = LABEL_BYTES
    forward = [(B * i + 2 * B * D * e, e)]                 # read x, y, c[y]; write the loss
    backward = [(B * i + 2 * B * D * e, B * D * e)]        # read x, y, c[y]; write dL/dx
    return total(by_mode(mode, forward, backward))
