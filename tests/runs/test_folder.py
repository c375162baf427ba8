"""The run-folder schema and the report on broken run folders: every file is checked, an error names the
file and what is wrong, and the report leaves out what it cannot read with a note instead of stopping."""

import io
import json
import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ablate.cli import main
from ablate.report import bench_figures, build_report, distributed_blocks, grid_figures
from ablate.runs import features, manifest, readers, schema
from ablate.runs.folder import claim
from ablate.runs.loading import load_run
from ablate.runs.record import CellRecord, FailedRecord
from ablate.runs.schema import RunFolderError
from ablate.train import CellConfig
from ablate.train.config import config_columns
from tests.report.test_report import parse
from tests.support import ROOT
from tests.support.fixture_runs import make_bench_run, make_grid_run


@pytest.fixture(autouse=True)
def figures_not_rasterized(monkeypatch):
    """These tests read the report's notes and headings: its figures are drawn but not encoded as PNG, the slow
    part of a report (tests/report/test_report.py checks the images of one shared report)."""
    for module in (grid_figures, bench_figures, distributed_blocks):
        monkeypatch.setattr(module, "to_data_uri", lambda fig: "data:image/png;base64,")


@pytest.fixture
def grid(tmp_path):
    return make_grid_run(tmp_path / "grid", lambdas=(0.0, 0.1), alphas=(0.5,), rules=("paper",), seeds=(0, 1))


def notes_of(run_dir, tmp_path) -> str:
    """The report of one run folder built end to end; its notes joined by ' | '."""
    return " | ".join(parse(build_report([run_dir], tmp_path / "r.html", progress=False).read_text()).notes)


@pytest.mark.parametrize("content, what", [
    ("", "the file is empty; expected a JSON object"),
    ("[]", "expected a JSON object, got array"),
    ("null", "expected a JSON object, got null"),
    ("{half", "not valid JSON"),
])
def test_a_broken_json_file_is_named_with_what_is_wrong(tmp_path, content, what):
    path = tmp_path / "provenance.json"
    path.write_text(content)
    with pytest.raises(RunFolderError, match=f"{path}: {what}"):
        readers.read_provenance(tmp_path)


@pytest.mark.parametrize("content", ["", "[]", "null", "{half", '{"status": "running"}'])
def test_a_broken_cell_file_leaves_a_note_and_the_rest_of_the_report(grid, tmp_path, content):
    (grid / "results.parquet").unlink()
    broken = sorted((grid / "cells").glob("*.json"))[0]
    broken.write_text(content)
    notes = notes_of(grid, tmp_path)
    assert f"Left out: {broken}" in notes and "3 cells: 3 ok." in notes


@pytest.mark.parametrize("content", ["", "[]", "null", "{half"])
def test_a_broken_provenance_leaves_a_note(grid, tmp_path, content):
    (grid / "provenance.json").write_text(content)
    assert f"Provenance left out: {grid / 'provenance.json'}" in notes_of(grid, tmp_path)


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize("content, what", [
    (b"garbage", "not a readable .npz"),
    (npz_bytes(features=np.zeros(8, np.float32), labels=np.zeros(8, np.int64), centers=np.zeros((4, 2), np.float32)),
     r"expected features \(N, D\)"),
    (npz_bytes(features=np.zeros((8, 2), np.float32), labels=np.full(8, 9), centers=np.zeros((4, 2), np.float32)),
     r"labels must lie in \[0, 4\)"),
    (npz_bytes(features=np.zeros((8, 2), np.float32)), "missing array"),
    (npz_bytes(features=np.array([{"a": 1}] * 2, dtype=object), labels=np.zeros(2, np.int64),
               centers=np.zeros((1, 2))), "not a readable .npz"),  # pickled objects are never loaded
])
def test_a_malformed_features_file_leaves_that_panel_out_with_a_note(grid, tmp_path, content, what):
    results = pd.read_parquet(grid / "results.parquet")
    for cell in results["cell_id"]:
        (grid / "cells" / f"{cell}.npz").write_bytes(content)
    notes = notes_of(grid, tmp_path)
    assert "Feature scatter of lambda = 0 left out: " in notes
    assert re.search(what, notes), notes


