"""git, the one way the suite runs it: the code version in a result's provenance, the A/B gate's revisions and
worktrees.

    git(repo, *args, timeout=...)     `git -C repo args`, captured as text, in a process group of its own
    toplevel(path)                    the top folder of the checkout holding `path`
    resolve_revision(repo, rev)       the full commit hash that a revision name stands for
    uncommitted(repo)                 the tracked files with uncommitted changes
    worktree(repo, commit, prefix)    a commit checked out (detached) in a temporary worktree, removed on exit

All but `git` raise GitError, one line naming what is wrong, for a missing git, a call past GIT_TIMEOUT_S, a
folder outside a checkout or a revision git does not know.
"""

import os
import shutil
import signal
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

GIT_TIMEOUT_S = 60
MAX_REVISION_CHARS = 256  # far past any real ref name, far below the kernel's argument limit


class GitError(Exception):
    """git cannot answer as asked: not on PATH, too slow, not a checkout, an unknown revision, a failed checkout."""


def git(repo: Path | str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    """`git -C repo args` with stdout and stderr captured as text and no stdin; the exit status is the caller's to
    read. git runs in a process group of its own: when the call is cut short (the timeout, Ctrl-C, SIGTERM or
    SIGHUP raised by `ablate.signals.termination_raises`), git and the git processes it started (`worktree add`
    runs a checkout) are killed together before the exception goes on, so that nothing still writes to a folder
    the caller then removes.

    Raises FileNotFoundError when git is not on PATH, subprocess.TimeoutExpired after `timeout` seconds."""
    process = subprocess.Popen(["git", "-C", str(repo), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except BaseException:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # git and its children had already ended: the interrupt came after them
            pass
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _answer(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """`git` within GIT_TIMEOUT_S; no git on PATH and a timeout told as GitErrors."""
    try:
        return git(repo, *args, timeout=GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise GitError(f"`git {args[0]}` needs git on PATH (install git)") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"`git {' '.join(args[:2])}` in {repo} did not finish within {GIT_TIMEOUT_S} s") from None


def toplevel(path: Path | str) -> Path:
    """The top folder of the git checkout holding `path`."""
    out = _answer(Path(path), "rev-parse", "--show-toplevel")
    if out.returncode != 0:
        raise GitError(f"{path} is not inside a git checkout ({out.stderr.strip()})")
    return Path(out.stdout.strip())


def resolve_revision(repo: Path, rev: str) -> str:
    """The full commit hash that `rev` (a commit, branch or tag) names in `repo`."""
    if len(rev) > MAX_REVISION_CHARS or not rev.isprintable():
        shown = rev[:40].encode("unicode_escape").decode() + ("..." if len(rev) > 40 else "")
        raise GitError(f"revision {shown!r} ({len(rev):,} characters) is not a revision name: expected at most "
                       f"{MAX_REVISION_CHARS} printable characters (a commit, branch or tag, e.g. HEAD~1)")
    out = _answer(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    if out.returncode != 0:
        raise GitError(f"unknown revision {rev!r} in {repo}: expected a commit, branch or tag that git knows "
                       "(e.g. HEAD~1, origin/main; a shallow clone may lack history: `git fetch --unshallow`)")
    return out.stdout.strip()


def uncommitted(repo: Path) -> list[str]:
    """The tracked files of `repo` whose working-tree or staged content differs from HEAD, as git names them."""
    lines = _answer(repo, "status", "--porcelain", "--untracked-files=no").stdout.splitlines()
    return [line[3:] for line in lines]


@contextmanager
def worktree(repo: Path, commit: str, prefix: str = "ablate-worktree-") -> Iterator[Path]:
    """`commit` checked out (detached) in a new temporary folder named `prefix`...; the worktree is removed and
    pruned on exit, however the exit comes (an error, Ctrl-C, or SIGTERM/SIGHUP under `termination_raises`), even
    mid-checkout."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        out = _answer(repo, "worktree", "add", "--detach", "--quiet", str(folder), commit)
        if out.returncode != 0:
            raise GitError(f"could not check {commit} out into a temporary worktree: {out.stderr.strip()}")
        yield folder
    finally:  # a checkout cut short stays locked ("initializing"): unlocked, so that prune can forget it
        _answer(repo, "worktree", "unlock", str(folder))
        _answer(repo, "worktree", "remove", "--force", "--force", str(folder))
        shutil.rmtree(folder, ignore_errors=True)
        _answer(repo, "worktree", "prune")
