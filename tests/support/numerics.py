"""Error measures shared by the variant tests."""

import torch


def normwise_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    """max|got - ref| / max|ref|, in float64 on the CPU, for tensors of any shape and device."""
    ref = ref.detach().double().cpu()
    return float((got.detach().double().cpu() - ref).abs().max() / ref.abs().max().clamp_min(1e-300))


def absent_classes(labels: torch.Tensor, num_classes: int) -> list:
    """The classes in [0, num_classes) that no label names."""
    return sorted(set(range(num_classes)) - set(labels.tolist()))
