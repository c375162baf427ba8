"""Findings: the paired comparison (ablate.analysis.stats) and the findings table of a grid and of `ablate compare`.

The grids here are built from features whose truth is known: one lambda separates the classes three times as
well as the reference, one is an exact copy of the reference; the findings must say so for each.
"""

import io
import json
import math
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats
from statsmodels.stats.power import TTestPower

from ablate.analysis.family import declare_report_family, report_family_size
from ablate.analysis.findings import (
    DROPPED_TEXT,
    Findings,
    adjusted_findings,
    axis_findings,
    compare_cells,
    declared_effects,
    grid_findings,
    marked_settings,
    parse_reference,
    power_sentence,
    run_findings,
    setting_of,
)
from ablate.analysis.stats import DIFFERENT, compare_sides, from_change_scale, seeds_needed
from ablate.cli import main
from ablate.compare import ONE_CONFIGURATION
from ablate.grid.spec import load_spec
from ablate.metrics import METRICS
from ablate.report import build_report
from ablate.report.build import load_runs
from ablate.report.findings import findings_table
from ablate.runs.cells import CellStore
from ablate.runs.folder import claim, write_tables
from ablate.runs.loading import load_run
from ablate.runs.schema import cell_id
from ablate.runs.summary import summary_table
from ablate.runs.tables import grid_tables
from ablate.train import CellConfig
from ablate.train.config import config_columns
from ablate.train.evaluate import evaluate
from tests.support.fixture_runs import make_grid_run

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


def make_known_grid(run_dir, *, spreads, seeds=(0, 1, 2), diverged=(), holdout=0, split_seed=None):
    """A grid run folder: lambda -> spread of its features (the same spread as another lambda with the same seeds
    gives identical cells); (lambda, seed) pairs in `diverged` diverged; with `holdout`, open-set cells whose last
    `holdout` classes have no center; with `split_seed`, every seed on that one split (as a tune's final seeds).
    Metrics computed from the features."""
    claim(run_dir, "grid", config_columns=config_columns())
    store = CellStore(run_dir)
    records = []
    for lam, spread in spreads.items():
        for seed in seeds:
            config = CellConfig(dataset="synthetic", num_classes=CLASSES, feat_dim=DIM, lambda_=lam,
                                seed=seed, split_seed=split_seed, holdout_classes=holdout).to_dict()
            record = {**config, "cell_id": cell_id(config), "train_samples_per_s": 1.0, "train_time_s": 1.0,
                      "wall_time_s": 1.0, "resolved_device": "cpu"}
            features, labels, centers, predictions = _cell_arrays(seed, spread)
            centers = centers[:CLASSES - holdout]
            predictions = np.minimum(predictions, CLASSES - holdout - 1)
            if (lam, seed) in diverged:  # its features are saved too, as run_cell does: not finite
                features = np.full_like(features, np.nan)
                record.update(dict.fromkeys(m.name for m in METRICS if m.compute), status="diverged",
                              diverged_epoch=3)
            else:
                record.update(evaluate(features, predictions, labels, centers), status="ok", diverged_epoch=None)
            buffer = io.BytesIO()
            np.savez(buffer, features=features, labels=labels, centers=centers, predictions=predictions)
            store.save(record["cell_id"], record, buffer.getvalue())
            records.append(record)
    (run_dir / "provenance.json").write_text(json.dumps({"command": "test"}))
    write_tables(run_dir, grid_tables(records, config_columns()))
    return run_dir


# --- the comparison ----------------------------------------------------------------------------------------

def test_a_ratio_is_compared_as_a_factor_and_identical_values_as_identical():
    ratio = METRICS.get("separation_ratio")
    a = np.array([2.0, 2.2, 1.9])
    doubled = compare_sides(ratio, a, 2 * a * np.array([1.0, 1.01, 0.99]), paired=True)
    assert doubled.change_text().startswith("x2") and doubled.p < 0.01
    assert doubled.verdict == "better" and "better" in doubled.sentence()
    same = compare_sides(ratio, a, a.copy(), paired=True)
    assert same.identical and same.verdict == "identical"


