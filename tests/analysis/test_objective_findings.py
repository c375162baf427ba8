"""The findings across objectives (ablate.analysis.objective_findings) on a generated run folder whose objectives
differ by construction: ArcFace more accurate than softmax, center loss more compact, CosFace like softmax."""

import ast
import inspect
import json

import numpy as np
import pytest
from scipy import stats

from ablate.analysis.objective_findings import (
    RANKING_METRIC,
    center_findings,
    objective_findings,
    ranking,
    ranking_frame,
    reference_objective,
)
from ablate.metrics import get_metric
from ablate.report.build import build_report, load_runs
from ablate.runs.cells import CellStore
from ablate.runs.folder import claim, write_tables
from ablate.runs.schema import cell_id
from ablate.runs.tables import grid_tables
from ablate.train import CellConfig
from ablate.train.config import config_columns
from tests.support.fixture_runs import PROVENANCE

SEEDS = range(6)
# (head, lambda) -> (accuracy, compactness): arcface +5 points, center loss halves the spread.
OBJECTIVES = {("softmax", 0.0): (0.90, 1.0), ("arcface", 0.0): (0.95, 1.0), ("cosface", 0.0): (0.90, 1.0),
              ("softmax", 0.1): (0.90, 0.5), ("arcface", 0.1): (0.95, 0.5), ("cosface", 0.1): (0.90, 0.5)}


# The heads at their papers' published values rather than their recipes' (ablate.objectives), so that the names
# below read as the papers give them.
PAPER_VALUES = {"arcface": {"scale": 64.0, "embedding_norm": "none"}, "cosface": {"scale": 64.0}}


def _record(head, lam, seed, rng, options=PAPER_VALUES) -> dict:
    accuracy, spread = OBJECTIVES[(head, lam)]
    accuracy += 0.002 * rng.standard_normal()
    spread *= 1 + 0.01 * rng.standard_normal()
    config = CellConfig(dataset="synthetic", num_classes=4, feat_dim=2, epochs=2, head=head, lambda_=lam,
                        seed=seed, **options.get(head, {})).to_dict()
    return {**config, "cell_id": cell_id(config), "test_accuracy": accuracy, "separation_ratio": 3 / spread,
            "relative_intra_class_distance": spread / 3, "fisher_ratio": 9 / spread ** 2, "map_at_r": accuracy - 0.1,
            "cosine_map_at_r": accuracy - 0.1,
            "verification_auc": accuracy, "tar_at_far_1e3": accuracy - 0.2, "unit_intra_class_distance": spread / 3,
            "status": "ok", "diverged_epoch": None, "resolved_device": "cpu"}


def _write_run(run_dir, records: list):
    claim(run_dir, "grid", config_columns=config_columns())
    store = CellStore(run_dir)
    for record in records:
        store.save(record["cell_id"], record, None)
    (run_dir / "provenance.json").write_text(json.dumps(PROVENANCE))
    write_tables(run_dir, grid_tables(records, config_columns()))
    return run_dir


def _objectives_run(run_dir, options=PAPER_VALUES):
    """A run of every objective of OBJECTIVES over SEEDS; options: per head, what its cells set beside the recipe."""
    rng = np.random.default_rng(0)
    return _write_run(run_dir, [_record(head, lam, seed, rng, options) for head, lam in OBJECTIVES for seed in SEEDS])


@pytest.fixture(scope="module")
def objectives_run(tmp_path_factory):
    return _objectives_run(tmp_path_factory.mktemp("objectives"))


def _verdicts(findings, metric: str) -> dict:
    return {r.setting["objective"]: r.verdicts[metric] for r in findings.rows}


def test_objective_findings_compare_through_the_public_api_of_the_findings():
    import ablate.analysis.objective_findings as module

    imported = [alias.name for node in ast.walk(ast.parse(inspect.getsource(module)))
                if isinstance(node, ast.ImportFrom) and node.module == "ablate.analysis.findings"
                for alias in node.names]
    assert {"compare_cells", "adjusted_findings"} <= set(imported)
    assert not [name for name in imported if name.startswith("_")]


def test_every_objective_is_compared_with_softmax_alone_by_default(objectives_run):
    run = load_runs([objectives_run])[0]
    assert reference_objective(run) == "softmax"
    findings = objective_findings(run)
    assert {r.against for r in findings.rows} == {"softmax"}
    accuracy = _verdicts(findings, "test_accuracy")
    assert accuracy["arcface m=0.5 rad s=64"] == "better"
    assert accuracy["cosface m=0.35 s=64"] == "equivalent (within ±1 pts)"  # 6 seeds of 0.2 points' spread
    center = "softmax + center lambda=0.1 (mean, paper rule, alpha 0.5)"
    assert _verdicts(findings, "separation_ratio")[center] == "better"
    assert len(findings.rows) == len(OBJECTIVES) - 1 and all(r.seeds == "6 paired" for r in findings.rows)


