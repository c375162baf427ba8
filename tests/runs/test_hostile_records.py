"""Cell records and results tables are typed (issue: hostile inputs, round three, item 2): a record or a column of
the wrong type, or out of its range, is named with its file and field and left out with a note, never counted, never
a traceback; booleans are not numbers. Generated members through `ablate report`, `ablate compare` and a grid's
resume.

One run folder holds every record member at once, each on a cell of its own (a member of the config is re-hashed
to the id its values give, as a hand-made record would be), so that each command reads it once; each table member
gets a run of its own, since a column of the wrong type sets the whole table aside.
"""

import html
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ablate.cli import main
from ablate.grid import cli as grid_cli
from ablate.grid.executors import SerialExecutor
from ablate.runs.loading import GridRun
from ablate.runs.schema import cell_id
from ablate.train.config import config_columns
from tests.support import assert_bounded_output, write_toml
from tests.support.fixture_runs import make_grid_run

NAN, INF = float("nan"), float("inf")
# (field, value) written into one cell's record.
RECORD_MEMBERS = [
    ("seed", "abc"), ("seed", False), ("seed", 1.5), ("seed", -1), ("seed", 2**32), ("seed", [1]),
    ("alpha", {}), ("lambda", False), ("lambda", "0.1"), ("lambda", NAN), ("lambda", -1.0),
    ("test_accuracy", "abc"), ("test_accuracy", True), ("test_accuracy", 1.5), ("test_accuracy", INF),
    ("separation_ratio", -2.0), ("train_time_s", -1.0), ("train_time_s", INF), ("wall_time_s", "1s"),
    ("world_size", 0), ("world_size", True), ("torch_threads", [1]), ("diverged_epoch", 0), ("split_seed", NAN),
    ("status", ["ok"]), ("curve_softmax_loss", "abc"), ("curve_center_loss", [[1.0]]), ("an_unknown_key", {}),
    ("resolved_device", 7), ("git_dirty", 1),
]
LAMBDAS, CLEAN_SEEDS = (0.0, 0.1), 2  # two configurations, each with two clean seeds besides the planted ones


def _member_id(member) -> str:
    field, value = member
    return f"{field}={value!r}"


