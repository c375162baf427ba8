"""The two sides of the A/B gate: the folder each side's `ablate` is imported from, and its worker processes.

    head_tree(repo, allow_dirty)     the working tree (uncommitted changes refused unless allowed)
    base_tree(repo, rev)             a revision checked out in a temporary git worktree (ablate.gitrepo)
    Worker(tree)                     the gate's end of one worker process (the protocol: ablate/gate/worker.py)
    start_workers(trees, n, stack)   n handshaken workers per side, all ended when `stack` unwinds
"""

import json
import os
import selectors
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ablate import gitrepo
from ablate.bench import allocator
from ablate.gate import counting, worker

WORKER_TIMEOUT_S = 300  # start-up (import torch) and one prepare or round; a worker silent longer is stuck


class GateError(Exception):
    """The A/B gate cannot run as asked (no git, unknown revision, dirty tree, base without the public API)."""


@dataclass(frozen=True)
class Tree:
    """One side of the comparison: a folder holding an `ablate` package, and what it is in git terms."""

    label: str  # "base" or "head"
    path: Path
    description: str  # e.g. "origin/main (3f2c1a9d0b1e)" or "working tree (HEAD 3f2c1a9d0b1e + uncommitted changes)"


def head_tree(repo: Path, *, allow_dirty: bool) -> Tree:
    """The working tree of `repo` as the head side; uncommitted changes to tracked files are refused
    unless allow_dirty, since the result would then describe no commit."""
    commit = gitrepo.resolve_revision(repo, "HEAD")
    changed = gitrepo.uncommitted(repo)
    if changed and not allow_dirty:
        names = ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")
        raise GateError(f"the working tree of {repo} has uncommitted changes to {len(changed)} tracked file(s) "
                        f"({names}): commit or stash them, or pass --allow-dirty to measure the tree as it is")
    state = " + uncommitted changes" if changed else ""
    return Tree("head", repo, f"working tree (HEAD {commit[:12]}{state})")


@contextmanager
def base_tree(repo: Path, rev: str, commit: str):
    """The base side: `commit` (which `rev` names) in a temporary worktree, removed however the block ends."""
    with gitrepo.worktree(repo, commit, prefix="ablate-gate-base-") as folder:
        yield Tree("base", folder, f"{rev} ({commit[:12]})")


def side_env(tree: Tree) -> dict:
    """The environment of a process working for one side: its tree first on the path, one thread, the same
    hash seed on both sides (each worker fixes its allocator's thresholds itself: ablate/gate/worker.py)."""
    env = {**os.environ, "PYTHONPATH": str(tree.path), "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    env.pop("TRITON_INTERPRET", None)  # the gate times compiled CPU code, never the interpreter
    return env


class Worker:
    """A timing and counting process importing `tree`'s ablate (see worker.py's protocol).

    Requests and replies travel on two pipes of their own: the base's stdout and stderr (anything it prints at
    import) go to a log file, quoted when the worker fails."""

    def __init__(self, tree: Tree):
        self.tree = tree
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty worker can never block on it
        source = Path(worker.__file__).read_text()
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", source, str(request_read), str(reply_write), counting.__file__,
                 allocator.__file__],
                cwd=tree.path, env=side_env(tree), stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr,
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


def start_workers(trees, processes: int, stack: ExitStack) -> dict:
    """{tree label: `processes` handshaken workers}, all closed when `stack` unwinds (killed when it unwinds
    for an exception: an interrupted or failed gate waits for nothing)."""
    workers = {tree.label: [Worker(tree) for _ in range(processes)] for tree in trees}
    for side in workers.values():
        for one in side:
            stack.push(lambda kind, value, trace, one=one: one.close(kill=kind is not None))
    for side in workers.values():
        for one in side:
            one.handshake()
    return workers
