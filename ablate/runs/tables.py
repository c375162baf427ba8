"""The grid's tables: built from the cell records, and read back (or rebuilt) checked.

    results   one row per cell: cell_id, the config columns (grid keys), then the records' other keys in order of
              appearance (metrics, status, timings; ablate.runs.record declares them)
    curves    long format: cell_id, epoch (1-based), metric (a curve's name: softmax_loss | center_loss |
              train_accuracy, and pair_loss in a cell with a pair loss), value
    summary   one row per configuration with a finished cell (ablate.runs.summary)
"""

import math
import os
from pathlib import Path

import pandas as pd

from ablate.messages import listed
from ablate.runs.readers import in_grid, read_grid_axes, read_records, read_table
from ablate.runs.record import CURVE_PREFIX, record_schema
from ablate.runs.schema import (
    CELLS,
    CURVE_COLUMNS,
    CURVES,
    GRID_SPEC,
    RESULTS,
    SUMMARY,
    RunFolderError,
    table_path,
)
from ablate.runs.summary import summary_table


def results_table(records: list, config_columns: list | tuple) -> pd.DataFrame:
    """records (one flat dict per cell) -> one row per cell: cell_id, the config columns, then the rest in
    order of appearance; curve lists left out."""
    config = list(config_columns)
    others: list = []
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


def grid_tables(records: list, config_columns: list | tuple) -> dict[str, pd.DataFrame]:
    """{results, curves, summary} of the records (one flat dict per cell, in grid order), as the grid writes them."""
    results = results_table(records, config_columns)
    return {RESULTS: results, CURVES: curves_table(records), SUMMARY: summary_table(results, config_columns)}


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def load_results(run_dir: str | Path, config_columns: dict | list | tuple,
                 cells: set | None = None) -> tuple[pd.DataFrame, list]:
    """(results, notes): RUN_DIR/results.parquet when it is newer than every cell record, else the table
    rebuilt from the valid records in cells/ of the cells grid.toml holds (a run interrupted before writing
    it, or that wrote it before its last cells), or of the ids in `cells` when given (a tune's final seeds).
    notes: one line per file or row left out, and why.
    config_columns: name -> Column (run.json's declaration), or the names alone (ablate.runs.record.record_schema).

    Every column is checked against its type (ablate.runs.record.RecordSchema): a results.parquet with a column of
    the wrong type is set aside for the records, a row out of its column's range left out. Rebuilding never expands
    the grid: a record belongs to it when its values lie on grid.toml's axes.
    """
    run_dir = Path(run_dir)
    records, notes = read_records(run_dir, config_columns)
    path = table_path(run_dir, RESULTS)
    newest_record = max((_modified(p) for p in (run_dir / CELLS).glob("*.json")), default=0)
    if os.path.lexists(path) and _modified(path) >= newest_record:
        try:
            results = read_table(path, required=("cell_id", "status", *config_columns))
            results = record_schema(config_columns).check_table(results, path, notes)
        except RunFolderError as exc:
            notes.append(f"{exc}; the table was rebuilt from the records in {CELLS}/")
        else:
            return _checked_rows(results, path, notes), notes
    if cells is not None:
        return results_table([records[i] for i in records if i in cells], list(config_columns)), notes
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
    return results_table(chosen, list(config_columns)), notes


def _modified(path: Path) -> int:
    """When `path` (followed) last changed, in ns; 0 for one that cannot be reached (a symlink loop: its reader
    names it)."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _checked_rows(results: pd.DataFrame, path: Path, notes: list) -> pd.DataFrame:
    """The rows of results.parquet (their types checked), each cell once (a repeated cell's first row)."""
    repeated = results["cell_id"].duplicated()
    if repeated.any():
        cells = listed(results.loc[repeated, "cell_id"].unique(), shown=3)
        notes.append(f"{path}: {int(repeated.sum())} repeated row(s) of cell(s) {cells} left out (a cell is one row)")
    return results[~repeated].reset_index(drop=True)
