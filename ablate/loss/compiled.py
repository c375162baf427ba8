"""The gather form through torch.compile; available only where torch.compile can build kernels."""

import functools
import shutil

import torch

from ablate.loss.gather import gather_center_loss


@functools.cache
def _compiled_gather(convention: str):
    # One compiled function per convention, and dynamic=True so one graph serves every batch size:
    # recompiles stay per dtype, far below dynamo's recompile limit (past it, it would silently run eager).
    def loss(features, labels, centers):
        return gather_center_loss(features, labels, centers, convention)

    return torch.compile(loss, dynamic=True)


def compiled_center_loss(features, labels, centers, convention: str = "mean") -> torch.Tensor:
    """features (B, D), labels (B,), centers (C, D) -> 0-dim loss; same math as `gather`."""
    return _compiled_gather(convention)(features, labels, centers)


def compile_available(device: torch.device) -> bool:
    """True where torch.compile can generate code: a C++ compiler on the CPU, Triton on CUDA."""
    if not torch._dynamo.is_dynamo_supported():
        return False
    if device.type == "cpu":
        return any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++"))
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return has_triton()
    return False
