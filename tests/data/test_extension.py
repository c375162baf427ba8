"""A metric and a dataset defined in this module alone, one registry entry each, reach `ablate train` (its --dataset
choices and its printed summary), a grid (its cells, records, tables and printed summary) and the report built from
that grid. Nothing else in the repository names them."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ablate.data import DATASETS, DataOptions, Dataset, DatasetSource, Recipe, load_dataset, split_dataset
from ablate.grid.cli import grid_command
from ablate.metrics import GRID_SUMMARY, METRICS, TRAIN_SUMMARY, Metric
from ablate.report import build_report
from ablate.train.cli import train_command
from tests.support import registered as registrations
from tests.support import write_toml

CLASSES, PER_CLASS, DIM = 10, 12, 6


def load_blobs(options: DataOptions) -> Dataset:
    """Ten Gaussian clusters in 6 dimensions, 12 examples each: inputs (120, 6) float32, labels (120,) int64,
    split by options.test_fraction as options.seed draws."""
    rng = np.random.default_rng(7)
    means = 3.0 * rng.normal(size=(CLASSES, DIM))  # (C, D)
    y = np.repeat(np.arange(CLASSES, dtype=np.int64), PER_CLASS)  # (N,)
    x = (means[y] + rng.normal(size=(y.size, DIM))).astype(np.float32)  # (N, D)
    return split_dataset("blobs", x, y, CLASSES, options.test_fraction, options.seed)


BLOBS = DatasetSource("blobs", load_blobs, lambda options: (CLASSES * PER_CLASS, (DIM,)), classes=CLASSES,
                      recipe=Recipe(model="mlp", epochs=2, batch_size=16, lr=0.05, lr_step=0, lr_gamma=0.5,
                                    convention="mean"))


def mean_center_norm(evaluation) -> float:
    """The mean L2 norm of the learned centers (C, D)."""
    return float(np.linalg.norm(evaluation.centers, axis=1).mean())


CENTER_NORM = Metric("mean_center_norm", "mean center norm", None, False, mean_center_norm,
                     views=(TRAIN_SUMMARY, GRID_SUMMARY))


@pytest.fixture
def registered():
    with registrations((DATASETS, BLOBS), (METRICS, CENTER_NORM)):
        yield
    load_dataset.cache_clear()  # no cached split of a dataset that is gone


def test_train_offers_the_dataset_and_prints_the_metric(registered, tmp_path):
    runner = CliRunner()
    help_text = runner.invoke(train_command, ["--help"], terminal_width=1000).output
    assert "|blobs|MODULE:FACTORY|FILE.py:FACTORY]" in help_text  # the --dataset choices, read when the command runs

    record_path = tmp_path / "cell.json"
    result = runner.invoke(train_command, ["--dataset", "blobs", "--no-progress", "--out", str(record_path)])
    assert result.exit_code == 0, result.output
    record = json.loads(record_path.read_text())
    assert record["dataset"] == "blobs" and record["epochs"] == 2 and record["batch_size"] == 16  # its recipe
    assert f"  {'mean_center_norm':<24} {record['mean_center_norm']:.4f}" in result.output.splitlines()
    assert record["mean_center_norm"] > 0


def test_without_its_entry_the_dataset_is_refused_naming_the_registered_ones():
    result = CliRunner().invoke(train_command, ["--dataset", "blobs"])
    assert result.exit_code == 2 and "'blobs' is not one of 'digits', 'mnist5k', 'fashion-mnist', 'synthetic'" in (
        result.output)
    with pytest.raises(ValueError, match="unknown dataset 'blobs'; expected one of digits, mnist5k"):
        load_dataset.__wrapped__("blobs")


def test_a_grid_on_the_dataset_records_the_metric_and_the_report_shows_both(registered, tmp_path):
    grid = write_toml(tmp_path, """
        [axes]
        dataset = "blobs"
        lambda = [0.0, 0.1]
        seed = [0, 1]
    """)
    run = tmp_path / "run"
    result = CliRunner().invoke(grid_command, [str(grid), "--out", str(run)])  # one worker: in this process
    assert result.exit_code == 0, result.output
    assert "mean_center_norm" in result.output  # a column of the printed summary table

    results = pd.read_parquet(run / "results.parquet")
    assert len(results) == 4 and set(results["dataset"]) == {"blobs"} and set(results["status"]) == {"ok"}
    for path in (run / "cells").glob("*.json"):
        record = json.loads(path.read_text())
        with np.load(path.with_suffix(".npz")) as saved:  # the same cell's centers (C, D)
            expected = np.linalg.norm(saved["centers"].astype(np.float64), axis=1).mean()
        assert record["mean_center_norm"] == pytest.approx(expected, rel=1e-6)
    summary = pd.read_parquet(run / "summary.parquet")
    assert {"mean_center_norm_mean", "mean_center_norm_ci95"} <= set(summary.columns)
    assert set(summary["dataset"]) == {"blobs"}

    page = build_report([run], tmp_path / "report.html", progress=False).read_text()
    assert "mean center norm" in page  # the summary table's column, by the metric's label
    assert "dataset=blobs" in page  # the setting every cell shares, named in the table's caption