def test_one_seed_on_a_side_is_untestable_with_the_estimate_alone():
    accuracy = METRICS.get("test_accuracy")
    for a, b, paired in (([0.90], [0.92], True), ([0.90], [0.92, 0.93], False), ([0.90, 0.91], [0.95], False)):
        d = compare_sides(accuracy, a, b, paired=paired)
        assert d.verdict == "untestable with one seed" and math.isnan(d.p) and d.p_text() == ""
        assert d.change_text().endswith("pts") and "[" not in d.change_text()  # no interval
        assert math.isnan(d.minimum_detectable)


def test_paired_interval_and_p_are_the_t_test_over_seeds():
    accuracy = METRICS.get("test_accuracy")
    a, b = np.array([0.90, 0.91, 0.92, 0.90]), np.array([0.92, 0.925, 0.94, 0.93])
    d = compare_sides(accuracy, a, b, paired=True)
    result = stats.ttest_rel(100 * b, 100 * a)
    assert d.p == pytest.approx(result.pvalue) and d.df == 3
    low, high = result.confidence_interval(0.95)
    assert d.interval == pytest.approx((low, high))
    welch = compare_sides(accuracy, a, b, paired=False)
    assert welch.p == pytest.approx(stats.ttest_ind(100 * b, 100 * a, equal_var=False).pvalue)


def test_the_interval_is_simultaneous_over_the_family_and_the_verdict_follows_it():
    accuracy = METRICS.get("test_accuracy")
    a, b = np.array([0.90, 0.91, 0.92]), np.array([0.92, 0.925, 0.945])
    alone = compare_sides(accuracy, a, b, paired=True)
    in_family = compare_sides(accuracy, a, b, paired=True, family_size=6)
    assert in_family.p == pytest.approx(min(1.0, 6 * alone.p))
    assert in_family.interval[1] - in_family.interval[0] > alone.interval[1] - alone.interval[0]
    assert alone.verdict == "better" and in_family.verdict.startswith("underpowered") and not in_family.differs
    low, high = in_family.interval
    assert low < 0 < high and in_family.p >= 0.05


def test_a_printed_bound_keeps_its_side_of_no_change():
    ratio = METRICS.get("separation_ratio")
    a = np.array([2.0, 2.1, 2.2])
    d = compare_sides(ratio, a, a * np.exp([0.004, 0.005, 0.006]), paired=True)
    low = d.interval[0]
    assert 0 < low < 0.004 and d.verdict == "better"  # the factor's lower bound is just above 1: x1.00 at 3 digits
    printed_low = float(d.change_text().split("[")[1].split(",")[0])
    assert printed_low > 1.0


def test_the_minimum_detectable_effect_is_the_80_percent_power_point():
    accuracy = METRICS.get("test_accuracy")
    a, b = np.array([0.90, 0.91, 0.92, 0.93, 0.90]), np.array([0.91, 0.93, 0.925, 0.95, 0.92])
    d = compare_sides(accuracy, a, b, paired=True)
    effect_size = d.minimum_detectable / d.sd
    assert TTestPower().power(effect_size=effect_size, nobs=5, alpha=0.05) == pytest.approx(0.8, abs=0.01)
    assert seeds_needed(d.sd, d.minimum_detectable) <= 5 < seeds_needed(d.sd, 0.8 * d.minimum_detectable)


def test_calibration_of_the_seed_t_test_on_normal_values():
    """Fast check of the inference alone: A/A comparisons of normal values reject at about the nominal 5%."""
    accuracy = METRICS.get("test_accuracy")
    rng = np.random.default_rng(0)
    values = rng.normal(0.9, 0.01, size=(2000, 6))
    rejected = {paired: np.mean([compare_sides(accuracy, v[:3], v[3:], paired=paired).differs for v in values])
                for paired in (True, False)}
    assert 0.035 < rejected[True] < 0.065, rejected  # the exact t: 5%, and 2000 draws have a binomial sd of 0.5 pts
    # Welch's t with 3 seeds a side estimates its df from two 2-df variances: conservative (about 3%), never liberal
    assert 0.02 < rejected[False] < 0.05, rejected