def test_features_load_with_predictions_and_without_them_from_an_older_cell(tmp_path):
    arrays = dict(features=np.zeros((6, 2), np.float32), labels=np.array([0, 1, 2, 3, 4, 5]),
                  centers=np.zeros((4, 2), np.float32))
    (tmp_path / "old.npz").write_bytes(npz_bytes(**arrays))
    assert features.read_features(tmp_path / "old.npz", holdout_classes=2)["predictions"] is None
    (tmp_path / "new.npz").write_bytes(npz_bytes(**arrays, predictions=np.array([0, 1, 2, 3, 3, 3])))
    read = features.read_features(tmp_path / "new.npz", holdout_classes=2)  # labels 4, 5: the held-out classes
    np.testing.assert_array_equal(read["predictions"], [0, 1, 2, 3, 3, 3])
    with pytest.raises(RunFolderError, match=r"labels must lie in \[0, 4\)"):  # closed set: no label beyond C
        features.read_features(tmp_path / "new.npz")


@pytest.mark.parametrize("predictions, what", [
    (np.array([0, 1, 4]), r"predictions must lie in \[0, 4\)"),  # a held-out class is never predicted
    (np.array([0, 1]), "expected integer predictions of shape"),
    (np.array([0.0, 1.0, 2.0]), "expected integer predictions of shape"),
])
def test_predictions_that_do_not_fit_the_cell_are_refused_by_name(tmp_path, predictions, what):
    (tmp_path / "cell.npz").write_bytes(npz_bytes(features=np.zeros((3, 2), np.float32), labels=np.array([0, 1, 2]),
                                                  centers=np.zeros((4, 2), np.float32), predictions=predictions))
    with pytest.raises(RunFolderError, match=f"cell.npz: {what}"):
        features.read_features(tmp_path / "cell.npz")


def test_a_features_path_never_leaves_the_cells_folder(tmp_path):
    with pytest.raises(RunFolderError, match="is not a cell id"):
        schema.features_path(tmp_path, "../../etc/passwd")


@pytest.mark.parametrize("table", ["bench", "numerics", "train_step"])
def test_a_broken_bench_table_leaves_a_note(tmp_path, table):
    run = make_bench_run(tmp_path / "bench")
    (run / f"{table}.parquet").write_bytes(b"not parquet")
    assert f"Left out: {run / f'{table}.parquet'}: not a readable parquet table" in notes_of(run, tmp_path)


def test_a_bench_table_without_its_columns_or_with_text_timings_leaves_a_note(tmp_path):
    run = make_bench_run(tmp_path / "bench")
    bench = pd.read_parquet(run / "bench.parquet")
    bench.drop(columns=["variant"]).to_parquet(run / "bench.parquet")
    assert "missing column(s) variant" in notes_of(run, tmp_path)
    bench.astype({"time_ms_p50": str}).to_parquet(run / "bench.parquet")
    assert "column time_ms_p50 must be numeric" in notes_of(run, tmp_path)


def test_an_option_only_failed_cells_set_does_not_break_the_figures(tmp_path):
    """The failed cell has data_dir set, the finished ones none: the option varies but has no finished value."""
    run = make_grid_run(tmp_path / "grid", lambdas=(0.0, 0.1), alphas=(0.1, 0.5), rules=("paper",), seeds=(0, 1))
    store_record = json.loads(sorted((run / "cells").glob("*.json"))[0].read_text())
    failed = {**store_record, "data_dir": "/missing", "status": "failed", "error": "FileNotFoundError: /missing"}
    failed["cell_id"] = schema.cell_id({c: failed[c] for c in manifest.read_manifest(run)["config_columns"]})
    (run / "cells" / f"{failed['cell_id']}.json").write_text(json.dumps(failed))
    (run / "results.parquet").unlink()
    page = parse(build_report([run], tmp_path / "r.html", progress=False).read_text())
    assert {"Metrics against lambda", "Features per lambda", "Training curves"} <= set(page.headings["h3"])


