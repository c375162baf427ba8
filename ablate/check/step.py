"""The step harness of `ablate check TARGET --step STEP`: a user's training step run on controlled batches, the
centers read before and after each call.

STEP is one of
    path/to/file.py:func or pkg.mod:func   func(module, features, labels, lam) does one training step as the user's
                                           loop does: the loss (lam weighting the center loss), backward, the user's
                                           own optimizers and center update; state that must outlive a step (an
                                           optimizer's momentum) is kept where func finds it again, e.g. on the module
    forward                                module(features, labels) in training mode, then backward of lam * loss:
                                           for a module that moves its centers inside forward
    update                                 the same, then module.update(features.detach(), labels): a module with an
                                           update method of its own (ablate.loss.CenterLoss has one)

One module is built for the whole plan (STEP_PLAN: duplicate labels, absent classes, B = 1, two batch compositions,
two lambdas), its centers set once to known values and then left to the step: the centers after one step are the
centers before the next, as in training. The step runs in the module's own dtype and on the target's device; the
observations come back in float64 on the CPU. StepSession runs where the target lives (ablate.check.isolated's child
process); `start_plan` and `observe_steps` drive it from the checks' side through the runner's start_steps and step.
"""

import inspect
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from ablate.check.target import Target, TargetError, find_centers, import_location, target_note

BUILT_IN_STEPS = ("forward", "update")
STEP_CLASSES = 6
STEP_DIM = 7  # odd, and not a class count, as the loss checks' DIM
CENTER_NORM = 1.0  # each initial center has this norm; each feature lies at about FEATURE_DISTANCE from its center
FEATURE_DISTANCE = 1.0
LAMBDAS = (1.0, 0.1)
# Two compositions: counts 3, 2, 1, 2 at B = 8 and 1, 4, 2, 5 at B = 12, duplicates interleaved; classes 4 and 5 of
# the first and 3 and 5 of the second absent (class 5 never appears: only a pull on every center moves it).
COMPOSITION_A = (0, 0, 0, 1, 1, 2, 3, 3)
COMPOSITION_B = (4, 1, 4, 1, 2, 4, 1, 4, 2, 1, 4, 0)
# (labels, lambda) of each step, in order: per lambda both compositions and a batch of one. Class 3 moves in the
# first step, is absent from the second (where momentum alone would move it) and alone in the third.
STEP_PLAN = tuple((labels, lam) for lam, single in zip(LAMBDAS, ((3,), (2,)))
                  for labels in (COMPOSITION_A, COMPOSITION_B, single))
SEED = 0


@dataclass
class StepObservation:
    """One call of the step: the centers before and after (C, D), the features (B, D) as the step got them (in the
    module's dtype), all float64 on the CPU; got_gradient: the centers held a gradient after the step; error: why
    the step failed (after is then None)."""

    labels: torch.Tensor
    lam: float
    before: torch.Tensor
    features: torch.Tensor
    after: Optional[torch.Tensor] = None
    dtype: str = "float32"
    got_gradient: bool = False
    error: Optional[str] = None

    @property
    def eps(self) -> float:
        return torch.finfo(getattr(torch, self.dtype)).eps

    @property
    def batch(self) -> int:
        return int(self.labels.shape[0])


def _forward_step(module, features, labels, lam):
    loss = module(features, labels)
    if isinstance(loss, torch.Tensor) and loss.requires_grad:
        (lam * loss.reshape(())).backward()


def _update_step(module, features, labels, lam):
    _forward_step(module, features, labels, lam)
    module.update(features.detach(), labels)


