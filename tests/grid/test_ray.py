"""The Ray executor, against a local Ray of 2 CPUs started by the test; and its error without Ray."""

import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ablate.grid import run_grid
from ablate.grid.cli import grid_command
from ablate.grid.executors import SerialExecutor, make_executor
from ablate.grid.spec import GridSpec
from tests.support import require


@pytest.mark.slow  # starts its own Ray (about 20 s); the tests below share one
def test_the_command_starts_a_local_ray_ships_the_package_and_stops_it(tmp_path):
    ray = require("ray", "the package's `ray` extra")
    assert not ray.is_initialized()
    result = CliRunner().invoke(grid_command, ["default", "--set", "variant=gather", "--set", "lambda=0.1",
                                               "--set", "alpha=0.5", "--set", "rule=paper", "--set", "seed=0,1",
                                               "--set", "epochs=1", "--executor", "ray", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "2 cells: 2 ok" in result.output
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 2
    assert not ray.is_initialized()  # the executor stops the Ray it started


@pytest.fixture(scope="module")
def local_ray():
    ray = require("ray", "the package's `ray` extra")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow  # 18 s: starts a local Ray cluster
def test_ray_tasks_fill_the_same_run_folder_as_local_cells(local_ray, tmp_path):
    spec = GridSpec(axes={"dataset": ["digits"], "epochs": [2], "lambda": [0.0, 0.1], "seed": [0, 1]})
    on_ray = run_grid(spec, tmp_path / "ray", make_executor("ray"), quiet=True)
    local = run_grid(spec, tmp_path / "local", SerialExecutor(), quiet=True)

    assert local_ray.is_initialized()  # the executor used the running Ray and left it running
    assert on_ray.status_counts() == {"ok": 4} and on_ray.records.keys() == local.records.keys()
    for i, record in on_ray.records.items():
        cells = tmp_path / "ray" / "cells"
        assert (cells / f"{i}.json").exists() and (cells / f"{i}.npz").exists()
        # Same config and seed in another process with other thread settings: see test_grid_run's
        # serial-vs-workers test for why 1e-4 bounds the float32 reordering.
        np.testing.assert_allclose(record["curve_softmax_loss"], local.records[i]["curve_softmax_loss"], rtol=1e-4)
    ray_table = pd.read_parquet(tmp_path / "ray" / "results.parquet")
    local_table = pd.read_parquet(tmp_path / "local" / "results.parquet")
    assert list(ray_table.columns) == list(local_table.columns)
    assert list(ray_table["cell_id"]) == list(local_table["cell_id"])


def test_a_cuda_cell_on_a_cluster_without_gpus_fails_at_once(local_ray, tmp_path):
    spec = GridSpec(axes={"dataset": ["digits"], "epochs": [1], "device": ["cuda", "cpu"]})
    outcome = run_grid(spec, tmp_path, make_executor("ray"), quiet=True)
    failed = list(outcome.failed().values())
    assert outcome.status_counts() == {"ok": 1, "failed": 1} and failed[0]["device"] == "cuda"
    assert "no GPU" in failed[0]["error"]


def test_ray_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    result = CliRunner().invoke(grid_command, ["default", "--set", "seed=0", "--executor", "ray",
                                               "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert "pip install 'ablate[ray]'" in result.output
    assert not (tmp_path / "run").exists()
