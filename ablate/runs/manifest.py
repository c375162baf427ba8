"""run.json read: the kind of run a folder holds and the schema version it was written in (ablate.runs.folder
writes it).

    read_manifest(run_dir)        run.json checked, None for a schema-0 folder (no run.json); a newer schema refused
    config_columns(manifest)      a grid's config columns, typed: name -> Column (ablate.runs.columns)
    schema_version(run_dir)       0 without run.json, else the version run.json records
    run_kind(run_dir)             "grid", "bench" or "distributed", recorded or read off the files; None: no run
    check_kind(run_dir, kind)     refuse a folder that holds a run of another kind (writes nothing)
"""

import os
from pathlib import Path

from ablate.runs.columns import Column, shown
from ablate.runs.readers import read_json
from ablate.runs.schema import (
    BENCH,
    CELLS,
    COLUMN_NAME,
    DISTRIBUTED,
    GRID_SPEC,
    KIND_COMMANDS,
    KINDS,
    MANIFEST,
    PARTS,
    RESULTS,
    SCHEMA,
    SCHEMA_0_CONFIG_TYPES,
    RunFolderError,
    table_path,
)


def _check_newer(manifest: dict, path: Path) -> None:
    """Refuse a run.json of a schema newer than SCHEMA (checked first: a newer ablate may write what this one
    cannot check, a kind it does not know, say)."""
    schema = manifest.get("schema")
    if isinstance(schema, int) and not isinstance(schema, bool) and schema > SCHEMA:
        raise RunFolderError(f"{path}: schema {schema}, written by a newer ablate; this ablate reads schema {SCHEMA} "
                             "at most: upgrade ablate to read it")


def _check_schema(manifest: dict, path: Path) -> None:
    """run.json's schema version: an integer from 1 to SCHEMA (run.json was introduced with schema 1)."""
    if "schema" not in manifest:
        raise RunFolderError(f"{path}: no schema version; expected \"schema\": an integer from 1 to {SCHEMA} (every "
                             "run.json ablate writes records one)")
    schema = manifest["schema"]
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise RunFolderError(f"{path}: schema must be an integer from 1 to {SCHEMA}, got {schema!r}")


def read_manifest(run_dir: str | Path) -> dict | None:
    """RUN_DIR/run.json checked (schema, kind, config_columns), or None when the folder has none (schema 0)."""
    path = Path(run_dir) / MANIFEST
    if not os.path.lexists(path):  # a link that leads nowhere (or to itself) is read, and named as what it is
        return None
    manifest = read_json(path)
    _check_newer(manifest, path)
    if manifest.get("kind") not in KINDS:
        raise RunFolderError(f"{path}: kind must be one of {', '.join(KINDS)}, got {manifest.get('kind')!r}")
    _check_schema(manifest, path)
    columns = manifest.get("config_columns")
    if columns is not None and not (isinstance(columns, list) and columns
                                    and all(isinstance(c, str) and COLUMN_NAME.fullmatch(c) for c in columns)):
        raise RunFolderError(f"{path}: config_columns must be a non-empty list of lower-case names, got "
                             f"{shown(columns)}")
    types = manifest.get("config_types")
    if types is not None:
        if not isinstance(types, dict) or columns is None or set(types) != set(columns):
            raise RunFolderError(f"{path}: config_types must declare each of config_columns and no other, got "
                                 f"{shown(types)}")
        try:  # in the order of config_columns (run.json's keys are sorted)
            manifest["config_types"] = {name: Column.from_json(types[name], f"{path}: config_types.{name}")
                                        for name in columns}
        except ValueError as exc:
            raise RunFolderError(str(exc)) from None
        for name, column in manifest["config_types"].items():  # what every grid has held, no folder redeclares
            legacy = SCHEMA_0_CONFIG_TYPES.get(name)
            if legacy is not None and column.kind != legacy.kind:
                raise RunFolderError(f"{path}: config_types.{name} declares {column.describe()}; a grid's {name} "
                                     f"is always {legacy.describe()}")
    return manifest


def config_columns(manifest: dict | None) -> dict | list:
    """A grid's config columns as run.json declares them: name -> Column, or their names alone in a folder that
    declares no types (written before it did), or schema 0's for a folder without run.json."""
    if manifest is None or not manifest.get("config_columns"):
        return dict(SCHEMA_0_CONFIG_TYPES)
    return manifest.get("config_types") or list(manifest["config_columns"])


def schema_version(run_dir: str | Path) -> int:
    """The schema version RUN_DIR was written in: 0 without run.json, else run.json's (checked, never newer)."""
    manifest = read_manifest(run_dir)
    return 0 if manifest is None else manifest["schema"]


def run_kind(run_dir: str | Path) -> str | None:
    """"grid", "bench" or "distributed" as run.json records it, else as the files show (schema 0), else None (no
    run)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    if manifest is not None:
        return manifest["kind"]
    present = os.path.lexists
    if present(run_dir / CELLS) or present(table_path(run_dir, RESULTS)) or present(run_dir / GRID_SPEC):
        return "grid"
    if present(table_path(run_dir, BENCH)) or present(run_dir / PARTS):
        return "bench"
    if present(table_path(run_dir, DISTRIBUTED)):
        return "distributed"
    return None


def check_kind(run_dir: str | Path, kind: str) -> None:
    """Raise RunFolderError if RUN_DIR holds a run of another kind than `kind`, or one of a newer schema (writes
    nothing)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    found = run_kind(run_dir)
    if found is not None and found != kind:
        raise RunFolderError(f"{run_dir} holds a {found} run (from `{KIND_COMMANDS[found]}`); "
                             f"`{KIND_COMMANDS[kind]}` would mix its files into it: choose another --out")
