"""The gate cases' work counts committed in expected_counts.json, and how two sets of counts are compared.

Counts (ablate/gate/counting.py) are exact and the same on every machine with the same torch, so the fast
test lane checks the committed file in seconds, and the A/B gate compares the base's counts with the head's.
A change is a new op, an op gone, or an op count, FLOPs, bytes or peak bytes that moved by more than
TOLERANCE. Refreshing the file is one command, `ablate gate counts --write` (`make counts`), whose diff a
reviewer reads like any other.
"""

import json
from dataclasses import asdict
from pathlib import Path

import torch

from ablate.bench.workloads import clustered_inputs
from ablate.gate import worker
from ablate.gate.cases import CASES, GateCase
from ablate.gate.counting import count_work
from ablate.io import atomic_write_json
from ablate.loss import center_loss, update_centers

EXPECTED_PATH = Path(__file__).with_name("expected_counts.json")
TOLERANCE = 0.01
TOTALS = ("flops", "bytes", "peak_bytes")
REFRESH = "`ablate gate counts --write` (make counts)"


def measure_case(case: GateCase) -> dict:
    """One call of the case, as the gate's workers make it (the public API, after their warm-up), counted."""
    features, labels, centers = clustered_inputs(case.batch, case.classes, case.dim, torch.float32, "cpu")
    fn = worker.make_call((center_loss, update_centers), asdict(case),
                              {"features": features, "labels": labels, "centers": centers})
    for _ in range(worker.WARMUP_CALLS):
        fn()
    return count_work(fn)


def measure(cases=CASES) -> dict:
    """{case name: counts} for every case, in this process."""
    return {case.name: measure_case(case) for case in cases}


def load(path=EXPECTED_PATH) -> dict:
    """The committed file: {"torch": version, "cases": {case: counts}}; a malformed file is a ValueError naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        for counts in data["cases"].values():
            if not isinstance(counts["ops"], dict) or not all(isinstance(counts[k], int) for k in TOTALS):
                raise TypeError("a case's ops is not a mapping or a total is not an integer")
        if not isinstance(data["torch"], str):
            raise TypeError("torch is not a version string")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not an expected-counts file (expected {{\"torch\": version, \"cases\": "
                         f"{{case: {{\"ops\": {{op: calls}}, \"flops\", \"bytes\", \"peak_bytes\"}}}}}}): {exc}; "
                         f"rewrite it with {REFRESH}") from None
    return data


def write(measured: dict, path=EXPECTED_PATH) -> Path:
    return atomic_write_json(path, {"torch": torch.__version__, "cases": measured})


def changes(before: dict, after: dict, tolerance: float = TOLERANCE) -> list:
    """What moved from one case's counts to another's, beyond `tolerance`: a list of dicts with what ("op
    aten.x.y", "bytes", ...), before, after (None where an op is absent) and more (True when `after` does more)."""
    moved = []
    ops_before, ops_after = before["ops"], after["ops"]
    for op in sorted(set(ops_before) | set(ops_after)):
        old, new = ops_before.get(op), ops_after.get(op)
        if old is None or new is None or abs(new - old) > tolerance * old:
            moved.append({"what": f"op {op}", "before": old, "after": new, "more": (new or 0) > (old or 0)})
    for total in TOTALS:
        old, new = before[total], after[total]
        if abs(new - old) > tolerance * old:
            moved.append({"what": total, "before": old, "after": new, "more": new > old})
    return moved


def describe(case: str, change: dict) -> str:
    """One line: the case, what moved, from what to what."""
    old, new = change["before"], change["after"]
    if old is None:
        return f"{case}: new {change['what']} ({new:,} calls)"
    if new is None:
        return f"{case}: {change['what']} gone (was {old:,} calls)"
    relative = f" ({(new - old) / old:+.1%})" if old else ""
    return f"{case}: {change['what']} {old:,} -> {new:,}{relative}"


def check(expected: dict, measured: dict, torch_version: str = torch.__version__) -> list:
    """Every difference of `measured` ({case: counts}) from the committed `expected` file, one line each."""
    if expected["torch"] != torch_version:
        return [f"the expected counts were recorded with torch {expected['torch']}, this is torch {torch_version}: "
                f"op names and counts may differ between versions; refresh them with {REFRESH}"]
    lines = []
    for case in sorted(set(expected["cases"]) | set(measured)):
        if case not in measured:
            lines.append(f"{case}: in the expected counts but no longer a gate case")
        elif case not in expected["cases"]:
            lines.append(f"{case}: a gate case without expected counts")
        else:
            lines += [describe(case, change) for change in changes(expected["cases"][case], measured[case])]
    return lines
