"""Extension points: a variant and a center-update rule defined in this file alone (a function and one registration
each) go everywhere a built-in goes: they compute what they define, are listed and are choices of the command line,
the variant is timed with its byte model, a grid trains both (the variant joins `variant = "*"` with no edit of the
grid) and the report shows them. The grids run in this process (SerialExecutor): worker processes would not see these
registrations. Installed packages add variants through the "ablate.variants" entry points, and a broken one is named
without breaking the built-ins."""

import math
import os
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from ablate.bench.runner import measure_point
from ablate.bench.suites import Point, resolve_suite
from ablate.cli import main
from ablate.grid import expand, load_spec, run_grid
from ablate.grid.executors import SerialExecutor
from ablate.grid.spec import GridSpec
from ablate.loss import (
    PLUGIN_ERRORS,
    RULES,
    VARIANTS,
    Rule,
    Variant,
    available_variants,
    center_loss,
    convention_scale,
    get_variant,
    register_variant,
    update_centers,
)
from ablate.loss.reference import reference_grads, reference_loss, reference_update
from ablate.traffic import LABEL_BYTES, by_mode, element_sizes, total
from tests.support import ROOT
from tests.support import registered as registrations

# float32 against the float64 reference on O(1) values: 1e-5 covers the rounding of one (B, D) sum.
RTOL = 1e-5
CPU = torch.device("cpu")


def einsum_center_loss(features, labels, centers, convention):
    """features (B, D), labels (B,), centers (C, D) -> 0-dim loss, by one einsum over the rows' differences."""
    diff = (features - centers.index_select(0, labels)).to(torch.promote_types(features.dtype, torch.float32))  # (B, D)
    return torch.einsum("bd,bd->", diff, diff) * convention_scale(convention, features.shape[0])


def einsum_bytes(mode, batch, classes, dim, dtype):
    """One read and one write per operand of each op above, as ablate.traffic counts."""
    B, D = batch, dim
    e, a = element_sizes(dtype)
    forward = [(B * LABEL_BYTES + B * D * e, B * D * e), (2 * B * D * e, B * D * e), (2 * B * D * a, a)]
    backward = [(B * D * a + a, B * D * a)]  # einsum backward: 2 * grad * diff
    return total(by_mode(mode, forward, backward))


def halved_reference(old, members, alpha, scale):
    """Eq. 4 at half its step, from the definition: c_j -= alpha * sum_i (c_j - x_i) / (2 (1 + n_j))."""
    return old - alpha * sum(old - x for x in members) / (2 * (1 + len(members)))


EINSUM = Variant("einsum", einsum_center_loss, "O(B*D)", "O(B*D) temporaries", einsum_bytes)
HALVED = Rule("halved", "c_j -= alpha * delta_j / (2 (1 + n_j))", "Eq. 4 at half the step",
              step=lambda alpha, counts, scale: alpha / (2.0 * (1.0 + counts)), reference=halved_reference,
              max_alpha=1.0)


@pytest.fixture
def registered(restored_registry):
    """EINSUM registered as a user registers a variant (register_variant; restored_registry removes it), HALVED by
    its registry, for the test."""
    register_variant(EINSUM)
    with registrations((RULES, HALVED)):
        yield


@pytest.fixture
def restored_registry():
    """The variants and the plugin errors as they were before the test."""
    names, errors = VARIANTS.names(), dict(PLUGIN_ERRORS)
    yield
    for name in VARIANTS.names():
        if name not in names:
            VARIANTS.unregister(name)
    PLUGIN_ERRORS.clear()
    PLUGIN_ERRORS.update(errors)


def test_the_new_variant_and_rule_compute_what_they_define(registered):
    x, y = torch.randn(7, 5, dtype=torch.float64), torch.tensor([0, 2, 2, 1, 0, 3, 2])
    c = torch.randn(4, 5, dtype=torch.float64)
    assert center_loss(x, y, c, variant="einsum").item() == pytest.approx(reference_loss(x, y, c).item(), rel=1e-12)
    loss = center_loss(x.float(), y, c.float(), variant="einsum")
    assert loss.item() == pytest.approx(reference_loss(x, y, c).item(), rel=RTOL)
    expected = reference_update(c, x, y, alpha=0.5, rule="halved")
    update_centers(c, x, y, alpha=0.5, rule="halved")
    torch.testing.assert_close(c, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"alpha for rule 'halved' must lie in \[0, 1\], got 2"):
        update_centers(c, x, y, alpha=2.0, rule="halved")