def test_the_report_reads_a_huge_grid_spec_without_expanding_it(grid, tmp_path):
    values = ", ".join(str(i) for i in range(1000))
    (grid / "grid.toml").write_text(f"[axes]\nlambda = [0.0, 0.1]\nseed = [0, 1]\nepochs = [{values}]\n"
                                    f"batch_size = [{values}]\nlr_step = [{values}]\nsynthetic_dim = [{values}]\n"
                                    f"[[also]]\nsamples_per_class = [{values}]\n")  # 4 x 10^12 cells and more
    (grid / "results.parquet").unlink()
    assert "4 cells: 4 ok." in notes_of(grid, tmp_path)


def test_records_of_an_earlier_grid_are_left_out_when_tables_are_rebuilt(grid, tmp_path):
    (grid / "grid.toml").write_text("[axes]\nlambda = [0.1]\nseed = [0, 1]\n")
    (grid / "results.parquet").unlink()
    notes = notes_of(grid, tmp_path)
    assert "2 cells: 2 ok." in notes and "2 record(s) in cells/ are not in grid.toml" in notes


def test_a_folder_records_its_kind_and_refuses_the_other(tmp_path):
    claim(tmp_path / "g", "grid", config_columns=["lambda", "seed"])
    assert manifest.run_kind(tmp_path / "g") == "grid"
    with pytest.raises(RunFolderError, match=r"holds a grid run \(from `ablate grid`\); `ablate bench run` would mix "
                                             ".* choose another --out"):
        claim(tmp_path / "g", "bench")
    with pytest.raises(RunFolderError, match=r"`ablate bench world` would mix"):  # the command that writes each kind
        manifest.check_kind(tmp_path / "g", "distributed")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "bench.parquet").write_bytes(b"")  # a bench folder from before run.json
    with pytest.raises(RunFolderError, match="holds a bench run"):
        manifest.check_kind(tmp_path / "old", "grid")
    (tmp_path / "g" / "run.json").write_text('{"kind": "<b>"}')
    with pytest.raises(RunFolderError, match="kind must be one of grid, bench"):
        manifest.run_kind(tmp_path / "g")


# --- the schema version ------------------------------------------------------------------------------------------

NEWER = schema.SCHEMA + 1
NEWER_TEXT = f"written by a newer ablate; this ablate reads schema {schema.SCHEMA} at most: upgrade ablate to read it"


def written_by_a_newer_ablate(run_dir, kind: str = "grid"):
    """run.json as a newer ablate would write it; returns its path."""
    path = run_dir / "run.json"
    path.write_text(json.dumps({"kind": kind, "schema": NEWER, "config_columns": ["lambda", "seed"]}))
    return path


READERS_OF_RUN_JSON = {
    "read_manifest": manifest.read_manifest,
    "schema_version": manifest.schema_version,
    "run_kind": manifest.run_kind,
    "check_kind": lambda run_dir: manifest.check_kind(run_dir, "grid"),
    "claim": lambda run_dir: claim(run_dir, "grid", config_columns=["lambda", "seed"]),
    "load_run": load_run,
}


@pytest.mark.parametrize("reader", READERS_OF_RUN_JSON.values(), ids=READERS_OF_RUN_JSON)
@pytest.mark.parametrize("kind", ["grid", "sweep"])  # a newer ablate may write a kind this one does not know
def test_a_folder_of_a_newer_schema_is_refused_by_every_reader_naming_file_and_versions(grid, reader, kind):
    path = written_by_a_newer_ablate(grid, kind)
    written = path.read_bytes()
    with pytest.raises(RunFolderError) as error:
        reader(grid)
    assert str(error.value) == f"{path}: schema {NEWER}, {NEWER_TEXT}"
    assert path.read_bytes() == written  # claim wrote nothing over it


@pytest.mark.parametrize("command", ["report", "compare", "grid"])
def test_report_compare_and_grid_refuse_a_folder_of_a_newer_schema(grid, tmp_path, command):
    path = written_by_a_newer_ablate(grid)
    args = {"report": ["report", str(grid), "--out", str(tmp_path / "r.html")],
            "compare": ["compare", str(grid), str(grid)],
            "grid": ["grid", "--out", str(grid), "--set", "epochs=1", "--quiet"]}[command]  # refused before any cell
    written = path.read_bytes()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == {"grid": 1}.get(command, 2), result.output  # grid: its errors exit 1
    assert f"{path}: schema {NEWER}, {NEWER_TEXT}" in result.output, result.output
    assert not (tmp_path / "r.html").exists() and path.read_bytes() == written