def test_a_non_finite_value_is_not_compared():
    diff = compare_sides(METRICS.get("separation_ratio"), np.array([1.0, 2.0]), np.array([np.inf, 3.0]), paired=True)
    assert math.isnan(diff.p) and diff.change_text() == "not comparable" and diff.verdict == "not comparable"


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
    assert set(rows) == {0.1, 1.0}
    better = rows[0.1]
    assert better.verdicts["separation_ratio"] == "better", better.words()
    # one quantity is one finding: intra / mean norm and the trace ratio are reported, not compared
    assert "relative_intra_class_distance" not in better.differences and "fisher_ratio" not in better.differences
    factor = math.exp(better.differences["separation_ratio"].estimate)
    assert 2.5 < factor < 3.5  # spread 1.5 -> 0.5 at the same class means
    assert "separation ratio x" in better.words()
    # 150 test samples cannot resolve a TAR at FAR 1e-3 (ablate.metrics.features.MIN_FALSE_ACCEPTS): said so
    unresolved = "TAR @ FAR 1e-3 not resolvable at this size"
    assert {v for name, v in rows[1.0].verdicts.items() if name != "tar_at_far_1e3"} == {"identical"}
    assert rows[1.0].words() == f"identical in every other headline metric; {unresolved} (see lowest resolvable FAR)"
    pooled = {r.setting["lambda"]: r for r in axis_findings(load_run(known_grid)).rows}  # one setting per lambda
    assert pooled[0.1].verdicts["separation_ratio"] == "better" and pooled[1.0].words() == rows[1.0].words()


def test_the_families_are_the_primary_and_the_secondary_metrics_over_the_rows_that_were_tested(known_grid):
    findings = grid_findings(load_run(known_grid))
    primary = [m for m in METRICS if m.primary]
    assert [m.name for m in primary] == ["test_accuracy", "separation_ratio", "cosine_map_at_r"]
    sizes = findings.family_sizes()
    # lambda 1 is identical to the reference: no test, and no member of the family (before: 6, with 3 'p = 1')
    assert sizes["primary"] == len(primary) * (len(findings.rows) - 1) == 3
    for r in findings.rows:
        for d in r.differences.values():
            assert d.family_size == sizes["primary" if d.metric.primary else "secondary"]


def _contradictions(page: str) -> list:
    """Findings cells of a rendered report whose printed interval excludes no change beside 'no detectable
    difference', or holds it beside 'better' / 'worse'."""
    cells = re.findall(r"<td[^>]*>([^<]*\[[^<]*\][^<]*)</td>", page)
    assert cells, "no findings cell with an interval in the page"
    found = []
    for text in cells:
        match = re.match(r"\s*(x?)([-+]?[0-9.e+-]+)(?: pts)? \[([-+]?[0-9.e+-]+), ([-+]?[0-9.e+-]+)\]", text)
        if match is None:  # a row in words: checked below
            assert re.search("better|worse|no detectable difference", text), text
            continue
        no_change = 1.0 if match.group(1) else 0.0
        low, high = float(match.group(3)), float(match.group(4))
        excludes = low > no_change or high < no_change
        p = re.search(r"p_adj = ([0-9.e+-]+)", text)
        if p and excludes != (float(p.group(1)) < 0.05):
            found.append(text)
    words = re.findall(r"<td[^>]*>([^<]*(?:better|worse|no detectable difference)[^<]*)</td>", page)
    for text in words:
        for part in text.split("; "):
            interval = re.search(r"(x?)([-+]?[0-9.e+-]+)(?: pts)? \[([-+]?[0-9.e+-]+), ([-+]?[0-9.e+-]+)\], (\w+)",
                                 part)
            if interval:
                no_change = 1.0 if interval.group(1) else 0.0
                low, high = float(interval.group(3)), float(interval.group(4))
                if (low > no_change or high < no_change) != (interval.group(5) in ("better", "worse")):
                    found.append(part)
    return found


