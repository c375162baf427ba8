"""Extension points: a variant defined in this file alone, one registry entry, goes everywhere a built-in goes
(listed, timed with its byte model, trained in a grid cell, shown in the report); installed packages add variants
through the "ablate.variants" entry points, and a broken one is named without breaking the built-ins."""

import math
import os
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from ablate.bench.runner import measure_point
from ablate.bench.suites import Point, resolve_suite
from ablate.cli import main
from ablate.loss import PLUGIN_ERRORS, VARIANTS, Variant, center_loss, convention_scale, get_variant, register_variant
from ablate.loss.reference import reference_grads, reference_loss
from ablate.traffic import LABEL_BYTES, by_mode, element_sizes, total
from tests.support import ROOT

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


EINSUM = Variant("einsum", einsum_center_loss, "O(B*D)", "O(B*D) temporaries", einsum_bytes)


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


def test_a_variant_defined_here_is_listed_timed_trained_and_reported(restored_registry, tmp_path):
    register_variant(EINSUM)
    x, y, c = torch.randn(7, 5, dtype=torch.float64), torch.tensor([0, 2, 2, 1, 0, 3, 2]), torch.randn(4, 5)
    loss = center_loss(x.float(), y, c, variant="einsum")
    assert loss.item() == pytest.approx(reference_loss(x, y, c).item(), rel=RTOL)

    listing = CliRunner().invoke(main, ["variants"])
    assert any(line.split()[:2] == ["einsum", "available"] for line in listing.output.splitlines()), listing.output

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

    grid = tmp_path / "grid"
    result = CliRunner().invoke(main, ["grid", "default", "--set", "variant=gather,einsum", "--set", "lambda=0.1",
                                       "--set", "alpha=0.5", "--set", "rule=paper", "--set", "seed=0",
                                       "--set", "epochs=1", "--quiet", "--out", str(grid)])
    assert result.exit_code == 0, result.output
    results = pd.read_parquet(grid / "results.parquet")
    assert results.set_index("variant")["status"].to_dict() == {"gather": "ok", "einsum": "ok"}

    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(grid), str(bench), "--out", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert "Variant agreement" in html and "Speedup against naive" in html and html.count("einsum") >= 3


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