def test_they_are_listed_and_choices_of_train_and_grid(registered, tmp_path):
    runner = CliRunner()
    listing = runner.invoke(main, ["variants"])
    assert any(line.split()[:2] == ["einsum", "available"] for line in listing.output.splitlines()), listing.output
    helped = runner.invoke(main, ["train", "--help"], terminal_width=1000)
    assert helped.exit_code == 0, helped.output
    variant_line = next(line for line in helped.output.splitlines() if line.strip().startswith("--variant"))
    rule_line = next(line for line in helped.output.splitlines() if line.strip().startswith("--rule"))
    assert "einsum" in variant_line and "halved" in rule_line
    refused = runner.invoke(main, ["train", "--rule", "nope"])
    assert refused.exit_code == 2 and "'halved'" in refused.output
    refused = runner.invoke(main, ["grid", "default", "--set", "rule=nope", "--out", str(tmp_path / "grid")])
    assert refused.exit_code == 1 and "unknown rule 'nope'; expected one of paper, sgd, ema, halved" in refused.output
    refused = runner.invoke(main, ["grid", "default", "--set", "variant=nope", "--out", str(tmp_path / "grid")])
    assert refused.exit_code == 1 and "einsum" in refused.output


def test_a_grid_and_a_bench_run_the_new_ones_and_the_report_shows_them(registered, tmp_path):
    assert "einsum" in {c["variant"] for c in expand(load_spec("variants"))}  # a bundled grid, not edited
    spec = GridSpec(axes={"dataset": ["digits"], "epochs": [1], "device": ["cpu"], "variant": ["*"],
                          "rule": ["paper", "halved"], "lambda": [0.1], "alpha": [0.5]})
    cells = expand(spec)
    assert {c["variant"] for c in cells} == set(available_variants("cpu")) and "einsum" in available_variants("cpu")
    # Train the new variant and the default under both rules (every variant would compile `compiled`: seconds).
    spec = spec.with_overrides({"variant": ["gather", "einsum"]})
    outcome = run_grid(spec, tmp_path / "grid", SerialExecutor(), quiet=True)
    assert outcome.status_counts() == {"ok": 4}
    results = pd.read_parquet(tmp_path / "grid" / "results.parquet")
    assert set(zip(results["variant"], results["rule"])) == {(v, r) for v in ("gather", "einsum")
                                                             for r in ("paper", "halved")}

    bench = tmp_path / "bench"
    result = CliRunner().invoke(main, ["bench", "--suite", "quick", "--device", "cpu", "--variants", "naive,einsum",
                                       "--mode", "forward,full", "--batch", "16", "--classes", "5,50", "--dim", "4",
                                       "--out", str(bench)])
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(bench / "bench.parquet").query("variant == 'einsum'")
    assert len(rows) == 4 and (rows["time_ms_p50"] > 0).all()
    assert rows["bytes"].tolist() == [einsum_bytes(r.mode, r.batch, r.classes, r.dim, torch.float32)
                                      for r in rows.itertuples()]
    assert "einsum" in set(pd.read_parquet(bench / "numerics.parquet")["variant"])

    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(tmp_path / "grid"), str(bench), "--out", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert "Variant agreement" in html and "Speedup against naive" in html
    tables = table_cells(html)
    summary = [cells for cells in tables if {"variant", "rule"} <= set(cells)]  # rows labelled by variant and rule
    assert summary and {"gather", "einsum", "paper", "halved"} <= set(summary[0])
    agreement = [cells for cells in tables if "max diff" in cells]  # each variant's column beside gather's
    assert agreement and {"einsum", "halved"} <= set(agreement[0])


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


PLUGIN_MODULE = '''
"""A third-party center loss, written the way a user would: no edit to ablate."""
import torch

from ablate.loss import Variant


def sum_loss(features, labels, centers):
    """features (B, D), labels (B,), centers (C, D) -> sum_i ||x_i - c_{y_i}||^2 / B (the "mean" convention)."""
    diff = features - centers[labels]
    return diff.float().pow(2).sum() / features.shape[0]


def _driver_query(device):
    raise OSError("driver query failed")


FLAKY = Variant("flaky", lambda x, y, c, convention: sum_loss(x, y, c), "O(B*D)", "O(B*D)", available=_driver_query)
'''
ENTRY_POINTS = """
[ablate.variants]
plugged = ablate_demo_plugin:sum_loss
exploding = ablate_demo_broken:VARIANT
notaloss = ablate_demo_plugin:__doc__
flaky = ablate_demo_plugin:FLAKY
"""