def test_the_reference_objective_is_chosen_by_head(objectives_run):
    run = load_runs([objectives_run], reference=("head", "arcface"))[0]
    findings = objective_findings(run)
    assert {r.against for r in findings.rows} == {"arcface m=0.5 rad s=64"}
    assert _verdicts(findings, "test_accuracy")["softmax"] == "worse"


def test_the_reference_head_at_its_recipe_is_found(tmp_path):
    """Cells trained by the head's recipe (s from the class count, ArcFace's batchnorm), not at its papers' values:
    the reference is named from the run's own cells."""
    run = load_runs([_objectives_run(tmp_path, options={})], reference=("head", "arcface"))[0]
    assert {r.against for r in objective_findings(run).rows} == {"arcface m=0.5 rad s=2.47188 embedding batchnorm"}


def test_center_loss_is_compared_with_each_objective_alone(objectives_run):
    findings = center_findings(load_runs([objectives_run])[0])
    pairs = {(r.setting["objective"], r.against) for r in findings.rows}
    assert pairs == {("softmax + center lambda=0.1 (mean, paper rule, alpha 0.5)", "softmax"),
                     ("arcface m=0.5 rad s=64 + center lambda=0.1 (mean, paper rule, alpha 0.5)",
                      "arcface m=0.5 rad s=64"),
                     ("cosface m=0.35 s=64 + center lambda=0.1 (mean, paper rule, alpha 0.5)", "cosface m=0.35 s=64")}
    assert set(_verdicts(findings, "separation_ratio").values()) == {"better"}
    assert set(_verdicts(findings, "test_accuracy").values()) == {"equivalent (within ±1 pts)"}


def test_the_report_opens_with_the_objective_findings_and_the_figure(objectives_run, tmp_path):
    html = build_report([objectives_run], tmp_path / "report.html", progress=False).read_text()
    first = html.index("Findings: every objective against softmax")
    assert first < html.index("Findings: center loss added to each objective")
    # each objective against itself without center loss is the lambda comparison: no lambda pooled over the heads
    assert "Findings: each lambda" not in html and "Findings per setting" not in html
    assert "Every objective: accuracy against compactness" in html


def test_the_report_command_takes_a_head_as_the_reference(objectives_run, tmp_path):
    from click.testing import CliRunner

    from ablate.cli import main

    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(objectives_run), "--reference", "head=arcface", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.index("Findings: every objective against arcface m=0.5 rad s=64") < html.index("Summary over seeds")


# --- ranked against the best, failures counted ------------------------------------------------------------

def test_objectives_are_ranked_by_the_registry_metric_and_each_tested_directly_against_the_best(objectives_run):
    table = ranking(load_runs([objectives_run])[0])
    assert table.metric is get_metric(RANKING_METRIC) and table.metric.geometry == "cosine"  # Musgrave et al.
    best = table.standings[0]
    assert best.rank == 1 and best.objective.startswith("arcface") and best.row is None
    assert [s.rank for s in table.standings] == list(range(1, len(OBJECTIVES) + 1))
    means = [s.mean for s in table.standings]
    assert means == sorted(means, reverse=True)
    verdicts = {s.objective: table.difference(s).verdict for s in table.standings[1:]}
    other_arcface = next(name for name in verdicts if name.startswith("arcface"))
    assert verdicts.pop(other_arcface) not in ("better", "worse")  # MAP@R is the same with center loss
    assert set(verdicts.values()) == {"worse"}  # softmax and cosface, with and without center loss: -5 points
    # every comparison paired on the 6 seeds, simultaneous over the table's 5 tests (no failures: no failure tests)
    assert all(s.row.seeds == "6 paired" for s in table.standings[1:]) and table.family_size == table.tests() == 5
    assert {table.difference(s).family_size for s in table.standings[1:]} == {5}


def test_switching_the_ranking_metric_is_one_line(objectives_run, monkeypatch):
    import ablate.analysis.objective_findings as module

    monkeypatch.setattr(module, "RANKING_METRIC", "separation_ratio")
    table = ranking(load_runs([objectives_run])[0])
    assert table.metric.label == "separation ratio" and "+ center" in table.standings[0].objective


