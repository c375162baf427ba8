"""The kinds of device torch computes on, one registry entry each with its presence check.

`device_type("cuda:1")` -> "cuda"; `device_present("cuda")`: torch sees one here. Asking about the CPU imports no
torch (it is always present); any other device imports torch to parse the name and ask its backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ablate.registry import Registry

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DeviceKind:
    """A torch device type; present() says whether torch can compute on one here. trains: a training cell and the
    bench run on it (a choice of their --device); a kind without it serves `ablate variants` and `ablate check`."""

    name: str
    present: Callable[[], bool]
    trains: bool = True


def always() -> bool:
    return True


def cuda_present() -> bool:
    import torch

    return torch.cuda.is_available()


def mps_present() -> bool:
    import torch

    return torch.backends.mps.is_available()


DEVICES: Registry[DeviceKind] = Registry("device")
DEVICES.register(DeviceKind("cpu", always))
DEVICES.register(DeviceKind("cuda", cuda_present))  # NVIDIA GPUs, and AMD ones under ROCm builds of torch
DEVICES.register(DeviceKind("mps", mps_present, trains=False))  # Apple GPUs through Metal


def device_type(device: str | torch.device) -> str:
    """The type of `device` (a torch.device, or a name such as "cpu", "cuda" or "cuda:1"); a name torch cannot
    parse is a ValueError naming the expected form. Only a name other than "cpu" imports torch."""
    if not isinstance(device, str):
        return device.type
    if device == "cpu":
        return device
    import torch

    try:
        return torch.device(device).type
    except RuntimeError:
        raise ValueError(f"expected a torch device such as {', '.join(DEVICES.names())} or cuda:1, got {device!r}"
                         ) from None


def device_present(device: str | torch.device) -> bool:
    """Whether torch can compute on `device` here: a registered kind torch sees; never meta (shapes only) nor a
    device type whose backend is not installed (xla, ...)."""
    kind = device_type(device)
    return kind in DEVICES and DEVICES.get(kind).present()


AUTO = "auto"  # a cell's or the bench's device: CUDA when torch sees one, else the CPU


def training_devices() -> tuple[str, ...]:
    """The choices of a cell's and the bench's --device: "auto", then every kind they run on."""
    return (AUTO, *(kind.name for kind in DEVICES if kind.trains))