def test_no_findings_cell_contradicts_its_interval(tmp_path):
    """The rendered report of a grid with real, noisy differences: every printed interval agrees with its verdict
    and its adjusted p-value."""
    run_dir = make_grid_run(tmp_path / "run", seeds=(0, 1, 2, 3))
    page = build_report([run_dir], tmp_path / "r.html", progress=False).read_text()
    assert _contradictions(page) == []
    assert "better" in page and "no detectable difference" in page  # both kinds of verdict were checked
    assert "shares in percentage points. A comparison uses the seeds that trained on both sides" in page
    assert page.count("<span class=\"better\">green</span> is statistically better") == 1  # the legend, once


def test_a_diverged_seed_is_counted_and_dropped_from_the_comparison_not_averaged(tmp_path):
    """Before: one diverged seed made the whole setting 'not compared'. The comparison now uses the seeds that trained
    on both sides and says how many it dropped; the summary still gives no mean of the survivors."""
    run_dir = make_known_grid(tmp_path / "run", spreads={0.0: 1.5, 0.1: 0.5}, seeds=range(4), diverged={(0.1, 3)})
    summary = summary_table(pd.read_parquet(run_dir / "results.parquet"), config_columns()).set_index("lambda")
    assert summary.loc[0.1, "n_seeds"] == 3 and summary.loc[0.1, "n_diverged"] == 1
    assert np.isnan(summary.loc[0.1, "separation_ratio_mean"])  # not the mean of the three survivors
    assert summary.loc[0.0, "n_diverged"] == 0 and np.isfinite(summary.loc[0.0, "separation_ratio_mean"])
    (row,) = grid_findings(load_run(run_dir)).rows
    assert not row.flag and row.seeds == "3 paired; dropped: 1 diverged at this setting"
    difference = row.differences["separation_ratio"]
    assert difference.paired and (difference.n_a, difference.n_b) == (3, 3) and difference.verdict == "better"


def _cells(accuracies, status="ok", seeds=(0, 1, 2)) -> pd.DataFrame:
    """One configuration's cells on digits (10 classes: chance 10%, did not learn at or below 28%)."""
    return pd.DataFrame({"seed": list(seeds), "status": status, "dataset": "digits", "num_classes": 10,
                         "holdout_classes": 0, "test_accuracy": accuracies})


def test_compare_cells_and_adjusted_findings_are_the_comparison_of_every_findings_table():
    reference = _cells([0.90, 0.91, 0.92])
    better = reference.assign(test_accuracy=reference["test_accuracy"] + [0.05, 0.06, 0.04])
    row = compare_cells(reference, better, {"lambda": 0.1}, "lambda=0")
    assert (row.setting, row.against, row.seeds, row.flag) == ({"lambda": 0.1}, "lambda=0", "3 paired", "")
    difference = row.differences["test_accuracy"]  # the only headline metric the cells hold
    assert set(row.differences) == {"test_accuracy"} and difference.paired and difference.family_size == 1
    assert difference.estimate == pytest.approx(5.0)  # points
    same = compare_cells(reference, reference.copy(), {"lambda": 0.5}, "lambda=0")
    assert same.verdicts == {"test_accuracy": "identical"}
    diverged = compare_cells(reference, better.assign(status=["ok", "ok", "diverged"]), {"lambda": 1.0}, "lambda=0")
    assert diverged.seeds == "2 paired; dropped: 1 diverged at this setting" and not diverged.flag
    findings = adjusted_findings([row, same, diverged], unmatched=2)
    assert findings.unmatched == 2 and findings.family_sizes() == {"primary": 2, "secondary": 0}  # identical: none
    assert [findings.rows[i].differences["test_accuracy"].family_size for i in (0, 2)] == [2, 2]  # Bonferroni over 2


