"""git, the one way the suite runs it: the code version in a result's provenance, the A/B gate's revisions and
worktrees.

    git(repo, *args, timeout=...)   `git -C repo args`, captured as text, in a process group of its own
"""

import os
import signal
import subprocess
from pathlib import Path


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
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
