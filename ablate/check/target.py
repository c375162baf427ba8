"""What `ablate check` checks: someone's center loss, loaded from TARGET and called the same way whatever it is.

TARGET is `pkg.mod:attr`, `path/to/file.py:attr`, or the name of a registered variant. attr names either a function
(features (B, D), labels (B,), centers (C, D)) -> 0-dim loss, or an nn.Module class built as
Cls(num_classes=C, feat_dim=D, **init) whose forward is (features, labels) and which owns one (C, D) tensor of
centers (a Parameter, a buffer or a plain tensor attribute).
"""

import ast
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from ablate import factories
from ablate.escape import terminal_line
from ablate.failures import error_note


class TargetError(ValueError):
    """TARGET cannot be loaded or built; the message says what was expected."""


NOTE_CHARS = 300  # of a target's own error message in a finding


def target_note(exc: BaseException) -> str:
    """What the target's code raised, as a finding's note: its type and first line, escaped for a terminal and cut
    to NOTE_CHARS (the target chooses its messages)."""
    return terminal_line(error_note(exc), NOTE_CHARS)


HARNESS_SIZES = ("num_classes", "feat_dim")  # the constructor arguments the checks set for each batch


def parse_init(pairs) -> dict:
    """--init key=value pairs -> {key: value}; a value is a Python literal (1, 0.5, False, 'cpu') or else a string.
    A key given twice, or one of the sizes the checks set themselves (HARNESS_SIZES), is refused."""
    values = {}
    for text in pairs:
        key, sep, raw = text.partition("=")
        if not sep or not key.isidentifier():
            raise TargetError(f"--init expects KEY=VALUE with KEY an identifier, got {text!r}")
        if key in HARNESS_SIZES:
            raise TargetError(f"--init {key} is set by the checks (each batch has its own {', '.join(HARNESS_SIZES)}); "
                              "leave it out")
        if key in values:
            raise TargetError(f"--init {key} is given twice; give each constructor argument once")
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
    centers_attr: Optional[str] = None  # a module's attribute holding its centers (--centers), else find the one

    def bind(self, centers: torch.Tensor, centers_grad: bool = True):
        """(loss_fn(features (B, D), labels (B,)) -> loss, the centers tensor gradients reach or None).

        A module is built for centers' (C, D) and their values copied into the tensor it owns (in their dtype and on
        their device); a function gets a copy of `centers`, a leaf that requires grad when centers_grad is set.
        """
        if self.kind != "module":
            fn = self.fn
            assert fn is not None, "a function or variant target has its fn"  # as load_target builds it
            own = centers.detach().clone().requires_grad_(centers_grad)
            return (lambda features, labels: fn(features, labels, own)), (own if centers_grad else None)
        module = self.build(*centers.shape)
        module.to(centers.device)
        owned = find_centers(module, self.centers_attr, centers.shape)
        with torch.no_grad():
            owned.data = centers.detach().clone()
        if not centers_grad:
            owned.requires_grad_(False)
        return module, (owned if owned.requires_grad else None)

    def call(self, what: str, features, labels, centers) -> "Outcome":
        """run_target in this process (`what` names the call; ablate.check.isolated runs it in a child instead)."""
        return run_target(self, features, labels, centers)

    def build(self, num_classes: int, feat_dim: int) -> nn.Module:
        assert self.cls is not None, "a module target has its cls"  # as load_target builds it
        kwargs = {"num_classes": num_classes, "feat_dim": feat_dim, **self.init}
        try:
            return self.cls(**kwargs)
        except Exception as exc:
            shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
            raise TargetError(f"{self.name}({shown}) failed: {type(exc).__name__}: {exc} (constructor arguments go "
                              "in --init KEY=VALUE, e.g. --init use_gpu=False)") from None


