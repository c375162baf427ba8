"""Options without an upper bound are bounded before anything starts (issue: hostile inputs, round two, items 2
and 5's executor cases): process counts by the cores (or $ABLATE_MAX_PROCESSES) and memory, integers by int64,
a Ray address that does not answer by a timeout, each refused before the run folder is claimed."""

import pytest
from click.testing import CliRunner

from ablate.cli import main
from ablate.limits import INT64_MAX, PROCESSES_ENV, process_limit


def run(*args):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_train_nproc_beyond_the_cores_is_refused_before_any_rank_starts():
    code, output = run("train", "--nproc", "1000", "--epochs", "1", "--no-progress")
    assert code == 1 and f"--nproc 1000 is over the limit of {process_limit()} processes" in output, output


def test_the_process_limit_is_settable(monkeypatch):
    monkeypatch.setenv(PROCESSES_ENV, "1")
    code, output = run("train", "--nproc", "2", "--epochs", "1", "--no-progress")
    assert code == 1 and "--nproc 2 is over the limit of 1 processes" in output and PROCESSES_ENV in output


@pytest.mark.parametrize("value", [str(INT64_MAX), "99999999999999999999"])
def test_a_feat_dim_beyond_any_machine_or_int64_is_one_line(value):
    code, output = run("train", "--feat-dim", value, "--epochs", "1", "--no-progress")
    assert code in (1, 2) and "Traceback" not in output and "feat_dim" in output, output
    assert ("int64" in output) if int(value) > INT64_MAX else ("over the" in output and "GB" in output)


def test_bench_world_beyond_the_cores_is_refused_before_the_folder_is_claimed(tmp_path):
    out = tmp_path / "w"
    code, output = run("bench", "world", "--world", "1000", "--quick", "--out", str(out))
    assert code == 1 and "--world 1000 is over the limit" in output and not out.exists(), output


def test_bench_world_memory_per_rank_is_estimated(tmp_path, monkeypatch):
    monkeypatch.setenv(PROCESSES_ENV, "2")
    out = tmp_path / "w"
    code, output = run("bench", "world", "--world", "2", "--classes", "100000000000", "--dim", "1000",
                       "--out", str(out))
    assert code == 1 and "--world 2 needs about" in output and "GB per process" in output and not out.exists(), output


def test_bench_classes_beyond_int64_is_refused_up_front(tmp_path):
    code, output = run("bench", "run", "--classes", str(10**30), "--out", str(tmp_path / "b"))
    assert code == 2 and "--classes must lie in [-9223372036854775808, 9223372036854775807] (int64)" in output
    assert not (tmp_path / "b").exists()


def test_grid_workers_beyond_the_cores_is_refused(tmp_path):
    out = tmp_path / "g"
    code, output = run("grid", "--workers", "1000", "--set", "epochs=1", "--out", str(out))
    assert code == 1 and "--workers 1000 is over the limit" in output and not (out / "run.json").exists(), output


def test_a_ray_address_where_nothing_listens_fails_fast_before_the_folder_is_claimed(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "g"
    code, output = run("grid", "--executor", "ray", "--address", "127.0.0.1:1", "--set", "epochs=1", "--out", str(out))
    assert code == 1 and "cannot reach the Ray cluster at 127.0.0.1:1" in output and not (out / "run.json").exists()


def test_bench_run_takes_the_run_folder_lock_that_grid_takes(tmp_path):
    from ablate.runs.folder import locked

    out = tmp_path / "b"
    with locked(out):  # as a running `ablate grid` or `ablate bench` holds it
        code, output = run("bench", "run", "--suite", "quick", "--variants", "gather", "--out", str(out))
    assert code == 1 and f"another `ablate` run is writing to {out}" in output, output
    assert not (out / "bench.parquet").exists()
