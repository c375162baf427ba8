"""Declared benchmarks: what to time (sweeps), how long (timing), and the suites that bundle them.

A sweep is the cartesian product of its axes (x values: batch, classes, dim, dtype) for some modes;
its lines are the variants. A suite is the sweeps, the numerics study, the training-step study and
the timing of one standard run: `quick` (tests and smoke runs), `cpu` (`make bench`), `gpu`
(`make bench-gpu`, sized to end within 8 minutes on one GPU).
"""

from dataclasses import dataclass, field, replace
from typing import Any, Optional

import torch

from ablate.loss import DEFAULT_VARIANT, RULES, available_variants, get_variant
from ablate.loss.dtypes import DTYPES
from ablate.registry import Registry

MODES = ("forward", "backward", "full", "update")
WORKLOADS = ("lenetpp", "large_head")


@dataclass(frozen=True)
class Timing:
    """How long each measurement runs: `rounds` interleaved rounds, each timing every variant for `round_ms`.

    CPU: torch.utils.benchmark's blocked_autorange(min_run_time=round_ms). CUDA: triton's do_bench
    (events, L2 flushed before every run) with rep=round_ms and warmup=round_ms / 4.
    `threads`: CPU threads while timing (None: torch's current setting). The CPU suites time on one
    thread: with more, OpenMP's barriers turn any other load on the machine into stalls of a whole
    scheduler quantum, many times the length of a sub-millisecond call.
    """

    rounds: int = 3
    round_ms: float = 200.0
    threads: Optional[int] = None


@dataclass(frozen=True)
class Point:
    """One x value of a sweep: a mode at one size and dtype (rule only matters for mode "update")."""

    mode: str
    batch: int
    classes: int
    dim: int
    dtype: str
    rule: str = ""

    @property
    def key(self) -> str:
        rule = f"_{self.rule}" if self.rule else ""
        return f"{self.mode}{rule}_{self.dtype}_b{self.batch}_c{self.classes}_d{self.dim}"


@dataclass(frozen=True)
class Sweep:
    """The points modes x batch x classes x dim x dtypes; `variants` narrows the suite's lines (None: all).

    one_per_update: draw one line per implementation of the update by `rule`: each variant whose own update
    fuses it, and one (the default variant if the suite has it) for the torch rows every other variant shares.
    """

    name: str
    modes: tuple
    batch: tuple
    classes: tuple
    dim: tuple
    dtypes: tuple = ("float32",)
    rule: str = "paper"
    variants: Optional[tuple] = None
    one_per_update: bool = False

    def points(self) -> list:
        return [
            Point(mode, b, c, d, dt, self.rule if mode == "update" else "")
            for mode in self.modes for dt in self.dtypes for b in self.batch for c in self.classes for d in self.dim
        ]


@dataclass(frozen=True)
class NumericsSpec:
    """Loss and gradient error against the float64 reference, per variant x dtype x convention x norm.

    Features sit at distance spread * feature_norm from their class center, as after training.
    """

    dtypes: tuple = ("float32", "bfloat16", "float16")
    conventions: tuple = ("mean",)
    batch: int = 1024
    classes: int = 1000
    dim: int = 512
    feature_norms: tuple = (1.0, 10.0, 100.0)
    spread: float = 0.1


@dataclass(frozen=True)
class TrainStepSpec:
    """Training steps timed per variant: LeNet++ at `lenetpp_batch`, the large head at each `large_head_classes`."""

    workloads: tuple = WORKLOADS
    lenetpp_batch: int = 128
    large_head_batch: int = 256
    large_head_classes: tuple = (1000, 10000, 100000)
    large_head_dim: int = 512


@dataclass(frozen=True)
class Suite:
    """A standard study. `variants` None: every variant available on the device and timed there (an interpreted
    kernel is checked, not timed, unless named); no_compilation: leave out variants that compile on first call.

    checked_variants: those the numerics study checks against the reference (None: every variant
    available on the device, fused under the interpreter on the CPU included: correctness, not speed).

    memory_fraction: cells whose estimated peak memory exceeds this share of the device's memory are
    skipped with the reason recorded. time_budget_s: timing stops there; what is left is recorded as skipped.
    """

    name: str
    sweeps: tuple
    timing: Timing = field(default_factory=Timing)
    numerics: Optional[NumericsSpec] = field(default_factory=NumericsSpec)
    train_step: Optional[TrainStepSpec] = field(default_factory=TrainStepSpec)
    variants: Optional[tuple] = None
    checked_variants: Optional[tuple] = None
    no_compilation: bool = False
    memory_fraction: float = 0.5
    time_budget_s: Optional[float] = None

    @property
    def resolved_variants(self) -> tuple:
        """The variants of a suite resolve_suite returned (it names them; a declared suite may leave them None)."""
        assert self.variants is not None, "a resolved suite names its variants"
        return self.variants

    def points(self) -> list:
        """(sweep, point) pairs in declaration order, each point once."""
        seen, out = set(), []
        for sweep in self.sweeps:
            for point in sweep.points():
                if point not in seen:
                    seen.add(point)
                    out.append((sweep, point))
        return out


QUICK_TIMING = Timing(rounds=1, round_ms=20.0, threads=1)

