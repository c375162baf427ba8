"""The run folder: what `ablate grid` and `ablate bench` write and `ablate report` reads, declared once.

    RUN_DIR/run.json          {"kind": "grid" | "bench", "schema": 1, "config_columns": [...] (grid only)}
    RUN_DIR/provenance.json   where the run came from (ablate.provenance), times
    grid:   grid.toml (the resolved spec), cells/<id>.json (one record per cell) and <id>.npz (its test
            features), results and summary (.parquet, .csv), curves.parquet
    bench:  bench, numerics, train_step (.parquet, .csv); parts/<stage>/<key>.json while a run is under way

Every file read from a run folder is untrusted: the readers here check it and raise RunFolderError naming
the file and what is wrong. This module imports nothing from ablate.grid, ablate.bench, ablate.train or
ablate.report, so that reading a run folder never loads the training stack.
"""

import fcntl
import hashlib
import json
import math
import os
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ablate.io import (UnreadableFile, atomic_write_json, check_regular_file, parse_json_text, read_regular_text,
                       read_toml_file)
from ablate.metrics import summarized_metrics

KINDS = ("grid", "bench", "distributed")
SCHEMA = 1
MANIFEST = "run.json"
PROVENANCE = "provenance.json"
GRID_SPEC = "grid.toml"
CELLS = "cells"
PARTS = "parts"

FINISHED = ("ok", "diverged")
STATUSES = (*FINISHED, "failed")

# grid tables
RESULTS, SUMMARY, CURVES = "results", "summary", "curves"
CURVE_PREFIX = "curve_"
CURVE_COLUMNS = ("cell_id", "epoch", "metric", "value")
RECORD_TEXT_FIELDS = ("cell_id", "status", "error", "variant", "rule")  # must be strings where present
FEATURE_ARRAYS = ("features", "labels", "centers")  # in every cell's .npz
PREDICTIONS = "predictions"  # (N,) also in a cell's .npz; files written before cells saved it lack it

# bench tables
BENCH, NUMERICS, TRAIN_STEP = "bench", "numerics", "train_step"
DISTRIBUTED = "distributed"  # `ablate bench --world`
DISTRIBUTED_COLUMNS = ("world", "form", "mode", "batch", "classes", "dim", "dtype", "device", "time_ms_p20",
                       "time_ms_p50", "time_ms_p80", "bytes_per_step", "collectives_per_step",
                       "centers_bytes_per_rank", "peak_mem_bytes", "note")
BENCH_COLUMNS = ("variant", "mode", "rule", "batch", "classes", "dim", "dtype", "device", "time_ms_p20", "time_ms_p50",
                 "time_ms_p80", "samples_per_s", "bytes", "gb_per_s", "peak_mem_bytes", "roof_fraction", "note")
TRAIN_STEP_COLUMNS = ("workload", "variant", "batch", "classes", "dim", "device", "samples_per_s", "time_ms_p20",
                      "time_ms_p50", "time_ms_p80", "note")
ERROR_COLUMNS = ("loss_rel_error", "grad_features_rel_error", "grad_centers_rel_error")
NUMERICS_COLUMNS = ("variant", "dtype", "convention", "batch", "classes", "dim", "feature_norm", *ERROR_COLUMNS, "note")
TEXT_COLUMNS = ("variant", "mode", "rule", "dtype", "device", "note", "workload", "convention", "form")

# Bounds on what a file of a run folder may claim, checked before it is loaded.
MAX_TABLE_BYTES = 2**30  # a parquet table: a 100,000-cell grid's results take a few tens of MB
MAX_FEATURES_BYTES = 2**31  # a cell's .npz, compressed
FEATURE_ROWS_ENV = "ABLATE_MAX_FEATURE_ROWS"
DEFAULT_FEATURE_ROWS = 200_000  # test samples of one cell: Fashion-MNIST has 10,000, 20 times fewer
MAX_FEATURE_DIM = 65_536  # feature dimension D, and classes C of the centers (C, D)

