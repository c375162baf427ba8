"""Per-machine baselines of the gate cases' time ratios: information printed beside the gate, never a failure.

What fails a gate is decided on the machine that runs it, from two things measured in the same run:
the A/B comparison of the working tree with a base revision (ablate/gate/ab.py) and the scaling laws
(ablate/gate/scaling.py). A time ratio against a fixed workload (a copy of the features, or the
matmul that dominates naive) is not a property of the code alone: the balance of compute, latency
and bandwidth differs from one CPU to the next (an update that sorts and scatters waits on latency, a
copy on bandwidth, so their ratio is the CPU's as much as the code's). So baselines of such ratios are
kept per machine fingerprint (CPU model, core count, torch) in baseline.json and only ever printed next to
a fresh measurement on a machine of the same fingerprint: they inform, never fail.
"""

import json
import os
import statistics
from pathlib import Path

import pandas as pd
import torch

from ablate.bench.suites import Timing
from ablate.bench.timer import time_interleaved, warm_up
from ablate.bench.workloads import call, clustered_inputs
from ablate.gate.cases import CASES, GateCase
from ablate.io import atomic_write_json, read_regular_text
from ablate.provenance import collect, cpu_model, now

BASELINE_PATH = Path(__file__).with_name("baseline.json")
GATE_TIMING = Timing(rounds=5, round_ms=40.0, threads=1)
BASELINE_REPEATS = 5  # a baseline is the median of this many measurements, so it sits mid-noise
DEVICE = torch.device("cpu")


def _reference(kind: str, features: torch.Tensor, centers: torch.Tensor):
    x, c = features.detach(), centers.detach()
    if kind == "copy":
        out = torch.empty_like(x)  # (B, D)
        return lambda: out.copy_(x)
    if kind == "matmul":
        return lambda: torch.mm(x, c.t())  # (B, C)
    raise ValueError(f"unknown reference {kind!r}; expected copy or matmul")


def measure_ratio(case: GateCase, timing: Timing = GATE_TIMING) -> float:
    """The case's variant time over its reference's, timed interleaved, each at its fastest run.

    Interference (other processes, page faults) only ever adds time, so the fastest runs track the
    code's own cost most steadily.
    """
    features, labels, centers = clustered_inputs(case.batch, case.classes, case.dim, torch.float32, DEVICE)
    fns = {"reference": _reference(case.reference, features, centers),
           "variant": call(case.variant, case.mode, features, labels, centers, rule=case.rule)}
    for fn in fns.values():
        warm_up(fn, DEVICE)
    times = time_interleaved(fns, DEVICE, timing)
    return float(times["variant"].min() / times["reference"].min())


def measure_ratios(cases=CASES, repeats: int = BASELINE_REPEATS) -> dict:
    """{case name: the median ratio of `repeats` measurements} for every case."""
    return {case.name: statistics.median(measure_ratio(case) for _ in range(repeats)) for case in cases}


def fingerprint(info: dict | None = None) -> str:
    """What makes two machines comparable for time ratios: CPU model, core count, torch version."""
    info = info or {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__}
    return f"{info['cpu']} | {info['cpu_count']} cores | torch {info['torch']}"


def load_baselines(path=BASELINE_PATH) -> dict:
    """{fingerprint: {"ratios": {case: ratio}, "measured_on": {...}, "created": ...}} from the baseline file;
    {} when there is none. A malformed file is a ValueError naming it."""
    path = Path(path)
    if not os.path.lexists(path):
        return {}
    try:
        machines = json.loads(read_regular_text(path))["machines"]
        if not all(isinstance(entry["ratios"], dict) for entry in machines.values()):
            raise TypeError("an entry's ratios is not a mapping")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a gate baseline file (expected {{\"machines\": {{fingerprint: "
                         f"{{\"ratios\": {{case: ratio}}, ...}}}}}}): {exc}") from None
    return machines


def compare_with_baseline(measured: dict, baselines: dict, machine: str) -> pd.DataFrame | None:
    """This machine's ratios next to its own baseline (None when it has none): case, baseline, measured, change."""
    if machine not in baselines:
        return None
    ratios = baselines[machine]["ratios"]
    rows = [{"case": name, "baseline": ratios.get(name, float("nan")), "measured": value,
             "change": value / ratios[name] - 1 if name in ratios else float("nan")}
            for name, value in measured.items()]
    return pd.DataFrame(rows)


def write_baseline(measured: dict, path=BASELINE_PATH) -> Path:
    """Store measured ratios as this machine's baseline, keeping the other machines' entries."""
    info = collect()
    machines = load_baselines(path)
    machines[fingerprint()] = {
        "ratios": measured, "created": now(),
        "measured_on": {k: info[k] for k in ("cpu", "cpu_count", "torch", "python", "git_commit")},
        "timing": {"rounds": GATE_TIMING.rounds, "round_ms": GATE_TIMING.round_ms, "threads": GATE_TIMING.threads},
    }
    return atomic_write_json(path, {"machines": machines})
