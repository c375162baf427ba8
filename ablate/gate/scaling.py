"""Scaling laws: how a variant's time must grow with the number of classes, whatever the machine.

Each law times one variant at two class counts, interleaved in one process on one thread, and bounds
the growth large / small. The bounds come from the algorithms, not from any machine's speed:
    the update and gather touch only the rows the batch names (about B distinct rows at both sizes),
    so a dense C x D step or a stray B x C temporary multiplies their time by C's ratio (20x, 100x);
    naive computes the B x C distance matrix, O(B*C*D): 10x the classes must cost at least 5x, or it
    no longer measures what the popular implementation costs.
A law fails only when it is broken in every one of ATTEMPTS measurements: a regression of the
algorithm persists, a burst of load from elsewhere does not. Contention for memory from other work
can still push a law's growth past its bound for a while (gather at 100,000 classes reads its centers
from DRAM, which other work contends for, at 1,000 from cache), so CI loosens the bounds by a slack (1.5):
the regressions the laws exist for cost 20x to 100x.
"""

from dataclasses import dataclass
from typing import Callable

import pandas as pd
import torch

from ablate.bench.suites import Timing
from ablate.bench.timer import time_interleaved, warm_up
from ablate.bench.workloads import call, clustered_inputs

LAW_TIMING = Timing(rounds=5, round_ms=50.0, threads=1)
ATTEMPTS = 3
DEVICE = torch.device("cpu")


@dataclass(frozen=True)
class ScalingLaw:
    """time(classes=large) / time(classes=small) of `variant` in `mode` at (batch, dim), float32:
    at most `bound` (kind "at_most") or at least `bound` (kind "at_least")."""

    name: str
    variant: str
    mode: str
    batch: int
    dim: int
    small: int
    large: int
    kind: str
    bound: float
    why: str
    rule: str = "paper"

    def limit(self, slack: float = 1.0) -> float:
        """The bound loosened by `slack` >= 1: multiplied for "at_most", divided for "at_least"."""
        return self.bound * slack if self.kind == "at_most" else self.bound / slack

    def holds(self, growth: float, slack: float = 1.0) -> bool:
        return growth <= self.limit(slack) if self.kind == "at_most" else growth >= self.limit(slack)


LAWS = (
    ScalingLaw("update_cost_follows_rows", "gather", "update", 1024, 512, 10_000, 200_000, "at_most", 1.3,
               "the paper update touches the ~1,000 rows the batch names at both sizes, never all C"),
    ScalingLaw("gather_cost_independent_of_classes", "gather", "full", 1024, 512, 1_000, 100_000, "at_most", 1.3,
               "gather reads one center per sample: no (B, C) or (C, D) work"),
    ScalingLaw("naive_cost_grows_with_classes", "naive", "full", 256, 128, 1_000, 10_000, "at_least", 5.0,
               "naive builds the (B, C) distance matrix: O(B*C*D) work"),
)


def prepare_growth(law: ScalingLaw, make_call: Callable = call, timing: Timing = LAW_TIMING) -> Callable[[], float]:
    """A function measuring the law's growth once: time at law.large over time at law.small classes,
    interleaved, each at its fastest run. The inputs are built and warmed up once, here.

    make_call(variant, mode, features, labels, centers, rule=...) -> a no-argument callable (workloads.call).
    """
    fns = {}
    for which, size in (("small", law.small), ("large", law.large)):
        features, labels, centers = clustered_inputs(law.batch, size, law.dim, torch.float32, DEVICE)
        fns[which] = make_call(law.variant, law.mode, features, labels, centers, rule=law.rule)
        warm_up(fns[which], DEVICE)

    def measure() -> float:
        times = time_interleaved(fns, DEVICE, timing)
        return float(times["large"].min() / times["small"].min())
    return measure


def check_laws(laws=LAWS, *, attempts: int = ATTEMPTS, slack: float = 1.0,
               prepare: Callable[[ScalingLaw], Callable[[], float]] = prepare_growth) -> pd.DataFrame:
    """Measure each law until it holds within its bound loosened by `slack`, at most `attempts` times.

    One row per law: law, variant, mode, sizes, bound (the limit applied, with its kind), growth (the last
    measurement), attempts, holds, why.
    """
    if slack < 1:
        raise ValueError(f"slack loosens a bound: expected at least 1, got {slack}")
    rows = []
    for law in laws:
        measure = prepare(law)
        for attempt in range(1, attempts + 1):
            growth = measure()
            if law.holds(growth, slack):
                break
        rows.append({"law": law.name, "variant": law.variant, "mode": law.mode,
                     "classes": f"{law.small:,} -> {law.large:,}", "growth": growth,
                     "bound": f"{'<=' if law.kind == 'at_most' else '>='} {law.limit(slack):.3g}",
                     "attempts": attempt, "holds": law.holds(growth, slack), "why": law.why})
    return pd.DataFrame(rows)
