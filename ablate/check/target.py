"""What `ablate check` checks: someone's center loss, loaded from TARGET and called the same way whatever it is.

TARGET is `pkg.mod:attr`, `path/to/file.py:attr`, or the name of a registered variant. attr names either a function
(features (B, D), labels (B,), centers (C, D)) -> 0-dim loss, or an nn.Module class built as
Cls(num_classes=C, feat_dim=D, **init) whose forward is (features, labels) and which owns one (C, D) tensor of
centers (a Parameter, a buffer or a plain tensor attribute).
"""

import ast
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn


class TargetError(ValueError):
    """TARGET cannot be loaded or built; the message says what was expected."""


def parse_init(pairs) -> dict:
    """--init key=value pairs -> {key: value}; a value is a Python literal (1, 0.5, False, 'cpu') or else a string."""
    values = {}
    for text in pairs:
        key, sep, raw = text.partition("=")
        if not sep or not key.isidentifier():
            raise TargetError(f"--init expects KEY=VALUE with KEY an identifier, got {text!r}")
        try:
            values[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            values[key] = raw
    return values


@dataclass
class Target:
    """A loaded TARGET, called through `bind`."""

    name: str
    kind: str  # "function" | "module" | "variant"
    fn: Optional[Callable] = None
    cls: Optional[type] = None
    init: dict = field(default_factory=dict)
    device: torch.device = torch.device("cpu")  # where it runs: every input is moved there

    def bind(self, centers: torch.Tensor, centers_grad: bool = True):
        """(loss_fn(features (B, D), labels (B,)) -> loss, the centers tensor gradients reach or None).

        A module is built for centers' (C, D) and their values copied into the tensor it owns (in their dtype and on
        their device); a function gets a copy of `centers`, a leaf that requires grad when centers_grad is set.
        """
        if self.kind != "module":
            own = centers.detach().clone().requires_grad_(centers_grad)
            return (lambda features, labels: self.fn(features, labels, own)), (own if centers_grad else None)
        module = self.build(*centers.shape)
        module.to(centers.device)
        owned = owned_centers(module, centers.shape)
        with torch.no_grad():
            owned.data = centers.detach().clone()
        if not centers_grad:
            owned.requires_grad_(False)
        return module, (owned if owned.requires_grad else None)

    def build(self, num_classes: int, feat_dim: int) -> nn.Module:
        kwargs = {"num_classes": num_classes, "feat_dim": feat_dim, **self.init}
        try:
            return self.cls(**kwargs)
        except Exception as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            raise TargetError(f"{self.name}({shown}) failed: {type(exc).__name__}: {exc} (constructor arguments go "
                              "in --init KEY=VALUE, e.g. --init use_gpu=False)") from None


def owned_centers(module: nn.Module, shape) -> torch.Tensor:
    """The one (C, D) tensor a module owns: among its parameters, buffers and plain tensor attributes."""
    found = {name: t for name, t in [*module.named_parameters(), *module.named_buffers()] if t.shape == shape}
    found.update({name: t for name, t in vars(module).items()
                  if isinstance(t, torch.Tensor) and t.shape == shape and name not in found})
    if len(found) != 1:
        raise TargetError(f"{type(module).__name__} must own exactly one {tuple(shape)} tensor of centers; found "
                          f"{len(found)}{': ' + ', '.join(found) if found else ''}")
    return next(iter(found.values()))


def _import(location: str):
    if location.endswith(".py"):
        path = Path(location)
        if not path.is_file():
            raise TargetError(f"no such file {location!r}; expected path/to/file.py:attr or pkg.mod:attr")
        spec = importlib.util.spec_from_file_location(f"ablate_check_target_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and pickling look their module up here
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(location)


def load_target(text: str, init: Optional[dict] = None) -> Target:
    """The Target that TARGET `text` names (see the module docstring); `init`: constructor keywords of a module."""
    init = init or {}
    location, sep, attr = text.rpartition(":")
    if not sep:
        from ablate.loss import center_loss, variant_names

        if text not in variant_names():
            raise TargetError(f"expected pkg.mod:attr, path/to/file.py:attr or a variant "
                              f"({', '.join(variant_names())}), got {text!r}")
        return Target(text, "variant", fn=lambda x, y, c: center_loss(x, y, c, variant=text))
    try:
        module = _import(location)
    except TargetError:
        raise
    except Exception as exc:
        raise TargetError(f"importing {location!r} failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(module, attr):
        raise TargetError(f"{location!r} has no attribute {attr!r}")
    obj = getattr(module, attr)
    if inspect.isclass(obj) and issubclass(obj, nn.Module):
        return Target(text, "module", cls=obj, init=init)
    if init:
        raise TargetError(f"--init applies to an nn.Module class; {text} is a {type(obj).__name__}")
    if callable(obj):
        return Target(text, "function", fn=obj)
    raise TargetError(f"{text} must be a function (features, labels, centers) -> loss or an nn.Module class, "
                      f"got {type(obj).__name__}")