def plant(run, seed: int, field: str, value) -> str:
    """Write `value` into `field` of the lambda-0 cell of `seed`; re-hash a config field into the id its values give
    (its features move with it). Returns the record file's path."""
    records = [json.loads(p.read_text()) for p in (run / "cells").glob("*.json")]
    record = next(r for r in records if r["seed"] == seed and r["lambda"] == 0.0)
    old = record["cell_id"]
    record[field] = value
    if field in config_columns():
        record["cell_id"] = cell_id({c: record[c] for c in config_columns()})
        (run / "cells" / f"{old}.json").unlink()
        if (run / "cells" / f"{old}.npz").exists():
            (run / "cells" / f"{old}.npz").rename(run / "cells" / f"{record['cell_id']}.npz")
    path = run / "cells" / f"{record['cell_id']}.json"
    path.write_text(json.dumps(record))
    return str(path)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A clean grid run, and a copy with every record member planted on a cell of its own (tables removed, so that
    they are rebuilt from cells/); the report, compare and load of the planted run, each done once."""
    root = tmp_path_factory.mktemp("records")
    seeds = tuple(range(CLEAN_SEEDS + len(RECORD_MEMBERS)))
    clean = make_grid_run(root / "clean", lambdas=LAMBDAS, alphas=(0.5,), rules=("paper",), seeds=seeds)
    run = root / "planted"
    shutil.copytree(clean, run)
    paths = [plant(run, CLEAN_SEEDS + i, *member) for i, member in enumerate(RECORD_MEMBERS)]
    for table in ("results", "summary", "curves"):
        for suffix in (".parquet", ".csv"):
            (run / f"{table}{suffix}").unlink(missing_ok=True)
    report = CliRunner().invoke(main, ["report", str(run), "--out", str(root / "planted.html")])
    compare = CliRunner().invoke(main, ["compare", str(clean), str(run)])
    page = html.unescape((root / "planted.html").read_text()) if report.exit_code == 0 else ""
    return {"run": run, "clean": clean, "paths": paths, "report": report, "page": page, "compare": compare,
            "loaded": GridRun.load(run), "root": root}


@pytest.mark.parametrize("index", range(len(RECORD_MEMBERS)), ids=[_member_id(m) for m in RECORD_MEMBERS])
def test_a_record_of_the_wrong_type_is_named_left_out_and_not_counted(planted, index):
    field, _ = RECORD_MEMBERS[index]
    path = planted["paths"][index]
    named = [note for note in planted["loaded"].notes if note.startswith(f"Left out: {path}: ")]
    assert len(named) == 1 and field in named[0], planted["loaded"].notes
    # not counted: the run holds exactly the clean cells and the other planted ones, and none of this one
    results = planted["loaded"].results
    assert len(results) == len(LAMBDAS) * (CLEAN_SEEDS + len(RECORD_MEMBERS)) - len(RECORD_MEMBERS)
    assert path.rsplit("/", 1)[1].removesuffix(".json") not in set(results["cell_id"])
    # the report: written, the note on the page; compare: the two configurations, nothing held by one run only
    report, compare = planted["report"], planted["compare"]
    assert report.exit_code == 0 and isinstance(report.exception, (SystemExit, type(None))), report.output[-3000:]
    assert named[0].removeprefix("Left out: ") in planted["page"]
    assert compare.exit_code == 0, compare.output[-3000:]
    assert "on the 2 configurations both hold" in compare.output and "held by one run only" not in compare.output
    for result in (report, compare):
        assert_bounded_output(result.output.replace("\r", "\n"))


def test_a_grid_resumed_over_records_of_the_wrong_type_sets_them_aside_and_runs_their_cells_again(planted, monkeypatch):
    records = [json.loads(p.read_text()) for p in (planted["clean"] / "cells").glob("*.json")]
    clean = {record["cell_id"]: record for record in records}

    def trained_again(config, features_path):  # the cell as the clean run trained it, without training it again
        return clean[cell_id(config)]

    monkeypatch.setattr(grid_cli, "make_executor", lambda *args: SerialExecutor(trained_again))
    run = planted["root"] / "resumed"
    shutil.copytree(planted["run"], run)
    seeds = list(range(CLEAN_SEEDS + len(RECORD_MEMBERS)))
    spec = write_toml(planted["root"], f"""
        [axes]
        dataset = "synthetic"
        num_classes = 4
        feat_dim = 2
        epochs = 3
        lambda = {list(LAMBDAS)}
        alpha = 0.5
        rule = "paper"
        variant = "gather"
        seed = {seeds}
    """, name="resume.toml")
    result = CliRunner().invoke(main, ["grid", str(spec), "--out", str(run), "--quiet"])
    assert result.exit_code == 0, result.output[-3000:]
    assert_bounded_output("\n".join(line for line in result.output.splitlines() if line.startswith("set aside")))
    for member, path in zip(RECORD_MEMBERS, planted["paths"]):
        path = path.replace(str(planted["run"]), str(run))
        assert f"set aside (not a valid record; its cell, if in the grid, ran again): {path}: " in result.output, member
    total = len(LAMBDAS) * len(seeds)
    assert f"{total} cells: {total} ok" in result.output and f"({len(RECORD_MEMBERS)} run now)" in result.output


# {column: how it is spoiled in results.parquet} and what the notes say: a column of the wrong type sets the whole
# table aside; values out of their column's range (one row each) leave their rows out.
TABLE_MEMBERS = {
    "lambda as text": ({"lambda": lambda s: s.astype(str)}, ["column lambda must hold a number"]),
    "seed as booleans": ({"seed": lambda s: s == 0}, ["column seed must hold an integer"]),
    "test_accuracy as text": ({"test_accuracy": lambda s: s.map(lambda v: "abc")}, ["column test_accuracy must hold"]),
    "world_size as lists": ({"world_size": lambda s: s.map(lambda v: [1, 2])}, ["column world_size must hold"]),
    "a NaN seed, a negative world size, an infinite train time": (
        {"seed": lambda s: s.where(s.index != 0, NAN), "world_size": lambda s: s.where(s.index != 3, -3),
         "train_time_s": lambda s: s.where(s.index != 4, INF)},  # rows of both configurations
        ["1 row(s) left out: column seed must be", "1 row(s) left out: column world_size must be",
         "1 row(s) left out: column train_time_s must be"]),
}


@pytest.mark.parametrize("member", TABLE_MEMBERS)
def test_a_results_table_of_the_wrong_type_is_set_aside_or_its_rows_left_out(tmp_path, member):
    spoils, notes = TABLE_MEMBERS[member]
    clean = make_grid_run(tmp_path / "clean", lambdas=LAMBDAS, alphas=(0.5,), rules=("paper",), seeds=(0, 1, 2),
                          features=False)
    run = tmp_path / "spoiled"
    shutil.copytree(clean, run)
    results = pd.read_parquet(run / "results.parquet")
    results["world_size"] = 1
    for column, spoil in spoils.items():
        results[column] = spoil(results[column])
    results.to_parquet(run / "results.parquet")
    loaded = GridRun.load(run)
    for note in notes:
        assert any(f"{run / 'results.parquet'}: " in n and note in n for n in loaded.notes), loaded.notes
    # set aside: every cell is back, from its record; rows left out: those cells missing, never with a wrong value
    rows_left_out = sum("row(s) left out" in note for note in notes)
    assert len(loaded.results) == 6 - rows_left_out
    assert pd.api.types.is_float_dtype(loaded.results["lambda"]) and np.isfinite(loaded.results["train_time_s"]).all()
    if "world_size" in loaded.results:  # the table's own rows (the records of this fixture hold none)
        assert (loaded.results["world_size"] == 1).all()
    report = CliRunner().invoke(main, ["report", str(run), "--out", str(tmp_path / "r.html")])
    assert report.exit_code == 0, report.output[-3000:]
    page = html.unescape((tmp_path / "r.html").read_text())
    assert all(note in page for note in notes)
    compare = CliRunner().invoke(main, ["compare", str(clean), str(run)])
    assert compare.exit_code == 0 and "on the 2 configurations both hold" in compare.output, compare.output[-3000:]
    for result in (report, compare):
        assert_bounded_output(result.output.replace("\r", "\n"))


@pytest.mark.parametrize("column, declared", [("lambda", {"kind": "text"}), ("seed", {"kind": "flag"}),
                                              ("alpha", {"kind": "curve"}), ("dataset", {"kind": "number"})])
def test_a_run_json_that_redeclares_a_key_every_grid_holds_is_refused(tmp_path, column, declared):
    run = make_grid_run(tmp_path / "run", lambdas=LAMBDAS, alphas=(0.5,), rules=("paper",), seeds=(0,), features=False)
    manifest = json.loads((run / "run.json").read_text())
    manifest["config_types"][column] = declared
    (run / "run.json").write_text(json.dumps(manifest))
    for args in (["report", str(run), "--out", str(tmp_path / "r.html")], ["compare", str(run), str(run)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and f"run.json: config_types.{column} declares" in result.output, result.output
        assert_bounded_output(result.output)
