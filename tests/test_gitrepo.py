"""ablate.gitrepo: git's answer as a CompletedProcess, and git with everything it started killed when the call is
cut short (a timeout, or SIGTERM under ablate.signals.termination_raises as in the A/B gate); checkouts, revisions,
uncommitted files and temporary worktrees, each failure one GitError line."""

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ablate.gitrepo import GitError, git, resolve_revision, toplevel, uncommitted, worktree
from ablate.signals import termination_raises

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git on PATH")


@needs_git
def test_git_answers_with_its_exit_status_and_output(tmp_path):
    assert git(tmp_path, "init", "--quiet", timeout=60).returncode == 0
    assert git(tmp_path, "rev-parse", "--is-inside-work-tree", timeout=60).stdout.strip() == "true"
    outside = git(tmp_path / "missing", "status", timeout=60)
    assert outside.returncode != 0 and "missing" in outside.stderr


def test_no_git_on_path_is_file_not_found(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError):
        git(tmp_path, "status", timeout=60)


@pytest.fixture
def hanging_git(tmp_path, monkeypatch):
    """A `git` on PATH that starts a child of its own (as `git worktree add` starts a checkout), writes the
    child's pid to the returned file, and waits forever."""
    pid_file = tmp_path / "child.pid"
    fake = tmp_path / "bin" / "git"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nsleep 600 &\necho $! > {pid_file}.part\nmv {pid_file}.part {pid_file}\nwait\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    yield pid_file
    if pid_file.exists() and not _gone(int(pid_file.read_text()), timeout=0):  # the test failed: none left behind
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether process `pid` has ended (a zombie no one has reaped yet counts as ended)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _child_pid(pid_file: Path) -> int:
    assert pid_file.exists(), "the fake git never started its child"
    return int(pid_file.read_text())


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="looks the child up in /proc")
def test_a_timeout_kills_git_and_what_it_started(hanging_git, tmp_path):
    with pytest.raises(subprocess.TimeoutExpired):
        git(tmp_path, "worktree", "add", timeout=1.0)
    assert _gone(_child_pid(hanging_git))


class Stopped(Exception):
    pass


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="looks the child up in /proc")
def test_sigterm_mid_call_kills_git_and_what_it_started(hanging_git, tmp_path):
    def terminate_once_started():
        deadline = time.monotonic() + 30
        while not hanging_git.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=terminate_once_started)
    with pytest.raises(Stopped, match="SIGTERM"), termination_raises(Stopped):
        sender.start()
        git(tmp_path, "worktree", "add", timeout=60)
    sender.join()
    assert _gone(_child_pid(hanging_git))


@needs_git
def test_toplevel_revisions_and_uncommitted_files(tmp_path):
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    git(root, "init", "--quiet", timeout=60)
    (root / "file.txt").write_text("one\n")
    git(root, "add", "file.txt", timeout=60)
    git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "--quiet", "-m", "one", timeout=60)
    assert toplevel(root / "sub").resolve() == root.resolve()
    head = resolve_revision(root, "HEAD")
    assert len(head) == 40 and resolve_revision(root, head[:8]) == head
    assert uncommitted(root) == []
    (root / "file.txt").write_text("two\n")
    (root / "untracked.txt").write_text("not git's\n")
    assert uncommitted(root) == ["file.txt"]  # tracked files only

    with worktree(root, head, prefix="ablate-test-") as folder:
        assert folder.name.startswith("ablate-test-") and (folder / "file.txt").read_text() == "one\n"
    assert not folder.exists() and len(git(root, "worktree", "list", timeout=60).stdout.splitlines()) == 1


@needs_git
def test_each_git_failure_is_one_line_naming_what_is_wrong(tmp_path, monkeypatch):
    with pytest.raises(GitError, match=f"{tmp_path} is not inside a git checkout"):
        toplevel(tmp_path)
    git(tmp_path, "init", "--quiet", timeout=60)
    with pytest.raises(GitError, match="unknown revision 'no-such-revision'.*expected a commit, branch or tag"):
        resolve_revision(tmp_path, "no-such-revision")
    for rev in ("a" * 3_000_000, "HEAD\n~1", "HEAD\x00"):  # past any ref name, or not printable: git never sees it
        with pytest.raises(GitError, match=r"is not a revision name: expected at most 256 printable") as raised:
            resolve_revision(tmp_path, rev)
        assert "\n" not in str(raised.value) and len(str(raised.value)) < 300
    with pytest.raises(GitError, match="could not check 0{40} out into a temporary worktree"):
        with worktree(tmp_path, "0" * 40):
            pass
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(GitError, match="`git rev-parse` needs git on PATH"):
        toplevel(tmp_path)
