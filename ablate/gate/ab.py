"""The A/B gate: the gate cases in the working tree and in a base revision, on one machine, by three signals.

REV is checked out into a temporary git worktree. Each side gets worker processes (ablate/gate/sides.py, running
ablate/gate/worker.py: the same timing and counting code for both sides) that import their own tree's `ablate` and
call only its public API. Each signal decides by its own rule (ablate/gate/verdicts.py):

Work counts (ops, FLOPs, bytes, peak; ablate/gate/counting.py) are exact: one worker per side counts one call,
and the head fails when it does more of anything beyond expected_counts.TOLERANCE or dispatches a new op.

Instructions (ablate/gate/instructions.py) are counted under callgrind, one process per side, after the
timing: the head fails above instructions.THRESHOLD.

Wall clock: `processes` workers per side; in every round each base process and its head partner time
the case in turn, the order flipped from one pair and round to the next, so that drift of the machine's speed
(frequency, other load) hits both sides alike; a round's time is the fastest per-call time of the blocks run
within it, since load from elsewhere only ever adds time. Several processes per side, because one process can
run 10-30% slow throughout (where its memory landed, its allocator's state). The estimate of head / base is the
median over rounds of each round's ratio of the sides' process medians; its 95% interval comes from a two-level
bootstrap (processes, then rounds), seeded. A case fails only when the whole interval lies above 1 + threshold.

A case the base revision cannot run is "new", never failed. SIGTERM and SIGHUP stop the gate as Ctrl-C does,
every worker, worktree and temporary folder removed (`ablate.signals.termination_raises`).
"""

import subprocess
import tempfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import torch

from ablate import gitrepo
from ablate.bench.workloads import clustered_inputs
from ablate.gate import instructions, verdicts
from ablate.gate.cases import CASES, GateCase
from ablate.gate.sides import GateError, base_tree, head_tree, side_env, start_workers
from ablate.signals import Terminated, termination_raises

DEFAULT_THRESHOLD = 0.10
DEFAULT_ROUNDS = 10
DEFAULT_ROUND_MS = 60.0
PROCESSES_PER_SIDE = 3
MIN_ROUNDS = 5  # fewer rounds than this give no bootstrap interval worth the name
COLUMNS = ["case", "base_ops", "head_ops", "base_mflop", "head_mflop", "base_mb", "head_mb", "counts", "counts_moved",
           "base_instructions", "head_instructions", "instructions_ratio", "instructions", "base_ms", "head_ms",
           "ratio", "ci_low", "ci_high", "wall", "verdict", "note"]


class GateStopped(Terminated):
    """The gate received SIGTERM or SIGHUP (a CI timeout, a closed terminal): a Terminated, so that the command ends
    with the signal's exit status (143 for SIGTERM) once its worktree, folders and workers are removed."""


@dataclass(frozen=True)
class Signals:
    """What the A/B compares (`names`, some of verdicts.SIGNALS) and how the wall clock is taken: `processes`
    workers per side, `rounds` interleaved rounds of `round_ms` per process, failing above 1 + `threshold`."""

    names: tuple = verdicts.SIGNALS
    rounds: int = DEFAULT_ROUNDS
    round_ms: float = DEFAULT_ROUND_MS
    processes: int = PROCESSES_PER_SIDE
    threshold: float = DEFAULT_THRESHOLD

    def __post_init__(self):
        unknown = set(self.names) - set(verdicts.SIGNALS)
        if unknown:
            raise ValueError(f"unknown signal(s) {', '.join(sorted(unknown))}; expected some of "
                             f"{', '.join(verdicts.SIGNALS)}")
        if self.rounds < MIN_ROUNDS:
            raise ValueError(f"rounds must be at least {MIN_ROUNDS} for a bootstrap interval, got {self.rounds}")

    def __contains__(self, name: str) -> bool:
        return name in self.names


def compare(repo, against: str, cases=CASES, signals: Signals = Signals(), *, allow_dirty: bool = False,
            progress: Optional[Callable[[str], None]] = None) -> tuple:
    """Compare `cases` in the working tree of `repo` (head) with revision `against` (base) by each of `signals`:
    work counts (exact), instructions under callgrind (see ablate.gate.instructions) and wall clock
    (interleaved timing with a bootstrap interval).

    Returns (table, description): one row per case (COLUMNS; a signal not asked for is left empty) with a
    verdict per signal and overall (fail if any signal fails; new where the base cannot run the case), and a
    line naming the sides. Raises GateError, one line, when the comparison cannot run.
    """
    say = progress or (lambda message: None)
    stopped = lambda name: GateStopped(name, f"the gate was stopped by {name}; its worktree, temporary "  # noqa: E731
                                             "folders and worker processes were removed")
    try:
        repo = gitrepo.toplevel(repo)
        head = head_tree(repo, allow_dirty=allow_dirty)
        commit = gitrepo.resolve_revision(repo, against)
        with termination_raises(stopped), ExitStack() as stack:
            base = stack.enter_context(base_tree(repo, against, commit))
            inputs_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ablate-gate-inputs-")))
            inputs = {case.name: _case_inputs(case, inputs_dir) for case in cases}
            workers = start_workers((base, head), signals.processes if "wall" in signals else 1, stack)
            rows = [_case_row(case, workers, inputs[case.name], signals, say) for case in cases]
            if "instructions" in signals:  # after the timing, which valgrind's processes would disturb
                runnable = [case for case, row in zip(cases, rows) if row["verdict"] != "new"]
                counted = _instruction_rows((base, head), runnable, inputs, stack, say)
                for row in rows:
                    row.update(counted.get(row["case"], {}))
    except gitrepo.GitError as exc:  # git's own one line: no git, not a checkout, an unknown revision
        raise GateError(str(exc)) from None
    for row in rows:
        row["verdict"] = verdicts.overall_verdict(row)
    return pd.DataFrame(rows, columns=COLUMNS), f"head: {head.description}; base: {base.description}"


