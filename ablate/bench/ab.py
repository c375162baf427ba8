"""The A/B gate: the gate cases timed in the working tree and in a base revision, on one machine, interleaved.

REV is checked out into a temporary git worktree. Each side gets PROCESSES_PER_SIDE worker processes
(ablate/bench/ab_worker.py: the same timing code for both sides) that import their own tree's `ablate`
and call only its public API. In every round each base process and its head partner time the case in
turn, the order flipped from one pair and round to the next, so that drift of the machine's speed
(frequency, other load) hits both sides alike; a round's time is the fastest per-call time of the
blocks run within it, since load from elsewhere only ever adds time. Several processes per side,
because one process can run 10-30% slow throughout (where its memory landed, its allocator's state).

Decision: the estimate of head / base is the median over rounds of each round's ratio of the sides'
process medians; its 95% interval comes from a two-level bootstrap (processes, then rounds), seeded.
A case fails only when the whole interval lies above 1 + threshold: a slowdown that the noise cannot
explain and that is larger than the threshold. A case the base revision cannot run is "new", never failed.
"""

import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import torch

from ablate.bench import ab_worker
from ablate.bench.gate import CASES, GateCase
from ablate.bench.workloads import clustered_inputs

DEFAULT_THRESHOLD = 0.10
DEFAULT_ROUNDS = 10
DEFAULT_ROUND_MS = 60.0
PROCESSES_PER_SIDE = 3
CONFIDENCE = 0.95
WORKER_TIMEOUT_S = 120  # start-up (import torch) and one prepare or round; a worker silent longer is stuck
VERDICTS = ("pass", "fail", "faster", "new")
# glibc adjusts its mmap threshold to each process's history of frees, so one of two identical processes
# may serve every (B, D) temporary by a fresh mmap and page faults while the other reuses its heap: 1.4 to
# 4.4 ms for one gather call across six identical processes here. Fixed thresholds give both sides the same
# allocator, so the comparison sees the code, not the allocator's luck.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


class GateError(Exception):
    """The A/B gate cannot run as asked (no git, unknown revision, dirty tree, base without the public API)."""


@dataclass(frozen=True)
class Tree:
    """One side of the comparison: a folder holding an `ablate` package, and what it is in git terms."""

    label: str  # "base" or "head"
    path: Path
    description: str  # e.g. "origin/main (3f2c1a9d0b1e)" or "working tree (HEAD 3f2c1a9d0b1e + uncommitted changes)"


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise GateError("the A/B gate needs git on PATH (it checks the base revision out with `git worktree`)"
                        ) from None


def repository_root(path) -> Path:
    """The top folder of the git checkout holding `path`; a GateError when there is none."""
    out = _git(Path(path), "rev-parse", "--show-toplevel")
    if out.returncode != 0:
        raise GateError(f"{path} is not inside a git checkout: the A/B gate compares revisions of a checkout "
                        f"({out.stderr.strip()})")
    return Path(out.stdout.strip())


def resolve_revision(repo: Path, rev: str) -> str:
    """The full commit hash that `rev` names in `repo`; a GateError naming the revision otherwise."""
    out = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if out.returncode != 0:
        raise GateError(f"unknown revision {rev!r} in {repo}: expected a commit, branch or tag that git knows "
                        "(e.g. HEAD~1, origin/main; a shallow clone may lack history: `git fetch --unshallow`)")
    return out.stdout.strip()


def head_tree(repo: Path, *, allow_dirty: bool) -> Tree:
    """The working tree of `repo` as the head side; uncommitted changes to tracked files are refused
    unless allow_dirty, since the result would then describe no commit."""
    commit = resolve_revision(repo, "HEAD")
    changed = _git(repo, "status", "--porcelain", "--untracked-files=no").stdout.splitlines()
    if changed and not allow_dirty:
        names = ", ".join(line[3:] for line in changed[:5]) + (", ..." if len(changed) > 5 else "")
        raise GateError(f"the working tree of {repo} has uncommitted changes to {len(changed)} tracked file(s) "
                        f"({names}): commit or stash them, or pass --allow-dirty to measure the tree as it is")
    state = " + uncommitted changes" if changed else ""
    return Tree("head", repo, f"working tree (HEAD {commit[:12]}{state})")


