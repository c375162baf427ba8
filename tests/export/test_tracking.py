"""Tracking: a grid logged to a real MLflow store (SQLite in a temporary folder) and read back with MlflowClient,
logged again without a duplicate; one `ablate train` watched through TensorBoard event files read back."""

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from ablate.cli import main
from tests.support import require, write_toml

mlflow = require("mlflow", "the mlflow extra: `ablate grid --track mlflow`, `ablate export --mlflow`")


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tracking URI of a SQLite store in a temporary folder, with its artifacts beside it."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def test_a_grid_tracked_in_mlflow_holds_one_run_per_cell_and_logging_it_again_adds_none(tmp_path, store):
    grid = write_toml(tmp_path, """
        [axes]
        dataset = "digits"
        epochs = 2
        lambda = [0.0, 0.1]
        seed = [0, 1]
        """)
    output = run("grid", grid, "--out", tmp_path / "run", "--quiet", "--track", f"mlflow:{store}",
                 "--experiment", "digits lambda")
    assert "4 cell run(s) created, 0 updated, 0 unchanged" in output

    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("digits lambda")
    runs = client.search_runs([experiment.experiment_id])
    cells = {r.data.tags["ablate.cell_id"]: r for r in runs if "ablate.cell_id" in r.data.tags}
    (grid_run,) = [r for r in runs if r.data.tags.get("ablate.kind") == "grid"]
    assert len(runs) == 5 and len(cells) == 4
    results = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert set(cells) == set(results["cell_id"])
    for cell_id, mlflow_run in cells.items():
        record = json.loads((tmp_path / "run" / "cells" / f"{cell_id}.json").read_text())
        params = mlflow_run.data.params
        assert params["lambda"] == str(record["lambda"]) and params["seed"] == str(record["seed"])
        assert params["model_digest"] == "None" and len(params) == len(json.loads(
            (tmp_path / "run" / "run.json").read_text())["config_columns"])  # every config key
        metrics = mlflow_run.data.metrics
        assert metrics["test_accuracy"] == pytest.approx(record["test_accuracy"])
        assert metrics["cosine_map_at_r"] == pytest.approx(record["cosine_map_at_r"])
        history = sorted(client.get_metric_history(mlflow_run.info.run_id, "softmax_loss"), key=lambda m: m.step)
        assert [m.step for m in history] == [1, 2]
        assert [m.value for m in history] == pytest.approx(record["curve_softmax_loss"])
        assert mlflow_run.data.tags["mlflow.parentRunId"] == grid_run.info.run_id
        assert mlflow_run.data.tags["mlflow.source.git.commit"] == record["git_commit"]
        assert mlflow_run.data.tags["ablate.status"] == "ok" and mlflow_run.info.status == "FINISHED"
    artifacts = {a.path for a in client.list_artifacts(grid_run.info.run_id)}
    assert artifacts == {"grid.toml", "report.html"}
    assert grid_run.data.tags["ablate.torch"]  # the provenance as tags

    again = run("export", tmp_path / "run", "--mlflow", store, "--experiment", "digits lambda")
    assert "0 cell run(s) created, 0 updated, 4 unchanged" in again
    assert len(client.search_runs([experiment.experiment_id])) == 5


def test_a_store_that_cannot_be_used_is_refused_before_the_grid_trains(tmp_path):
    grid = write_toml(tmp_path, """
        [axes]
        epochs = 1
        """)
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(main, ["grid", str(grid), "--out", str(tmp_path / "run"), "--track",
                                       f"mlflow:sqlite:///{tmp_path / 'file' / 'mlflow.db'}"])
    assert result.exit_code == 2 and "--track" in result.output and "MLflow store sqlite:///" in result.output
    assert not (tmp_path / "run").exists()
    wrong = CliRunner().invoke(main, ["grid", str(grid), "--out", str(tmp_path / "run"), "--track", "wandb"])
    assert wrong.exit_code == 2 and "expected mlflow or mlflow:URI, got 'wandb'" in wrong.output


def test_a_training_run_watched_in_tensorboard_holds_each_epochs_scalars(tmp_path):
    require("tensorboard", "the tensorboard extra: `ablate train --tensorboard`")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run("train", "--epochs", "3", "--lambda", "0.1", "--no-progress", "--out", tmp_path / "cell.json",
        "--tensorboard", tmp_path / "tb")
    record = json.loads((tmp_path / "cell.json").read_text())
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    for curve in ("softmax_loss", "center_loss", "train_accuracy"):
        scalars = events.Scalars(f"train/{curve}")
        assert [s.step for s in scalars] == [1, 2, 3]
        assert [s.value for s in scalars] == pytest.approx(record[f"curve_{curve}"], rel=1e-6)  # float32 there
    (accuracy,) = events.Scalars("test/test_accuracy")
    assert accuracy.step == 3 and accuracy.value == pytest.approx(record["test_accuracy"], rel=1e-6)
