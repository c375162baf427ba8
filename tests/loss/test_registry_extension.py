"""A variant and a center-update rule defined in this file alone (a function and one registration each) reach the
command line's choices, a grid (a new variant joins `variant = "*"` with no edit of the grid) and the report built
from that grid. The grids run in this process (SerialExecutor): worker processes would not see these registrations.
"""

from html.parser import HTMLParser

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from ablate.cli import main
from ablate.grid import expand, load_spec, run_grid
from ablate.grid.executors import SerialExecutor
from ablate.grid.spec import GridSpec
from ablate.loss import (
    RULES,
    VARIANTS,
    Rule,
    Variant,
    available_variants,
    center_loss,
    convention_scale,
    update_centers,
)
from ablate.loss.reference import reference_loss, reference_update
from tests.support import registered as registrations


def rowwise_center_loss(features, labels, centers, convention):
    """features (B, D), labels (B,), centers (C, D) -> 0-dim loss: each row's squared distance, then their sum."""
    diff = (features - centers[labels]).to(torch.promote_types(features.dtype, torch.float32))  # (B, D)
    return (diff * diff).sum(dim=1).sum() * convention_scale(convention, features.shape[0])


def halved_reference(old, members, alpha, scale):
    """Eq. 4 at half its step, from the definition: c_j -= alpha * sum_i (c_j - x_i) / (2 (1 + n_j))."""
    return old - alpha * sum(old - x for x in members) / (2 * (1 + len(members)))


ROWWISE = Variant("rowwise", rowwise_center_loss, "O(B*D)", "O(B*D) temporaries")
HALVED = Rule("halved", "c_j -= alpha * delta_j / (2 (1 + n_j))", "Eq. 4 at half the step",
              step=lambda alpha, counts, scale: alpha / (2.0 * (1.0 + counts)), reference=halved_reference,
              max_alpha=1.0)


@pytest.fixture
def registered():
    with registrations((VARIANTS, ROWWISE), (RULES, HALVED)):
        yield


def test_the_new_variant_and_rule_compute_what_they_define(registered):
    x, y = torch.randn(7, 5, dtype=torch.float64), torch.tensor([0, 2, 2, 1, 0, 3, 2])
    c = torch.randn(4, 5, dtype=torch.float64)
    assert center_loss(x, y, c, variant="rowwise").item() == pytest.approx(reference_loss(x, y, c).item(), rel=1e-12)
    expected = reference_update(c, x, y, alpha=0.5, rule="halved")
    update_centers(c, x, y, alpha=0.5, rule="halved")
    torch.testing.assert_close(c, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"alpha for rule 'halved' must lie in \[0, 1\], got 2"):
        update_centers(c, x, y, alpha=2.0, rule="halved")


def test_they_are_choices_of_train_and_grid(registered, tmp_path):
    runner = CliRunner()
    helped = runner.invoke(main, ["train", "--help"], terminal_width=1000)
    assert helped.exit_code == 0, helped.output
    variant_line = next(line for line in helped.output.splitlines() if line.strip().startswith("--variant"))
    rule_line = next(line for line in helped.output.splitlines() if line.strip().startswith("--rule"))
    assert "rowwise" in variant_line and "halved" in rule_line
    refused = runner.invoke(main, ["train", "--rule", "nope"])
    assert refused.exit_code == 2 and "'halved'" in refused.output
    refused = runner.invoke(main, ["grid", "default", "--set", "rule=nope", "--out", str(tmp_path / "grid")])
    assert refused.exit_code == 1 and "unknown rule 'nope'; expected one of paper, sgd, ema, halved" in refused.output
    refused = runner.invoke(main, ["grid", "default", "--set", "variant=nope", "--out", str(tmp_path / "grid")])
    assert refused.exit_code == 1 and "rowwise" in refused.output


def test_a_grid_of_every_variant_runs_the_new_one_and_the_report_shows_both(registered, tmp_path):
    assert "rowwise" in {c["variant"] for c in expand(load_spec("variants"))}  # a bundled grid, not edited
    spec = GridSpec(axes={"dataset": ["digits"], "epochs": [1], "device": ["cpu"], "variant": ["*"],
                          "rule": ["paper", "halved"], "lambda": [0.1], "alpha": [0.5]})
    cells = expand(spec)
    assert {c["variant"] for c in cells} == set(available_variants("cpu")) and "rowwise" in available_variants("cpu")
    # Train the new variant and the default under both rules (every variant would compile `compiled`: seconds).
    spec = spec.with_overrides({"variant": ["gather", "rowwise"]})
    outcome = run_grid(spec, tmp_path / "grid", SerialExecutor(), quiet=True)
    assert outcome.status_counts() == {"ok": 4}
    results = pd.read_parquet(tmp_path / "grid" / "results.parquet")
    assert set(zip(results["variant"], results["rule"])) == {(v, r) for v in ("gather", "rowwise")
                                                             for r in ("paper", "halved")}

    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(tmp_path / "grid"), "--out", str(page)])
    assert result.exit_code == 0, result.output
    tables = table_cells(page.read_text())
    summary = [cells for cells in tables if {"variant", "rule"} <= set(cells)]  # rows labelled by variant and rule
    assert summary and {"gather", "rowwise", "paper", "halved"} <= set(summary[0])
    agreement = [cells for cells in tables if "max diff" in cells]  # each variant's column beside gather's
    assert agreement and {"rowwise", "halved"} <= set(agreement[0])


def table_cells(html: str) -> list:
    """The text of every header and data cell, per <table> of the page."""

    class Cells(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.cell = [], None

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables.append([])
            elif tag in ("th", "td"):
                self.cell = []

        def handle_endtag(self, tag):
            if tag in ("th", "td") and self.cell is not None:
                self.tables[-1].append("".join(self.cell).strip())
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

    parser = Cells()
    parser.feed(html)
    return parser.tables
