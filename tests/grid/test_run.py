"""Running grids: the run folder's layout, resume, failures, tables, local workers, SIGKILL mid-run.

Cells are real digits cells of one or two epochs (a fraction of a second each).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from scipy import stats

from ablate import provenance
from ablate.cli import main
from ablate.grid import expand, load_results, load_spec, run_grid
from ablate.grid.cli import grid_command
from ablate.grid.executors import ProcessExecutor, SerialExecutor, make_executor
from ablate.grid.spec import GridSpec
from ablate.runs.cells import CellStore
from ablate.runs.folder import locked
from ablate.runs.schema import RunLockedError, cell_id
from ablate.train.config import config_columns
from tests.support import ROOT, write_toml

TINY = {"dataset": ["digits"], "epochs": [1]}


def tiny_spec(**axes) -> GridSpec:
    return GridSpec(axes={**TINY, **axes})


def ids_of(spec: GridSpec) -> list:
    return [cell_id(c) for c in expand(spec)]


def record_mtimes(run_dir: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (run_dir / "cells").glob("*.json")}


def test_a_grid_fills_the_run_folder(tmp_path):
    spec = tiny_spec(**{"lambda": [0.0, 0.1], "seed": [0, 1, 2]})
    outcome = run_grid(spec, tmp_path, SerialExecutor(), quiet=True)
    assert outcome.ran == 6 and outcome.status_counts() == {"ok": 6}

    assert sorted(p.stem for p in (tmp_path / "cells").glob("*.json")) == sorted(ids_of(spec))
    for i in ids_of(spec):
        record = json.loads((tmp_path / "cells" / f"{i}.json").read_text())
        assert record["cell_id"] == i and record["status"] == "ok" and record["git_commit"] and record["host"]
        with np.load(tmp_path / "cells" / f"{i}.npz") as npz:
            assert npz["features"].dtype == np.float32 and npz["features"].shape == (len(npz["labels"]), 2)
            assert npz["labels"].dtype == np.int64 and npz["centers"].shape == (10, 2)

    provenance = json.loads((tmp_path / "provenance.json").read_text())
    for key in ("git_commit", "git_dirty", "python", "torch", "numpy", "cpu", "host", "command", "started_at",
                "finished_at"):
        assert key in provenance, key
    assert provenance["status_counts"] == {"ok": 6}
    assert ids_of(load_spec(tmp_path / "grid.toml")) == ids_of(spec)


def test_tables_have_the_promised_schema_and_t_intervals(tmp_path):
    spec = tiny_spec(**{"lambda": [0.0, 0.1], "seed": [0, 1, 2]})
    run_grid(spec, tmp_path, SerialExecutor(), quiet=True)

    results = pd.read_parquet(tmp_path / "results.parquet")
    assert list(results.columns[:1 + len(config_columns())]) == ["cell_id", *config_columns()]
    assert {"lambda", "alpha", "variant", "rule", "convention", "seed", "dataset", "feat_dim"} <= set(results.columns)
    assert {"test_accuracy", "separation_ratio", "status", "train_time_s", "wall_time_s"} <= set(results.columns)
    assert not [c for c in results.columns if c.startswith("curve_")]
    assert list(results["cell_id"]) == ids_of(spec)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results.csv")[["cell_id", "lambda", "test_accuracy"]],
                                  results[["cell_id", "lambda", "test_accuracy"]], check_dtype=False)

    curves = pd.read_parquet(tmp_path / "curves.parquet")
    assert list(curves.columns) == ["cell_id", "epoch", "metric", "value"]
    assert set(curves["metric"]) == {"softmax_loss", "center_loss", "train_accuracy"}
    assert len(curves) == 6 * 3 * 1  # cells x metrics x epochs

    summary = pd.read_parquet(tmp_path / "summary.parquet")
    assert "seed" not in summary and list(summary["n_seeds"]) == [3, 3]
    for lam, row in summary.set_index("lambda").iterrows():
        values = results.loc[results["lambda"] == lam, "test_accuracy"]
        low, high = stats.t.interval(0.95, df=len(values) - 1, loc=values.mean(), scale=stats.sem(values))
        assert row["test_accuracy_mean"] == pytest.approx(values.mean())
        assert row["test_accuracy_ci95"] == pytest.approx((high - low) / 2)


def test_a_rerun_skips_finished_cells_and_force_reruns_them(tmp_path):
    spec = tiny_spec(**{"lambda": [0.0, 0.1]})
    run_grid(spec, tmp_path, SerialExecutor(), quiet=True)
    before = record_mtimes(tmp_path)

    again = run_grid(spec, tmp_path, SerialExecutor(), quiet=True)
    assert again.ran == 0 and len(again.plan.finished) == 2 and record_mtimes(tmp_path) == before

    forced = run_grid(spec, tmp_path, SerialExecutor(), force=True, quiet=True)
    assert forced.ran == 2 and all(record_mtimes(tmp_path)[k] > before[k] for k in before)


def test_a_changed_spec_keeps_the_cells_that_still_belong_to_it(tmp_path):
    run_grid(tiny_spec(seed=[0, 1]), tmp_path, SerialExecutor(), quiet=True)
    before = record_mtimes(tmp_path)

    changed = tiny_spec(seed=[1, 2])
    outcome = run_grid(changed, tmp_path, SerialExecutor(), quiet=True)
    assert outcome.ran == 1 and outcome.plan.finished == ids_of(tiny_spec(seed=[1]))
    assert len(outcome.plan.not_in_grid) == 1 and len(record_mtimes(tmp_path)) == 3  # seed 0 stays on disk
    assert list(pd.read_parquet(tmp_path / "results.parquet")["seed"]) == [1, 2]

    # Rebuilt from cells/, the table still holds only the current grid's cells.
    (tmp_path / "results.parquet").unlink()
    assert sorted(load_results(tmp_path)["seed"]) == [1, 2]  # rebuilt in cell-id order
    kept = f"{ids_of(tiny_spec(seed=[1]))[0]}.json"
    assert before[kept] == record_mtimes(tmp_path)[kept]


def test_load_results_rebuilds_a_table_older_than_a_cell(tmp_path):
    run_grid(tiny_spec(seed=[0, 1]), tmp_path, SerialExecutor(), quiet=True)
    store = CellStore(tmp_path)
    some_id = ids_of(tiny_spec(seed=[1]))[0]
    record = store.read(some_id)
    store.save(some_id, {**record, "test_accuracy": 0.125}, None)  # as if a cell finished after the tables
    later = (tmp_path / "results.parquet").stat().st_mtime_ns + 1_000_000_000  # whatever the clock's resolution
    os.utime(store.record_path(some_id), ns=(later, later))
    assert load_results(tmp_path).set_index("cell_id").loc[some_id, "test_accuracy"] == 0.125
    with pytest.raises(ValueError, match="no grid results"):
        load_results(tmp_path / "empty")


def failing_spec(tmp_path) -> GridSpec:
    # fashion-mnist reads its IDX files from data_dir, which does not exist; digits reads no folder.
    return replace(tiny_spec(dataset=["digits"], seed=[0, 1]),
                   also=({"dataset": ["fashion-mnist"], "data_dir": [str(tmp_path / "nowhere")]},))


def test_a_failing_cell_is_recorded_and_the_others_go_on(tmp_path):
    run_dir = tmp_path / "run"
    outcome = run_grid(failing_spec(tmp_path), run_dir, SerialExecutor(), quiet=True)
    assert outcome.status_counts() == {"ok": 2, "failed": 2}
    for record in outcome.failed().values():
        assert "nowhere" in record["error"] and len(record["error"].splitlines()) <= 8
        assert record["dataset"] == "fashion-mnist"
    results = pd.read_parquet(run_dir / "results.parquet")
    assert sorted(results["status"]) == ["failed", "failed", "ok", "ok"]
    assert list(pd.read_parquet(run_dir / "summary.parquet")["dataset"]) == ["digits"]  # failed cells: no summary row

    rerun = run_grid(failing_spec(tmp_path), run_dir, SerialExecutor(), quiet=True)
    assert rerun.ran == 0 and len(rerun.plan.failed_before) == 2
    retried = run_grid(failing_spec(tmp_path), run_dir, SerialExecutor(), retry_failed=True, quiet=True)
    assert retried.ran == 2 and [i for i, _ in retried.plan.to_run] == rerun.plan.failed_before


def test_a_grid_whose_cells_all_fail_still_writes_its_tables(tmp_path):
    spec = tiny_spec(dataset=["fashion-mnist"], data_dir=[str(tmp_path / "nowhere")])
    outcome = run_grid(spec, tmp_path / "run", SerialExecutor(), quiet=True)
    assert outcome.status_counts() == {"failed": 1}
    assert list(pd.read_parquet(tmp_path / "run" / "results.parquet")["status"]) == ["failed"]
    assert pd.read_parquet(tmp_path / "run" / "summary.parquet").empty


def test_a_diverged_cell_is_finished_counted_and_not_averaged_in_the_summary(tmp_path):
    spec = tiny_spec(lr=[0.05, 1e4])
    outcome = run_grid(spec, tmp_path, SerialExecutor(), quiet=True)
    assert outcome.status_counts() == {"ok": 1, "diverged": 1}
    assert run_grid(spec, tmp_path, SerialExecutor(), quiet=True).ran == 0
    summary = pd.read_parquet(tmp_path / "summary.parquet").set_index("lr")
    assert list(summary.index) == [0.05, 1e4]
    assert list(summary["n_seeds"]) == [1, 0] and list(summary["n_diverged"]) == [0, 1]
    assert np.isfinite(summary.loc[0.05, "test_accuracy_mean"]) and np.isnan(summary.loc[1e4, "test_accuracy_mean"])


def test_the_command_exits_non_zero_with_a_summary_when_a_cell_failed(tmp_path):
    spec = write_toml(tmp_path, f"""
        [axes]
        dataset = "digits"
        epochs = 1
        [[also]]
        dataset = "fashion-mnist"
        data_dir = "{tmp_path / 'nowhere'}"
    """)
    result = CliRunner().invoke(grid_command, [str(spec), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 1, result.output
    assert "2 cells: 1 ok, 0 diverged, 1 failed" in result.output
    assert "failed " in result.stderr and "dataset=fashion-mnist" in result.stderr and "nowhere" in result.stderr


def test_the_command_says_what_it_skips_and_prints_the_summary_table(tmp_path):
    args = ["default", "--set", "lambda=0,1", "--set", "alpha=0.5", "--set", "rule=paper", "--set", "seed=0,1",
            "--set", "variant=gather", "--set", "epochs=1", "--out", str(tmp_path)]
    first = CliRunner().invoke(grid_command, args)
    assert first.exit_code == 0, first.output
    assert "4 cells: 4 to run" in first.output and "mean ± 95% CI" in first.output
    second = CliRunner().invoke(grid_command, args)
    assert "4 cells: 0 to run, 4 finished earlier (skipped)" in second.output


@pytest.mark.parametrize("args, message", [
    (["--set", "lambda"], "expected KEY=V1,V2"),
    (["--set", "lamda=1"], "unknown cell option(s) 'lamda'"),
    (["--address", "x:1"], "--address applies to --executor ray"),
    ([], "--out RUN_DIR is required"),
])
def test_the_command_refuses_bad_options_before_writing_anything(tmp_path, args, message):
    out = ["--out", str(tmp_path / "run")] if args else []
    result = CliRunner().invoke(grid_command, ["default", *args, *out])
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "run").exists()


def test_the_command_refuses_cells_this_machine_cannot_run_before_writing_anything(tmp_path, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    result = CliRunner().invoke(grid_command, ["default", "--out", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert "4 cell(s) of variant 'fused' cannot run on cpu here" in result.output
    assert "TRITON_INTERPRET=1" in result.output
    assert not (tmp_path / "run").exists()


def test_the_command_lists_the_bundled_grids():
    result = CliRunner().invoke(grid_command, ["--list"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.output.splitlines() if not line.startswith(" ")]  # then descriptions
    assert names == ["contest", "default", "fashion", "losses", "paper-mnist", "variants"]


def test_stale_temp_files_are_removed_and_one_run_holds_the_folder(tmp_path):
    cells = tmp_path / "cells"
    cells.mkdir()
    (cells / ".abc.json.ablate-x1y2z3w4.tmp").write_text("{half")
    users = [cells / ".notes.tmp", tmp_path / ".draft.json.x1y2.tmp"]  # a user's files: never deleted
    for path in users:
        path.write_text("mine")
    run_grid(tiny_spec(), tmp_path, SerialExecutor(), quiet=True)
    assert sorted(p.name for p in [*cells.glob("*.tmp"), *tmp_path.glob("*.tmp")]) == sorted(p.name for p in users)
    with locked(tmp_path):
        with pytest.raises(RunLockedError, match="another `ablate` run is writing"):
            run_grid(tiny_spec(), tmp_path, SerialExecutor(), quiet=True)


class InterruptingExecutor(SerialExecutor):
    """Finishes `cells` cells, then raises KeyboardInterrupt as Ctrl-C would."""

    def __init__(self, cells: int):
        super().__init__()
        self.cells = cells

    def run(self, tasks, scratch=None):
        for n, result in enumerate(super().run(tasks, scratch)):
            if n == self.cells:
                raise KeyboardInterrupt
            yield result


def test_an_interrupted_run_keeps_its_finished_cells_and_resumes(tmp_path):
    spec = tiny_spec(seed=[0, 1, 2])
    outcome = run_grid(spec, tmp_path, InterruptingExecutor(cells=1), quiet=True)
    assert outcome.interrupted and outcome.ran == 1
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 1
    assert json.loads((tmp_path / "provenance.json").read_text())["interrupted"] is True
    resumed = run_grid(spec, tmp_path, SerialExecutor(), quiet=True)
    assert resumed.ran == 2 and len(resumed.records) == 3


def worker_identity_cell(config: dict, features_path) -> dict:
    """A stand-in cell that says which process ran it and with how many torch threads."""
    time.sleep(0.3)  # long enough that both workers take cells
    return {**config, "status": "ok", "test_accuracy": 1.0, "wall_time_s": 0.3,
            "worker_pid": os.getpid(), "worker_threads": torch.get_num_threads()}


@pytest.mark.slow  # 7-14 s of worker processes; the fast lane keeps local workers giving the serial results
def test_local_workers_run_cells_in_other_processes_with_threads_divided(tmp_path):
    executor = make_executor("local", workers=2, cell_fn=worker_identity_cell)
    assert isinstance(executor, ProcessExecutor)
    outcome = run_grid(tiny_spec(seed=[0, 1, 2, 3, 4, 5]), tmp_path, executor, quiet=True)
    pids = {r["worker_pid"] for r in outcome.records.values()}
    assert len(outcome.records) == 6 and len(pids) == 2 and os.getpid() not in pids
    assert {r["worker_threads"] for r in outcome.records.values()} == {max(1, torch.get_num_threads() // 2)}


def dies_at_seed_one_cell(config: dict, features_path) -> dict:
    """A stand-in cell whose worker process dies (as if killed for memory) at seed 1."""
    if config["seed"] == 1:
        os._exit(1)
    time.sleep(0.2)
    return {**config, "status": "ok", "test_accuracy": 1.0, "wall_time_s": 0.2}


@pytest.mark.slow  # 7-14 s of worker processes; the fast lane keeps local workers giving the serial results
def test_a_dying_worker_fails_only_its_own_cell(tmp_path):
    executor = make_executor("local", workers=2, cell_fn=dies_at_seed_one_cell)
    outcome = run_grid(tiny_spec(seed=[0, 1, 2, 3, 4, 5]), tmp_path, executor, quiet=True)
    statuses = {r["seed"]: r["status"] for r in outcome.records.values()}
    assert statuses == {0: "ok", 1: "failed", 2: "ok", 3: "ok", 4: "ok", 5: "ok"}
    assert "worker process died" in next(iter(outcome.failed().values()))["error"]


def test_local_workers_give_the_serial_results(tmp_path):
    spec = tiny_spec(**{"lambda": [0.0, 0.1], "epochs": [2]})
    serial = run_grid(spec, tmp_path / "serial", SerialExecutor(), quiet=True).records
    parallel = run_grid(spec, tmp_path / "parallel", make_executor("local", workers=2), quiet=True).records
    assert serial.keys() == parallel.keys()
    for i in serial:
        # Same config and seed; only the thread count differs, which may reorder float32 sums:
        # rounding-level differences, amplified over ~50 steps, stay far below 1e-4.
        np.testing.assert_allclose(parallel[i]["curve_softmax_loss"], serial[i]["curve_softmax_loss"], rtol=1e-4)
        assert parallel[i]["test_accuracy"] == pytest.approx(serial[i]["test_accuracy"], abs=1 / 360)
        assert (tmp_path / "parallel" / "cells" / f"{i}.npz").exists()
        assert parallel[i]["torch_threads"] == max(1, serial[i]["torch_threads"] // 2)


@pytest.fixture
def system_temp():
    """A folder for the grid's processes to take as the system's temp folder (TMPDIR): a short path, since
    multiprocessing's forkserver puts a socket there and a socket's path is limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ablate-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow  # 23 s: a real grid killed and resumed; the fast lane keeps an interrupted run resuming