def load_step(spec: str) -> Callable:
    """The step function STEP names (see the module docstring); a TargetError says what was expected."""
    if spec == "forward":
        return _forward_step
    if spec == "update":
        return _update_step
    location, sep, attr = spec.rpartition(":")
    if not sep:
        raise TargetError(f"--step expects path/to/file.py:func, pkg.mod:func, {' or '.join(BUILT_IN_STEPS)}, "
                          f"got {spec!r}")
    try:
        module = import_location(location)
    except TargetError as exc:
        raise TargetError(f"--step {spec}: {exc}") from None
    except Exception as exc:
        raise TargetError(f"--step {spec}: importing {location!r} failed: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise TargetError(f"--step {spec}: {location!r} has no function {attr!r}")
    try:
        inspect.signature(fn).bind(None, None, None, None)
    except TypeError:
        raise TargetError(f"--step {spec}: {attr} must take (module, features, labels, lam), its signature is "
                          f"{inspect.signature(fn)}") from None
    except ValueError:
        pass  # no signature to read (a builtin): the call says
    return fn


def _read(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu", torch.float64).clone()


class StepSession:
    """The module the steps act on and the step function, where the target runs."""

    def __init__(self, target: Target, spec: str, centers_attr: Optional[str]):
        if target.kind != "module":
            raise TargetError(f"--step judges the centers a module owns; {target.name} is a {target.kind}, expected "
                              "an nn.Module class built as Cls(num_classes=C, feat_dim=D)")
        self.target, self.spec, self.centers_attr = target, spec, centers_attr
        target.centers_attr = centers_attr  # the loss calls that identify the convention find the same tensor
        self.step_fn = load_step(spec)
        self.module: Optional[nn.Module] = None

    def start(self, centers: torch.Tensor) -> None:
        """Build the module for centers' (C, D) and write their values into its own centers, in its dtype."""
        module = self.target.build(*centers.shape)
        if self.spec == "update" and not callable(getattr(module, "update", None)):
            raise TargetError(f"--step update: {type(module).__name__} has no update method; use --step forward "
                              "for one that moves its centers in forward, or --step FILE.py:FUNC")
        try:
            module.to(self.target.device)
            module.train()
            owned = find_centers(module, self.centers_attr, centers.shape)
            if not owned.is_floating_point():
                raise TargetError(f"the centers of {self.target.name} are {owned.dtype}; expected a floating-point "
                                  "(C, D) tensor")
            with torch.no_grad():
                owned.copy_(centers.to(owned.device, owned.dtype))
        except TargetError as exc:
            hint = "; name the centers with --centers NAME" if self.centers_attr is None else ""
            raise TargetError(f"{exc}{hint}") from None
        except Exception as exc:  # the module's own code (a .to or .train of its own): a usage error, not a finding
            raise TargetError(f"setting the centers of {self.target.name} for the steps failed: "
                              f"{target_note(exc)}") from None
        self.module, self.shape = module, tuple(centers.shape)

    def step(self, features: torch.Tensor, labels: torch.Tensor, lam: float) -> StepObservation:
        """Call the step once on copies of features (B, D) and labels (B,); the centers read before and after."""
        assert self.module is not None, "start() builds the module first"
        owned = find_centers(self.module, self.centers_attr, self.shape)
        dtype = owned.dtype
        given = features.to(self.target.device, dtype).requires_grad_(True)  # as from a network: backward reaches it
        observation = StepObservation(labels.clone(), lam, _read(owned), _read(given),
                                      dtype=str(dtype).removeprefix("torch."))
        try:
            self.step_fn(self.module, given, labels.clone().to(self.target.device), lam)
        except Exception as exc:  # the user's step: any failure is a finding
            observation.error = target_note(exc)
            return observation
        try:
            after = find_centers(self.module, self.centers_attr, self.shape)
        except TargetError as exc:
            observation.error = f"after the step: {exc}"
            return observation
        observation.after = _read(after)
        observation.got_gradient = after.is_leaf and after.grad is not None
        return observation


class LocalSteps:
    """The target and its steps in this process: what the child of ablate.check.isolated serves, and what tests call
    directly. call(...) is the loss checks' call; start_steps and step the harness's."""

    def __init__(self, target: Target):
        self.target, self.kind, self.name = target, target.kind, target.name
        self.session: Optional[StepSession] = None

    def call(self, what: str, features, labels, centers):
        return self.target.call(what, features, labels, centers)

    def start_steps(self, spec: str, centers_attr: Optional[str], centers: torch.Tensor) -> None:
        self.session = StepSession(self.target, spec, centers_attr)
        self.session.start(centers)

    def step(self, what: str, features, labels, lam: float) -> StepObservation:
        assert self.session is not None, "start_steps first"
        return self.session.step(features, labels, lam)


def plan_inputs(seed: int = SEED):
    """(initial centers (C, D), [(features (B, D), labels (B,), lam) per step of STEP_PLAN]) in float64: centers of
    norm CENTER_NORM, each feature at about FEATURE_DISTANCE from its class's initial center."""
    gen = torch.Generator().manual_seed(seed)
    directions = torch.randn(STEP_CLASSES, STEP_DIM, generator=gen, dtype=torch.float64)
    centers = CENTER_NORM * directions / directions.norm(dim=1, keepdim=True)  # (C, D)
    batches = []
    for labels, lam in STEP_PLAN:
        y = torch.tensor(labels, dtype=torch.int64)  # (B,)
        noise = torch.randn(len(labels), STEP_DIM, generator=gen, dtype=torch.float64)
        batches.append((centers[y] + noise * (FEATURE_DISTANCE / STEP_DIM ** 0.5), y, lam))  # (B, D)
    return centers, batches


def describe_step(index: int) -> str:
    """'step 3 of 6 (B=1, lambda 1)': a step of STEP_PLAN, for messages."""
    labels, lam = STEP_PLAN[index]
    return f"step {index + 1} of {len(STEP_PLAN)} (B={len(labels)}, lambda {lam:g})"


def start_plan(runner, spec: str, centers_attr: Optional[str]) -> list:
    """Load STEP and build the module through `runner` (LocalSteps, or ablate.check.isolated's TargetProcess), its
    centers set to the plan's initial ones; returns the plan's batches [(features, labels, lam)] for observe_steps."""
    centers, batches = plan_inputs()
    runner.start_steps(spec, centers_attr, centers)
    return batches


def observe_steps(runner, batches) -> list:
    """The StepObservation of each batch of a started plan, in order; the plan stops at a step that fails."""
    observations = []
    for index, (features, labels, lam) in enumerate(batches):
        observation = runner.step(f"the training {describe_step(index)}", features, labels, lam)
        observations.append(observation)
        if observation.error or not torch.isfinite(observation.after).all():
            break
    return observations