ID_LENGTH = 12  # hex digits: 48 bits, a collision is negligible for grids of millions of cells
_CELL_ID = re.compile(rf"[0-9a-f]{{{ID_LENGTH}}}")
_COLUMN_NAME = re.compile(r"[a-z][a-z0-9_]*")


class RunFolderError(ValueError):
    """A file of a run folder that cannot be used; the message names the file and what is wrong."""


def cell_id(config: dict) -> str:
    """The id of a resolved config (every option, as `expand` returns it), independent of key order."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:ID_LENGTH]


def is_cell_id(text) -> bool:
    return isinstance(text, str) and _CELL_ID.fullmatch(text) is not None


def record_path(run_dir, cell: str) -> Path:
    return Path(run_dir) / CELLS / f"{cell}.json"


def features_path(run_dir, cell: str) -> Path:
    """RUN_DIR/cells/<id>.npz; the id is checked first, so that a table's value cannot point elsewhere."""
    if not is_cell_id(cell):
        raise RunFolderError(f"{Path(run_dir) / CELLS}: {cell!r} is not a cell id ({ID_LENGTH} hex digits)")
    return Path(run_dir) / CELLS / f"{cell}.npz"


def table_path(run_dir, name: str) -> Path:
    return Path(run_dir) / f"{name}.parquet"


# --- reading JSON -----------------------------------------------------------------------------------------

def read_json(path, expected: type = dict):
    """The JSON value in `path`, which must be of type `expected` (dict or list); RunFolderError otherwise."""
    path = Path(path)
    try:
        text = read_regular_text(path)
        if not text.strip():
            raise RunFolderError(f"{path}: the file is empty; expected a JSON {_json_kind(expected)}")
        value = parse_json_text(text, str(path))
    except UnreadableFile as exc:
        raise RunFolderError(str(exc)) from None
    if not isinstance(value, expected):
        raise RunFolderError(f"{path}: expected a JSON {_json_kind(expected)}, got {_json_kind(type(value))}")
    return value


def _json_kind(kind: type) -> str:
    return {dict: "object", list: "array", str: "string", type(None): "null", bool: "boolean"}.get(kind, "number")


def read_provenance(run_dir) -> dict:
    """RUN_DIR/provenance.json, {} when absent; a flat object of scalars (nested values are shown as text)."""
    path = Path(run_dir) / PROVENANCE
    return read_json(path) if path.exists() else {}


# --- the kind of a run folder -------------------------------------------------------------------------------

def read_manifest(run_dir) -> dict | None:
    """RUN_DIR/run.json checked (kind, config_columns), or None when the folder has none (older runs)."""
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return None
    manifest = read_json(path)
    if manifest.get("kind") not in KINDS:
        raise RunFolderError(f"{path}: kind must be one of {', '.join(KINDS)}, got {manifest.get('kind')!r}")
    columns = manifest.get("config_columns")
    if columns is not None and not (isinstance(columns, list) and columns
                                    and all(isinstance(c, str) and _COLUMN_NAME.fullmatch(c) for c in columns)):
        raise RunFolderError(f"{path}: config_columns must be a non-empty list of lower-case names, got {columns!r}")
    return manifest


def run_kind(run_dir) -> str | None:
    """"grid" or "bench" as run.json records it, else as the files show (older runs), else None (no run)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if manifest is not None:
        return manifest["kind"]
    if (run_dir / CELLS).is_dir() or table_path(run_dir, RESULTS).exists() or (run_dir / GRID_SPEC).exists():
        return "grid"
    if table_path(run_dir, BENCH).exists() or (run_dir / PARTS).is_dir():
        return "bench"
    if table_path(run_dir, DISTRIBUTED).exists():
        return "distributed"
    return None


def claim(run_dir, kind: str, **fields) -> None:
    """Mark RUN_DIR as a run of `kind` (run.json), refusing a folder that holds a run of the other kind."""
    run_dir = Path(run_dir)
    check_kind(run_dir, kind)
    atomic_write_json(run_dir / MANIFEST, {"kind": kind, "schema": SCHEMA, **fields})


class RunLockedError(RuntimeError):
    """Another process is writing to the run folder."""


LOCK = ".lock"


@contextmanager
def locked(run_dir):
    """Hold an exclusive lock on RUN_DIR while writing it: one writer (`ablate grid`, `ablate bench`) at a time.
    The operating system drops the lock when the process ends, killed or not."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(f"another `ablate` run is writing to {run_dir}; wait for it to end or use another "
                                 "--out") from None
        yield


