"""What a reader sees first and what the page's marks may say (ablate.report.lead, ablate.report.styling): the study,
one answer per primary metric read off the confirmatory table below it, too few seeds said instead of numbers that
leave a metric's range, one meaning per colour, a report named after its run."""

import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from ablate.analysis.family import report_family_size
from ablate.analysis.findings import axis_findings, cell_text, grid_findings
from ablate.analysis.stats import DIFFERENT, TOO_FEW, compare_sides, from_change_scale
from ablate.cli import main
from ablate.grid.executors import SerialExecutor
from ablate.grid.spec import GridSpec
from ablate.metrics import METRICS, POINTS, SHARE, Metric, get_metric, headline_metrics, primary_metrics
from ablate.report.build import load_runs, write_report
from ablate.report.cli import MAX_NAME, default_report_path
from ablate.report.grid_figures import band_within_range
from ablate.report.lead import QUIET, answer_lines, lead_blocks, metric_name, study_text, value_text
from ablate.report.tune_blocks import setting_text
from ablate.runs.configs import format_label
from ablate.runs.summary import mean_ci_text
from ablate.tune.search import run_tune
from ablate.tune.settings import TuneSettings
from ablate.tune.space import plan_objectives
from tests.support.fixture_runs import make_grid_run

ACCURACY, RATIO = get_metric("test_accuracy"), get_metric("separation_ratio")


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """4 lambda x 2 alpha x 2 rules x 4 seeds with real, noisy differences: some lambdas differ, some do not."""
    return make_grid_run(tmp_path_factory.mktemp("noisy") / "noisy", seeds=(0, 1, 2, 3))


@pytest.fixture(scope="module")
def page(noisy, tmp_path_factory):
    runs = load_runs([noisy])
    return write_report(runs, tmp_path_factory.mktemp("page") / "noisy.html", progress=False).read_text(), runs[0]


def test_the_study_names_the_data_the_sizes_the_model_and_the_seeds(noisy):
    study = study_text(load_runs([noisy])[0])
    assert study == ("synthetic (640 train / 160 test samples), model mlp, 2-D features, 3 epochs, 4 seeds (0-3); "
                     "varied: rule paper, sgd; lambda 0, 0.003, 0.03, 0.3; alpha 0.1, 0.5; 64 cells: 64 ok")


def test_a_run_whose_records_hold_no_sizes_says_so(tmp_path):
    run = make_grid_run(tmp_path / "old", lambdas=(0.0,), alphas=(0.5,), rules=("paper",), seeds=(0,))
    results = pd.read_parquet(run / "results.parquet").drop(columns=["train_samples", "test_samples"])
    results.to_parquet(run / "results.parquet", index=False)
    assert study_text(load_runs([run])[0]).startswith("synthetic (sizes not recorded), model mlp")


def _text(line: list) -> str:
    return "".join(text for text, _ in line)


def test_each_answer_is_the_confirmatory_tables_verdict_with_the_baseline(page):
    """Before: '4 of 4 values of lambda differ ...' said neither how nor from what, and on an objectives run '0 of 2
    differ' sat above a table saying 'x1.88 better'. Each line now says the confirmatory table's own verdicts."""
    html, run = page
    lines = answer_lines(run)
    pooled = axis_findings(run).as_confirmatory(report_family_size(run))
    assert len(lines) == len(primary_metrics())
    said_different = said_quiet = 0
    for metric, line in zip(primary_metrics(), lines):
        text = _text(line)
        assert text.startswith(metric.label)
        baselines = {r.differences[metric.name].baseline for r in pooled.rows}
        assert len(baselines) == 1  # every lambda pooled over the same settings and seeds
        assert f"{value_text(metric, baselines.pop())} at lambda=0" in text
        marks = [mark for _, mark in line if mark]
        different = [r for r in pooled.rows if r.differences[metric.name].verdict in DIFFERENT]
        assert marks == [r.differences[metric.name].verdict for r in different]
        for r in pooled.rows:
            d, value = r.differences[metric.name], format_label(r.setting["lambda"])
            if d in [x.differences[metric.name] for x in different]:
                new = value_text(metric, from_change_scale(metric, d.baseline, d.estimate))
                verb = "raises" if d.estimate > 0 else "lowers"
                assert f"lambda {value} {verb} it to {new} ({d.change_text()}) " in text
                said_different += 1
            else:
                assert f"lambda {value} raises" not in text and f"lambda {value} lowers" not in text
                assert re.search(rf"lambda [0-9., ]*\b{re.escape(value)}\b[0-9., ]*: (no change detected|too few "
                                 "seeds)", text)
                said_quiet += 1
        assert html.count(re.sub("&", "&amp;", text.split(":")[0])) >= 1
    assert said_different and said_quiet  # both kinds of answer were checked


