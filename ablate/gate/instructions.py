"""Instruction counts of the gate cases, per call, under valgrind's callgrind: one process per side of the A/B.

Instructions executed (callgrind's Ir, user space) barely depend on the machine's load, where wall time on a
shared machine varies by tens of percent from one run to the next. So a case fails when the head
executes more than THRESHOLD more instructions per call than the base, both counted here in the same run.

The process runs ablate/gate/worker.py's source in the side's tree, started with instrumentation off, since importing
torch instrumented costs minutes; the worker switches it on once its cases are built, then collects each
case's CALLS calls (after a warm-up) into a dump of its own (torch's callgrind bindings, as
torch.utils.benchmark.Timer.collect_callgrind uses them). Without valgrind the gate says so in one line
and goes on with the other signals.
"""

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from ablate.bench import allocator
from ablate.gate import worker

CALLS = 10
# Identical code counts the same instructions to a few parts in 10,000, whatever the load (head/base of
# `ablate gate run --against HEAD`); 2% leaves a margin for another host's allocator and libc, and a change that
# repeats a step of the call still fails by far.
THRESHOLD = 0.02
TIMEOUT_S = 1800
TOTALS = re.compile(r"^totals:\s*(\d+)", re.MULTILINE)


def unavailable() -> str | None:
    """Why instructions cannot be counted here, or None."""
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    if missing:
        return (f"{' and '.join(missing)} not on PATH (install valgrind, e.g. `apt-get install valgrind`, "
                "to count instructions)")
    if not torch._C._valgrind_supported_platform():
        return "this torch build has no valgrind bindings"
    return None


def start(tree_path: Path, env: dict, cases, inputs: dict, folder: Path, calls: int = CALLS) -> subprocess.Popen:
    """Start counting `cases` (GateCase) in `tree_path`; its files go in `folder`. Finish with `collect`."""
    spec = folder / "spec.json"
    spec.write_text(json.dumps({"cases": [asdict(case) for case in cases], "calls": calls,
                                "inputs": {name: str(path) for name, path in inputs.items()}}))
    log = open(folder / "valgrind.log", "w")
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder / 'callgrind.out'}",
               "--instr-atstart=no", "--collect-atstart=no",
               sys.executable, "-c", Path(worker.__file__).read_text(), "callgrind", str(spec),
               str(folder / "result.json"), allocator.__file__]
    with log:
        return subprocess.Popen(command, cwd=tree_path, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def collect(process: subprocess.Popen, folder: Path, calls: int = CALLS) -> dict:
    """{case name: instructions per call, or the reason (str) it could not run}; a RuntimeError quoting
    valgrind's log when the process failed."""
    try:
        process.wait(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    result = folder / "result.json"
    if process.returncode != 0 or not result.exists():
        log = (folder / "valgrind.log").read_text(errors="replace").strip()[-2000:]
        raise RuntimeError(f"counting instructions under valgrind failed (exit status {process.returncode}): {log}")
    counts = {}
    for name, outcome in json.loads(result.read_text()).items():
        if "unavailable" in outcome:
            counts[name] = outcome["unavailable"]
            continue
        dump = folder / f"callgrind.out.{outcome['dump']}"
        totals = TOTALS.search(dump.read_text(errors="replace"))
        if totals is None:
            raise RuntimeError(f"callgrind's dump {dump.name} for {name} has no totals line")
        counts[name] = int(totals.group(1)) / calls
    return counts


def count(tree_path: Path, env: dict, cases, inputs: dict, calls: int = CALLS) -> dict:
    """`start` and `collect` in one, in a temporary folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="ablate-gate-callgrind-") as folder:
        return collect(start(tree_path, env, cases, inputs, Path(folder), calls), Path(folder), calls)
