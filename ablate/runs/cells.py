"""A grid's cell files (layout in ablate.runs.schema, checks in ablate.runs.readers): cells/<id>.json (the record),
<id>.npz (its test features) and <id>.safetensors (its weights, where kept: ablate.runs.weights), and the cells'
scratch folder.

The .npz is written before the .json, each atomically, so a record's presence means the cell is
whole; a cell killed mid-way leaves at most a stale temp file, removed by `remove_temp_files`.
"""

import shutil
from pathlib import Path

from ablate.io import atomic_write_bytes, atomic_write_json, remove_temp_files
from ablate.runs import readers, schema
from ablate.runs.columns import ConfigColumns


class CellStore:
    """The cells of RUN_DIR; `config_columns` (the grid keys) let each record be checked against its id."""

    def __init__(self, run_dir: str | Path, config_columns: ConfigColumns | None = None):
        self.run_dir = Path(run_dir)
        self.cells_dir = self.run_dir / schema.CELLS
        self.config_columns = config_columns

    def record_path(self, cell_id: str) -> Path:
        return schema.record_path(self.run_dir, cell_id)

    def features_path(self, cell_id: str) -> Path:
        return schema.features_path(self.run_dir, cell_id)

    def read(self, cell_id: str) -> dict | None:
        """The cell's record, or None if it has not finished; RunFolderError if its file is not a valid record."""
        path = self.record_path(cell_id)
        return readers.read_record(path, self.config_columns) if path.exists() else None

    def records(self) -> tuple[dict, list]:
        """({cell id: record} of every valid record in cells/, [why each other file was left out])."""
        return readers.read_records(self.run_dir, self.config_columns)

    def weights_path(self, cell_id: str) -> Path:
        return schema.weights_path(self.run_dir, cell_id)

    def has_weights(self, cell_id: str) -> bool:
        return self.weights_path(cell_id).exists()

    def save(self, cell_id: str, record: dict, features: bytes | None, weights: bytes | None = None, *,
             replace_weights: bool = False) -> None:
        """Features first (or an earlier run's removed: a rerun that saved none), then the weights (kept weights are
        never rewritten, unless replace_weights: a forced rerun), then the record that marks the cell finished; each
        atomically."""
        if features is not None:
            atomic_write_bytes(self.features_path(cell_id), features)
        else:
            self.features_path(cell_id).unlink(missing_ok=True)
        if weights is not None and (replace_weights or not self.has_weights(cell_id)):
            atomic_write_bytes(self.weights_path(cell_id), weights)
        atomic_write_json(self.record_path(cell_id), record)

    def remove_temp_files(self) -> int:
        """Delete the temp files ablate.io left in cells/ when a run was killed, and the cells' scratch folder;
        returns how many temp files (the run folder's own: ablate.runs.folder)."""
        self.remove_scratch()
        return remove_temp_files(self.cells_dir)

    def remove_scratch(self) -> None:
        shutil.rmtree(self.run_dir / schema.SCRATCH, ignore_errors=True)

    def scratch(self) -> Path:
        """The folder (made here) the cells' temp folders go in while this run goes on."""
        path = self.run_dir / schema.SCRATCH
        path.mkdir(parents=True, exist_ok=True)
        return path
