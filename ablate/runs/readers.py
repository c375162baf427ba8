"""Checked readers of a run folder's files: JSON (provenance, cell records), parquet tables, the grid spec.

Every file is untrusted: a reader checks what it reads and raises RunFolderError naming the file and what is
wrong (run.json: ablate.runs.manifest; a cell's features: ablate.runs.features).
"""

import math
import os
from pathlib import Path
from typing import Any, TypeVar, overload

import pandas as pd

from ablate.io import UnreadableFile, check_regular_file, parse_json_text, path_kind, read_regular_text, read_toml_file
from ablate.messages import listed
from ablate.runs import record as cell_record
from ablate.runs.columns import ConfigColumns, shown
from ablate.runs.schema import (
    CELLS,
    GRID_SPEC,
    ID_LENGTH,
    MAX_TABLE_BYTES,
    OPTIONAL_CONFIG_KEYS,
    PROVENANCE,
    STATUSES,
    TEXT_COLUMNS,
    RunFolderError,
    cell_id,
    is_cell_id,
)

# --- JSON --------------------------------------------------------------------------------------------------------


JSONContainer = TypeVar("JSONContainer", dict, list)


@overload
def read_json(path: str | Path) -> dict: ...
@overload
def read_json(path: str | Path, expected: type[JSONContainer]) -> JSONContainer: ...
def read_json(path: str | Path, expected: type = dict) -> Any:
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


def read_provenance(run_dir: str | Path) -> dict:
    """RUN_DIR/provenance.json, {} when absent; a flat object of scalars (nested values are shown as text)."""
    path = Path(run_dir) / PROVENANCE
    return read_json(path) if os.path.lexists(path) else {}


# --- grid records ------------------------------------------------------------------------------------------------

def check_record(record: dict, path: Path, config_columns: ConfigColumns | None = None) -> dict:
    """A cell record as read from `path`, checked: its status, every value against its column
    (ablate.runs.record.RecordSchema: the config columns as `config_columns` types them, the record's fields, the
    metrics, the curves), its id (the file's name) and, given the config columns, that its config hashes to that
    id. Returns the record."""
    status = record.get("status")
    if status not in STATUSES:
        raise RunFolderError(f"{path}: unknown status {shown(status)}; expected one of {', '.join(STATUSES)}")
    if config_columns is not None:
        missing = [c for c in config_columns if c not in record and c not in OPTIONAL_CONFIG_KEYS]
        if missing:
            raise RunFolderError(f"{path}: the record lacks config key(s) {listed(missing)}")
    cell_record.record_schema(config_columns).check_record(record, path)
    shared = record.get(cell_record.SHARES_TRAINING_WITH)
    if shared is not None and not is_cell_id(shared):
        raise RunFolderError(f"{path}: {cell_record.SHARES_TRAINING_WITH} must be a cell id ({ID_LENGTH} hex digits), "
                             f"got {shown(shared)}")
    if record.get("cell_id") != path.stem:
        raise RunFolderError(f"{path}: the record names cell {record.get('cell_id')!r}, not {path.stem!r} "
                             "(a cell file copied under another name?)")
    if config_columns is not None:
        actual = cell_id({c: record.get(c) for c in config_columns})
        if actual != path.stem:
            raise RunFolderError(f"{path}: the record's config hashes to {actual}, not to its name {path.stem}")
    return record


def read_record(path: str | Path, config_columns: ConfigColumns | None = None) -> dict:
    return check_record(read_json(path), Path(path), config_columns)


def read_records(run_dir: str | Path, config_columns: ConfigColumns | None = None) -> tuple[dict, list]:
    """({cell id: record} for every valid record in RUN_DIR/cells, [one line per file left out and why])."""
    cells = Path(run_dir) / CELLS
    records: dict = {}
    problems: list = []
    kind = path_kind(cells)
    if kind != "a folder":
        if kind != "missing":
            problems.append(f"{cells} is {kind}, not a folder: no cell record could be read")
        return records, problems
    for path in sorted(cells.glob("*.json")):
        try:
            records[path.stem] = read_record(path, config_columns)
        except RunFolderError as exc:
            problems.append(str(exc))
    return records, problems


def read_grid_axes(run_dir: str | Path) -> list | None:
    """The products of RUN_DIR/grid.toml, each {key: [values]} ([axes] then each [[also]] over it); None when
    the folder has no grid.toml."""
    path = Path(run_dir) / GRID_SPEC
    if not os.path.lexists(path):
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


def holdout_of(row: dict | pd.Series) -> int:
    """The holdout_classes of a results row or record (0: closed set, also for a run from before open-set cells)."""
    value = row.get("holdout_classes")
    if value is None or pd.isna(value):
        return 0
    if isinstance(value, bool) or not float(value).is_integer() or value < 0:
        raise RunFolderError(f"holdout_classes must be an integer >= 0, got {value!r}")
    return int(value)


# --- tables ------------------------------------------------------------------------------------------------------

def read_table(path: str | Path, *, required: tuple | list = (), numeric: tuple | list = ()) -> pd.DataFrame:
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
            is_text = lambda v: isinstance(v, str) or v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731
            if not values.map(is_text).all():
                raise RunFolderError(f"{path}: column {column} must hold text")
            table[column] = values.fillna("").astype(str)
    return table


def empty_table(columns: tuple | list) -> pd.DataFrame:
    """A table of no rows with these columns: text columns as strings, the others float."""
    return pd.DataFrame({c: pd.Series(dtype=object if c in TEXT_COLUMNS else float) for c in columns})