def test_a_grid_killed_mid_run_resumes_with_every_cell_once(tmp_path, system_temp):
    spec = write_toml(tmp_path, """
        [axes]
        dataset = "digits"
        epochs = 1
        lambda = [0, 0.01, 0.1, 1]
        seed = [0, 1, 2]
    """)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "ablate", "grid", str(spec), "--out", str(run_dir), "--workers", "2", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(system_temp)}
    expected = set(ids_of(load_spec(spec)))
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list((run_dir / "cells").glob("*.json"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the grid and its workers, with no chance to clean up
    process.wait()
    killed = record_mtimes(run_dir)
    assert 3 <= len(killed) < len(expected), "the kill must land mid-run"

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(expected)} cells: {len(expected)} ok" in rerun.stdout
    after = record_mtimes(run_dir)
    assert {Path(name).stem for name in after} == expected  # every cell, each once
    assert {name: after[name] for name in killed} == killed  # finished cells not recomputed
    assert not list(run_dir.rglob("*.tmp"))
    # The killed run's cell folders were in the run folder's scratch, removed by the rerun; none in the system's
    # (which keeps what multiprocessing and torch leave there).
    assert not (run_dir / ".scratch").exists() and not list(system_temp.glob("ablate-*"))
    for i in expected:
        assert json.loads((run_dir / "cells" / f"{i}.json").read_text())["status"] == "ok"
        with np.load(run_dir / "cells" / f"{i}.npz") as npz:
            assert npz["features"].shape[0] == npz["labels"].shape[0]
    results = pd.read_parquet(run_dir / "results.parquet")
    assert sorted(results["cell_id"]) == sorted(expected)


# --- hostile and broken run folders -------------------------------------------------------------------------

def quick_cell(config: dict, features_path) -> dict:
    """A stand-in cell that finishes at once, its accuracy set by its seed."""
    return {**config, "status": "ok", "test_accuracy": 0.5 + config["seed"] / 10, "wall_time_s": 0.0}


def test_a_cell_file_copied_under_another_name_is_reported_and_the_cell_rerun(tmp_path):
    spec = tiny_spec(seed=[0, 1, 2])
    run_grid(spec, tmp_path, SerialExecutor(quick_cell), quiet=True)
    first, second = ids_of(spec)[:2]
    cells = tmp_path / "cells"
    shutil.copy(cells / f"{first}.json", cells / f"{second}.json")
    counter = CountingCell()
    outcome = run_grid(spec, tmp_path, SerialExecutor(counter), quiet=True)
    assert counter.seeds == [1]  # the real cell under that name ran again
    assert any(f"{second}.json: the record names cell '{first}'" in line for line in outcome.plan.invalid)
    results = load_results(tmp_path)
    assert sorted(results["seed"]) == [0, 1, 2] and results["cell_id"].is_unique
    assert json.loads((cells / f"{second}.json").read_text())["seed"] == 1


def test_a_record_whose_config_does_not_hash_to_its_name_is_rerun(tmp_path):
    spec = tiny_spec(seed=[0, 1])
    run_grid(spec, tmp_path, SerialExecutor(quick_cell), quiet=True)
    path = tmp_path / "cells" / f"{ids_of(spec)[1]}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "seed": 7}))  # edited by hand
    counter = CountingCell()
    outcome = run_grid(spec, tmp_path, SerialExecutor(counter), quiet=True)
    assert counter.seeds == [1] and "hashes to" in outcome.plan.invalid[0]


@pytest.mark.parametrize("content", ['{"status": "running"}', "", "[]", "null", "{half"])
def test_an_unknown_status_or_a_broken_record_is_named_and_rerun(tmp_path, content):
    spec = tiny_spec(seed=[0, 1])
    run_grid(spec, tmp_path, SerialExecutor(quick_cell), quiet=True)
    path = tmp_path / "cells" / f"{ids_of(spec)[0]}.json"
    path.write_text(content)
    counter = CountingCell()
    outcome = run_grid(spec, tmp_path, SerialExecutor(counter), quiet=True)
    assert counter.seeds == [0]
    assert len(outcome.plan.invalid) == 1 and outcome.plan.invalid[0].startswith(str(path))
    assert outcome.status_counts() == {"ok": 2}


def test_a_record_naming_something_else_than_a_cell_as_the_training_it_shared_is_rerun(tmp_path):
    spec = tiny_spec(seed=[0, 1])
    run_grid(spec, tmp_path, SerialExecutor(quick_cell), quiet=True)
    path = tmp_path / "cells" / f"{ids_of(spec)[0]}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "shares_training_with": "../../etc/passwd"}))
    counter = CountingCell()
    outcome = run_grid(spec, tmp_path, SerialExecutor(counter), quiet=True)
    assert counter.seeds == [0] and "shares_training_with must be a cell id" in outcome.plan.invalid[0]


class CountingCell:
    """quick_cell, remembering the seeds it ran."""

    def __init__(self):
        self.seeds = []

    def __call__(self, config, features_path):
        self.seeds.append(config["seed"])
        return quick_cell(config, features_path)


def test_a_grid_too_large_is_refused_from_its_axis_lengths_before_anything_is_written(tmp_path):
    runner = CliRunner()
    values = ",".join(str(i) for i in range(1000))
    huge = ["--set", f"seed={values}", "--set", f"epochs={values}", "--set", f"batch_size={values}",
            "--set", f"lr_step={values}", "--set", f"synthetic_dim={values}"]  # 10^15 cells per product
    result = runner.invoke(main, ["grid", "default", *huge, "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "over the limit of 100,000" in result.output and "seed 1000" in result.output
    assert not (tmp_path / "run").exists()
    spec = tiny_spec(seed=list(range(30)))
    with pytest.raises(ValueError, match="30 cells .* over the limit of 29"):
        run_grid(spec, tmp_path / "small", SerialExecutor(quick_cell), quiet=True, max_cells=29)
    assert run_grid(spec, tmp_path / "small", SerialExecutor(quick_cell), quiet=True, max_cells=30).ran == 30


def test_one_axis_set_twice_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["grid", "--set", "lambda=0", "--set", "lambda=0.1", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "lambda is set twice" in result.output


def test_a_grid_refuses_a_bench_run_folder_and_an_out_under_a_file(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench.parquet").write_bytes(b"")
    (bench / "provenance.json").write_text('{"host": "bench machine"}')
    result = CliRunner().invoke(main, ["grid", "--set", "epochs=1", "--out", str(bench)])
    assert result.exit_code == 1 and "holds a bench run" in result.output
    assert json.loads((bench / "provenance.json").read_text()) == {"host": "bench machine"}
    assert sorted(p.name for p in bench.iterdir()) == ["bench.parquet", "provenance.json"]
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(main, ["grid", "--set", "epochs=1", "--out", str(tmp_path / "file" / "run")])
    assert result.exit_code == 1 and "is a file, not a folder" in result.output


def test_the_command_names_each_cell_file_it_set_aside(tmp_path):
    runner = CliRunner()
    args = ["grid", "--set", "dataset=digits", "--set", "epochs=1", "--set", "lambda=0", "--set", "alpha=0.5",
            "--set", "rule=paper", "--set", "seed=0", "--set", "variant=gather", "--quiet", "--out", str(tmp_path)]
    assert runner.invoke(main, args).exit_code == 0
    record = next((tmp_path / "cells").glob("*.json"))
    record.write_text("null")
    result = runner.invoke(main, args)
    assert result.exit_code == 0 and "set aside (not a valid record" in result.output and str(record) in result.output
    assert json.loads(record.read_text())["status"] == "ok"


def test_provenance_puts_the_environment_that_matters_in_front_of_the_command(monkeypatch):
    """Before: the command of a run of fused cells omitted TRITON_INTERPRET=1, so rerunning it failed."""
    for name in [*provenance.ENVIRONMENT, *(n for n in os.environ if n.startswith(provenance.ENVIRONMENT_PREFIX))]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("ABLATE_MAX_PROCESSES", "2")
    monkeypatch.setenv("UNRELATED_VARIABLE", "x")
    monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "ablate", "grid", "my grid.toml", "--out", "runs/a"])
    info = provenance.collect()
    assert info["environment"] == "ABLATE_MAX_PROCESSES=2 TRITON_INTERPRET=1"
    assert info["command"] == ("ABLATE_MAX_PROCESSES=2 TRITON_INTERPRET=1 python -m ablate grid 'my grid.toml' --out "
                               "runs/a")
