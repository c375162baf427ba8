"""The cell files of a run folder: RUN_DIR/cells/<id>.json (the record) and <id>.npz (its features).

The .npz is written before the .json, each atomically, so a record's presence means the cell is
whole; a cell killed mid-way leaves at most a stale temp file, removed by `remove_temp_files`.
"""

import fcntl
import json
from contextlib import contextmanager
from pathlib import Path

from ablate.io import atomic_write_bytes, atomic_write_json

FINISHED = ("ok", "diverged")
STATUSES = (*FINISHED, "failed")


class RunLockedError(RuntimeError):
    pass


class CellStore:
    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.cells_dir = self.run_dir / "cells"

    def record_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}.json"

    def features_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{cell_id}.npz"

    def read(self, cell_id: str) -> dict | None:
        """The cell's record, or None if it has not finished."""
        path = self.record_path(cell_id)
        return json.loads(path.read_text()) if path.exists() else None

    def records(self) -> dict:
        """cell id -> record, for every record in cells/."""
        if not self.cells_dir.is_dir():
            return {}
        return {p.stem: json.loads(p.read_text()) for p in sorted(self.cells_dir.glob("*.json"))}

    def save(self, cell_id: str, record: dict, features: bytes | None) -> None:
        """Features first (or an earlier run's removed: a rerun that saved none), then the record that marks
        the cell finished; each atomically."""
        if features is not None:
            atomic_write_bytes(self.features_path(cell_id), features)
        else:
            self.features_path(cell_id).unlink(missing_ok=True)
        atomic_write_json(self.record_path(cell_id), record)

    def remove_temp_files(self) -> int:
        """Delete temp files left by a killed run (ablate.io names them .<name>.<random>.tmp); returns how many."""
        stale = list(self.cells_dir.glob(".*.tmp")) + list(self.run_dir.glob(".*.tmp"))
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    @contextmanager
    def locked(self):
        """Hold an exclusive lock on the run folder: one `ablate grid` writes to it at a time.

        The operating system drops the lock when the process ends, killed or not.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLockedError(f"another `ablate grid` is writing to {self.run_dir}; "
                                     "wait for it to end or use another --out") from None
            yield
