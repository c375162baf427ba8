"""Running one task where a worker runs it: a cell, or a cell and the cells that share its training (its followers,
ablate.grid.sharing); the records, their features as bytes, failures caught.

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
from ablate.grid import progress
from ablate.runs.record import SHARES_TRAINING_WITH, FailedRecord

FOLLOWERS = "followers"  # in a task's config (no cell option is called so): [(cell_id, config)] sharing its training

WEIGHTS_SUFFIX = ".safetensors"  # a cell's weights beside its features (<id>.npz) in its temp folder, when kept


@dataclass
class CellResult:
    """cell_id; record: the flat record (status "ok" | "diverged" | "failed"); features: the .npz bytes or None;
    followers: the results of the cells that shared this cell's training, if any; weights: the .safetensors bytes of a
    cell that kept them, or None."""

    cell_id: str
    record: dict
    features: bytes | None
    followers: tuple = ()
    weights: bytes | None = None


def task_cells(config: dict) -> tuple[dict, list]:
    """(the lead cell's config, [(cell_id, config)] of its followers) of a task's config."""
    return {k: v for k, v in config.items() if k != FOLLOWERS}, list(config.get(FOLLOWERS, ()))


def train_cell(config: dict, features_path: Path, *, save_weights: bool = False, loader_workers: int = 0) -> dict:
    """The real cell: train and evaluate `config` (a resolved config dict), features to `features_path` and, with
    save_weights, its weights beside them (the same name, WEIGHTS_SUFFIX); a streamed dataset loads with
    `loader_workers`."""
    from ablate.train import CellConfig, run_cell

    weights_path = features_path.with_suffix(WEIGHTS_SUFFIX) if save_weights else None
    return run_cell(CellConfig.from_dict(config), features_path=features_path, weights_path=weights_path,
                    loader_workers=loader_workers, on_epoch=progress.epoch_done)


def train_shared_cells(lead: dict, followers: list, features_paths: list) -> list:
    """The real cells of a shared training: `lead` trained once, each config of `followers` following it
    (ablate.train.cell.run_shared_cells); a record per cell, None for one the training does not stand for."""
    from ablate.train import CellConfig
    from ablate.train.cell import run_shared_cells

    return run_shared_cells(CellConfig.from_dict(lead), [CellConfig.from_dict(c) for c in followers], features_paths,
                            on_epoch=progress.epoch_done)


def failed_record(config: dict, error: str, wall_time_s: float | None = None) -> dict:
    """A failed cell: its config, status "failed" and the error's last lines (ablate.runs.record.FailedRecord)."""
    return FailedRecord(task_cells(config)[0], error=error_tail(error), wall_time_s=wall_time_s).to_dict()


def execute_cell(cell_id: str, config: dict, cell_fn=train_cell, temp_root=None) -> CellResult:
    """Run cell_fn(config, features_path); an exception becomes a failed record instead of propagating.
    temp_root: the folder the cell's temp folder goes in (a local executor's own, removed with it).

    A task with followers (config[FOLLOWERS]) trains them with it, once (train_shared_cells), when cell_fn is the
    real trainer; a follower the shared training does not stand for, and every follower of any other cell_fn, runs
    on its own after the lead. The followers' results come as the lead's `followers`, each marked with the lead's id
    (SHARES_TRAINING_WITH) when it shared the training."""
    lead, followers = task_cells(config)
    with tempfile.TemporaryDirectory(prefix="ablate-cell-", dir=temp_root) as tmp, progress.reporting(cell_id):
        folder = Path(tmp)
        if followers and cell_fn is train_cell:
            first, *others = _run_shared(cell_id, lead, followers, folder)
        else:
            first, *others = [_run_one(i, c, cell_fn, folder) for i, c in [(cell_id, lead), *followers]]
    first.followers = tuple(others)
    return first


def _run_shared(cell_id: str, lead: dict, followers: list, folder: Path) -> list:
    """The CellResults of a lead and its followers from one training; a follower the training does not stand for
    trains alone."""
    ids, configs = [cell_id, *(i for i, _ in followers)], [lead, *(c for _, c in followers)]
    paths = [folder / f"{i}.npz" for i in ids]
    start = time.perf_counter()
    try:
        records = train_shared_cells(lead, configs[1:], paths)
    except Exception:
        error = traceback.format_exc()
        records = [failed_record(c, error, time.perf_counter() - start) for c in configs]
    results = []
    for i, config, record, path in zip(ids, configs, records, paths):
        if record is None:  # its own center loss went non-finite, or the lead diverged
            results.append(_run_one(i, config, train_cell, folder))
            continue
        if i != cell_id and record["status"] != "failed":
            record[SHARES_TRAINING_WITH] = cell_id
        results.append(_result(i, record, path))
    return results


def _run_one(cell_id: str, config: dict, cell_fn, folder: Path) -> CellResult:
    """cell_fn run on `config`, its features to folder/<cell_id>.npz; an exception becomes a failed record."""
    path = folder / f"{cell_id}.npz"
    start = time.perf_counter()
    try:
        record = dict(cell_fn(config, path))
    except Exception:
        record = failed_record(config, traceback.format_exc(), time.perf_counter() - start)
    return _result(cell_id, record, path)


def _result(cell_id: str, record: dict, features_path: Path) -> CellResult:
    """The CellResult of a record and the features and weights files its cell wrote (if it did)."""
    record.update(cell_id=cell_id, host=socket.gethostname())
    weights_path = features_path.with_suffix(WEIGHTS_SUFFIX)
    return CellResult(cell_id, record, features_path.read_bytes() if features_path.exists() else None,
                      weights=weights_path.read_bytes() if weights_path.exists() else None)
