"""A run folder loaded whole, through its checked readers: one reader per kind, `load_run` for any.

    GridRun.load(path)          a grid run (`ablate grid`): results, summary, curves, the cells' features on demand
    BenchRun.load(path)         a bench run (`ablate bench`): the timing, numerics and training-step tables
    DistributedRun.load(path)   a distributed bench run (`ablate bench world`)
    TuneRun.load(path)          a tune (`ablate tune`): the grid of its final seeds, and its search (the study's
                                trials, the selected setting of each objective)
    load_run(path)              whichever kind run.json (or, schema 0, the files) says the folder holds

A file that cannot be read is left out with a note (GridRun.notes, BenchRun.notes, DistributedRun.notes) instead
of stopping the report; only a folder that holds no run at all, or one of a newer schema, is refused.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ablate.io import UnreadableFile, path_kind, read_regular_bytes
from ablate.runs.columns import ConfigColumns
from ablate.runs.features import CellFeatures, read_features
from ablate.runs.manifest import config_columns, read_manifest, run_kind
from ablate.runs.readers import empty_table, holdout_of, read_provenance, read_records, read_table
from ablate.runs.schema import (
    BENCH,
    BENCH_COLUMNS,
    CURVE_COLUMNS,
    CURVES,
    DISTRIBUTED,
    DISTRIBUTED_COLUMNS,
    GRID_SPEC,
    NUMERICS,
    NUMERICS_COLUMNS,
    TEXT_COLUMNS,
    TRAIN_STEP,
    TRAIN_STEP_COLUMNS,
    TUNE_SPEC,
    RunFolderError,
    features_path,
    setting_columns,
    table_path,
)
from ablate.runs.study import TRIAL_COLUMNS, read_trials, selected_trials
from ablate.runs.summary import summary_table
from ablate.runs.tables import curves_table, load_results, results_table

# The setting every other is compared with in a grid's findings (ablate.analysis.findings): softmax alone.
DEFAULT_REFERENCE = ("lambda", 0.0)


@dataclass
class GridRun:
    """A grid run. results: one row per cell; summary: one row per configuration (over its "ok" cells);
    curves: long format cell_id, epoch, metric, value; config_columns: the grid keys but the seeds (SEED_KEYS);
    notes: what was left out while reading, and why; reference: the (key, value) the findings compare against;
    cache: results derived once per report (the findings)."""

    path: Path
    provenance: dict
    results: pd.DataFrame
    summary: pd.DataFrame
    curves: pd.DataFrame
    config_columns: list
    grid_spec: str | None
    notes: list = field(default_factory=list)
    reference: tuple = DEFAULT_REFERENCE
    cache: dict = field(default_factory=dict, repr=False)

    def features_path(self, cell_id: str) -> Path:
        """Where the grid stored the cell's test features, labels and centers (.npz)."""
        return features_path(self.path, cell_id)

    def read_features(self, row: dict | pd.Series) -> CellFeatures | None:
        """The test features of the cell of a results row, checked (ablate.runs.features.read_features; its
        held-out classes are labels beyond its centers); None when the cell saved none. RunFolderError when the
        file is unusable."""
        path = self.features_path(row["cell_id"])
        return read_features(path, holdout_of(row)) if os.path.lexists(path) else None

    @classmethod
    def load(cls, run_dir: Path) -> "GridRun":
        """The run's tables as the grid writes them; results and summary rebuilt from cells/ for a run that
        was interrupted before writing them (or wrote them before its last cells)."""
        notes: list = []
        provenance = _provenance(run_dir, notes)
        columns = config_columns(read_manifest(run_dir))
        results, problems = load_results(run_dir, columns)
        notes += [f"Left out: {p}" for p in problems]
        return cls(path=run_dir, provenance=provenance, results=results,
                   summary=summary_table(results, list(columns)), curves=_curves(run_dir, results, notes),
                   config_columns=setting_columns(list(columns)),
                   grid_spec=_grid_spec_text(run_dir / GRID_SPEC, notes), notes=notes)