@pytest.fixture
def plugin_path(tmp_path):
    """A folder that, on sys.path, is an installed distribution declaring four "ablate.variants" entry points:
    a loss function, a module that raises on import, an object that is not a variant, and a variant whose
    availability check raises."""
    root = tmp_path / "site"
    (root / "ablate_demo_plugin-0.1.dist-info").mkdir(parents=True)
    (root / "ablate_demo_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ablate-demo-plugin\nVersion: 0.1\n")
    (root / "ablate_demo_plugin-0.1.dist-info" / "entry_points.txt").write_text(ENTRY_POINTS)
    (root / "ablate_demo_plugin.py").write_text(PLUGIN_MODULE)
    (root / "ablate_demo_broken.py").write_text('raise RuntimeError("this plugin is broken on purpose")\n')
    return root


@pytest.fixture
def installed_plugin(plugin_path, restored_registry, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_path))
    monkeypatch.setattr(VARIANTS, "_plugins_loaded", False)  # load the entry points again, this one's included
    yield plugin_path
    for module in ("ablate_demo_plugin", "ablate_demo_broken"):
        sys.modules.pop(module, None)


def test_an_installed_plugin_is_listed_and_a_broken_one_is_named_with_its_error(installed_plugin):
    result = CliRunner().invoke(main, ["variants"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert lines["plugged"].split()[1] == "available" and "ablate-demo-plugin" in lines["plugged"]
    assert "broken" in lines["exploding"] and "RuntimeError: this plugin is broken on purpose" in lines["exploding"]
    assert "broken" in lines["notaloss"] and "TypeError: expected an ablate.loss.Variant" in lines["notaloss"]
    flaky = [line for line in result.output.splitlines() if line.startswith("flaky")]
    assert flaky[0].split()[1] == "unavailable" and "OSError: driver query failed" in flaky[1]
    assert {"naive", "gather", "compiled"} <= set(lines)  # the built-ins are untouched


def test_a_plugin_function_is_wrapped_for_every_convention(installed_plugin):
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    y, c = torch.tensor([1, 0, 1, 2, 2, 1]), torch.randn(3, 3, dtype=torch.float64)
    for convention in ("mean", "half_mean", "half_sum"):
        loss = center_loss(x, y, c, variant="plugged", convention=convention)
        assert loss.item() == pytest.approx(reference_loss(x, y, c, convention).item(), rel=RTOL), convention
    (grad,) = torch.autograd.grad(center_loss(x, y, c, variant="plugged"), x)
    torch.testing.assert_close(grad, reference_grads(x, y, c)[0], rtol=RTOL, atol=0)
    assert get_variant("plugged").bytes_moved("full", 6, 3, 3, torch.float32) is None  # no byte model declared


def test_a_plugin_is_timed_beside_the_built_ins(installed_plugin):
    suite = replace(resolve_suite("quick", CPU, modes=("full",), batch=(16,), classes=(5,), dim=(4,)),
                    numerics=None, train_step=None)
    naive, plugged = measure_point(Point("full", 16, 5, 4, "float32"), ("naive", "plugged"), CPU, suite, math.nan)
    assert naive["time_ms_p50"] > 0 and plugged["time_ms_p50"] > 0 and plugged["note"] == ""
    assert math.isnan(plugged["bytes"]) and naive["bytes"] > 0  # the plugin declared no byte model


@pytest.mark.slow  # 22 s: worker processes and a report; the fast lane keeps the in-process plugin tests
def test_a_plugin_runs_in_grid_worker_processes_and_in_the_report(plugin_path, tmp_path):
    """In fresh processes, as a user runs it: the grid's worker processes load the plugin themselves."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), str(ROOT)])}

    def ablate(*args):
        out = subprocess.run([sys.executable, "-m", "ablate", *args], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=600)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    ablate("grid", "default", "--set", "variant=plugged,gather", "--set", "lambda=0.1", "--set", "alpha=0.5",
           "--set", "rule=paper", "--set", "seed=0", "--set", "epochs=1", "--workers", "2", "--quiet",
           "--out", "grid")
    results = pd.read_parquet(tmp_path / "grid" / "results.parquet")
    assert (results["status"] == "ok").all() and set(results["variant"]) == {"plugged", "gather"}
    ablate("report", "grid", "--out", "report.html")
    assert (tmp_path / "report.html").read_text().count("plugged") >= 2
