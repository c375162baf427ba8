"""The HTML report, built from small generated run folders: structure, self-containment, the numbers
behind its tables, the notes that replace missing pieces, the CLI and the atomic write."""

import base64
import io
import re
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from matplotlib.figure import Figure as MplFigure
from matplotlib.text import Text
from PIL import Image

from ablate.cli import main
from ablate.report import bench_figures, build_report, distributed_blocks, figures, grid_figures, sections
from ablate.report import objective_findings as objective_figures
from ablate.report.bench_figures import speedup_table, sweep_panels
from ablate.report.grid_figures import set_lambda_scale
from ablate.report.grid_tables import best_cells, summary_frames, variant_agreement
from ablate.runs.loading import load_run
from tests.support import ROOT
from tests.support.fixture_runs import make_bench_run, make_grid_run

VOID_ELEMENTS = {"meta", "img", "br", "hr", "link", "input", "col", "wbr", "source"}


class ReportParser(HTMLParser):
    """Parses the page, failing on any end tag that does not close the innermost open element."""

    def __init__(self):
        super().__init__()
        self.stack, self.tags, self.images, self.links, self.text = [], [], [], [], []
        self.headings = {"h2": [], "h3": []}
        self.notes, self._capture = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)
        if tag == "img":
            self.images.append(attrs)
        for name in ("src", "href", "action", "poster"):
            if name in attrs:
                self.links.append(attrs[name])
        if tag in self.headings or (tag == "p" and attrs.get("class") == "note"):
            self._capture = (tag if tag in self.headings else "note", [])

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()
        if self._capture and tag in ("h2", "h3", "p"):
            kind, parts = self._capture
            (self.notes if kind == "note" else self.headings[kind]).append("".join(parts).strip())
            self._capture = None

    def handle_data(self, data):
        if self._capture:
            self._capture[1].append(data)


def parse(html: str) -> ReportParser:
    parser = ReportParser()
    parser.feed(html)
    parser.close()
    assert parser.stack == [], f"unclosed elements: {parser.stack}"
    return parser