SUITES: Registry[Suite] = Registry("suite")
for _suite in (
    Suite(
        name="quick",
        sweeps=(Sweep("sizes", modes=MODES, batch=(64,), classes=(10, 500), dim=(16,),
                      dtypes=("float32", "bfloat16")),),
        timing=QUICK_TIMING,
        numerics=NumericsSpec(dtypes=("float32", "bfloat16"), batch=64, classes=20, dim=16, feature_norms=(1.0, 100.0)),
        train_step=TrainStepSpec(lenetpp_batch=8, large_head_batch=32, large_head_classes=(100,), large_head_dim=32),
        no_compilation=True,
    ),
    Suite(
        name="cpu",
        sweeps=(
            Sweep("classes", modes=("forward", "backward", "full"), batch=(256,),
                  classes=(10, 100, 1000, 10000, 100000), dim=(512,), dtypes=("float32", "bfloat16")),
            Sweep("batch", modes=("full",), batch=(64, 256, 1024, 4096), classes=(1000,), dim=(128,)),
            Sweep("dim", modes=("full",), batch=(256,), classes=(1000,), dim=(2, 32, 128, 512)),
            Sweep("update", modes=("update",), batch=(1024,), classes=(10, 1000, 10000, 100000), dim=(512,),
                  dtypes=("float32", "bfloat16"), one_per_update=True),
        ),
        timing=Timing(rounds=3, round_ms=200.0, threads=1),
    ),
    Suite(
        name="gpu",
        sweeps=(
            Sweep("grid", modes=("forward", "backward", "full"), batch=(1024, 16384, 65536),
                  classes=(10, 10000, 100000), dim=(2, 128, 512), dtypes=("float32", "bfloat16")),
            Sweep("update", modes=("update",), batch=(1024, 16384, 65536), classes=(10, 10000, 100000),
                  dim=(2, 128, 512), dtypes=("float32", "bfloat16"), one_per_update=True),
        ),
        timing=Timing(rounds=2, round_ms=25.0),
        numerics=NumericsSpec(dtypes=("float32", "bfloat16"), batch=4096, classes=10000),
        train_step=TrainStepSpec(lenetpp_batch=1024, large_head_batch=1024),
        memory_fraction=0.6,
        # The whole study must end within 8 minutes; compilation, checks and the training steps need the rest.
        time_budget_s=330.0,
    ),
):
    SUITES.register(_suite)


def _check_choices(kind: str, values, choices) -> tuple:
    values = tuple(values)
    bad = [v for v in values if v not in choices]
    if bad or not values:
        given = ", ".join(map(str, bad)) or "(none given)"
        raise ValueError(f"unknown {kind} {given}; expected one of {', '.join(choices)}")
    return values


def _check_sizes(kind: str, values) -> tuple:
    values = tuple(int(v) for v in values)
    if not values or min(values) < 1:
        raise ValueError(f"{kind} must be a list of integers >= 1, got {values}")
    return values


CUSTOM_SWEEP = Sweep("custom", modes=MODES, batch=(256,), classes=(10, 1000, 10000), dim=(128,), dtypes=("float32",))


def resolve_suite(name: str, device: torch.device, *, variants=None, modes=None, batch=None, classes=None, dim=None,
                  dtypes=None, rule=None, quick=False) -> Suite:
    """The declared suite `name`, or, when any axis is given, one sweep over the given axes.

    Axes not given then take CUSTOM_SWEEP's values. variants default to what runs on `device`
    (those that need no compilation, for a no_compilation suite); a variant whose time there would not measure it
    (an interpreted kernel measures Python) is then only checked, not timed. Named variants are timed and checked.
    quick: one short round per measurement.
    """
    suite = SUITES.get(name)
    runnable = available_variants(device)
    if variants is None:
        checked = tuple(v for v in suite.variants or runnable
                        if v in runnable and not (suite.no_compilation and get_variant(v).compiles))
        variants = tuple(v for v in checked if get_variant(v).timed(device.type))
    else:
        variants = checked = _check_choices("variant", variants, runnable)
    axes: dict[str, Any] = {}
    if modes is not None:
        axes["modes"] = _check_choices("mode", modes, MODES)
    if dtypes is not None:
        axes["dtypes"] = _check_choices("dtype", dtypes, tuple(DTYPES))
    for axis, values in (("batch", batch), ("classes", classes), ("dim", dim)):
        if values is not None:
            axes[axis] = _check_sizes(axis, values)
    sweeps = (replace(CUSTOM_SWEEP, **axes),) if axes else suite.sweeps
    if rule is not None:
        rule = RULES.check(rule)
        sweeps = tuple(replace(s, rule=rule) for s in sweeps)
    return replace(suite, sweeps=sweeps, variants=variants, checked_variants=checked,
                   timing=QUICK_TIMING if quick else suite.timing)


def sweep_variants(suite: Suite, sweep: Sweep) -> tuple:
    """The suite's variants that this sweep draws as lines (of a suite resolve_suite returned)."""
    lines = tuple(v for v in suite.resolved_variants if sweep.variants is None or v in sweep.variants)
    if not sweep.one_per_update:
        return lines
    own = tuple(v for v in lines if get_variant(v).fuses(sweep.rule))
    shared = [v for v in lines if v not in own]
    torch_rows = (DEFAULT_VARIANT,) if DEFAULT_VARIANT in shared else tuple(shared[:1])
    return tuple(v for v in lines if v in torch_rows + own)