@contextmanager
def checked_out(repo: Path, rev: str, commit: str):
    """`commit` checked out (detached) in a temporary git worktree of `repo`; removed on exit."""
    folder = Path(tempfile.mkdtemp(prefix="ablate-gate-base-"))
    out = _git(repo, "worktree", "add", "--detach", "--quiet", str(folder), commit)
    if out.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise GateError(f"could not check {rev!r} out into a temporary worktree: {out.stderr.strip()}")
    try:
        yield Tree("base", folder, f"{rev} ({commit[:12]})")
    finally:
        _git(repo, "worktree", "remove", "--force", str(folder))
        shutil.rmtree(folder, ignore_errors=True)
        _git(repo, "worktree", "prune")


class Worker:
    """A timing process importing `tree`'s ablate (see ab_worker's protocol)."""

    def __init__(self, tree: Tree):
        self.tree = tree
        env = {**os.environ, **ALLOCATOR_ENV, "PYTHONPATH": str(tree.path), "OMP_NUM_THREADS": "1"}
        env.pop("TRITON_INTERPRET", None)  # the gate times compiled CPU code, never the interpreter
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty worker can never block on it
        source = Path(ab_worker.__file__).read_text()
        self.process = subprocess.Popen([sys.executable, "-c", source], cwd=tree.path, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.process.stdout, selectors.EVENT_READ)
        self.ready = False

    def _failure(self, what: str) -> GateError:
        self.process.kill()
        self.process.wait()
        self.stderr.seek(0)
        return GateError(f"the {self.tree.label} worker ({self.tree.description}) {what}: "
                         f"{self.stderr.read().strip()[-2000:]}")

    def receive(self) -> dict:
        """The worker's next reply, waiting at most WORKER_TIMEOUT_S: a stuck worker must not hang the gate."""
        if not self.selector.select(timeout=WORKER_TIMEOUT_S):
            raise self._failure(f"gave no answer within {WORKER_TIMEOUT_S} s")
        line = self.process.stdout.readline()
        if not line:
            raise self._failure("exited")
        return json.loads(line)

    def request(self, **message) -> dict:
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise self._failure("exited") from None
        return self.receive()

    def handshake(self) -> dict:
        """The worker's first message, checked: it must have imported this tree's ablate."""
        hello = self.receive()
        if "error" in hello:
            raise GateError(f"{self.tree.description} cannot be timed: its ablate does not provide the public API "
                            f"(ablate.loss.center_loss, update_centers, available_variants): {hello['error']}")
        imported = Path(hello["ablate_file"]).resolve()
        if not imported.is_relative_to(self.tree.path.resolve()):
            raise GateError(f"the {self.tree.label} worker imported ablate from {imported}, not from {self.tree.path}")
        self.ready = True
        return hello

    def close(self) -> None:
        """Ask a ready worker to quit; one still starting (the gate stopped early) is killed."""
        if not self.ready:
            self.process.kill()
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
        self.process.wait()
        self.selector.close()
        self.stderr.close()


