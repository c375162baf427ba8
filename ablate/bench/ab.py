"""The A/B gate: the gate cases in the working tree and in a base revision, on one machine, by three signals.

REV is checked out into a temporary git worktree. Each side gets worker processes (ablate/bench/ab_worker.py:
the same timing and counting code for both sides) that import their own tree's `ablate` and call only its
public API.

Work counts (ops, FLOPs, bytes, peak; ablate/bench/counting.py) are exact: one worker per side counts one call,
and the head fails when it does more of anything beyond expected_counts.TOLERANCE or dispatches a new op.

Instructions (ablate/bench/instructions.py) are counted under callgrind, one process per side, after the
timing: the head fails above instructions.THRESHOLD.

Wall clock: PROCESSES_PER_SIDE workers per side; in every round each base process and its head partner time
the case in turn, the order flipped from one pair and round to the next, so that drift of the machine's speed
(frequency, other load) hits both sides alike; a round's time is the fastest per-call time of the blocks run
within it, since load from elsewhere only ever adds time. Several processes per side, because one process can
run 10-30% slow throughout (where its memory landed, its allocator's state). The estimate of head / base is the
median over rounds of each round's ratio of the sides' process medians; its 95% interval comes from a two-level
bootstrap (processes, then rounds), seeded. A case fails only when the whole interval lies above 1 + threshold.

A case the base revision cannot run is "new", never failed. SIGTERM and SIGHUP stop the gate as Ctrl-C does,
every worker, worktree and temporary folder removed (`ablate.signals.termination_raises`).
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

from ablate.bench import ab_worker, allocator, counting, expected_counts, instructions
from ablate.bench.gate import CASES, GateCase
from ablate.bench.workloads import clustered_inputs
from ablate.gitrepo import git
from ablate.signals import termination_raises

DEFAULT_THRESHOLD = 0.10
DEFAULT_ROUNDS = 10
DEFAULT_ROUND_MS = 60.0
PROCESSES_PER_SIDE = 3
CONFIDENCE = 0.95
GIT_TIMEOUT_S = 60
MAX_REVISION_CHARS = 256  # far past any real ref name, far below the kernel's argument limit
WORKER_TIMEOUT_S = 300  # start-up (import torch) and one prepare or round; a worker silent longer is stuck


class GateError(Exception):
    """The A/B gate cannot run as asked (no git, unknown revision, dirty tree, base without the public API)."""


@dataclass(frozen=True)
class Tree:
    """One side of the comparison: a folder holding an `ablate` package, and what it is in git terms."""

    label: str  # "base" or "head"
    path: Path
    description: str  # e.g. "origin/main (3f2c1a9d0b1e)" or "working tree (HEAD 3f2c1a9d0b1e + uncommitted changes)"


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """`ablate.gitrepo.git` within GIT_TIMEOUT_S, no git on PATH and a timeout told as GateErrors."""
    try:
        return git(repo, *args, timeout=GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise GateError("the A/B gate needs git on PATH (it checks the base revision out with `git worktree`)"
                        ) from None
    except subprocess.TimeoutExpired:
        raise GateError(f"`git {' '.join(args[:2])}` in {repo} did not finish within {GIT_TIMEOUT_S} s") from None


def repository_root(path) -> Path:
    """The top folder of the git checkout holding `path`; a GateError when there is none."""
    out = _git(Path(path), "rev-parse", "--show-toplevel")
    if out.returncode != 0:
        raise GateError(f"{path} is not inside a git checkout: the A/B gate compares revisions of a checkout "
                        f"({out.stderr.strip()})")
    return Path(out.stdout.strip())


def resolve_revision(repo: Path, rev: str) -> str:
    """The full commit hash that `rev` names in `repo`; a GateError naming the revision otherwise."""
    if len(rev) > MAX_REVISION_CHARS or not rev.isprintable():
        shown = rev[:40].encode("unicode_escape").decode() + ("..." if len(rev) > 40 else "")
        raise GateError(f"revision {shown!r} ({len(rev):,} characters) is not a revision name: expected at most "
                        f"{MAX_REVISION_CHARS} printable characters (a commit, branch or tag, e.g. HEAD~1)")
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
    """`commit` checked out (detached) in a temporary git worktree of `repo`; removed and pruned on exit, however
    the exit comes (an error, Ctrl-C, or SIGTERM/SIGHUP under `termination_raises`), even mid-checkout."""
    folder = Path(tempfile.mkdtemp(prefix="ablate-gate-base-"))
    try:
        out = _git(repo, "worktree", "add", "--detach", "--quiet", str(folder), commit)
        if out.returncode != 0:
            raise GateError(f"could not check {rev!r} out into a temporary worktree: {out.stderr.strip()}")
        yield Tree("base", folder, f"{rev} ({commit[:12]})")
    finally:  # a checkout cut short stays locked ("initializing"): unlocked, so that prune can forget it
        _git(repo, "worktree", "unlock", str(folder))
        _git(repo, "worktree", "remove", "--force", "--force", str(folder))
        shutil.rmtree(folder, ignore_errors=True)
        _git(repo, "worktree", "prune")


class GateStopped(GateError):
    """The gate received SIGTERM or SIGHUP (a CI timeout, a closed terminal)."""


class Worker:
    """A timing and counting process importing `tree`'s ablate (see ab_worker's protocol).

    Requests and replies travel on two pipes of their own: the base's stdout and stderr (anything it prints at
    import) go to a log file, quoted when the worker fails."""

    def __init__(self, tree: Tree):
        self.tree = tree
        env = side_env(tree)
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty worker can never block on it
        source = Path(ab_worker.__file__).read_text()
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", source, str(request_read), str(reply_write), counting.__file__,
                 allocator.__file__],
                cwd=tree.path, env=env, stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr,
                pass_fds=(request_read, reply_write))
        finally:
            os.close(request_read)
            os.close(reply_write)
        self.requests = os.fdopen(request_write, "w")
        self.replies = os.fdopen(reply_read, "r")
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.replies, selectors.EVENT_READ)
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
        line = self.replies.readline()
        if not line:
            raise self._failure("exited")
        return json.loads(line)

    def request(self, **message) -> dict:
        try:
            self.requests.write(json.dumps(message) + "\n")
            self.requests.flush()
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

    def close(self, *, kill: bool = False) -> None:
        """Ask a ready worker to quit; one still starting (the gate stopped early) or `kill`ed is killed."""
        if kill or not self.ready:
            self.process.kill()
        if self.process.poll() is None:
            try:
                self.requests.write(json.dumps({"op": "quit"}) + "\n")
                self.requests.flush()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
        self.process.wait()
        for stream in (self.requests, self.replies):
            try:
                stream.close()
            except OSError:  # the worker is gone: what was left unsent no longer matters
                pass
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


def side_env(tree: Tree) -> dict:
    """The environment of a process working for one side: its tree first on the path, one thread, the same
    hash seed on both sides (each worker fixes its allocator's thresholds itself: ab_worker)."""
    env = {**os.environ, "PYTHONPATH": str(tree.path), "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    env.pop("TRITON_INTERPRET", None)  # the gate times compiled CPU code, never the interpreter
    return env


def _case_inputs(case: GateCase, folder: Path) -> Path:
    features, labels, centers = clustered_inputs(case.batch, case.classes, case.dim, torch.float32, "cpu")
    path = folder / f"{case.name}.pt"
    torch.save({"features": features, "labels": labels, "centers": centers}, path)
    return path


def _start_workers(trees, processes: int, stack: ExitStack) -> dict:
    """{tree label: `processes` handshaken workers}, all closed when `stack` unwinds (killed when it unwinds
    for an exception: an interrupted or failed gate waits for nothing)."""
    workers = {tree.label: [Worker(tree) for _ in range(processes)] for tree in trees}
    for side in workers.values():
        for worker in side:
            stack.push(lambda kind, value, trace, worker=worker: worker.close(kill=kind is not None))
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


def counts_verdict(base: dict, head: dict) -> tuple:
    """(verdict, what moved): fail when the head does more of anything (a new op, more calls of one, FLOPs,
    bytes or peak bytes) beyond expected_counts.TOLERANCE; less when it only does less; pass otherwise."""
    moved = expected_counts.changes(base, head)
    lines = "; ".join(expected_counts.describe("", change).removeprefix(": ") for change in moved)
    if any(change["more"] for change in moved):
        return "fail", lines
    return ("less" if moved else "pass"), lines


def instructions_verdict(ratio: float, threshold: float = instructions.THRESHOLD) -> str:
    if ratio > 1 + threshold:
        return "fail"
    return "fewer" if ratio < 1 - threshold else "pass"


def _counts_row(case: GateCase, workers: dict) -> dict:
    """The case's work counts on both sides (one worker each: counts do not vary) and their verdict."""
    base, head = (workers[label][0].request(op="count", case=case.name)["counts"] for label in ("base", "head"))
    verdict, moved = counts_verdict(base, head)
    return {"base_ops": sum(base["ops"].values()), "head_ops": sum(head["ops"].values()),
            "base_mflop": base["flops"] / 1e6, "head_mflop": head["flops"] / 1e6, "base_mb": base["bytes"] / 1e6,
            "head_mb": head["bytes"] / 1e6, "counts": verdict, "counts_moved": moved}


def _instruction_rows(trees, cases, inputs: dict, stack: ExitStack, say) -> dict:
    """{case name: instruction columns}; both sides counted at once, each in its own valgrind process."""
    folders = {tree.label: Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ablate-gate-callgrind-")))
               for tree in trees}
    processes = {tree.label: instructions.start(tree.path, side_env(tree), cases, inputs, folders[tree.label])
                 for tree in trees}
    for process in processes.values():
        stack.callback(lambda process=process: process.poll() is None and (process.kill(), process.wait()))
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
                           "instructions": instructions_verdict(ratio)}
        say(f"{case.name}: instructions x{ratio:.4f}")
    return rows


SIGNALS = ("counts", "instructions", "wall")
COLUMNS = ["case", "base_ops", "head_ops", "base_mflop", "head_mflop", "base_mb", "head_mb", "counts", "counts_moved",
           "base_instructions", "head_instructions", "instructions_ratio", "instructions", "base_ms", "head_ms",
           "ratio", "ci_low", "ci_high", "wall", "verdict", "note"]


def compare(repo, against: str, cases=CASES, *, rounds: int = DEFAULT_ROUNDS, round_ms: float = DEFAULT_ROUND_MS,
            processes: int = PROCESSES_PER_SIDE, threshold: float = DEFAULT_THRESHOLD, allow_dirty: bool = False,
            signals=SIGNALS, progress: Optional[Callable[[str], None]] = None) -> tuple:
    """Compare `cases` in the working tree of `repo` (head) with revision `against` (base) by each of `signals`:
    work counts (exact), instructions under callgrind (see ablate.bench.instructions) and wall clock
    (interleaved timing with a bootstrap interval).

    Returns (table, description): one row per case (COLUMNS; a signal not asked for is left empty) with a
    verdict per signal and overall (fail if any signal fails; new where the base cannot run the case), and a
    line naming the sides.
    """
    if rounds < 5:
        raise ValueError(f"rounds must be at least 5 for a bootstrap interval, got {rounds}")
    unknown = set(signals) - set(SIGNALS)
    if unknown:
        raise ValueError(f"unknown signal(s) {', '.join(sorted(unknown))}; expected some of {', '.join(SIGNALS)}")
    repo = repository_root(repo)
    head = head_tree(repo, allow_dirty=allow_dirty)
    commit = resolve_revision(repo, against)
    say = progress or (lambda message: None)
    rows = []
    stopped = lambda name: GateStopped(f"the gate was stopped by {name}; its worktree, temporary folders and "  # noqa: E731
                                       "worker processes were removed")
    with termination_raises(stopped), ExitStack() as stack:
        base = stack.enter_context(checked_out(repo, against, commit))
        inputs_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ablate-gate-inputs-")))
        inputs = {case.name: _case_inputs(case, inputs_dir) for case in cases}
        workers = _start_workers((base, head), processes if "wall" in signals else 1, stack)
        for case in cases:
            message = {"op": "prepare", "case": asdict(case), "inputs": str(inputs[case.name])}
            prepared = {label: [worker.request(**message) for worker in side] for label, side in workers.items()}
            unavailable = {label: next((p["unavailable"] for p in replies if "unavailable" in p), None)
                           for label, replies in prepared.items()}
            if unavailable["head"]:
                raise GateError(f"the working tree cannot run gate case {case.name}: {unavailable['head']}")
            if unavailable["base"]:
                rows.append({"case": case.name, "verdict": "new", "note": unavailable["base"]})
                say(f"{case.name}: new (the base cannot run it)")
                continue
            row = {"case": case.name, "note": ""}
            if "counts" in signals:
                row.update(_counts_row(case, workers))
                moved = f" ({row['counts_moved']})" if row["counts_moved"] else ""
                say(f"{case.name}: counts {row['counts']}{moved}")
            if "wall" in signals:
                times = _timed_rounds(workers, case, rounds, round_ms)
                ratio, low, high = ratio_interval(times["base"], times["head"])
                row.update(base_ms=float(np.median(times["base"])), head_ms=float(np.median(times["head"])),
                           ratio=ratio, ci_low=low, ci_high=high, wall=verdict(low, high, threshold))
                say(f"{case.name}: wall x{ratio:.3f} [{low:.3f}, {high:.3f}]")
            rows.append(row)
        if "instructions" in signals:  # after the timing, which valgrind's processes would disturb
            runnable = [case for case in cases if case.name in {row["case"] for row in rows if "verdict" not in row}]
            counted = _instruction_rows((base, head), runnable, inputs, stack, say)
            for row in rows:
                row.update(counted.get(row["case"], {}))
    for row in rows:
        if row.get("verdict") != "new":
            row["verdict"] = "fail" if "fail" in (row.get(signal) for signal in SIGNALS) else "pass"
    return pd.DataFrame(rows, columns=COLUMNS), f"head: {head.description}; base: {base.description}"