def test_a_cell_that_did_not_learn_never_enters_a_comparison_as_a_result():
    reference = _cells([0.90, 0.91, 0.92, 0.93], seeds=(0, 1, 2, 3))
    planted = _cells([0.95, 0.96, 0.05, 0.97], seeds=(0, 1, 2, 3))  # seed 2 below chance: a collapsed model
    row = compare_cells(reference, planted, {"lambda": 0.1}, "lambda=0")
    assert row.seeds == "3 paired; dropped: 1 did not learn at this setting"
    difference = row.differences["test_accuracy"]
    assert difference.n_a == 3 and difference.estimate == pytest.approx(100 * np.mean([0.05, 0.05, 0.04]))
    assert difference.verdict == "better"  # with the planted cell averaged in it would be -20 points
    at_threshold = compare_cells(reference, planted.assign(test_accuracy=[0.95, 0.96, 0.28, 0.97]), {}, "x")
    assert "1 did not learn" in at_threshold.seeds  # 28% = 10% + 0.2 x 90%: not above it
    above = compare_cells(reference, planted.assign(test_accuracy=[0.95, 0.96, 0.29, 0.97]), {}, "x")
    assert above.seeds == "4 paired"
    nothing = compare_cells(reference, planted.assign(test_accuracy=0.05), {}, "x")
    assert nothing.flag == "not compared: no seed trained on both sides (dropped: 4 did not learn at this setting)"
    assert not nothing.differences


def test_seeds_both_sides_ran_are_paired_on_and_the_others_said_to_be_dropped():
    reference = _cells([0.90, 0.91, 0.92, 0.93, 0.94], seeds=range(5))
    more = _cells(np.r_[[0.90, 0.91, 0.92, 0.93, 0.94], np.linspace(0.95, 0.99, 10)], seeds=range(15))
    row = compare_cells(reference, more, {}, "a", sides=("in a", "in b"))
    assert row.seeds == "5 paired; dropped: 10 run only in b" and row.verdicts == {"test_accuracy": "identical"}
    other_seeds = compare_cells(reference, _cells(np.linspace(0.95, 0.99, 10), seeds=range(5, 15)), {}, "a")
    assert other_seeds.seeds == "5 vs 10" and not other_seeds.differences["test_accuracy"].paired


# --- ablate compare ---------------------------------------------------------------------------------------

def compare_blocks(output: str) -> dict:
    """{setting: {"header": its line, <metric label>: its finding, "in words": the row in words}} of the blocks of
    `ablate compare`'s output, each item unwrapped: a block opens with 'SETTING (against RUN_A; seeds: ...)', then
    items indented by two spaces (their wrapped lines by four)."""
    blocks = {}
    for text in output.strip().split("\n\n"):
        header, *items = re.split(r"\n(?=  \S)", text)
        header = " ".join(header.split())
        if " (against " not in header:
            continue
        block = {"header": header}
        for item in items:
            first, *wrapped = item.strip().splitlines()
            if first.startswith("in words: "):
                block["in words"] = " ".join([first.removeprefix("in words: "), *(w.strip() for w in wrapped)])
            else:
                name, finding = re.split(r"\s{2,}", first, maxsplit=1)  # the label, padded, then the finding
                block[name] = " ".join([finding, *(w.strip() for w in wrapped)])
        blocks[header.split(" (against ")[0]] = block
    return blocks


def compare_caption(output: str) -> str:
    """The caption of `ablate compare`: its paragraph 'B against A on the ...', unwrapped."""
    (caption,) = [" ".join(text.split()) for text in output.strip().split("\n\n")
                  if re.match(r"\S+ against \S+ on the ", text)]
    return caption


