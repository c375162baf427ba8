"""Training in several processes: the record equals one process on the global batch; a dying rank ends the run."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ablate.distributed.launch import RanksFailed, run_ranks
from ablate.grid import run_grid
from ablate.grid.executors import SerialExecutor
from ablate.grid.spec import GridSpec
from ablate.train import CellConfig, run_cell
from ablate.train.cell import train_and_evaluate
from tests.support import ROOT
from tests.support import distributed_ranks as ranks

# Metrics compared between 2 ranks x batch 32 and 1 process x batch 64. Both sum the same float32 terms in
# other orders (DDP averages the ranks' gradients, each rank sums its own slice, thread counts differ), so
# each step differs by a few float32 ulps (~1e-7) and training carries that along: 15 epochs on digits
# measured 2.5e-7 at most (center_to_mean_distance). 1e-4 is far from any real change of the training.
METRIC_RTOL = 1e-4
EXACT_KEYS = ("test_accuracy", "nearest_center_accuracy", "precision_at_1", "status")
CLOSE_KEYS = ("intra_class_distance", "inter_class_distance", "inter_class_distance_min", "separation_ratio",
              "silhouette", "map_at_r", "verification_auc", "center_to_mean_distance")


@pytest.mark.parametrize("form, rule", [("replicated", "paper"), ("sharded", "sgd"), ("replicated", "sgd")])
def test_two_ranks_of_32_train_what_one_process_of_64_trains(form, rule):
    common = dict(dataset="digits", epochs=2, rule=rule, seed=1)
    two = run_cell(CellConfig(**common, nproc=2, batch_size=32, distributed=form))
    one = train_and_evaluate(CellConfig(**common, batch_size=64), torch.device("cpu"))
    assert (two["world_size"], two["distributed"], one["world_size"]) == (2, form, 1)
    for key in EXACT_KEYS:
        assert two[key] == one[key], key
    for key in CLOSE_KEYS:
        assert two[key] == pytest.approx(one[key], rel=METRIC_RTOL), key
    for curve in ("curve_softmax_loss", "curve_center_loss", "curve_train_accuracy"):
        assert two[curve] == pytest.approx(one[curve], rel=METRIC_RTOL), curve


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_dying_rank_ends_the_others_with_a_clear_error(how, monkeypatch):
    monkeypatch.setenv("ABLATE_MAX_PROCESSES", "3")  # three ranks on any machine: one fails, two are ended
    started = time.monotonic()
    with pytest.raises(RanksFailed, match="rank 1 of 3 (failed: ValueError: rank 1 gives up|died .*SIGKILL)"):
        run_ranks(ranks.dying_rank, 3, (how,), threads=1)
    assert time.monotonic() - started < 60


def rank_pids(parent_pid: int) -> list:
    """The ranks of the `ablate` process parent_pid: the children of its forkserver (ablate.distributed.launch)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:
            continue  # the process ended while being listed
        children.setdefault(int(rest.rsplit(") ", 1)[1].split()[1]), []).append(int(pid))
    servers = [pid for pid in children.get(parent_pid, [])
               if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    return [pid for server in servers for pid in children.get(server, [])]


@pytest.mark.slow
def test_killing_a_rank_of_ablate_train_ends_the_run_with_a_clear_message(tmp_path):
    out = tmp_path / "cell.json"
    command = [sys.executable, "-m", "ablate", "train", "--nproc", "2", "--epochs", "500", "--no-progress",
               "--out", str(out)]
    job = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while len(rank_pids(job.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    victim = rank_pids(job.pid)[-1]
    time.sleep(3)  # into training
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    _, stderr = job.communicate(timeout=60)
    assert time.monotonic() - killed < 60
    assert job.returncode == 1 and re.search(r"Error: rank [01] of 2 died \(signal SIGKILL", stderr), stderr
    assert "Traceback" not in stderr and not out.exists()


@pytest.mark.slow
def test_a_grid_records_a_failed_multi_process_cell_and_goes_on(tmp_path):
    spec = GridSpec(axes={"dataset": ["digits"], "nproc": [2], "epochs": [1]},
                    also=({"dataset": ["fashion-mnist"], "data_dir": [str(tmp_path / "nowhere")]},))
    outcome = run_grid(spec, tmp_path / "run", SerialExecutor(), quiet=True)
    records = {r["dataset"]: r for r in outcome.records.values()}
    assert records["digits"]["status"] == "ok" and records["digits"]["world_size"] == 2
    assert records["fashion-mnist"]["status"] == "failed" and "nowhere" in records["fashion-mnist"]["error"]