def test_the_lead_comes_first_and_the_provenance_is_collapsed(page):
    html, _ = page
    section = html[html.index("<section"):]
    assert section.index('<div class="lead">') < section.index("<details><summary>Provenance: commit 000000000000")
    assert section.index("<details><summary>Provenance") < section.index("<h3>Findings: each lambda")
    assert section.index('<p class="note">One family: ') < section.index("<details><summary>Provenance")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A tune of softmax (lambda 0) against softmax + center loss on digits: 2 trials per objective, 2 final seeds
    (about 10 s on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    spec = GridSpec(axes={"dataset": ["digits"], "epochs": [1], "feat_dim": [8], "lambda": [0, 0.1]})
    settings = TuneSettings(budget=2, seeds=2, prune_after_trials=1, prune_after_epochs=1)
    run_dir = tmp_path_factory.mktemp("tuned") / "tuned"
    try:
        run_tune(spec, plan_objectives(spec, settings), settings, run_dir, SerialExecutor(), quiet=True)
    finally:
        torch.set_num_threads(threads)
    return run_dir


def test_a_tune_answers_from_its_final_seeds_against_what_and_on_which_metric(tuned, tmp_path):
    """The question of a tune, "is center loss worth it, against what, on which metric": each primary metric's answer
    read off the selected settings' test findings, then the settings each objective was selected with."""
    (run,) = load_runs([tuned])
    study, *answers = lead_blocks(run)
    assert ("8-D features, 1 epoch, 2 seeds (1, 2) (final seeds, which share one split: each objective's setting "
            "selected on validation") in study.study
    lines = [_text(line) for line in study.lines]
    assert len(lines) == len(primary_metrics()) + 1
    confirmatory = axis_findings(run).as_confirmatory(report_family_size(run))
    (row,) = confirmatory.rows  # the selected lambda against lambda=0
    for metric, line in zip(primary_metrics(), lines):
        assert line.startswith(f"{metric_name(metric)}") and f"lambda {format_label(row.setting['lambda'])}" in line
        d = row.differences[metric.name]
        if d.verdict in DIFFERENT:
            assert f"({d.change_text()}) {d.verdict}" in line
        elif d.verdict.startswith(TOO_FEW):
            assert f": {d.verdict}, its interval would" in line
        else:
            assert f": {QUIET[d.verdict.split(' (')[0]]}" in line
    assert lines[-1].startswith("Selected by MAP@R (cosine) (validation) after 2 trials per objective: ")
    assert len(run.selected) == 2 and all(setting_text(params) in lines[-1] for params in run.selected["params"])
    html = write_report([run], tmp_path / "tuned.html", progress=False).read_text()
    section = html[html.index("<section"):]
    assert section.index('<div class="lead">') < section.index("<details><summary>Provenance") < \
        section.index("<h3>Selected settings") < section.index("<h3>Findings: each lambda")
    # the final seeds share one split: no caption says each seed drew its own
    assert "the seeds share one train/validation/test split" in section and "draws its own" not in section


def test_a_tune_without_final_seeds_says_nothing_was_scored_on_test(tuned, tmp_path):
    shutil.copytree(tuned, tmp_path / "searching")
    for record in (tmp_path / "searching" / "cells").glob("*.json"):
        if json.loads(record.read_text())["scored_on_test"]:
            record.unlink()
    (run,) = load_runs([tmp_path / "searching"])
    (lead,) = lead_blocks(run)  # no findings, so no family
    assert lead.study == "a tune whose search has not ended: no final seeds yet, so nothing was scored on test"
    assert [_text(line).startswith("Selected by MAP@R (cosine) (validation)") for line in lead.lines] == [True]


def test_green_means_statistically_better_only_and_is_explained_once(page):
    html, run = page
    assert html.count('<span class="better">green</span> is statistically better') == 1
    assert "background-color" not in re.sub(r"<style>.*?</style>", "", html, flags=re.S)  # no inline colour
    pooled = axis_findings(run).as_confirmatory(report_family_size(run))
    expected = {mark: sum(d.verdict == mark for findings in (pooled, grid_findings(run)) for r in findings.rows
                          for d in r.differences.values()) for mark in DIFFERENT}
    cells = {mark: len(re.findall(rf'<td[^>]* class="data row[0-9]+ col[0-9]+ {mark}"', html)) for mark in DIFFERENT}
    assert cells == expected and expected["better"] > 0
    # the summary's best mean is bold, not green
    summary = html[html.index("<h3>Summary over seeds</h3>"):]
    summary = summary[:summary.index("</table>")]
    assert "font-weight: bold" in summary and "better" not in summary


def test_p_values_are_written_as_adjusted(page):
    html, _ = page
    assert "p_adj = " in html and re.search(r"\bp ?= ?[0-9]", html) is None


# --- too few seeds said first ------------------------------------------------------------------------------

def test_an_interval_that_leaves_the_metrics_range_is_too_few_seeds_not_a_number():
    """Before: with 3 seeds, accuracy '-6.9 pts [-211.2, +197.3]' and 'MDE 2.6e+02 pts'."""
    d = compare_sides(ACCURACY, [0.97, 0.99, 0.90], [0.99, 0.93, 0.99], paired=True, family_size=12)
    low, high = d.interval
    assert d.baseline + high / 100 > 1 and d.interval_leaves_range and not d.differs
    assert d.verdict == "too few seeds (3)"
    assert cell_text(d) == f"{d.estimate_text()}; too few seeds (3)" and "[" not in cell_text(d)
    assert d.sentence() == f"test accuracy {d.estimate_text()}, too few seeds (3)"
    # the same seeds on a ratio, compared on its log scale, never leave (0, inf)
    ratio = compare_sides(RATIO, [3.0, 3.2, 2.5], [3.3, 2.9, 3.6], paired=True, family_size=12)
    assert not ratio.interval_leaves_range and not ratio.mde_exceeds_range


def test_a_difference_found_with_an_interval_past_the_range_keeps_its_verdict():
    d = compare_sides(ACCURACY, [0.90, 0.91, 0.92, 0.93], [0.99, 0.995, 0.999, 0.99], paired=True)
    assert d.verdict == "better" and d.interval_leaves_range
    assert d.change_text() == f"{d.estimate_text()} [too few seeds (4)]"
    assert cell_text(d).endswith(f"{d.p_text()}; better ({d.minimum_detectable_text()})")


def test_an_mde_wider_than_the_range_is_too_few_seeds():
    d = compare_sides(ACCURACY, [0.5, 0.9, 0.1], [0.6, 0.2, 0.8], paired=True, family_size=40)
    assert d.minimum_detectable > 100 and d.mde_exceeds_range
    assert d.minimum_detectable_text() == "too few seeds (3)" and d.verdict == "too few seeds (3)"


def test_summary_intervals_and_figure_bands_that_leave_the_range_are_left_out():
    assert mean_ci_text(0.95, 0.04, ACCURACY, 3) == "0.95 ± 0.04"
    assert mean_ci_text(0.95, 0.08, ACCURACY, 2) == "0.95 ± too few seeds (2)"
    assert mean_ci_text(0.3, 0.5, get_metric("intra_class_distance"), 3) == "0.3 ± too few seeds (3)"  # below 0
    assert mean_ci_text(0.95, 0.08) == "0.95 ± 0.08"  # no metric: nothing to check against
    low, high, omitted = band_within_range("test_accuracy", pd.Series([0.9, 0.95]), pd.Series([0.05, 0.08]))
    assert omitted and np.allclose(low[:1], [0.85]) and np.isnan(low[1]) and np.isnan(high[1])


def test_every_metric_declares_its_range_and_shares_lie_in_zero_one():
    for metric in METRICS:
        low, high = metric.value_range
        assert low < high
        if metric.change == POINTS:
            assert metric.value_range == SHARE, metric.name
    assert all(math.isfinite(m.value_range[0]) for m in headline_metrics())
    with pytest.raises(ValueError, match="value_range must be"):
        Metric("broken", "broken", True, True, value_range=(1.0, 0.0))


# --- a report named after its run ---------------------------------------------------------------------------

def test_a_report_is_named_after_its_runs_so_a_second_does_not_overwrite_the_first(tmp_path, monkeypatch):
    runs = [make_grid_run(tmp_path / name, lambdas=(0.0,), alphas=(0.5,), rules=("paper",), seeds=(0,))
            for name in ("first", "second")]
    monkeypatch.chdir(tmp_path)
    for run in runs:
        result = CliRunner().invoke(main, ["report", str(run)])
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["first.html", "second.html"]
    assert default_report_path(runs) == default_report_path(runs).parent / "first+second.html"
    assert default_report_path([tmp_path / "runs" / "ablation/"]).as_posix() == "reports/ablation.html"


def test_a_default_report_name_is_bounded_and_plain():
    long = [f"run-{i:03d}-" + "x" * 30 for i in range(5)]
    named = default_report_path(long)
    assert len(named.stem) == MAX_NAME and named.stem.startswith("run-000-")
    assert default_report_path(long[:4] + ["other"]) != named  # the hash keeps distinct runs apart
    assert default_report_path(["<img src=x onerror=alert(1)>"]).name == "img-src-x-onerror-alert-1.html"
