"""Writing a run folder: one writer at a time, and one sequence for every kind (grid, bench, distributed).

    with RunFolder.writing(run_dir, "grid", config_columns=columns) as run:
        store = run.cells(columns)            # a grid's cell files (ablate.runs.cells)
        parts = run.parts(measured_for)       # a bench's resumable units (ablate.runs.parts)
        run.write_spec(text)                  # grid.toml (and, for a tune, run.write_spec(text, TUNE_SPEC))
        storage = run.study_storage()         # a tune's Optuna journal (ablate.runs.study)
        run.note_provenance(cells=...)        # provenance.json now, finished_at null (a killed run keeps it)
        run.write_tables(tables)              # the tables now (a long grid, while it runs)
        run.tables = tables                   # what the way out writes
        run.provenance.update(...)            # what provenance.json records beside the stamp and the times

On the way in: a folder that holds another kind of run is refused (before any file is made), the lock is taken
(RunLockedError while another process holds it), run.json claims the folder, and the temp files a killed writer left
are removed; the stamp (ablate.provenance.collect()) and started_at are taken. On the way out, when the block ended
without an exception: the tables, then provenance.json with finished_at, then a bench's parts (the run is whole).
Whatever the end: a grid's scratch folder is removed and the lock released.

This package is the only one that writes into a run folder (tests/runs/test_writers.py checks it).
"""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ablate import provenance
from ablate.io import (
    atomic_write_json,
    atomic_write_table,
    atomic_write_text,
    atomic_write_with,
    check_writable,
    remove_temp_files,
)
from ablate.runs.cells import CellStore
from ablate.runs.columns import ConfigColumns
from ablate.runs.manifest import check_kind
from ablate.runs.parts import PartStore
from ablate.runs.schema import (
    CELLS,
    GRID_SPEC,
    KINDS_WITH_CELLS,
    LOCK,
    MANIFEST,
    PARQUET_ONLY,
    PROVENANCE,
    SCHEMA,
    RunLockedError,
    table_path,
)
from ablate.runs.study import journal_path, journal_storage


def check_can_write(run_dir: str | Path, kind: str) -> None:
    """Refuse, before any work starts, a folder this user cannot write (a grid's cells/ folder too) or one that
    holds a run of another kind: ValueError (RunFolderError for the kind) naming the folder."""
    check_writable(run_dir, folder=True)
    if kind in KINDS_WITH_CELLS:
        check_writable(Path(run_dir) / CELLS, folder=True)
    check_kind(run_dir, kind)


def claim(run_dir: str | Path, kind: str, **fields: object) -> None:
    """Mark RUN_DIR as a run of `kind` (run.json, at schema SCHEMA, with `fields`), refusing a folder that holds a
    run of another kind. A grid's config_columns given typed (name -> ablate.runs.columns.Column) are recorded as
    their names and their declared types (config_types)."""
    run_dir = Path(run_dir)
    check_kind(run_dir, kind)
    columns = fields.get("config_columns")
    if isinstance(columns, dict):
        fields = {**fields, "config_columns": list(columns),
                  "config_types": {name: column.to_json() for name, column in columns.items()}}
    atomic_write_json(run_dir / MANIFEST, {"kind": kind, "schema": SCHEMA, **fields})


@contextmanager
def locked(run_dir: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on RUN_DIR (made here) while writing it: one writer (`ablate grid`, `ablate bench`) at
    a time. The operating system drops the lock when the process ends, killed or not."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(f"another `ablate` run is writing to {run_dir}; wait for it to end or use another "
                                 "--out") from None
        yield


def write_tables(run_dir: str | Path, tables: dict[str, pd.DataFrame]) -> None:
    """Each table as RUN_DIR/<name>.parquet and .csv (.parquet alone for those of PARQUET_ONLY), each atomically."""
    for name, table in tables.items():
        if name in PARQUET_ONLY:
            atomic_write_with(table_path(run_dir, name), lambda path, table=table: table.to_parquet(path, index=False))
        else:
            atomic_write_table(table, Path(run_dir) / name)


class RunFolder:
    """A run folder being written by this process; made by `RunFolder.writing` (see the module docstring).

    stamp: ablate.provenance.collect() when the writing began; provenance: what provenance.json records beside the
    stamp and the times; tables: name -> table, written on the way out.
    """

    def __init__(self, path: Path, kind: str):
        self.path, self.kind = path, kind
        self.stamp = provenance.collect()
        self.started_at = provenance.now()
        self.provenance: dict = {}
        self.tables: dict[str, pd.DataFrame] = {}
        self._cells: CellStore | None = None
        self._parts: PartStore | None = None

    @classmethod
    @contextmanager
    def writing(cls, path: str | Path, kind: str, **manifest: object) -> Iterator["RunFolder"]:
        """The run folder at `path`, claimed for a run of `kind` (run.json records `manifest` too), held until the
        block ends; tables and provenance written when it ends without an exception."""
        path = Path(path)
        check_kind(path, kind)  # before the lock: a refused folder gets no lock file
        with locked(path):
            claim(path, kind, **manifest)
            remove_temp_files(path)
            run = cls(path, kind)
            try:
                yield run
                run.write_tables()
                run._write_provenance(finished_at=provenance.now())
                if run._parts is not None:
                    run._parts.clear()  # the run is whole: a later run into this folder measures afresh
            finally:
                if run._cells is not None:
                    run._cells.remove_scratch()

    def cells(self, config_columns: ConfigColumns) -> CellStore:
        """The grid's cell files, the temp files and scratch folder a killed run left removed."""
        self._cells = CellStore(self.path, config_columns)
        self._cells.remove_temp_files()
        return self._cells

    def parts(self, measured_for: dict) -> PartStore:
        """The units a run of the same study (`measured_for`) left; removed once this run is whole."""
        self._parts = PartStore(self.path, measured_for).open()
        return self._parts

    def write_spec(self, text: str, name: str = GRID_SPEC) -> None:
        """grid.toml (the resolved grid spec), or another spec file of the run's (a tune's tune.toml)."""
        atomic_write_text(self.path / name, text)

    def study_storage(self):
        """A tune's Optuna journal storage (RUN_DIR/study.journal, made here), the lock file of an append a killed
        tune left removed (this process holds the run folder's lock, so it is the journal's only writer)."""
        Path(f"{journal_path(self.path)}.lock").unlink(missing_ok=True)
        return journal_storage(self.path, writable=True)

    def note_provenance(self, **fields: object) -> None:
        """Add `fields` to provenance.json and write it now, unfinished (finished_at null)."""
        self.provenance.update(fields)
        self._write_provenance(finished_at=None)

    def write_tables(self, tables: dict[str, pd.DataFrame] | None = None) -> None:
        """Write `tables` (which become the tables the way out writes), or those already set, now."""
        if tables is not None:
            self.tables = tables
        write_tables(self.path, self.tables)

    def _write_provenance(self, *, finished_at: str | None) -> None:
        atomic_write_json(self.path / PROVENANCE, {**self.stamp, "started_at": self.started_at,
                                                   "finished_at": finished_at, **self.provenance})