def test_a_folder_of_this_schema_reads(grid):
    assert json.loads((grid / "run.json").read_text())["schema"] == schema.SCHEMA == manifest.schema_version(grid)
    assert not load_run(grid).notes


@pytest.mark.parametrize("value, what", [
    (None, f'no schema version; expected "schema": an integer from 1 to {schema.SCHEMA}'),
    ("1", f"schema must be an integer from 1 to {schema.SCHEMA}, got '1'"),
    (1.0, f"schema must be an integer from 1 to {schema.SCHEMA}, got 1.0"),
    (True, f"schema must be an integer from 1 to {schema.SCHEMA}, got True"),
    (0, f"schema must be an integer from 1 to {schema.SCHEMA}, got 0"),
])
def test_a_run_json_without_a_valid_schema_version_is_refused_by_name(grid, value, what):
    path = grid / "run.json"
    document = json.loads(path.read_text())
    if value is None:
        del document["schema"]
    else:
        document["schema"] = value
    path.write_text(json.dumps(document))
    with pytest.raises(RunFolderError) as error:
        manifest.read_manifest(grid)
    assert str(error.value).startswith(f"{path}: {what}")


SCHEMA_0_CONFIG = {"dataset": "synthetic", "data_dir": None, "model": "auto", "feat_dim": 2, "variant": "gather",
                   "rule": "paper", "convention": "mean", "lambda": 0.0, "alpha": 0.5, "epochs": 2, "batch_size": 64,
                   "lr": 0.05, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 5e-4, "lr_step": 0,
                   "lr_gamma": 0.5, "seed": 0, "device": "auto", "num_classes": 4, "synthetic_dim": 32,
                   "samples_per_class": 200, "test_fraction": 0.2}


def test_a_grid_folder_from_before_run_json_is_read_as_schema_0(tmp_path):
    """No run.json: the kind is read off the files, and the config columns are schema 0's, which its records hold
    and its cell ids hash (today's cell options are more)."""
    assert tuple(SCHEMA_0_CONFIG) == schema.SCHEMA_0_CONFIG_COLUMNS
    run_dir = tmp_path / "old"
    (run_dir / "cells").mkdir(parents=True)
    for lam in (0.0, 0.1):
        for seed in (0, 1):
            config = {**SCHEMA_0_CONFIG, "lambda": lam, "seed": seed}
            record = {**config, "cell_id": schema.cell_id(config), "status": "ok", "test_accuracy": 0.9 + lam,
                      "separation_ratio": 2.0 + seed}
            (run_dir / "cells" / f"{record['cell_id']}.json").write_text(json.dumps(record))
    assert manifest.schema_version(run_dir) == 0 and manifest.run_kind(run_dir) == "grid"
    run = load_run(run_dir)
    assert not run.notes and len(run.results) == 4
    assert run.config_columns == [c for c in schema.SCHEMA_0_CONFIG_COLUMNS if c != "seed"]
    assert list(run.summary["n_seeds"]) == [2, 2]
    assert "4 cells: 4 ok." in notes_of(run_dir, tmp_path)


# The grid keys of a schema-1 grid folder: today's but split_seed and val_fraction (which came with schema 2).
SCHEMA_1_NEW_KEYS = ("split_seed", "val_fraction")


