"""The findings across objectives (ablate.analysis.objective_findings) on a generated run folder whose objectives
differ by construction: ArcFace more accurate than softmax, center loss more compact, CosFace like softmax."""

import ast
import inspect
import json

import numpy as np
import pytest
from report_fixture_runs import PROVENANCE

from ablate.analysis.objective_findings import center_findings, objective_findings, reference_objective
from ablate.grid.spec import config_columns
from ablate.report.build import build_report, load_runs
from ablate.runs.cells import CellStore
from ablate.runs.folder import claim, write_tables
from ablate.runs.schema import cell_id
from ablate.runs.tables import grid_tables
from ablate.train import CellConfig

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
            "verification_auc": accuracy, "tar_at_far_1e3": accuracy - 0.2, "unit_intra_class_distance": spread / 3,
            "status": "ok", "diverged_epoch": None, "resolved_device": "cpu"}


def _objectives_run(run_dir, options=PAPER_VALUES):
    claim(run_dir, "grid", config_columns=config_columns())
    store, rng = CellStore(run_dir), np.random.default_rng(0)
    records = [_record(head, lam, seed, rng, options) for head, lam in OBJECTIVES for seed in SEEDS]
    for record in records:
        store.save(record["cell_id"], record, None)
    (run_dir / "provenance.json").write_text(json.dumps(PROVENANCE))
    write_tables(run_dir, grid_tables(records, config_columns()))
    return run_dir


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
    assert accuracy["cosface m=0.35 s=64"] == "no detectable difference"
    center = "softmax + center lambda=0.1 (mean, paper rule, alpha 0.5)"
    assert _verdicts(findings, "separation_ratio")[center] == "better"
    assert len(findings.rows) == len(OBJECTIVES) - 1 and all(r.seeds == "6 ok" for r in findings.rows)


def test_the_reference_objective_is_chosen_by_head(objectives_run):
    run = load_runs([objectives_run], reference=("head", "arcface"))[0]
    findings = objective_findings(run)
    assert {r.against for r in findings.rows} == {"arcface m=0.5 rad s=64"}
    assert _verdicts(findings, "test_accuracy")["softmax"] == "worse"


@pytest.mark.xfail(strict=True, reason="reference_objective names the head at its papers' values (s = 64, no "
                   "embedding norm), not at the recipe its cells trained with (s from the class count, ArcFace's "
                   "batchnorm): ablate.analysis.objective_findings should take the reference from the run's cells")
def test_the_reference_head_at_its_recipe_is_found(tmp_path):
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
    assert set(_verdicts(findings, "test_accuracy").values()) == {"no detectable difference"}


def test_the_report_opens_with_the_objective_findings_and_the_figure(objectives_run, tmp_path):
    html = build_report([objectives_run], tmp_path / "report.html", progress=False).read_text()
    first = html.index("Findings: every objective against softmax")
    assert first < html.index("Findings: center loss added to each objective")
    assert first < html.index("Findings: each lambda")  # the lambda findings follow
    assert "Every objective: accuracy against compactness" in html


def test_the_report_command_takes_a_head_as_the_reference(objectives_run, tmp_path):
    from click.testing import CliRunner

    from ablate.cli import main

    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(objectives_run), "--reference", "head=arcface", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.index("Findings: every objective against arcface m=0.5 rad s=64") < html.index("Summary over seeds")