@dataclass
class TuneRun(GridRun):
    """A tune run (`ablate tune`): as a GridRun, the cells of its final seeds (each objective's selected setting over
    fresh seeds, the only cells scored on test: an ordinary grid, which the findings read, its config columns without
    the searched keys but the reference key, which set each objective's setting apart); trials: every trial of
    every objective's study (ablate.runs.study.TRIAL_COLUMNS); selected: per objective its best finished trial, with
    the cell options the trial's cell ran with (its record's config columns but seed)."""

    trials: pd.DataFrame = field(default_factory=lambda: empty_table(TRIAL_COLUMNS))
    selected: pd.DataFrame = field(default_factory=lambda: empty_table(TRIAL_COLUMNS))

    @classmethod
    def load(cls, run_dir: Path) -> "TuneRun":
        notes: list = []
        provenance = _provenance(run_dir, notes)
        columns = config_columns(read_manifest(run_dir))
        try:
            trials = read_trials(run_dir)
        except RunFolderError as exc:
            notes.append(f"Search left out: {exc}")
            trials = empty_table(TRIAL_COLUMNS)
        records, problems = read_records(run_dir, columns)
        notes += [f"Left out: {p}" for p in problems]
        selected = selected_trials(trials)
        finals = _final_cells(records, selected, columns)
        if finals:
            results, problems = load_results(run_dir, columns, cells=finals)
            notes += [f"Left out: {p}" for p in problems]
        else:
            results = results_table([], [*columns, "status"])
            notes.append("No final seeds yet: the search has not ended (rerun `ablate tune` to resume it).")
        # The searched keys belong to each objective's setting, not to the grid: comparisons between the selected
        # settings pair them by the other keys (and the reference key, lambda 0 being a setting of its own).
        searched = {key for params in trials["params"] for key in json.loads(params)} - {DEFAULT_REFERENCE[0]}
        compared = [c for c in columns if c not in searched]
        return cls(path=run_dir, provenance=provenance, results=results, summary=summary_table(results, list(columns)),
                   curves=_curves(run_dir, results, notes), config_columns=setting_columns(compared),
                   grid_spec=_grid_spec_text(run_dir / TUNE_SPEC, notes), notes=notes, trials=trials,
                   selected=_with_settings(selected, records, columns))


def _setting(record: dict, columns: ConfigColumns) -> tuple:
    """A record's cell options but seed, as a hashable key."""
    return tuple((c, record.get(c)) for c in columns if c != "seed")


def _final_cells(records: dict, selected: pd.DataFrame, columns: ConfigColumns) -> set:
    """The ids of the cells scored on test whose options (but seed) are those of a selected trial's cell."""
    settings = {_setting(records[i], columns) for i in selected["cell_id"] if i in records}
    return {i for i, r in records.items() if r.get("scored_on_test") is True and _setting(r, columns) in settings}


def _with_settings(selected: pd.DataFrame, records: dict, columns: ConfigColumns) -> pd.DataFrame:
    """The selected trials with the options their cells ran with (the config columns but seed), where the cell's
    record is there."""
    keys = [c for c in columns if c != "seed"]
    options = pd.DataFrame([{c: records.get(i, {}).get(c) for c in keys} for i in selected["cell_id"]], columns=keys)
    return pd.concat([selected.reset_index(drop=True), options], axis=1)


@dataclass
class BenchRun:
    """A bench run: the timing table, and the numerics and training-step tables when measured."""

    path: Path
    provenance: dict
    bench: pd.DataFrame
    numerics: pd.DataFrame | None
    train_step: pd.DataFrame | None
    notes: list = field(default_factory=list)

    @classmethod
    def load(cls, run_dir: Path) -> "BenchRun":
        notes: list = []
        return cls(run_dir, _provenance(run_dir, notes), _table_or_empty(run_dir, BENCH, BENCH_COLUMNS, notes),
                   numerics=_bench_table(run_dir, NUMERICS, NUMERICS_COLUMNS, notes),
                   train_step=_bench_table(run_dir, TRAIN_STEP, TRAIN_STEP_COLUMNS, notes), notes=notes)