def test_a_schema_1_grid_folder_without_validation_metrics_is_read_reported_and_compared(tmp_path):
    """Written before three-way splits: run.json at schema 1, records without validation metrics, split_seed a
    record field rather than a config key. The report and compare read it as it is."""
    columns = [c for c in config_columns() if c not in SCHEMA_1_NEW_KEYS]
    runs, rng = [], np.random.default_rng(0)
    for name, shift in (("a", 0.0), ("b", 0.05)):
        run_dir = tmp_path / name
        (run_dir / "cells").mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps({"kind": "grid", "schema": 1, "config_columns": columns}))
        for lam in (0.0, 0.1):
            for seed in (0, 1, 2):
                config = {c: v for c, v in CellConfig(dataset="synthetic", num_classes=4, lambda_=lam,
                                                        seed=seed).to_dict().items() if c in columns}
                record = {**config, "cell_id": schema.cell_id(config), "status": "ok", "split_seed": seed,
                          "test_accuracy": 0.8 + lam + shift + rng.normal(0, 0.01),
                          "separation_ratio": 2.0 + lam + rng.normal(0, 0.1),
                          "map_at_r": 0.5 + lam + rng.normal(0, 0.01)}
                (run_dir / "cells" / f"{record['cell_id']}.json").write_text(json.dumps(record))
        runs.append(run_dir)
        run = load_run(run_dir)
        assert manifest.schema_version(run_dir) == 1 and not run.notes and len(run.results) == 6
        assert not [c for c in run.results if c.startswith("val_")] and list(run.summary["n_seeds"]) == [3, 3]
    report = CliRunner().invoke(main, ["report", *map(str, runs), "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output
    assert "test accuracy" in (tmp_path / "r.html").read_text()
    compared = CliRunner().invoke(main, ["compare", *map(str, runs)])
    assert compared.exit_code == 0, compared.output
    assert "on the 2 configurations both hold" in compared.output


def test_report_on_a_bench_folder_loads_no_training_code(tmp_path):
    run = make_bench_run(tmp_path / "bench")
    code = ("import sys\nfrom ablate.cli import main\n"
            f"try:\n    main(['report', {str(run)!r}, '--out', {str(tmp_path / 'r.html')!r}])\n"
            "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn' or m.startswith(('ablate.train', "
            "'ablate.grid'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "r.html").stat().st_size > 10_000


def test_report_refuses_an_out_it_cannot_write_before_reading_anything(grid, tmp_path):
    from click.testing import CliRunner

    from ablate.cli import main

    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(main, ["report", str(grid), "--out", str(tmp_path / "file" / "r.html")])
    assert result.exit_code == 2 and "is a file, not a folder" in result.output


def test_rows_of_results_with_an_unknown_status_are_left_out_with_a_note(grid, tmp_path):
    results = pd.read_parquet(grid / "results.parquet")
    results.loc[0, "status"] = "running"
    results.to_parquet(grid / "results.parquet")
    notes = notes_of(grid, tmp_path)
    assert "1 row(s) left out: column status must be one of ok, diverged, pruned, failed, got 'running'" in notes
    assert "3 cells: 3 ok." in notes


def test_a_cell_record_is_flat_in_its_declared_order_and_keeps_only_measured_optional_curves():
    curves = {"softmax_loss": [2.0, 1.0], "center_loss": [0.5, 0.2], "train_accuracy": [0.5, 0.9], "pair_loss": []}
    trained = CellRecord(config={"dataset": "digits", "lambda": 0.1}, objective="softmax",
                         metrics={"val_test_accuracy": 0.8, "test_accuracy": 0.9}, held_out_classes="",
                         train_samples=100, validation_samples=10, test_samples=20,
                         scored_on_test=True, validation_metric=None, train_samples_per_s=10.0,
                         train_time_s=1.0, wall_time_s=2.0, status="ok", diverged_epoch=None, resolved_device="cpu",
                         torch_threads=1, world_size=1, curves=curves)
    assert list(trained.to_dict()) == [
        "dataset", "lambda", "objective", "val_test_accuracy", "test_accuracy", "held_out_classes", "train_samples",
        "validation_samples", "test_samples", "scored_on_test", "validation_metric", "train_samples_per_s",
        "train_time_s", "wall_time_s", "status", "diverged_epoch", "resolved_device", "torch_threads", "world_size",
        "curve_softmax_loss", "curve_center_loss",
        "curve_train_accuracy"]  # no pair loss or validation curve measured: neither is in the record
    with_pairs = replace(trained, curves={**curves, "pair_loss": [0.3, 0.1]}).to_dict()
    assert with_pairs["curve_pair_loss"] == [0.3, 0.1] and list(with_pairs)[-1] == "curve_pair_loss"
    failed = FailedRecord({"dataset": "digits", "lambda": 0.1}, error="ValueError: x", wall_time_s=0.5).to_dict()
    assert failed == {"dataset": "digits", "lambda": 0.1, "status": "failed", "error": "ValueError: x",
                      "wall_time_s": 0.5} and list(failed)[2:] == ["status", "error", "wall_time_s"]