@dataclass
class Outcome:
    """One call of the target: its loss and gradients (grad_centers None: the centers get no gradient), or why not.
    raised: the error is the target's own exception (it refused the input), not the harness refusing its output."""

    loss: Optional[float] = None
    grad_features: Optional[torch.Tensor] = None
    grad_centers: Optional[torch.Tensor] = None
    error: Optional[str] = None
    raised: bool = False


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal shapes, dtypes and values, NaN equal to NaN."""
    a, b = a.detach().cpu(), b.detach().cpu()
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    equal = (a == b) | (a.isnan() & b.isnan()) if a.is_floating_point() else a == b
    return bool(equal.all())


def run_target(target, features, labels, centers) -> Outcome:
    """Loss of the target on its device and, by autograd, its gradients w.r.t. the features and (if they get one)
    the centers, back on the CPU in float64. The target gets copies of the inputs; one it changed in place is a
    failed call (the reference is computed from the originals)."""
    features_in = features.detach().clone().to(target.device).requires_grad_(True)
    labels_in, centers_in = labels.clone().to(target.device), centers.clone().to(target.device)
    try:
        loss_fn, own_centers = target.bind(centers_in)
        loss = loss_fn(features_in, labels_in)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            return Outcome(error=f"returned {shape}; expected a 0-dim loss tensor")
        value = float(loss.detach().double().reshape(()))
        if loss.requires_grad:
            loss.reshape(()).backward()
    except TargetError:  # the target could not be built: a usage error, not a finding
        raise
    except Exception as exc:  # someone else's code: any failure is a finding
        return Outcome(error=target_note(exc), raised=True)
    inputs = {"features": (features_in, features), "labels": (labels_in, labels)}
    if target.kind != "module" and own_centers is not None:  # a function's own copy; a module's are its state
        inputs["centers"] = (own_centers, centers)
    changed = [name for name, (given, original) in inputs.items() if not _same(given, original)]
    if changed:
        return Outcome(error=f"changed its input {' and '.join(changed)} in place; a loss must leave its inputs as "
                             "they were")
    if not loss.requires_grad:
        return Outcome(loss=value)
    grad_centers = None if own_centers is None or own_centers.grad is None else own_centers.grad.cpu().double()
    grad_features = None if features_in.grad is None else features_in.grad.cpu().double()
    return Outcome(value, grad_features, grad_centers)


def owned_centers(module: nn.Module, shape) -> torch.Tensor:
    """The one (C, D) tensor a module owns: among its parameters, buffers and plain tensor attributes."""
    found = {name: t for name, t in [*module.named_parameters(), *module.named_buffers()] if t.shape == shape}
    found.update({name: t for name, t in vars(module).items()
                  if isinstance(t, torch.Tensor) and t.shape == shape and name not in found})
    if len(found) != 1:
        raise TargetError(f"{type(module).__name__} must own exactly one {tuple(shape)} tensor of centers; found "
                          f"{len(found)}{': ' + ', '.join(found) if found else ''}")
    return next(iter(found.values()))


def find_centers(module: nn.Module, attr: Optional[str], shape) -> torch.Tensor:
    """The module's (C, D) centers: the attribute `attr` names (dotted for a submodule's), else the one (C, D) tensor
    it owns (owned_centers)."""
    if attr is None:
        return owned_centers(module, shape)
    found = module
    for part in attr.split("."):
        if not hasattr(found, part):
            raise TargetError(f"--centers {attr}: {type(module).__name__} has no attribute {attr!r}")
        found = getattr(found, part)
    if not isinstance(found, torch.Tensor) or tuple(found.shape) != tuple(shape):
        what = tuple(found.shape) if isinstance(found, torch.Tensor) else type(found).__name__
        raise TargetError(f"--centers {attr}: expected a {tuple(shape)} tensor of centers, found {what}")
    return found


def check_location(location: str) -> None:
    """Refuse (TargetError) a path/to/file.py that is not a file, before anything is started to import it."""
    if not location.endswith(".py"):
        return
    try:
        found = Path(location).is_file()
    except OSError as exc:  # a name too long for the file system, say
        raise TargetError(f"cannot read {location!r}: {exc.strerror}; expected path/to/file.py:attr") from None
    if not found:
        raise TargetError(f"no such file {location!r}; expected path/to/file.py:attr or pkg.mod:attr")


def import_location(location: str):
    """The module at `location`: path/to/file.py (ablate.factories.import_location: imported once per path and
    content, so that a step in the target's own file shares its module) or pkg.mod; a missing file a TargetError."""
    check_location(location)
    try:
        return factories.import_location(location)
    except factories.FactoryError as exc:
        raise TargetError(str(exc)) from None


def check_target_form(text: str) -> None:
    """Refuse (TargetError) a TARGET that names no variant and no attribute, or a file that is not there: what can
    be told without importing it, so before the child that imports it is started."""
    location, sep, _ = text.rpartition(":")
    if not sep:
        from ablate.loss import variant_names

        if text not in variant_names():
            raise TargetError(f"expected pkg.mod:attr, path/to/file.py:attr or a variant "
                              f"({', '.join(variant_names())}), got {text!r}")
        return
    check_location(location)


def load_target(text: str, init: Optional[dict] = None) -> Target:
    """The Target that TARGET `text` names (see the module docstring); `init`: constructor keywords of a module."""
    init = init or {}
    check_target_form(text)
    location, sep, attr = text.rpartition(":")
    if not sep:
        from ablate.loss import center_loss

        return Target(text, "variant", fn=lambda x, y, c: center_loss(x, y, c, variant=text))
    try:
        module = import_location(location)
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