def _case_inputs(case: GateCase, folder: Path) -> Path:
    features, labels, centers = clustered_inputs(case.batch, case.classes, case.dim, torch.float32, "cpu")
    path = folder / f"{case.name}.pt"
    torch.save({"features": features, "labels": labels, "centers": centers}, path)
    return path


def _case_row(case: GateCase, workers: dict, inputs: Path, signals: Signals, say) -> dict:
    """The case prepared in every worker, then compared by counts and wall clock; "new" when the base cannot
    run it (a GateError when the head cannot)."""
    message = {"op": "prepare", "case": asdict(case), "inputs": str(inputs)}
    prepared = {label: [worker.request(**message) for worker in side] for label, side in workers.items()}
    unavailable = {label: next((p["unavailable"] for p in replies if "unavailable" in p), None)
                   for label, replies in prepared.items()}
    if unavailable["head"]:
        raise GateError(f"the working tree cannot run gate case {case.name}: {unavailable['head']}")
    if unavailable["base"]:
        say(f"{case.name}: new (the base cannot run it)")
        return {"case": case.name, "verdict": "new", "note": unavailable["base"]}
    row = {"case": case.name, "verdict": None, "note": ""}
    if "counts" in signals:
        row.update(_counts_columns(case, workers))
        moved = f" ({row['counts_moved']})" if row["counts_moved"] else ""
        say(f"{case.name}: counts {row['counts']}{moved}")
    if "wall" in signals:
        row.update(_wall_columns(case, workers, signals))
        say(f"{case.name}: wall x{row['ratio']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]")
    return row


def _counts_columns(case: GateCase, workers: dict) -> dict:
    """The case's work counts on both sides (one worker each: counts do not vary) and their verdict."""
    base, head = (workers[label][0].request(op="count", case=case.name)["counts"] for label in ("base", "head"))
    verdict, moved = verdicts.counts_verdict(base, head)
    return {"base_ops": sum(base["ops"].values()), "head_ops": sum(head["ops"].values()),
            "base_mflop": base["flops"] / 1e6, "head_mflop": head["flops"] / 1e6, "base_mb": base["bytes"] / 1e6,
            "head_mb": head["bytes"] / 1e6, "counts": verdict, "counts_moved": moved}


def _wall_columns(case: GateCase, workers: dict, signals: Signals) -> dict:
    """Interleaved rounds: in each, every process times the case once, base and head alternating, the order
    flipped from one pair and round to the next; then the ratio, its interval and their verdict."""
    times = {label: np.empty((signals.rounds, len(side))) for label, side in workers.items()}  # (rounds, processes)
    for r in range(signals.rounds):
        for i in range(len(workers["base"])):
            order = ("base", "head") if (r + i) % 2 == 0 else ("head", "base")
            for label in order:
                reply = workers[label][i].request(op="time", case=case.name, ms=signals.round_ms)
                times[label][r, i] = reply["time_ms"]
    ratio, low, high = verdicts.ratio_interval(times["base"], times["head"])
    return {"base_ms": float(np.median(times["base"])), "head_ms": float(np.median(times["head"])), "ratio": ratio,
            "ci_low": low, "ci_high": high, "wall": verdicts.wall_verdict(low, high, signals.threshold)}


def _instruction_rows(trees, cases, inputs: dict, stack: ExitStack, say) -> dict:
    """{case name: instruction columns}; both sides counted at once, each in its own valgrind process."""
    folders = {tree.label: Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ablate-gate-callgrind-")))
               for tree in trees}
    processes = {tree.label: instructions.start(tree.path, side_env(tree), cases, inputs, folders[tree.label])
                 for tree in trees}
    for process in processes.values():
        stack.callback(_kill_if_running, process)
    try:
        counted = {label: instructions.collect(processes[label], folders[label]) for label in processes}
    except RuntimeError as exc:
        raise GateError(str(exc)) from None
    rows = {}
    for case in cases:
        base, head = counted["base"][case.name], counted["head"][case.name]
        if isinstance(base, str) or isinstance(head, str):
            continue  # the base or the head cannot run it: the timing workers say which
        ratio = head / base
        rows[case.name] = {"base_instructions": base, "head_instructions": head, "instructions_ratio": ratio,
                           "instructions": verdicts.instructions_verdict(ratio)}
        say(f"{case.name}: instructions x{ratio:.4f}")
    return rows


def _kill_if_running(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
