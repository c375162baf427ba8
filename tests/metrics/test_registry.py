"""The Metric registry: its declarations hold (scale invariance, ranking), and one Metric defined here alone
reaches the record, the summary table, the command-line summaries and the report."""

import json
from importlib.metadata import EntryPoint

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from ablate.data import Samples
from ablate.grid.cli import grid_command
from ablate.metrics import (
    CENTER_SPACE,
    COSINE,
    EUCLIDEAN,
    GRID_SUMMARY,
    HEATMAP,
    METRICS,
    TRAIN_SUMMARY,
    Metric,
    computed_metrics,
    label,
    register_metric,
    shown_in,
)
from ablate.report import build_report
from ablate.train.cli import summary_lines
from ablate.train.evaluate import Scoring, evaluate

SCALE = 7.3
# Scaling the features moves floats by a rounding or two; a scale-invariant metric may differ by that much only.
RTOL = 1e-9


def clustered(seed=0, n=60, dim=3, classes=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, dim)) + 2.0 * rng.normal(size=(classes, dim))[y]
    return x, y, rng.normal(size=(classes, dim))


def test_scale_invariant_metrics_do_not_move_when_every_feature_is_scaled_and_the_others_do():
    x, y, centers = clustered()
    predictions = np.roll(y, 1)
    before = evaluate(x, predictions, y, centers)
    after = evaluate(SCALE * x, predictions, y, SCALE * centers)
    for metric in computed_metrics():
        if metric.scale_invariant:
            # nan_ok: a TAR the 60 samples cannot resolve is NaN at every scale
            assert after[metric.name] == pytest.approx(before[metric.name], rel=RTOL, nan_ok=True), metric.name
        else:  # every raw distance scales with the features
            assert after[metric.name] == pytest.approx(SCALE * before[metric.name], rel=RTOL), metric.name


class FeaturesAsLogits(torch.nn.Module):
    """A model whose features (B, D) are its logits too (D classes)."""

    def forward(self, inputs):
        return inputs, inputs


def test_a_split_is_scored_by_a_metric_computed_from_it_and_never_by_one_the_training_measures():
    x, y, centers = clustered()
    x = x.astype(np.float32)
    split = Scoring(Samples(x, y), torch.device("cpu"))
    assert split.metric("nearest_center_accuracy", FeaturesAsLogits(), centers, "raw") == pytest.approx(
        evaluate(x, x.argmax(1), y, centers)["nearest_center_accuracy"])
    with pytest.raises(ValueError, match="metric 'train_time_s' is measured by the training run, not computed from "
                                         "a split; expected one of test_accuracy, "):
        split.metric("train_time_s", FeaturesAsLogits(), centers, "raw")


def test_raw_distances_are_reported_but_never_ranked():
    for name in ("intra_class_distance", "inter_class_distance", "inter_class_distance_min", "center_to_mean_distance"):
        metric = METRICS.get(name)
        assert metric.higher_is_better is None and not metric.ranked and not metric.scale_invariant
    assert METRICS.get("test_accuracy").higher_is_better is True
    assert METRICS.get("train_time_s").higher_is_better is False


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="not a name"), "must be an identifier"),
    (dict(views=("sideways",)), "unknown views ['sideways']"),
    (dict(summarized=False, views=(HEATMAP,)), "not summarized over seeds"),
    (dict(primary=True), "is primary, so it must be a headline metric"),
    (dict(geometry="manhattan"),
     "unknown geometry 'manhattan'; expected one of ['Euclidean', 'cosine', 'center space']"),
])
def test_a_malformed_metric_is_refused_with_what_was_expected(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Metric(**{"name": "x", "label": "x", "higher_is_better": True, "scale_invariant": True, **kwargs})


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="'test_accuracy' is already registered"):
        register_metric(Metric("test_accuracy", "again", True, True))


def max_feature_norm(evaluation) -> float:
    """Largest L2 norm of the test features (N, D)."""
    return float(np.linalg.norm(evaluation.features, axis=1).max())


FEATURE_NORM = Metric("max_feature_norm", "max feature norm", None, False, max_feature_norm,
                      views=(TRAIN_SUMMARY, GRID_SUMMARY, HEATMAP))


@pytest.fixture
def feature_norm_registered():
    register_metric(FEATURE_NORM)
    yield FEATURE_NORM
    METRICS.unregister(FEATURE_NORM.name)


