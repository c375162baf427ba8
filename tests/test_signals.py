"""SIGTERM and SIGHUP end a run as SIGINT does: every rank, worker, forkserver and resource tracker ended, the
rendezvous and temp cell folders removed (issue: hostile inputs, round two, item 4), and the command exits 128 + the
signal's number (143 for SIGTERM) with no leaked semaphores (round three, item 7). Each test starts a real run,
signals the main process at a chosen moment, then checks the exit status, the processes and the temp folder."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.fixture_runs import make_grid_run

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


@pytest.fixture
def short_tmp():
    """A temp folder of a short path, the children's TMPDIR: the forkserver's socket is made in it, and a socket's
    path may hold at most 107 bytes (a test's own tmp_path under pytest-xdist is longer)."""
    folder = Path(tempfile.mkdtemp(prefix="sig-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def start(args, folder):
    """`python -m ablate ARGS` with its own TMPDIR (folder/tmp), in a new session."""
    temp = folder / "tmp"
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


LEAKED = "leaked semaphore"  # multiprocessing's resource tracker, for what a process it served never released


def assert_nothing_left(job, seen: set, temp: Path, sig=None) -> str:
    """No traceback, no process, no temp folder of ours left; the exit status of `sig` when given. Returns stderr."""
    _, stderr = job.communicate(timeout=240)
    assert "Traceback" not in stderr and LEAKED not in stderr, stderr
    if sig is not None:
        assert job.returncode == 128 + sig, (job.returncode, stderr[-3000:])
    deadline = time.monotonic() + GRACE_S
    while any(alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {p: Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")[:120] for p in seen if alive(p)}
    assert not left, left
    ours = [p.name for p in temp.iterdir() if p.name.startswith("ablate-")]  # not torch's own caches
    assert ours == [], ours
    return stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig, workers, delay", [(signal.SIGTERM, 0, 1.0), (signal.SIGTERM, 2, 2.0),
                                                 (signal.SIGHUP, 2, 0.0)])
def test_train_nproc_ends_every_rank_and_removes_the_rendezvous_folder(short_tmp, sig, workers, delay):
    job, temp = start(["train", "--nproc", "2", "--epochs", "500", "--no-progress"], short_tmp)
    seen = signal_when(job, workers, sig, delay)
    assert_nothing_left(job, seen, temp, sig)


@pytest.mark.slow
@pytest.mark.parametrize("sig, workers, delay", [(signal.SIGTERM, 2, 0.0), (signal.SIGTERM, 2, 3.0),
                                                 (signal.SIGHUP, 2, 1.0)])
def test_grid_workers_are_ended_and_their_cell_folders_removed(tmp_path, short_tmp, sig, workers, delay):
    job, temp = start(["grid", "--workers", "2", "--set", "epochs=500", "--set", "seed=0,1,2", "--quiet",
                       "--out", str(tmp_path / "run")], short_tmp)
    seen = signal_when(job, workers, sig, delay)
    assert_nothing_left(job, seen, temp, sig)
    assert not (tmp_path / "run" / ".scratch").exists()  # where the cells' folders were


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_bench_world_ends_every_rank_and_removes_the_rendezvous_folder(tmp_path, short_tmp, sig):
    job, temp = start(["bench", "world", "--world", "2", "--classes", "1000", "--out", str(tmp_path / "w")],
                      short_tmp)
    seen = signal_when(job, 2, sig, 1.0)
    assert_nothing_left(job, seen, temp, sig)


def signal_once_said(job, words: str, sig) -> str:
    """Send `sig` once `job`'s stderr has said `words` (the command is under way); returns what it said."""
    said = ""
    while words not in said:  # raw reads: a progress bar redraws with CR, not line by line
        chunk = os.read(job.stderr.fileno(), 4096).decode(errors="replace")
        assert chunk, (job.wait(), said)
        said += chunk
    job.send_signal(sig)
    return said


# Commands of one process, each signalled once its work is under way (its progress bar has started).
SINGLE = {
    "report": lambda t: ["report", str(make_grid_run(t / "run", lambdas=(0.0, 0.1), alphas=(0.5,), rules=("paper",),
                                                      seeds=(0, 1))), "--out", str(t / "r.html")],
    "train": lambda t: ["train", "--epochs", "500"],
    "grid": lambda t: ["grid", "--set", "epochs=500", "--set", "seed=0,1", "--out", str(t / "run")],
    "tune": lambda t: ["tune", str(_tune_grid(t)), "--set", "epochs=500", "--out", str(t / "run")],
}


def _tune_grid(folder: Path) -> Path:
    """A one-objective tune of two trials: its first trial's bar is the signal's cue."""
    path = folder / "tune.toml"
    path.write_text('[axes]\ndataset = "digits"\n[tune]\nbudget = 2\nseeds = 1\n')
    return path


@pytest.mark.parametrize("command, sig", [(command, signal.SIGTERM) for command in SINGLE if command != "tune"]
                         + [("report", signal.SIGHUP),
                            pytest.param("tune", signal.SIGTERM, marks=pytest.mark.slow)])  # slow: the fast lane's time
def test_a_signalled_command_exits_with_the_signal_status(tmp_path, command, sig):
    job, temp = start(SINGLE[command](tmp_path), tmp_path)
    signal_once_said(job, "%|", sig)  # tqdm's bar: the work has begun
    assert_nothing_left(job, set(), temp, sig)


@pytest.mark.slow
def test_bench_run_signalled_exits_with_the_signal_status(tmp_path):
    job, temp = start(["bench", "run", "--suite", "quick", "--out", str(tmp_path / "b")], tmp_path)
    time.sleep(8)  # past the imports, into the timing
    assert job.poll() is None, job.communicate()
    job.send_signal(signal.SIGTERM)
    assert_nothing_left(job, set(), temp, signal.SIGTERM)


def test_a_grid_with_two_workers_releases_every_semaphore(tmp_path, short_tmp):
    job, temp = start(["grid", "--workers", "2", "--set", "epochs=1", "--set", "seed=0,1", "--set", "lambda=0",
                       "--set", "alpha=0.5", "--set", "rule=paper", "--set", "variant=gather", "--quiet", "--out",
                       str(tmp_path / "run")], short_tmp)
    stderr = assert_nothing_left(job, set(), temp)
    assert job.returncode == 0, stderr[-3000:]