def test_compare_finds_no_difference_between_copies_and_the_change_between_settings(tmp_path):
    a = make_known_grid(tmp_path / "a", spreads={0.0: 1.5, 0.1: 1.5}, seeds=(0, 1, 2))
    b = make_known_grid(tmp_path / "b", spreads={0.0: 1.5, 0.1: 0.5}, seeds=(0, 1, 2))
    result = CliRunner().invoke(main, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    blocks = compare_blocks(result.output)
    words = {setting: block["in words"] for setting, block in blocks.items()}
    assert words["lambda=0"].startswith("identical") or "no detectable difference" in words["lambda=0"]
    assert "separation ratio x" in words["lambda=0.1"] and "better" in words["lambda=0.1"]
    assert blocks["lambda=0.1"]["header"] == "lambda=0.1 (against a; seeds: 3 paired)"
    assert blocks["lambda=0.1"]["separation ratio"].startswith("x")


def test_compare_prints_no_line_wider_than_the_terminal_and_names_a_lone_configuration(tmp_path):
    """Before: one row of six findings side by side (about 300 characters), and 'setting all' for the one
    configuration two runs held."""
    a = make_known_grid(tmp_path / "a", spreads={0.0: 1.5}, seeds=(0, 1, 2))
    b = make_known_grid(tmp_path / "b", spreads={0.1: 0.5}, seeds=(0, 1, 2))
    result = CliRunner().invoke(main, ["compare", str(a), str(b)], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 100
    (setting,) = compare_blocks(result.output)
    assert setting == ONE_CONFIGURATION and "setting" not in result.output.split("\n\n")[0]


def test_compare_refuses_what_is_not_a_grid_run(tmp_path):
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "missing"), str(tmp_path)])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_compare_matches_runs_that_differ_in_one_setting_on_the_others(tmp_path):
    a = make_known_grid(tmp_path / "a", spreads={0.0: 1.5})
    b = make_known_grid(tmp_path / "b", spreads={0.1: 0.5})
    result = CliRunner().invoke(main, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "the runs differ in lambda: 0 -> 0.1" in compare_caption(result.output)  # wrapped to the terminal
    assert "separation ratio x" in result.output and "better" in result.output


def test_compare_says_how_its_numbers_were_obtained_in_a_caption_of_its_own(tmp_path):
    a = make_known_grid(tmp_path / "a", spreads={0.0: 1.5, 0.1: 1.5})
    b = make_known_grid(tmp_path / "b", spreads={0.0: 1.5, 0.1: 0.5})
    result = CliRunner().invoke(main, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    caption = compare_caption(result.output)
    assert caption.startswith("b against a on the 2 configurations both hold. Seeds: paired on the seeds both runs "
                              "ran in 2 configurations (a seed in both runs is the same split and initialization, "
                              "never an independent draw")
    assert "Each headline metric: the change (paired t over seeds when both sides ran the same seeds" in caption
    # lambda 0 is identical in both runs: no test, so the family is lambda 0.1's 3 primary metrics
    assert ("over the rows of this table: 3 comparisons, so each interval is at level 1 - 0.05/3 (confirmatory)"
            in caption)
    assert caption.endswith("shares in percentage points. " + DROPPED_TEXT)
    assert "Green" not in result.output  # the report's colours: a terminal shows none


def test_the_captions_say_whether_each_seed_drew_its_own_split_or_all_shared_one(tmp_path):
    """A tune's final seeds share the split their setting was selected on: their intervals hold the training's noise,
    not the test set's, and every caption that says what the spread over seeds holds must say so."""
    own = make_known_grid(tmp_path / "own", spreads={0.0: 1.5, 0.1: 0.5})
    shared = make_known_grid(tmp_path / "shared", spreads={0.0: 1.5, 0.1: 0.5}, split_seed=0)
    drawn, one_split = "every seed draws its own train/test split", "the seeds share one train/validation/test split"
    pages = {name: build_report([run], tmp_path / f"{name}.html", progress=False).read_text()
             for name, run in (("own", own), ("shared", shared))}
    # the summary's caption and both findings tables' (the pooled lambda table and the per-setting one)
    assert pages["own"].count(drawn) == 3 and one_split not in pages["own"]
    assert pages["shared"].count(one_split) == 3 and drawn not in pages["shared"]
    result = CliRunner().invoke(main, ["compare", str(own), str(shared)])
    assert result.exit_code == 0, result.output
    assert one_split in result.output and drawn not in result.output  # one side shared its split


def test_open_set_metrics_appear_under_their_own_heading(tmp_path):
    run_dir = make_known_grid(tmp_path / "run", spreads={0.0: 1.5, 0.1: 0.5}, holdout=2)
    page = build_report([run_dir], tmp_path / "r.html", progress=False).read_text()
    assert "Open-set: metrics on classes held out of training" in page
    assert "MAP@R (cosine) (held out)" in page and "test accuracy (seen)" in page
    assert "In open-set settings (holdout_classes &gt; 0)" in page  # said in the findings' caption, escaped


def test_the_heatmap_marks_are_the_settings_that_differ(known_grid):
    run = load_run(known_grid)
    marked = marked_settings(run, "separation_ratio")
    rows = {row["lambda"]: setting_of(run, row) for _, row in run.summary.iterrows()}
    assert rows[0.1] in marked and rows[1.0] not in marked and rows[0.0] not in marked


def test_every_value_in_the_findings_table_is_escaped(known_grid):
    findings = grid_findings(load_run(known_grid))
    hostile = Findings([replace(findings.rows[0], setting={"data_dir": "<script>alert(1)</script>"})], 0)
    html = findings_table(hostile)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&amp;lt;" not in html  # escaped once: shown literally, not as escape codes


def test_compare_finds_no_difference_between_runs_of_one_setting_with_other_seeds(tmp_path):
    a = make_known_grid(tmp_path / "a", spreads={0.0: 1.5}, seeds=(0, 1, 2))
    b = make_known_grid(tmp_path / "b", spreads={0.0: 1.5}, seeds=(3, 4, 5))
    findings = run_findings(load_run(a), load_run(b))
    (row,) = findings.rows
    assert not any(d.paired for d in row.differences.values())  # other seeds: Welch, not paired
    assert row.seeds == "3 vs 3"
    verdicts = {v for name, v in row.verdicts.items() if name != "tar_at_far_1e3"}
    assert not verdicts & set(DIFFERENT), row.words()
    # 3 seeds a side cannot tell 1 point: said to be underpowered, with its MDE, not 'no detectable difference'; where
    # even the interval leaves the metric's range (a MAP@R above 1), 'too few seeds (3)' instead of the numbers
    assert verdicts <= {"no detectable difference", "too few seeds (3)"} | {v for v in verdicts
                                                                          if v.startswith("underpowered (MDE")}
    # test accuracy: a change of +10.7 pts at a baseline of 84.9%, whose simultaneous interval reaches past 100%
    accuracy = row.differences["test_accuracy"]
    assert from_change_scale(accuracy.metric, accuracy.baseline, accuracy.interval[1]) > 1.0
    assert row.verdicts["test_accuracy"] == "too few seeds (3)" and "too few seeds (3) for test accuracy" in row.words()


def test_compare_pairs_on_the_seeds_both_runs_ran_and_says_so(tmp_path):
    """Before: a run against a bit-identical superset of its seeds was compared as independent draws (Welch), and a
    configuration against itself came out 'verification AUC better, p = 0.00081'."""
    a = make_known_grid(tmp_path / "a", spreads={0.0: 1.5}, seeds=range(5))
    b = make_known_grid(tmp_path / "b", spreads={0.0: 1.5}, seeds=range(15))
    (row,) = run_findings(load_run(a), load_run(b)).rows
    assert row.seeds == "5 paired; dropped: 10 run only in b"
    assert all(d.paired and d.n_a == 5 for d in row.differences.values() if d.comparable)
    assert row.words().startswith("identical in every other headline metric")
    result = CliRunner().invoke(main, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    (block,) = compare_blocks(result.output).values()
    assert block["header"].endswith("(against a; seeds: 5 paired; dropped: 10 run only in b)")
    assert "better" not in block["in words"]
    assert "Seeds: paired on the seeds both runs ran in 1 configuration" in compare_caption(result.output)


def test_compare_of_two_single_seed_runs_is_untestable_and_exits_0(tmp_path):
    a = make_known_grid(tmp_path / "a", spreads={0.0: 1.5}, seeds=(0,))
    b = make_known_grid(tmp_path / "b", spreads={0.1: 0.5}, seeds=(0,))
    result = CliRunner().invoke(main, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "untestable with one seed" in result.output and "p_adj" not in result.output
    (block,) = compare_blocks(result.output).values()
    assert "better" not in block["in words"]  # no verdict in words


# --- one family per report, power, the effect of interest ---------------------------------------------------

def test_the_report_declares_one_family_in_its_first_paragraph_and_adjusts_it_over_every_run(tmp_path, known_grid):
    """Before: each table held its own 5% family-wise error, and a report holds several; the reader was not told."""
    alone = build_report([known_grid], tmp_path / "one.html", progress=False).read_text()
    findings_start = alone.index("One family: ")
    assert alone.index('<p class="note">', alone.index("<section")) == findings_start - len('<p class="note">')
    assert ("This run&#39;s confirmatory comparisons are each value of lambda against lambda=0 on the primary metrics "
            "(test accuracy, separation ratio, MAP@R (cosine)), pooled over the other settings: 3 tests. The "
            "confirmatory family of this report holds 3 tests") in alone
    assert "Findings per setting: against lambda=0 (exploratory)" in alone
    # two runs in one report: one family of 6, so each run's confirmatory intervals are at 1 - 0.05/6
    twice = build_report([known_grid, known_grid], tmp_path / "two.html", progress=False).read_text()
    assert twice.count("The confirmatory family of the 2 grid runs of this report holds 6 tests") == 2
    assert "3 comparisons, adjusted over the report&#39;s confirmatory family of 6" in twice
    runs = load_runs([known_grid, known_grid])
    assert declare_report_family(runs) == 6
    pooled = axis_findings(runs[0]).as_confirmatory(report_family_size(runs[0]))
    assert {d.family_size for r in pooled.rows for d in r.differences.values() if d.metric.primary} == {6}


def test_the_power_sentence_names_the_design_it_ran_and_the_seeds_that_design_needs():
    """Before: a 5-vs-120 comparison was described as 'with 5 seeds' and its seeds needed used the paired formula."""
    rng = np.random.default_rng(0)
    reference = _cells(rng.normal(0.90, 0.027, 120), seeds=range(120))
    other = _cells(rng.normal(0.91, 0.027, 5), seeds=range(200, 205))
    findings = adjusted_findings([compare_cells(reference, other, {"lambda": 0.1}, "lambda=0")], 0)
    (difference,) = findings.rows[0].differences.values()
    assert difference.test == "permutation test of Welch's t" and difference.design == "120 vs 5 seeds"
    sentence = power_sentence(findings)
    needed = seeds_needed(difference.sd, 1.0, paired=False, other=120)
    assert sentence.startswith("Power: with 120 vs 5 seeds, the smallest change of test accuracy detected")
    assert (f"detecting the effect of interest (1 point) would take {needed} seeds on the smaller side, with the "
            "other at 120" in sentence) if math.isfinite(needed) else "out of reach" in sentence


def test_a_grid_declares_its_effect_of_interest_and_the_findings_use_it(tmp_path):
    spec = load_spec_text(tmp_path, 'effect_of_interest = 5\n[axes]\nlambda = [0, 0.1]\n')
    assert spec.effect_of_interest == 5 and "effect_of_interest = 5" in spec.to_toml()
    table = load_spec_text(tmp_path, '[axes]\nlambda = [0, 0.1]\n[effect_of_interest]\nmap_at_r = 2\n')
    assert load_spec_text(tmp_path, table.to_toml()).effect_of_interest == {"map_at_r": 2}
    with pytest.raises(ValueError, match="effect_of_interest must be a positive number"):
        load_spec_text(tmp_path, 'effect_of_interest = -1\n[axes]\nlambda = 0\n')
    run_dir = make_known_grid(tmp_path / "run", spreads={0.0: 1.5, 0.1: 0.5})
    (run_dir / "grid.toml").write_text(spec.to_toml())
    run = load_run(run_dir)
    assert declared_effects(run)["test_accuracy"] == 5.0
    (row,) = grid_findings(run).rows
    assert row.differences["test_accuracy"].effect == 5.0
    (run_dir / "grid.toml").write_text("effect_of_interest = 'big'\n[axes]\n")
    broken = load_run(run_dir)
    assert declared_effects(broken)["test_accuracy"] == 1.0  # left at its default, and the report says why
    assert broken.cache["effect note"].startswith("Effect of interest left at its default: ")
    assert "grid.toml: effect_of_interest must be a positive number" in broken.cache["effect note"]


def load_spec_text(folder, text: str):
    path = folder / "g.toml"
    path.write_text(text)
    return load_spec(path)