def test_one_metric_defined_here_reaches_record_summary_and_report(feature_norm_registered, tmp_path):
    assert label("max_feature_norm") == "max feature norm" and "max_feature_norm" in shown_in(HEATMAP)
    run = tmp_path / "run"
    args = ["default", "--set", "dataset=synthetic", "--set", "num_classes=3", "--set", "samples_per_class=20",
            "--set", "epochs=1", "--set", "lambda=0,0.1", "--set", "alpha=0.1,0.5", "--set", "rule=paper",
            "--set", "variant=gather", "--set", "seed=0", "--out", str(run)]
    result = CliRunner().invoke(grid_command, args)
    assert result.exit_code == 0, result.output
    assert "max_feature_norm" in result.output  # the grid's printed summary

    record_path = next((run / "cells").glob("*.json"))
    record = json.loads(record_path.read_text())
    with np.load(record_path.with_suffix(".npz")) as npz:  # the same cell's features
        assert record["max_feature_norm"] == pytest.approx(np.linalg.norm(npz["features"], axis=1).max(), rel=1e-6)
    assert any("max_feature_norm" in line for line in summary_lines(record))  # `ablate train`'s lines

    summary = pd.read_parquet(run / "summary.parquet")
    assert {"max_feature_norm_mean", "max_feature_norm_ci95"} <= set(summary.columns)

    page = build_report([run], tmp_path / "report.html", progress=False).read_text()
    assert "max feature norm over lambda x alpha" in page  # its heatmap
    assert page.count("max feature norm") >= 2  # and its summary-table column


def test_an_installed_metric_joins_the_registry_and_a_broken_one_is_kept_with_its_error(monkeypatch):
    installed = [EntryPoint("plugin_norm", f"{__name__}:FEATURE_NORM", "ablate.metrics"),  # renamed on loading
                 EntryPoint("not_a_metric", f"{__name__}:max_feature_norm", "ablate.metrics")]
    monkeypatch.setattr("ablate.registry.entry_points", lambda group: installed if group == "ablate.metrics" else [])
    monkeypatch.setattr(METRICS, "_plugins_loaded", False)  # as in a fresh process
    monkeypatch.setattr(METRICS, "plugin_errors", {})
    try:
        assert "plugin_norm" in shown_in(HEATMAP) and label("plugin_norm") == "max feature norm"
        assert "plugin_norm" in [m.name for m in computed_metrics()] and "max_feature_norm" not in METRICS
        assert METRICS.plugin_errors == {"not_a_metric": "TypeError: expected an ablate.metrics.Metric, got function"}
    finally:
        METRICS.unregister("plugin_norm")


def test_the_primary_family_is_one_measure_per_quantity():
    primary = [m.name for m in METRICS if m.primary]
    assert primary == ["test_accuracy", "separation_ratio", "cosine_map_at_r"]
    # retrieval on both geometries, cosine the primary one (Musgrave et al. 2020); the Euclidean one a secondary
    # finding of its own
    assert METRICS.get("map_at_r").headline and not METRICS.get("map_at_r").primary
    # the other measures of the separation ratio's quantity are reported, never a finding of their own
    assert not METRICS.get("relative_intra_class_distance").headline and not METRICS.get("fisher_ratio").headline
    assert METRICS.get("fisher_ratio").label.startswith("trace ratio")


def test_every_metric_of_the_features_names_its_geometry_and_each_geometry_measures_what_it_says():
    # Rotating every feature and center by one orthogonal matrix moves no distance and no cosine; moving them all by
    # one offset moves the cosines only (Euclidean distances are translation-invariant, cosines are not).
    x, y, centers = clustered(seed=1)
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    offset = np.array([4.0, -2.0, 1.0])
    predictions = np.roll(y, 1)
    before = evaluate(x, predictions, y, centers)
    rotated = evaluate(x @ rotation, predictions, y, centers @ rotation)
    moved = evaluate(x + offset, predictions, y, centers + offset)
    geometries = {m.name: m.geometry for m in computed_metrics()}
    assert {name for name, geometry in geometries.items() if geometry is None} == {
        "test_accuracy", "lowest_resolvable_far"}  # from the logits, and from pair counts
    assert {geometries[name] for name in ("precision_at_1", "map_at_r")} == {EUCLIDEAN}
    assert {geometries[name] for name in ("cosine_precision_at_1", "cosine_map_at_r", "verification_auc",
                                          "tar_at_far_1e3", "unit_intra_class_distance")} == {COSINE}
    for name, geometry in geometries.items():
        assert rotated[name] == pytest.approx(before[name], rel=1e-9, nan_ok=True), name
        if geometry in (EUCLIDEAN, CENTER_SPACE):
            if name not in ("mean_feature_norm", "relative_intra_class_distance"):  # the two measured from the origin
                assert moved[name] == pytest.approx(before[name], rel=1e-9, nan_ok=True), name
    for name in ("cosine_map_at_r", "unit_intra_class_distance", "verification_auc"):
        assert moved[name] != pytest.approx(before[name], rel=1e-6), name
    assert all(f"({geometries[m]})" in METRICS.get(m).label for m in ("map_at_r", "cosine_map_at_r"))