def ratio_interval(base_ms, head_ms, *, confidence: float = CONFIDENCE, resamples: int = 4000,
                   seed: int = 0) -> tuple:
    """(estimate, low, high) of head / base from per-round times, each (rounds, processes) or (rounds,).

    Estimate: the median over rounds of (median over head processes) / (median over base processes) of
    that round. Interval: a two-level percentile bootstrap, since rounds of one process are not
    independent draws (a process may run 10-30% slow throughout: page placement, allocator state), so
    each replicate redraws each side's processes, then the rounds, keeping a round's two sides together.
    scipy.stats.bootstrap resamples one level only, hence the few lines here.
    """
    base, head = (np.asarray(t, dtype=np.float64).reshape(len(t), -1) for t in (base_ms, head_ms))

    def statistic(b, h):
        return np.median(np.median(h, axis=-1) / np.median(b, axis=-1), axis=-1)

    rng = np.random.default_rng(seed)
    rounds = rng.integers(0, base.shape[0], (resamples, base.shape[0], 1))
    base_procs = rng.integers(0, base.shape[1], (resamples, 1, base.shape[1]))
    head_procs = rng.integers(0, head.shape[1], (resamples, 1, head.shape[1]))
    replicates = statistic(base[rounds, base_procs], head[rounds, head_procs])  # (resamples,)
    low, high = np.quantile(replicates, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(statistic(base, head)), float(low), float(high)


def verdict(low: float, high: float, threshold: float) -> str:
    """fail: the whole interval above 1 + threshold; faster: the whole interval below 1 - threshold."""
    if low > 1 + threshold:
        return "fail"
    if high < 1 - threshold:
        return "faster"
    return "pass"


def _case_inputs(case: GateCase, folder: Path) -> Path:
    features, labels, centers = clustered_inputs(case.batch, case.classes, case.dim, torch.float32, "cpu")
    path = folder / f"{case.name}.pt"
    torch.save({"features": features, "labels": labels, "centers": centers}, path)
    return path


def _start_workers(trees, processes: int, stack: ExitStack) -> dict:
    """{tree label: `processes` handshaken workers}, all closed when `stack` unwinds."""
    workers = {tree.label: [Worker(tree) for _ in range(processes)] for tree in trees}
    for side in workers.values():
        for worker in side:
            stack.callback(worker.close)
    for side in workers.values():
        for worker in side:
            worker.handshake()
    return workers


def _timed_rounds(workers: dict, case: GateCase, rounds: int, round_ms: float) -> dict:
    """{label: (rounds, processes) per-call times}: in each round every process times the case once,
    base and head alternating, the order flipped from one pair and round to the next."""
    times = {label: np.empty((rounds, len(side))) for label, side in workers.items()}
    for r in range(rounds):
        for i in range(len(workers["base"])):
            order = ("base", "head") if (r + i) % 2 == 0 else ("head", "base")
            for label in order:
                times[label][r, i] = workers[label][i].request(op="time", case=case.name, ms=round_ms)["time_ms"]
    return times


def compare(repo, against: str, cases=CASES, *, rounds: int = DEFAULT_ROUNDS, round_ms: float = DEFAULT_ROUND_MS,
            processes: int = PROCESSES_PER_SIDE, threshold: float = DEFAULT_THRESHOLD, allow_dirty: bool = False,
            progress: Optional[Callable[[str], None]] = None) -> tuple:
    """Time `cases` in the working tree of `repo` (head) and in revision `against` (base), interleaved.

    Returns (table, description): one row per case with base_ms, head_ms (medians over rounds and
    processes), ratio, ci_low, ci_high and verdict (pass, fail, faster, new), and a line naming the sides.
    """
    if rounds < 5:
        raise ValueError(f"rounds must be at least 5 for a bootstrap interval, got {rounds}")
    repo = repository_root(repo)
    head = head_tree(repo, allow_dirty=allow_dirty)
    commit = resolve_revision(repo, against)
    say = progress or (lambda message: None)
    rows = []
    with ExitStack() as stack:
        base = stack.enter_context(checked_out(repo, against, commit))
        inputs_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ablate-gate-inputs-")))
        workers = _start_workers((base, head), processes, stack)
        for case in cases:
            message = {"op": "prepare", "case": asdict(case), "inputs": str(_case_inputs(case, inputs_dir))}
            prepared = {label: [worker.request(**message) for worker in side] for label, side in workers.items()}
            unavailable = {label: next((p["unavailable"] for p in replies if "unavailable" in p), None)
                           for label, replies in prepared.items()}
            if unavailable["head"]:
                raise GateError(f"the working tree cannot run gate case {case.name}: {unavailable['head']}")
            if unavailable["base"]:
                rows.append({"case": case.name, "verdict": "new", "note": unavailable["base"]})
                say(f"{case.name}: new (the base cannot run it)")
                continue
            times = _timed_rounds(workers, case, rounds, round_ms)
            ratio, low, high = ratio_interval(times["base"], times["head"])
            rows.append({"case": case.name, "base_ms": float(np.median(times["base"])),
                         "head_ms": float(np.median(times["head"])), "ratio": ratio, "ci_low": low, "ci_high": high,
                         "verdict": verdict(low, high, threshold), "note": ""})
            say(f"{case.name}: x{ratio:.3f} [{low:.3f}, {high:.3f}]")
    columns = ["case", "base_ms", "head_ms", "ratio", "ci_low", "ci_high", "verdict", "note"]
    return pd.DataFrame(rows, columns=columns), f"head: {head.description}; base: {base.description}"
