"""Running one cell where a worker runs it: the record, its features as bytes, failures caught.

Runs in the grid's own process, in a local worker process or in a Ray task, so everything here is
importable by name and its result is plain data (the parent writes the files).
"""

import socket
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ablate.failures import error_tail
from ablate.runs.record import FailedRecord

WEIGHTS_FILE = "weights.safetensors"  # beside the features in a cell's temp folder, when the cell keeps its weights


@dataclass
class CellResult:
    """cell_id; record: the flat record (status "ok" | "diverged" | "failed"); features: the .npz bytes or None;
    weights: the .safetensors bytes of a cell that kept them, or None."""

    cell_id: str
    record: dict
    features: bytes | None
    weights: bytes | None = None


def train_cell(config: dict, features_path: Path, *, save_weights: bool = False, loader_workers: int = 0) -> dict:
    """The real cell: train and evaluate `config` (a resolved config dict), features to `features_path` and, with
    save_weights, its weights to WEIGHTS_FILE beside them; a streamed dataset loads with `loader_workers`."""
    from ablate.train import CellConfig, run_cell

    weights_path = features_path.with_name(WEIGHTS_FILE) if save_weights else None
    return run_cell(CellConfig.from_dict(config), features_path=features_path, weights_path=weights_path,
                    loader_workers=loader_workers)


def failed_record(config: dict, error: str, wall_time_s: float | None = None) -> dict:
    """A failed cell: its config, status "failed" and the error's last lines (ablate.runs.record.FailedRecord)."""
    return FailedRecord(config, error=error_tail(error), wall_time_s=wall_time_s).to_dict()


def execute_cell(cell_id: str, config: dict, cell_fn=train_cell, temp_root=None) -> CellResult:
    """Run cell_fn(config, features_path); an exception becomes a failed record instead of propagating.
    temp_root: the folder the cell's temp folder goes in (a local executor's own, removed with it)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ablate-cell-", dir=temp_root) as tmp:
        features_path = Path(tmp) / "features.npz"
        try:
            record = dict(cell_fn(config, features_path))
        except Exception:
            record = failed_record(config, traceback.format_exc(), time.perf_counter() - start)
        features = features_path.read_bytes() if features_path.exists() else None
        weights_path = features_path.with_name(WEIGHTS_FILE)
        weights = weights_path.read_bytes() if weights_path.exists() else None
    record.update(cell_id=cell_id, host=socket.gethostname())
    return CellResult(cell_id, record, features, weights)