def _failing_run(run_dir):
    """softmax: 10 seeds that train (MAP@R 0.85); arcface: 4 diverged, 2 did not learn (one of them planted with a
    MAP@R far above the rest), 4 that train (MAP@R 0.80)."""
    rng, records = np.random.default_rng(1), []
    for head in ("softmax", "arcface"):
        for seed in range(10):
            record = _record(head, 0.0, seed, rng)
            base = 0.85 if head == "softmax" else 0.80
            value = base + 0.003 * rng.standard_normal()
            record.update(map_at_r=value, cosine_map_at_r=value, test_accuracy=0.9)
            if head == "arcface" and seed < 4:
                record.update(dict.fromkeys(("test_accuracy", "separation_ratio", "map_at_r", "cosine_map_at_r")),
                              status="diverged",
                              diverged_epoch=1)
            elif head == "arcface" and seed < 6:
                # below chance + 0.2 x (1 - chance) = 40% of 4
                record.update(test_accuracy=0.20, map_at_r=0.99, cosine_map_at_r=0.99)
            records.append(record)
    return _write_run(run_dir, records)


def test_failures_are_counted_with_exact_intervals_and_compared_with_the_best_by_an_exact_test(tmp_path):
    table = ranking(load_runs([_failing_run(tmp_path / "run")])[0])
    best, arcface = table.standings
    assert best.objective == "softmax" and best.diverged.text() == "0/10 (0%, 95% CI 0%-31%)"
    assert (arcface.diverged.k, arcface.diverged.n, arcface.did_not_learn.k) == (4, 10, 2)
    low, high = stats.binomtest(4, 10).proportion_ci(method="exact")
    assert arcface.diverged.interval == pytest.approx((low, high))
    assert arcface.diverged.text() == f"4/10 (40%, 95% CI {100 * low:.2g}%-{100 * high:.2g}%)"
    p = stats.boschloo_exact([[6, 4], [0, 10]]).pvalue
    assert arcface.failures_p == pytest.approx(p) and table.family_size == 2  # the MAP@R test and the failure test
    assert table.failures_p(arcface) == pytest.approx(min(1, 2 * p))
    assert table.failures_verdict(arcface) == "fails more often than the best"
    assert ranking_frame(table)["in words"].iloc[1].endswith(f"; fails more often than the best (did not train: 6/10, "
                                                            f"p_adj = {min(1, 2 * p):.2g})")


def test_a_planted_cell_below_chance_is_kept_out_of_the_comparison_and_the_mean(tmp_path):
    table = ranking(load_runs([_failing_run(tmp_path / "run")])[0])
    arcface = table.standings[1]
    assert arcface.mean == pytest.approx(0.80, abs=0.005)  # the planted 0.99 would lift a mean of 5 seeds to 0.84
    assert arcface.row.seeds == "4 paired; dropped: 4 diverged for this objective, 2 did not learn for this objective"
    difference = table.difference(arcface)
    assert difference.n_a == 4 and difference.estimate == pytest.approx(-5.0, abs=0.6) and difference.verdict == "worse"


def test_the_report_opens_with_the_family_and_the_ranking_then_the_exploratory_tables(objectives_run, tmp_path):
    html = build_report([objectives_run], tmp_path / "report.html", progress=False).read_text()
    family = html.index("One family: This run&#39;s confirmatory comparisons are each objective against the best")
    first = html.index("Findings: every objective against the best, ranked by MAP@R")
    assert family < first < html.index("Findings: every objective against softmax (exploratory)")
    assert first < html.index("Findings: center loss added to each objective against that objective alone")
    assert "did not learn" in html and "failures against the best" in html


def test_chance_is_one_over_the_classes_a_cell_trained_on_and_unknown_chance_judges_nothing():
    import pandas as pd

    from ablate.analysis.outcomes import DID_NOT_LEARN, TRAINED, chance_accuracy, learning_threshold, outcomes

    cells = pd.DataFrame({"dataset": ["digits", "synthetic", "digits", "elsewhere"], "num_classes": [10, 4, 10, 10],
                          "holdout_classes": [0, 0, 2, 0], "status": "ok", "test_accuracy": [0.27, 0.41, 0.31, 0.05]})
    assert chance_accuracy(cells).iloc[:3].tolist() == pytest.approx([0.1, 0.25, 0.125])
    assert np.isnan(chance_accuracy(cells).iloc[3])  # a dataset not registered here: not judged
    assert learning_threshold(0.25) == pytest.approx(0.4)
    assert outcomes(cells).tolist() == [DID_NOT_LEARN, TRAINED, TRAINED, TRAINED]  # 28%, 40%, 30% to beat