@dataclass
class DistributedRun:
    """A distributed bench run (`ablate bench world`): one row per world x form x mode x size."""

    path: Path
    provenance: dict
    distributed: pd.DataFrame
    notes: list = field(default_factory=list)

    @classmethod
    def load(cls, run_dir: Path) -> "DistributedRun":
        notes: list = []
        return cls(run_dir, _provenance(run_dir, notes),
                   _table_or_empty(run_dir, DISTRIBUTED, DISTRIBUTED_COLUMNS, notes), notes)


def _provenance(run_dir: Path, notes: list) -> dict:
    try:
        return read_provenance(run_dir)
    except RunFolderError as exc:
        notes.append(f"Provenance left out: {exc}")
        return {}


def _curves(run_dir: Path, results: pd.DataFrame, notes: list) -> pd.DataFrame:
    """curves.parquet when it covers every finished cell of `results`, else rebuilt from the cell records."""
    path = table_path(run_dir, CURVES)
    finished = set(results.loc[results["status"] != "failed", "cell_id"])
    if os.path.lexists(path):
        try:
            curves = read_table(path, required=CURVE_COLUMNS, numeric=("epoch", "value"))
        except RunFolderError as exc:
            notes.append(f"{exc}; curves rebuilt from the cell records")
        else:
            if finished <= set(curves["cell_id"]):
                return curves
    records, _ = read_records(run_dir)
    wanted = set(results["cell_id"])
    return curves_table([r for i, r in records.items() if i in wanted])


def _grid_spec_text(path: Path, notes: list) -> str | None:
    """grid.toml as text for the report (None when absent); left out with a note when unreadable."""
    if not os.path.lexists(path):
        return None
    try:
        return read_regular_bytes(path).decode("utf-8", errors="replace")
    except UnreadableFile as exc:
        notes.append(f"Grid spec left out: {exc}")
        return None


def _bench_table(run_dir: Path, name: str, columns: tuple, notes: list) -> pd.DataFrame | None:
    """A bench table checked against its columns; None when absent, None and a note when unreadable."""
    path = table_path(run_dir, name)
    if not os.path.lexists(path):
        return None
    numeric = [c for c in columns if c not in TEXT_COLUMNS]
    try:
        return read_table(path, required=columns, numeric=numeric)
    except RunFolderError as exc:
        notes.append(f"Left out: {exc}")
        return None


def _table_or_empty(run_dir: Path, name: str, columns: tuple, notes: list) -> pd.DataFrame:
    """The run's main table (_bench_table), or one of no rows with its columns when absent or unreadable."""
    table = _bench_table(run_dir, name, columns, notes)
    return table if table is not None else empty_table(columns)


def load_run(run_dir: str | Path) -> GridRun | BenchRun | DistributedRun:  # a TuneRun is a GridRun
    """The run in `run_dir`; a ValueError (RunFolderError) says what a run folder must hold otherwise."""
    run_dir = Path(run_dir)
    what = path_kind(run_dir)
    if what == "missing":
        raise RunFolderError(f"run folder {run_dir} does not exist")
    if what != "a folder":
        raise RunFolderError(f"{run_dir} is {what}, not a run folder; expected a folder written by `ablate grid`, "
                             "`ablate bench run` or `ablate bench world`")
    kind = run_kind(run_dir)
    if kind == "grid":
        return GridRun.load(run_dir)
    if kind == "tune":
        return TuneRun.load(run_dir)
    if kind == "bench" and os.path.lexists(table_path(run_dir, BENCH)):
        return BenchRun.load(run_dir)
    if kind == "distributed":
        return DistributedRun.load(run_dir)
    raise RunFolderError(f"{run_dir} is not a run folder: expected cells/ or results.parquet (a grid run, "
                         "from `ablate grid`), bench.parquet (a bench run, from `ablate bench`) or "
                         "distributed.parquet (from `ablate bench world`)")