def check_kind(run_dir, kind: str) -> None:
    """Raise RunFolderError if RUN_DIR holds a run of another kind than `kind` (writes nothing)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    found = run_kind(run_dir)
    if found is not None and found != kind:
        raise RunFolderError(f"{run_dir} holds a {found} run (from `ablate {found}`); `ablate {kind}` would mix "
                             f"its files into it: choose another --out")


# --- grid records --------------------------------------------------------------------------------------------

def check_record(record: dict, path: Path, config_columns=None) -> dict:
    """A cell record as read from `path`, checked: its status, its text fields, its id (the file's name) and,
    given the config columns, that its config hashes to that id. Returns the record."""
    status = record.get("status")
    if status not in STATUSES:
        raise RunFolderError(f"{path}: unknown status {status!r}; expected one of {', '.join(STATUSES)}")
    for key in RECORD_TEXT_FIELDS:
        if record.get(key) is not None and not isinstance(record[key], str):
            raise RunFolderError(f"{path}: {key} must be a string, got {record[key]!r}")
    if record.get("cell_id") != path.stem:
        raise RunFolderError(f"{path}: the record names cell {record.get('cell_id')!r}, not {path.stem!r} "
                             "(a cell file copied under another name?)")
    if config_columns is not None:
        missing = [c for c in config_columns if c not in record]
        if missing:
            raise RunFolderError(f"{path}: the record lacks config key(s) {', '.join(missing)}")
        actual = cell_id({c: record[c] for c in config_columns})
        if actual != path.stem:
            raise RunFolderError(f"{path}: the record's config hashes to {actual}, not to its name {path.stem}")
    return record


def read_record(path, config_columns=None) -> dict:
    return check_record(read_json(path), Path(path), config_columns)


def read_records(run_dir, config_columns=None) -> tuple:
    """({cell id: record} for every valid record in RUN_DIR/cells, [one line per file left out and why])."""
    cells = Path(run_dir) / CELLS
    records, problems = {}, []
    if not cells.is_dir():
        return records, problems
    for path in sorted(cells.glob("*.json")):
        try:
            records[path.stem] = read_record(path, config_columns)
        except RunFolderError as exc:
            problems.append(str(exc))
    return records, problems


def read_grid_axes(run_dir) -> list | None:
    """The products of RUN_DIR/grid.toml, each {key: [values]} ([axes] then each [[also]] over it); None when
    the folder has no grid.toml."""
    path = Path(run_dir) / GRID_SPEC
    if not path.exists():
        return None
    try:
        document = read_toml_file(path)
    except UnreadableFile as exc:
        raise RunFolderError(f"not a readable grid spec: {exc}") from None
    axes, also = document.get("axes"), document.get("also", [])
    if not isinstance(axes, dict) or not isinstance(also, list) or not all(isinstance(t, dict) for t in also):
        raise RunFolderError(f"{path}: expected an [axes] table and optional [[also]] tables")
    as_lists = lambda table: {k: v if isinstance(v, list) else [v] for k, v in table.items()}  # noqa: E731
    return [as_lists(axes)] + [as_lists({**axes, **extra}) for extra in also]


def in_grid(record: dict, products: list) -> bool:
    """Whether the record's config lies in one of the grid's products (keys a product leaves out not compared)."""
    return any(all(record.get(k) in values for k, values in product.items()) for product in products)


# --- grid tables ---------------------------------------------------------------------------------------------

def results_table(records: list, config_columns) -> pd.DataFrame:
    """records (one flat dict per cell) -> one row per cell: cell_id, the config columns, then the rest in
    order of appearance; curve lists left out."""
    config = list(config_columns)
    others = []
    for record in records:
        others += [k for k in record if k not in others and k not in config and k != "cell_id"
                   and not k.startswith(CURVE_PREFIX)]
    return pd.DataFrame.from_records(records, columns=["cell_id", *config, *others])


def curves_table(records: list) -> pd.DataFrame:
    """The per-epoch curves of every record, long format: cell_id, epoch (1-based), metric, value."""
    rows = [(record["cell_id"], epoch, key.removeprefix(CURVE_PREFIX), _number(value))
            for record in records for key, values in record.items()
            if key.startswith(CURVE_PREFIX) and isinstance(values, list)
            for epoch, value in enumerate(values, start=1)]
    # typed also when empty (every cell failed), so that the table reads back as numeric
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS)).astype({"epoch": "int64", "value": "float64"})


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def summary_table(results: pd.DataFrame, config_columns) -> pd.DataFrame:
    """Per configuration with a finished cell (every config column but seed; failures are the status table's):
    n_seeds (cells with status "ok"), n_diverged, n_failed, and <m>_mean, <m>_ci95 (half-width of the 95%
    t-interval over the ok seeds) for each summarized metric m of the registry that the results hold as numbers.

    A configuration with a diverged seed has NaN means: its survivors are a biased sample of its runs.
    """
    config = list(config_columns)
    keys = [c for c in config if c != "seed"]
    numeric = set(results.select_dtypes("number").columns)
    metrics = [m.name for m in summarized_metrics() if m.name in numeric]
    status = results["status"]
    by_config = [results[k] for k in keys]
    any_diverged = (status == "diverged").groupby(by_config, dropna=False).transform("any")
    groups = results[metrics].where((status == "ok") & ~any_diverged).groupby(by_config, dropna=False, sort=False)
    by_status = status.groupby(by_config, dropna=False, sort=False)
    columns = {f"n_{name}": by_status.agg(lambda s, value=value: int((s == value).sum()))
               for name, value in (("seeds", "ok"), ("diverged", "diverged"), ("failed", "failed"))}
    for metric in metrics:
        values = groups[metric]
        columns[f"{metric}_mean"] = values.mean()
        # t quantile with n - 1 degrees of freedom; NaN for a single seed (no interval).
        columns[f"{metric}_ci95"] = values.sem() * stats.t.ppf(0.975, values.count() - 1)
    summary = pd.DataFrame(columns).reset_index()
    return summary[(summary["n_seeds"] + summary["n_diverged"]) > 0].reset_index(drop=True)


def mean_ci_text(mean: float, ci: float) -> str:
    """'0.9574 ± 0.011' for a summary cell; the mean alone without an interval, '' without a mean."""
    if pd.isna(mean):
        return ""
    return f"{mean:.4g} ± {ci:.2g}" if pd.notna(ci) else f"{mean:.4g}"


def load_results(run_dir, config_columns) -> tuple:
    """(results, notes): RUN_DIR/results.parquet when it is newer than every cell record, else the table
    rebuilt from the valid records in cells/ of the cells grid.toml holds (a run interrupted before writing
    it, or that wrote it before its last cells). notes: one line per file or row left out, and why.

    Rebuilding never expands the grid: a record belongs to it when its values lie on grid.toml's axes.
    """
    run_dir = Path(run_dir)
    records, notes = read_records(run_dir, config_columns)
    path = table_path(run_dir, RESULTS)
    newest_record = max((p.stat().st_mtime_ns for p in (run_dir / CELLS).glob("*.json")), default=0)
    if path.exists() and path.stat().st_mtime_ns >= newest_record:
        try:
            results = read_table(path, required=("cell_id", "status", *config_columns))
        except RunFolderError as exc:
            notes.append(f"{exc}; the table was rebuilt from the records in {CELLS}/")
        else:
            return _checked_rows(results, path, notes), notes
    try:
        products = read_grid_axes(run_dir)
    except RunFolderError as exc:
        products = None
        notes.append(f"{exc}; every valid record in cells/ is shown")
    chosen = [r for r in records.values() if products is None or in_grid(r, products)]
    if len(chosen) < len(records):
        notes.append(f"{len(records) - len(chosen)} record(s) in cells/ are not in {GRID_SPEC} (an earlier grid) "
                     "and are left out")
    if not chosen:
        raise RunFolderError(f"{run_dir} holds no grid results: expected results.parquet or records in cells/"
                             + (f" ({notes[0]})" if notes else ""))
    return results_table(chosen, config_columns), notes


def _checked_rows(results: pd.DataFrame, path: Path, notes: list) -> pd.DataFrame:
    """The rows of results.parquet with a known status, each cell once (a repeated cell's first row)."""
    unknown = results[~results["status"].isin(STATUSES)]
    if len(unknown):
        notes.append(f"{path}: {len(unknown)} row(s) left out with an unknown status "
                     f"({', '.join(map(str, unknown['status'].unique()[:3]))}); expected {', '.join(STATUSES)}")
    repeated = results["cell_id"].duplicated()
    if repeated.any():
        notes.append(f"{path}: {int(repeated.sum())} repeated row(s) of cell(s) "
                     f"{', '.join(map(str, results.loc[repeated, 'cell_id'].unique()[:3]))} left out (a cell is one row)")
    return results[results["status"].isin(STATUSES) & ~repeated].reset_index(drop=True)


# --- reading tables and features -------------------------------------------------------------------------

def read_table(path, *, required=(), numeric=()) -> pd.DataFrame:
    """A parquet table with the `required` columns, `numeric` ones (where present) numeric and the text
    columns of TEXT_COLUMNS strings (missing values as ""); RunFolderError naming the file otherwise."""
    path = Path(path)
    try:
        table = pd.read_parquet(check_regular_file(path, MAX_TABLE_BYTES))
    except Exception as exc:  # pyarrow raises its own error types for a file that is not parquet
        raise RunFolderError(f"{path}: not a readable parquet table ({type(exc).__name__}: {exc})") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise RunFolderError(f"{path}: missing column(s) {', '.join(missing)}")
    for column in numeric:
        if column in table and not pd.api.types.is_numeric_dtype(table[column]):
            raise RunFolderError(f"{path}: column {column} must be numeric, got {table[column].dtype}")
    for column in TEXT_COLUMNS:
        if column in table:
            values = table[column]
            if not values.map(lambda v: isinstance(v, str) or v is None or (isinstance(v, float) and math.isnan(v))).all():
                raise RunFolderError(f"{path}: column {column} must hold text")
            table[column] = values.fillna("").astype(str)
    return table


def empty_table(columns) -> pd.DataFrame:
    """A table of no rows with these columns: text columns as strings, the others float."""
    return pd.DataFrame({c: pd.Series(dtype=object if c in TEXT_COLUMNS else float) for c in columns})


def holdout_of(row) -> int:
    """The holdout_classes of a results row or record (0: closed set, also for a run from before open-set cells)."""
    value = row.get("holdout_classes")
    if value is None or pd.isna(value):
        return 0
    if isinstance(value, bool) or not float(value).is_integer() or value < 0:
        raise RunFolderError(f"holdout_classes must be an integer >= 0, got {value!r}")
    return int(value)


def feature_row_limit() -> int:
    """The most test samples (rows) a cell's .npz may hold: $ABLATE_MAX_FEATURE_ROWS, else DEFAULT_FEATURE_ROWS.
    Reading a file loads every row; the limit keeps a file that claims millions from filling memory."""
    text = os.environ.get(FEATURE_ROWS_ENV, "")
    if not text:
        return DEFAULT_FEATURE_ROWS
    if not text.isdigit() or int(text) < 1:
        raise RunFolderError(f"${FEATURE_ROWS_ENV} must be a positive integer, got {text!r}")
    return int(text)


def _array_shapes(npz) -> dict:
    """name -> shape of every array of an open .npz, read from the headers alone (nothing is decompressed)."""
    shapes = {}
    for name in npz.files:
        with npz.zip.open(f"{name}.npy") as member:
            version = np.lib.format.read_magic(member)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, _ = read_header(member)
        shapes[name] = shape
    return shapes


def _check_claimed_sizes(shapes: dict, path: Path) -> None:
    """The sizes the .npz's headers claim, within the row and dimension limits, and D >= 1."""
    rows = feature_row_limit()
    for name in (*FEATURE_ARRAYS, PREDICTIONS):
        shape = shapes.get(name)
        if shape is None:
            continue
        if shape and shape[0] > (MAX_FEATURE_DIM if name == "centers" else rows):
            limit = f"{MAX_FEATURE_DIM:,} classes" if name == "centers" else f"{rows:,} rows (${FEATURE_ROWS_ENV})"
            raise RunFolderError(f"{path}: {name} claims {shape[0]:,} rows, over the limit of {limit}")
        if len(shape) == 2 and not 1 <= shape[1] <= MAX_FEATURE_DIM:
            raise RunFolderError(f"{path}: {name} claims feature dimension D = {shape[1]:,}; expected 1 to "
                                 f"{MAX_FEATURE_DIM:,}")


def read_features(path, holdout_classes: int = 0) -> dict:
    """A cell's .npz, checked: {"features": (N, D) float, "labels": (N,) int in [0, C + holdout_classes),
    "centers": (C, D) float, "predictions": (N,) int in [0, C), or None in a file written before cells saved
    them}. In an open-set cell the labels >= C are the classes held out of training (no center). The sizes the
    file claims are checked against feature_row_limit() and MAX_FEATURE_DIM before any array is loaded."""
    path = Path(path)
    try:
        with np.load(check_regular_file(path, MAX_FEATURES_BYTES), allow_pickle=False) as npz:
            missing = [k for k in FEATURE_ARRAYS if k not in npz.files]
            if missing:
                raise RunFolderError(f"{path}: missing array(s) {', '.join(missing)}")
            _check_claimed_sizes(_array_shapes(npz), path)
            arrays = {k: npz[k] for k in FEATURE_ARRAYS}
            arrays[PREDICTIONS] = npz[PREDICTIONS] if PREDICTIONS in npz.files else None
    except (RunFolderError, UnreadableFile) as exc:
        raise RunFolderError(str(exc)) from None
    except Exception as exc:  # zipfile, numpy and pickle refusals: a file that is not a plain .npz
        raise RunFolderError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc})") from None
    features, labels, centers, predictions = (arrays[k] for k in (*FEATURE_ARRAYS, PREDICTIONS))
    if features.ndim != 2 or centers.ndim != 2 or labels.ndim != 1:
        raise RunFolderError(f"{path}: expected features (N, D), labels (N,), centers (C, D); got shapes "
                             f"{features.shape}, {labels.shape}, {centers.shape}")
    if len(labels) != len(features) or features.shape[1] != centers.shape[1] or len(centers) == 0:
        raise RunFolderError(f"{path}: shapes do not agree: features {features.shape}, labels {labels.shape}, "
                             f"centers {centers.shape}")
    if not (np.issubdtype(features.dtype, np.floating) and np.issubdtype(centers.dtype, np.floating)
            and np.issubdtype(labels.dtype, np.integer)):
        raise RunFolderError(f"{path}: expected float features and centers and integer labels, got "
                             f"{features.dtype}, {centers.dtype}, {labels.dtype}")
    classes = len(centers) + holdout_classes
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise RunFolderError(f"{path}: labels must lie in [0, {classes}), got {labels.min()} to {labels.max()}")
    if predictions is not None:
        if predictions.shape != labels.shape or not np.issubdtype(predictions.dtype, np.integer):
            raise RunFolderError(f"{path}: expected integer predictions of shape {labels.shape}, got "
                                 f"{predictions.dtype} {predictions.shape}")
        if len(predictions) and (predictions.min() < 0 or predictions.max() >= len(centers)):
            raise RunFolderError(f"{path}: predictions must lie in [0, {len(centers)}), got {predictions.min()} to "
                                 f"{predictions.max()}")
    return arrays
