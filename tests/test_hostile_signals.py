"""SIGTERM and SIGHUP end a run as SIGINT does: every rank, worker, forkserver and resource tracker ended, the
rendezvous and temp cell folders removed (issue: hostile inputs, round two, item 4). Each test starts a real
multi-process run, signals the main process at a chosen moment, then checks the processes and the temp folder."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import ROOT

GRACE_S = 15  # for the main process to clean up and the forkserver and tracker to notice it is gone


def _children() -> dict:
    """parent pid -> [child pids] of every process."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:
            continue
        children.setdefault(int(rest.rsplit(") ", 1)[1].split()[1]), []).append(int(pid))
    return children


def descendants(pid: int) -> set:
    children, found, todo = _children(), set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start(args, tmp_path):
    """`python -m ablate ARGS` with its own TMPDIR (tmp_path/tmp), in a new session."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(temp), "ABLATE_MAX_PROCESSES": "2"}
    job = subprocess.Popen([sys.executable, "-m", "ablate", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    return job, temp


def signal_when(job, workers: int, sig, delay: float) -> set:
    """Wait until `job` has `workers` processes under its forkserver (or for `delay` s alone when workers is 0),
    then `delay` s more, send `sig`; returns every descendant seen."""
    seen, deadline = set(), time.monotonic() + 180
    while workers and time.monotonic() < deadline and job.poll() is None:
        seen |= descendants(job.pid)
        if len(seen) >= workers + 2:  # the forkserver, the resource tracker and the workers
            break
        time.sleep(0.2)
    end = time.monotonic() + delay
    while time.monotonic() < end and job.poll() is None:
        seen |= descendants(job.pid)
        time.sleep(0.2)
    assert job.poll() is None, job.communicate()
    seen |= descendants(job.pid)
    job.send_signal(sig)
    return seen


def assert_nothing_left(job, seen: set, temp: Path) -> None:
    _, stderr = job.communicate(timeout=240)
    assert "Traceback" not in stderr, stderr
    deadline = time.monotonic() + GRACE_S
    while any(alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {p: Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")[:120] for p in seen if alive(p)}
    assert not left, left
    ours = [p.name for p in temp.iterdir() if p.name.startswith("ablate-")]  # not torch's own caches
    assert ours == [], ours


@pytest.mark.slow
@pytest.mark.parametrize("sig, workers, delay", [(signal.SIGTERM, 0, 1.0), (signal.SIGTERM, 2, 2.0),
                                                 (signal.SIGHUP, 2, 0.0)])
def test_train_nproc_ends_every_rank_and_removes_the_rendezvous_folder(tmp_path, sig, workers, delay):
    job, temp = start(["train", "--nproc", "2", "--epochs", "500", "--no-progress"], tmp_path)
    seen = signal_when(job, workers, sig, delay)
    assert_nothing_left(job, seen, temp)


@pytest.mark.slow
@pytest.mark.parametrize("sig, workers, delay", [(signal.SIGTERM, 2, 0.0), (signal.SIGTERM, 2, 3.0),
                                                 (signal.SIGHUP, 2, 1.0)])
def test_grid_workers_are_ended_and_their_cell_folders_removed(tmp_path, sig, workers, delay):
    job, temp = start(["grid", "--workers", "2", "--set", "epochs=500", "--set", "seed=0,1,2", "--quiet",
                       "--out", str(tmp_path / "run")], tmp_path)
    seen = signal_when(job, workers, sig, delay)
    assert_nothing_left(job, seen, temp)
    assert not (tmp_path / "run" / ".scratch").exists()  # where the cells' folders were
    assert job.returncode == 130


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_bench_world_ends_every_rank_and_removes_the_rendezvous_folder(tmp_path, sig):
    job, temp = start(["bench", "world", "--world", "2", "--classes", "1000", "--out", str(tmp_path / "w")], tmp_path)
    seen = signal_when(job, 2, sig, 1.0)
    assert_nothing_left(job, seen, temp)
