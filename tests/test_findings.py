"""Findings: the paired comparison (ablate.stats) and the findings table of a grid and of `ablate compare`.

The grids here are built from features whose truth is known: one lambda separates the classes three times as
well as the reference, one is an exact copy of the reference; the findings must say so for each.
"""

import io
import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ablate.cli import main
from ablate.grid.store import CellStore
from ablate.grid.tables import config_columns, write_tables
from ablate.metrics import METRICS
from ablate.report import build_report
from ablate.report.findings import (Findings, axis_findings, findings_table, grid_findings, marked_settings,
                                    parse_reference, run_findings, setting_of)
from ablate.report.runs import load_run
from ablate.runfolder import cell_id, summary_table
from ablate.stats import bootstrap_cell, bootstrap_weights, compare, holm
from ablate.train import CellConfig
from ablate.train.evaluate import evaluate

CLASSES, PER_CLASS, DIM = 5, 30, 3


def _cell_arrays(seed: int, spread: float):
    """Test features (N, D) of CLASSES well-placed classes with the given spread, for one seed; predictions right
    where the feature is nearer its own class's center."""
    rng = np.random.default_rng(seed)
    centers = 4.0 * np.eye(CLASSES, DIM) if CLASSES <= DIM else 4.0 * rng.standard_normal((CLASSES, DIM))
    labels = np.repeat(np.arange(CLASSES), PER_CLASS)
    features = centers[labels] + spread * rng.standard_normal((len(labels), DIM))
    predictions = np.argmin(((features[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
    return features.astype(np.float32), labels, centers.astype(np.float32), predictions


def make_known_grid(run_dir, *, spreads, seeds=(0, 1, 2), diverged=(), holdout=0):
    """A grid run folder: lambda -> spread of its features (the same spread as another lambda with the same seeds
    gives identical cells); (lambda, seed) pairs in `diverged` diverged; with `holdout`, open-set cells whose last
    `holdout` classes have no center. Metrics computed from the features."""
    store = CellStore(run_dir)
    records = []
    for lam, spread in spreads.items():
        for seed in seeds:
            config = CellConfig(dataset="synthetic", num_classes=CLASSES, feat_dim=DIM, lambda_=lam,
                                seed=seed, holdout_classes=holdout).to_dict()
            record = {**config, "cell_id": cell_id(config), "train_samples_per_s": 1.0, "train_time_s": 1.0,
                      "wall_time_s": 1.0, "resolved_device": "cpu"}
            features, labels, centers, predictions = _cell_arrays(seed, spread)
            centers = centers[:CLASSES - holdout]
            predictions = np.minimum(predictions, CLASSES - holdout - 1)
            if (lam, seed) in diverged:  # its features are saved too, as run_cell does: not finite
                features = np.full_like(features, np.nan)
                record.update(dict.fromkeys(m for m in METRICS if METRICS[m].compute), status="diverged",
                              diverged_epoch=3)
            else:
                record.update(evaluate(features, predictions, labels, centers), status="ok", diverged_epoch=None)
            buffer = io.BytesIO()
            np.savez(buffer, features=features, labels=labels, centers=centers, predictions=predictions)
            store.save(record["cell_id"], record, buffer.getvalue())
            records.append(record)
    (run_dir / "provenance.json").write_text(json.dumps({"command": "test"}))
    write_tables(run_dir, records)
    return run_dir


# --- the comparison ----------------------------------------------------------------------------------------

def test_holm_matches_the_step_down_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, max(2*0.03, 0.03), max(1*0.04, 0.06)
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005, np.nan]), [0.03, 0.06, 0.06, 0.02, np.nan])


def test_bootstrap_resamples_are_seeded_and_draw_n_samples():
    weights = bootstrap_weights(50, samples=20)
    assert weights.shape == (20, 50) and (weights.sum(axis=1) == 50).all()
    np.testing.assert_array_equal(weights, bootstrap_weights(50, samples=20))


def test_a_ratio_is_compared_as_a_factor_and_identical_values_as_identical():
    ratio = METRICS["separation_ratio"]
    a = np.array([2.0, 2.2, 1.9])
    doubled = compare(ratio, a, 2 * a * np.array([1.0, 1.01, 0.99]), paired=True)
    assert doubled.change_text().startswith("x2") and doubled.p < 0.01
    assert doubled.verdict(doubled.p) == "better" and "better" in doubled.sentence(doubled.p)
    same = compare(ratio, a, a.copy(), np.ones((4, 3)), np.ones((4, 3)), paired=True)
    assert same.identical and same.verdict(same.p) == "identical"


def test_the_test_set_bootstrap_widens_the_interval():
    accuracy = METRICS["test_accuracy"]
    a, b = np.array([0.90, 0.91, 0.92]), np.array([0.92, 0.93, 0.94])
    seeds_only = compare(accuracy, a, b, paired=True)
    rng = np.random.default_rng(0)
    noisy = rng.normal(0, 0.02, size=(100, 3))
    with_test_set = compare(accuracy, a, b, a + noisy, b + noisy[::-1], paired=True)
    assert seeds_only.change_text().startswith("+2.0 pts")
    assert with_test_set.high - with_test_set.low > seeds_only.high - seeds_only.low


def test_a_non_finite_value_is_not_compared():
    diff = compare(METRICS["separation_ratio"], np.array([1.0, 2.0]), np.array([np.inf, 3.0]), paired=True)
    assert math.isnan(diff.p) and diff.change_text() == "not comparable"


def test_reference_option_is_parsed_with_what_was_expected():
    assert parse_reference("lambda=0") == ("lambda", 0.0) and parse_reference("rule=paper") == ("rule", "paper")
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_reference("lambda")


# --- a grid with a known truth ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def known_grid(tmp_path_factory):
    # lambda 0.1 has a third of the reference's spread: three times its separation; lambda 1 is the reference again.
    return make_known_grid(tmp_path_factory.mktemp("known") / "run", spreads={0.0: 1.5, 0.1: 0.5, 1.0: 1.5})


def test_findings_say_which_lambda_is_better_and_which_is_identical(known_grid):
    findings = grid_findings(load_run(known_grid))
    rows = {r.setting["lambda"]: r for r in findings.rows}
    assert set(rows) == {0.1, 1.0} and findings.bootstrap
    better = rows[0.1]
    for name in ("separation_ratio", "fisher_ratio"):
        assert better.verdicts[name] == "better", better.words()
    assert better.verdicts["relative_intra_class_distance"] == "better"  # lower is better
    factor = math.exp(better.differences["separation_ratio"].estimate)
    assert 2.5 < factor < 3.5  # spread 1.5 -> 0.5 at the same class means
    assert "separation ratio x" in better.words()
    assert set(rows[1.0].verdicts.values()) == {"identical"}
    pooled = {r.setting["lambda"]: r for r in axis_findings(load_run(known_grid)).rows}  # one setting per lambda
    assert pooled[0.1].verdicts["separation_ratio"] == "better" and pooled[1.0].words() == rows[1.0].words()


def test_the_report_opens_with_the_findings_and_marks_no_raw_distance_best(known_grid, tmp_path):
    page = build_report([known_grid], tmp_path / "r.html", progress=False).read_text()
    body = page[page.index("</dl>"):]
    assert body.index("Findings: each lambda against lambda=0") < body.index("Summary over seeds")
    assert "Findings per setting: against lambda=0" in body
    assert "separation ratio x" in body and "Holm-corrected" in body
    assert "no detectable difference" in body or "identical" in body
    # bold (best) cells: never in a raw-distance column
    summary = body[body.index("Summary over seeds"):]
    header = summary[summary.index("<thead>"):summary.index("</thead>")]
    assert "intra-class distance" in header and "font-weight: bold" in summary


def test_a_diverged_seed_is_counted_flagged_and_not_averaged(tmp_path):
    run_dir = make_known_grid(tmp_path / "run", spreads={0.0: 1.5, 0.1: 0.5}, diverged={(0.1, 2)})
    summary = summary_table(pd.read_parquet(run_dir / "results.parquet"), config_columns()).set_index("lambda")
    assert summary.loc[0.1, "n_seeds"] == 2 and summary.loc[0.1, "n_diverged"] == 1
    assert np.isnan(summary.loc[0.1, "separation_ratio_mean"])  # not the mean of the two survivors
    assert summary.loc[0.0, "n_diverged"] == 0 and np.isfinite(summary.loc[0.0, "separation_ratio_mean"])
    (row,) = grid_findings(load_run(run_dir)).rows
    assert row.flag == "not compared: diverged in 1 of 3 seeds at this setting" and not row.differences


def test_bootstrap_of_a_cell_gives_every_headline_metric_near_its_value(known_grid):
    run = load_run(known_grid)
    cell = run.results.iloc[0]
    values = bootstrap_cell(run.features_path(cell["cell_id"]), samples=30)
    for name, resampled in values.items():
        assert resampled.shape == (30,)
        # resamples scatter around the value on the whole test set; 150 samples: within a few tenths relative
        assert abs(np.median(resampled) - cell[name]) <= 0.3 * abs(cell[name]), name


def test_a_cell_file_that_is_not_what_a_grid_writes_is_named(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, features=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"bad.npz: missing array\(s\) labels, centers"):
        bootstrap_cell(path)


def test_an_unreadable_features_file_leaves_the_bootstrap_out_with_a_note(tmp_path):
    run_dir = make_known_grid(tmp_path / "run", spreads={0.0: 1.5, 0.1: 0.5}, seeds=(0, 1))
    broken = next((run_dir / "cells").glob("*.npz"))
    broken.write_bytes(b"not an npz")
    run = load_run(run_dir)
    findings = grid_findings(run)
    assert not findings.bootstrap and findings.rows  # compared over seeds alone
    page = build_report([run_dir], tmp_path / "r.html", progress=False).read_text()
    assert f"Test-set bootstrap left out for a cell: {broken}: not a readable .npz" in page


# --- ablate compare ---------------------------------------------------------------------------------------

def test_compare_finds_no_difference_between_copies_and_the_change_between_settings(tmp_path):
    a = make_known_grid(tmp_path / "a", spreads={0.0: 1.5, 0.1: 1.5}, seeds=(0, 1, 2))
    b = make_known_grid(tmp_path / "b", spreads={0.0: 1.5, 0.1: 0.5}, seeds=(0, 1, 2))
    result = CliRunner().invoke(main, ["compare", str(a), str(b), "--no-progress"])
    assert result.exit_code == 0, result.output
    words = dict(line.split(": ", 1) for line in result.output.splitlines()
                 if line.startswith("lambda=") and ": " in line)
    assert words["lambda=0"].startswith("identical") or "no detectable difference" in words["lambda=0"]
    assert "separation ratio x" in words["lambda=0.1"] and "better" in words["lambda=0.1"]


def test_compare_refuses_what_is_not_a_grid_run(tmp_path):
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "missing"), str(tmp_path)])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_compare_matches_runs_that_differ_in_one_setting_on_the_others(tmp_path):
    a = make_known_grid(tmp_path / "a", spreads={0.0: 1.5})
    b = make_known_grid(tmp_path / "b", spreads={0.1: 0.5})
    result = CliRunner().invoke(main, ["compare", str(a), str(b), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "the runs differ in lambda: 0 -> 0.1" in result.output
    assert "separation ratio x" in result.output and "better" in result.output


def test_open_set_metrics_appear_under_their_own_heading(tmp_path):
    run_dir = make_known_grid(tmp_path / "run", spreads={0.0: 1.5, 0.1: 0.5}, holdout=2)
    page = build_report([run_dir], tmp_path / "r.html", progress=False).read_text()
    assert "Open-set: metrics on classes held out of training" in page
    assert "MAP@R (held out)" in page and "test accuracy (seen)" in page
    assert "In open-set settings (holdout_classes &gt; 0)" in page  # said in the findings' caption, escaped


def test_the_heatmap_marks_are_the_settings_that_differ(known_grid):
    run = load_run(known_grid)
    marked = marked_settings(run, "separation_ratio")
    rows = {row["lambda"]: setting_of(run, row) for _, row in run.summary.iterrows()}
    assert rows[0.1] in marked and rows[1.0] not in marked and rows[0.0] not in marked


def test_every_value_in_the_findings_table_is_escaped(known_grid):
    findings = grid_findings(load_run(known_grid))
    hostile = Findings([replace(findings.rows[0], setting={"data_dir": "<script>alert(1)</script>"})], 0, True)
    html = findings_table(hostile)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&amp;lt;" not in html  # escaped once: shown literally, not as escape codes


def test_compare_finds_no_difference_between_runs_of_one_setting_with_other_seeds(tmp_path):
    a = make_known_grid(tmp_path / "a", spreads={0.0: 1.5}, seeds=(0, 1, 2))
    b = make_known_grid(tmp_path / "b", spreads={0.0: 1.5}, seeds=(3, 4, 5))
    findings = run_findings(load_run(a), load_run(b))
    (row,) = findings.rows
    assert not any(d.paired for d in row.differences.values())  # other seeds: Welch, not paired
    assert set(row.verdicts.values()) == {"no detectable difference"}, row.words()