def decode_png(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    image = Image.open(io.BytesIO(base64.b64decode(src[len(prefix):], validate=True)))
    image.load()
    return image


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    """3 lambda x 2 alpha x 2 rules x 2 variants x 2 seeds; the first cell failed, the last diverged."""
    return make_grid_run(tmp_path_factory.mktemp("runs") / "grid", lambdas=(0.0, 0.003, 0.03),
                         variants=("gather", "naive"), failed_cells=1, diverged_cells=1)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    return make_bench_run(tmp_path_factory.mktemp("runs") / "bench")


@pytest.fixture(scope="module")
def report(grid_run, bench_run, tmp_path_factory):
    out = build_report([grid_run, bench_run], tmp_path_factory.mktemp("reports") / "full.html", progress=False)
    html = out.read_text()
    return html, parse(html)


def test_report_is_one_self_contained_page(report):
    html, page = report
    assert page.tags.count("html") == 1 and "script" not in page.tags
    assert not {"link", "iframe", "object", "embed"} & set(page.tags)
    # Every reference is an embedded image or an anchor on the page; nothing names a host.
    assert page.links and all(link.startswith(("data:image/png;base64,", "#")) for link in page.links)
    assert "http://" not in html and "https://" not in html and "url(" not in html and "@import" not in html


def test_report_holds_every_section_and_figure(report):
    _, page = report
    assert page.headings["h2"] == ["grid run grid", "bench run bench"]
    expected = {"Summary over seeds", "test accuracy over lambda x alpha", "separation ratio over lambda x alpha",
                "Metrics against lambda", "Features per lambda", "Training curves", "Variant agreement",
                "Time against classes C", "Time against batch B", "Speedup against naive over classes C",
                "Speedup against naive over batch B", "Numerical error", "Training step throughput"}
    assert expected <= set(page.headings["h3"])
    figures = [h for h in page.headings["h3"] if h in expected - {"Summary over seeds", "Variant agreement",
                                                                   "Numerical error", "Training step throughput"}]
    assert len(page.images) == len(figures) == 9
    for attrs in page.images:
        image = decode_png(attrs["src"])
        assert image.width > 200 and image.height > 100, attrs["alt"]
    assert any(n.startswith("Roof fraction left out: it is measured on CUDA only") for n in page.notes)
    assert "48 cells: 46 ok, 1 diverged, 1 failed." in page.notes
    assert any(n.startswith("naive in float16 did not run") for n in page.notes)
    assert any(n.startswith("compiled: 1 point not timed, e.g. skipped: needs about") for n in page.notes)


def _check_figures_have_data(monkeypatch):
    """Make every figure the report draws assert that each of its axes holds data (no empty axis)."""
    drawn = []

    def checked(fig: MplFigure) -> str:
        for ax in fig.axes:
            assert ax.has_data(), f"empty axes {ax.get_title()!r} in a figure"
        drawn.append(fig)
        return "data:image/png;base64,"

    for module in (grid_figures, bench_figures):
        monkeypatch.setattr(module, "to_data_uri", checked)
    return drawn


def test_no_figure_has_an_empty_axis(grid_run, bench_run, tmp_path, monkeypatch):
    cuda = make_bench_run(tmp_path / "cuda", device="cuda", variants=("naive", "gather", "fused"))
    drawn = _check_figures_have_data(monkeypatch)
    build_report([grid_run, bench_run, cuda], tmp_path / "r.html", progress=False)
    assert len(drawn) == 9 + 6  # the cuda run adds roof fraction over classes and over batch


def _figure_text(monkeypatch) -> tuple:
    """Make every figure the report draws record, as saved, the text of each tick label and other text it holds,
    and its log axes; returns (texts, log axes), filled as the report is built."""
    texts, log_axes = [], []

    def recorded(fig: MplFigure) -> str:
        uri = figures.to_data_uri(fig)  # drawn: the tick labels hold what the PNG shows
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                labels = [t.get_text() for t in axis.get_ticklabels(which="both")]
                texts.extend(labels)
                if axis.get_scale() in ("log", "symlog"):
                    log_axes.append(labels)
        texts.extend(t.get_text() for t in fig.findobj(Text))
        return uri

    for module in (grid_figures, bench_figures, objective_figures, distributed_blocks):
        monkeypatch.setattr(module, "to_data_uri", recorded)
    return texts, log_axes


def test_no_tick_label_is_drawn_as_literal_mathtext(grid_run, tmp_path, monkeypatch):
    """Before: the training curves' log axis printed `$\\mathdefault{10^{2}}$`, as did every bench figure (the report
    draws text unparsed, so that a "$" in a value from a run folder cannot break a figure)."""
    cuda = make_bench_run(tmp_path / "cuda", device="cuda", variants=("naive", "gather", "fused"))
    texts, log_axes = _figure_text(monkeypatch)
    build_report([grid_run, cuda], tmp_path / "r.html", progress=False)
    assert len(log_axes) > 10 and any("10" in label for labels in log_axes for label in labels)
    assert [t for t in texts if "$" in t or "mathdefault" in t] == []
    assert {"10⁻¹", "10⁰", "10¹"} <= {label for labels in log_axes for label in labels}


def test_the_tick_label_check_catches_matplotlibs_mathtext():
    with figures.report_style():
        fig = MplFigure()
        ax = fig.subplots()
        ax.plot([1, 1000], [1, 2])
        ax.set_xscale("log")
        fig.draw_without_rendering()
        assert any("\\mathdefault" in t.get_text() for t in ax.get_xticklabels())  # matplotlib's own labels
    assert figures.plain_text("$\\mathdefault{10^{-3}}$") == "10⁻³"
    assert figures.plain_text("$\\mathdefault{2\\times10^{1}}$") == "2×10¹"
    assert figures.plain_text("lambda = $x$") == "lambda = $x$"  # text that is no formatter's output is left as is


def test_missing_pieces_leave_notes_not_crashes(tmp_path, monkeypatch):
    """One lambda, one alpha, one seed, one variant, features of dimension 3, no bench run."""
    run = make_grid_run(tmp_path / "tiny", lambdas=(0.1,), alphas=(0.5,), rules=("paper",), seeds=(0,), feat_dim=3)
    drawn = _check_figures_have_data(monkeypatch)
    out = build_report([run], tmp_path / "tiny.html", progress=False)
    page = parse(out.read_text())
    notes = " | ".join(page.notes)
    assert "One seed per configuration: no 95% confidence intervals or bands." in notes
    assert "Heatmaps over lambda x alpha left out: they need two values of each; the run has 1 lambda and 1 alpha" \
        in notes
    assert "Metrics against lambda left out: the run has one lambda (0.1)." in notes
    assert "Variant agreement left out: the run has one variant (gather)." in notes
    assert [h for h in page.headings["h3"] if h in ("Features per lambda", "Training curves")] == \
        ["Features per lambda", "Training curves"]
    assert len(drawn) == 2
    assert "PCA to 2-D" in out.read_text()


@pytest.mark.parametrize("unfinished", ["failed_cells", "diverged_cells"])
def test_two_variants_with_no_ok_cell_leave_a_note(tmp_path, unfinished):
    run = make_grid_run(tmp_path / "bad", lambdas=(0.0, 0.1), alphas=(0.5,), rules=("paper",), seeds=(0,),
                        variants=("gather", "naive"), **{unfinished: 4})
    page = parse(build_report([run], tmp_path / "bad.html", progress=False).read_text())
    assert "Variant agreement left out: no cell finished under two variants." in page.notes


def test_one_epoch_and_no_features_leave_notes(tmp_path):
    run = make_grid_run(tmp_path / "short", lambdas=(0.0, 0.1), alphas=(0.5,), rules=("paper",), seeds=(0,),
                        epochs=1, features=False)
    page = parse(build_report([run], tmp_path / "short.html", progress=False).read_text())
    assert "Training curves left out: the cells trained for one epoch." in page.notes
    assert "Feature scatter left out: none of the 2 cells that finished ok saved its features (cells/<id>.npz)." \
        in page.notes
    assert "Metrics against lambda" in page.headings["h3"]


def test_bench_run_without_sweeps_or_side_tables_leaves_notes(tmp_path):
    run = make_bench_run(tmp_path / "point", classes=(1000,), batches=(256,), numerics=False, train_step=False)
    page = parse(build_report([run], tmp_path / "point.html", progress=False).read_text())
    assert page.images == []
    assert {"Timing figures left out: no size axis was swept over two or more values.",
            "Speedup figures left out: no size axis was swept over two or more values.",
            "Roof fraction left out: it is measured on CUDA only; this run's device is cpu.",
            "Numerics table left out: the run has no numerics.parquet.",
            "Training-step table left out: the run has no train_step.parquet."} <= set(page.notes)


def test_interrupted_grid_run_is_rebuilt_from_its_cells(tmp_path):
    run = make_grid_run(tmp_path / "cut", lambdas=(0.0, 0.03), alphas=(0.1, 0.5), rules=("paper",), seeds=(0, 1))
    for table in ("results.parquet", "results.csv", "summary.parquet", "summary.csv", "curves.parquet"):
        (run / table).unlink()
    grid = load_run(run)
    assert len(grid.results) == 8 and set(grid.summary["n_seeds"]) == {2}
    assert set(grid.curves["cell_id"]) == set(grid.results["cell_id"])
    page = parse(build_report([run], tmp_path / "cut.html", progress=False).read_text())
    assert {"Summary over seeds", "Metrics against lambda", "Training curves"} <= set(page.headings["h3"])


def test_summary_marks_the_best_mean_of_each_metric(grid_run):
    run = load_run(grid_run)
    text, means, fixed = summary_frames(run)
    assert len(text) == len(run.summary) == 3 * 2 * 2 * 2
    assert fixed["dataset"] == "synthetic" and "lambda" not in fixed
    best = best_cells(means, text["seeds"])
    ok = run.results[run.results["status"] == "ok"]
    keys = list(means.index.names)
    assert sorted(keys) == ["alpha", "lambda", "rule", "variant"]
    # Recomputed from the cells: among configurations with both seeds, the highest mean accuracy and the
    # highest training rate.
    groups = ok.groupby(keys)[["test_accuracy", "train_samples_per_s"]]
    by_config = groups.mean()[groups.size() == 2]
    assert best.index[best["test accuracy"]].tolist() == [by_config["test_accuracy"].idxmax()]
    assert best.index[best["train samples/s"]].tolist() == [by_config["train_samples_per_s"].idxmax()]
    # A seeds column and unranked metrics (raw distances shrink with the feature scale) are never marked.
    assert "seeds" not in best.columns and not best["intra-class distance"].any()


def test_a_single_lucky_seed_is_not_marked_best():
    index = pd.Index(["one seed", "three seeds a", "three seeds b"], name="configuration")
    means = pd.DataFrame({"test accuracy": [0.99, 0.95, 0.97], "train time (s)": [0.1, 0.3, 0.2]}, index=index)
    best = best_cells(means, [1, 3, 3])
    assert best["test accuracy"].tolist() == [False, False, True]
    assert best["train time (s)"].tolist() == [False, False, True]  # lower is better


def test_variant_agreement_matches_the_cells(grid_run):
    run = load_run(grid_run)
    per_metric, per_cell = variant_agreement(run)
    ok = run.results[run.results["status"] == "ok"]
    gather = ok[ok["variant"] == "gather"].set_index(["lambda", "alpha", "rule", "seed"])["test_accuracy"]
    naive = ok[ok["variant"] == "naive"].set_index(["lambda", "alpha", "rule", "seed"])["test_accuracy"]
    both = gather.index.intersection(naive.index)
    differences = (gather[both] - naive[both]).abs()
    row = per_metric.set_index("metric").loc["test accuracy"]
    assert row["cells compared"] == len(both) == 3 * 2 * 2 * 2 - 2  # the failed and the diverged cell have no partner
    assert row["max difference"] == pytest.approx(differences.max(), rel=1e-12)
    assert row["mean difference"] == pytest.approx(differences.mean(), rel=1e-12)
    assert len(per_cell) == len(both)


def test_speedup_is_naive_time_over_variant_time(bench_run):
    bench = load_run(bench_run).bench
    speedups = speedup_table(bench)
    assert set(speedups["variant"]) == {"gather", "compiled"}
    timed = bench[bench["time_ms_p50"].notna()]
    for _, row in speedups.iterrows():
        at = (timed["mode"] == row["mode"]) & (timed["batch"] == row["batch"]) & (timed["classes"] == row["classes"])
        naive_ms = timed.loc[at & (timed["variant"] == "naive"), "time_ms_p50"].item()
        assert row["speedup"] == pytest.approx(naive_ms / row["time_ms_p50"], rel=1e-12)


def test_sweep_panels_follow_the_swept_axis(bench_run):
    timed = load_run(bench_run).bench.dropna(subset=["time_ms_p50"])
    by_classes = sweep_panels(timed, "classes")
    assert [title.split("\n")[0] for title, _ in by_classes] == ["forward, float32", "full, float32"]
    for _, frame in by_classes:
        assert set(frame["batch"]) == {256} and frame["classes"].nunique() == 4
    by_batch = sweep_panels(timed, "batch")
    assert len(by_batch) == 1 and set(by_batch[0][1]["classes"]) == {1000}
    assert sweep_panels(timed, "dim") == []


@pytest.mark.parametrize("lambdas, scale", [((0.0, 0.001, 0.01, 0.1), "symlog"), ((0.001, 0.1), "log"),
                                            ((0.0, 0.5, 1.0), "linear")])
def test_lambda_axis_shows_zero_and_spreads_decades(lambdas, scale):
    ax = MplFigure().subplots()
    set_lambda_scale(ax, list(lambdas))
    assert ax.get_xscale() == scale
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{v:g}" for v in lambdas]


def test_cli_writes_the_report_and_names_bad_input(tmp_path):
    runner = CliRunner()
    grid_run = make_grid_run(tmp_path / "one", lambdas=(0.1,), alphas=(0.5,), rules=("paper",), seeds=(0,), epochs=2)
    out = tmp_path / "cli.html"
    ok = runner.invoke(main, ["report", str(grid_run), "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    assert f"wrote {out}" in ok.output and out.stat().st_size > 10_000

    empty = tmp_path / "empty"
    empty.mkdir()
    bad = runner.invoke(main, ["report", str(empty), "--out", str(out)])
    assert bad.exit_code == 2
    assert "not a run folder: expected cells/ or results.parquet" in bad.output and "bench.parquet" in bad.output

    missing = runner.invoke(main, ["report", str(tmp_path / "nowhere"), "--out", str(out)])
    assert missing.exit_code == 2 and "does not exist" in missing.output

    wrong_suffix = runner.invoke(main, ["report", str(grid_run), "--out", str(tmp_path / "r.txt")])
    assert wrong_suffix.exit_code == 2 and "expected a file name ending in .html" in wrong_suffix.output


def test_a_failed_build_leaves_the_previous_report_whole(grid_run, tmp_path, monkeypatch):
    out = tmp_path / "r.html"
    out.write_text("previous report")

    def broken(run):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(sections, "GRID_STEPS", (*sections.GRID_STEPS[:2], broken))
    with pytest.raises(RuntimeError, match="figure failed"):
        build_report([grid_run], out, progress=False)
    assert out.read_text() == "previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temp file left behind


def test_failed_cells_are_listed_with_their_error(report):
    html, _ = report
    failed = re.search(r"<summary>Failed and diverged cells</summary>(.*?)</details>", html, re.S).group(1)
    assert "ValueError: no such data folder" in failed and "diverged" in failed


def test_numerics_table_keeps_loss_then_gradients(bench_run):
    from ablate.report.bench_tables import numerics_blocks

    table = numerics_blocks(load_run(bench_run))[0]
    headers = re.findall(r'<th [^>]*class="col_heading level0[^"]*"[^>]*>([^<]+)</th>', table.html)
    assert headers == ["loss", "grad features", "grad centers"]
    assert "did not run" in table.html


def test_summary_frames_show_mean_and_ci(grid_run):
    run = load_run(grid_run)
    text, means, _ = summary_frames(run)
    summary = run.summary.set_index(list(text.index.names))

    def key(**values):
        return tuple(values[name] for name in text.index.names)

    one_seed = key(variant="gather", rule="paper", alpha=0.1, **{"lambda": 0.0})  # the failed cell's partner
    key = key(variant="naive", rule="sgd", alpha=0.5, **{"lambda": 0.003})
    mean, ci = summary.loc[key, "test_accuracy_mean"], summary.loc[key, "test_accuracy_ci95"]
    # two seeds: an interval past accuracy 1 is no number (ablate.metrics.Metric.value_range)
    assert mean + ci > 1 and text.loc[key, "test accuracy"] == f"{mean:.4g} ± too few seeds (2)"
    mean, ci = summary.loc[key, "intra_class_distance_mean"], summary.loc[key, "intra_class_distance_ci95"]
    assert mean - ci > 0 and text.loc[key, "intra-class distance"] == f"{mean:.4g} ± {ci:.2g}"
    assert means.loc[key, "test accuracy"] == summary.loc[key, "test_accuracy_mean"]
    assert np.isnan(summary.loc[one_seed, "test_accuracy_ci95"])  # one seed left: no CI
    assert text.loc[one_seed, "test accuracy"] == f"{summary.loc[one_seed, 'test_accuracy_mean']:.4g}"


# --- what a report loads ------------------------------------------------------------------------------------------

def _loads_torch(code: str) -> bool:
    """Whether `code`, run in a fresh interpreter, leaves torch imported."""
    result = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint('torch' in sys.modules)"],
                            capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    return {"True": True, "False": False}[result.stdout.strip().splitlines()[-1]]


def test_building_a_report_loads_no_torch(tmp_path):
    runs = [str(make_grid_run(tmp_path / "grid", lambdas=(0.0, 0.1), alphas=(0.5,), rules=("paper",), seeds=(0, 1))),
            str(make_bench_run(tmp_path / "bench", classes=(10, 100), batches=(64, 1024)))]
    out = tmp_path / "r.html"
    assert not _loads_torch(f"from ablate.report import build_report\n"
                            f"build_report({runs!r}, {str(out)!r}, progress=False)")
    page = parse(out.read_text())
    assert page.headings["h2"] == ["grid run grid", "bench run bench"] and len(page.images) >= 4


def test_compare_loads_no_torch(tmp_path):
    run = str(make_grid_run(tmp_path / "grid", lambdas=(0.0, 0.1), alphas=(0.5,), rules=("paper",), seeds=(0, 1)))
    assert not _loads_torch(f"from ablate.compare import compare_command\n"
                            f"compare_command.main([{run!r}, {run!r}], standalone_mode=False)")
