"""Cells at lambda 0 that differ only in options inert there (INERT_AT_ZERO_LAMBDA) train the same model, bit for bit;
one training shared by them (run_shared_cells) gives each the record and features its own training gives.

Real digits cells of two epochs, on the CPU in this process (the thread count is the same for both trainings: float
sums depend on it); then grids whose cells share trainings.
"""

import os

import numpy as np
import pytest

from ablate.grid import run_grid
from ablate.grid.executors import SerialExecutor, make_executor
from ablate.grid.spec import GridSpec
from ablate.report.grid_tables import shared_training_notes
from ablate.runs.loading import load_run
from ablate.runs.record import SHARES_TRAINING_WITH
from ablate.train import CellConfig, run_cell
from ablate.train.cell import run_shared_cells
from ablate.train.config import INERT_AT_ZERO_LAMBDA, shared_training_key

BASE = {"dataset": "digits", "epochs": 2, "device": "cpu", "lambda": 0.0, "seed": 3}
# One other value of each inert key (and one change of several at once): each must leave the model as it was.
CHANGES = [{"rule": "sgd"}, {"alpha": 0.1}, {"convention": "half_mean", "rule": "sgd", "alpha": 0.2},
           {"center_space": "normalized"}, {"rule": "ema", "alpha": 0.03}]
# Values of the record a shared training cannot share: its own times.
TIMES = ("train_time_s", "wall_time_s", "train_samples_per_s")


def cell(**changes) -> CellConfig:
    return CellConfig.from_dict({**BASE, **changes})


def trained_alone(config: CellConfig, path) -> tuple:
    record = run_cell(config, features_path=path)
    with np.load(path) as npz:
        return record, {name: npz[name] for name in npz.files}


def test_every_inert_key_is_among_the_changes():
    assert {key for change in CHANGES for key in change} == set(INERT_AT_ZERO_LAMBDA)


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: ",".join(c))
def test_an_inert_key_at_lambda_0_leaves_the_features_bit_for_bit(tmp_path, change):
    _, base = trained_alone(cell(), tmp_path / "base.npz")
    _, changed = trained_alone(cell(**change), tmp_path / "changed.npz")
    assert base["features"].tobytes() == changed["features"].tobytes()
    assert base["predictions"].tobytes() == changed["predictions"].tobytes()


def test_the_same_change_at_lambda_above_0_moves_the_features(tmp_path):
    """The comparison above can fail: where the center loss reaches the model, alpha changes the features."""
    _, base = trained_alone(cell(**{"lambda": 0.1}), tmp_path / "base.npz")
    _, changed = trained_alone(cell(**{"lambda": 0.1, "alpha": 0.1}), tmp_path / "changed.npz")
    assert base["features"].tobytes() != changed["features"].tobytes()


def test_a_shared_training_gives_each_cell_its_own_record_and_features(tmp_path):
    lead, followers = cell(), [cell(**change) for change in CHANGES]
    paths = [tmp_path / f"shared{i}.npz" for i in range(1 + len(followers))]
    shared = run_shared_cells(lead, followers, paths)
    assert len(shared) == 1 + len(followers)
    for i, config in enumerate([lead, *followers]):
        alone, arrays = trained_alone(config, tmp_path / f"alone{i}.npz")
        assert {k: v for k, v in shared[i].items() if k not in TIMES} == {k: v for k, v in alone.items()
                                                                           if k not in TIMES}
        with np.load(paths[i]) as npz:
            assert sorted(npz.files) == sorted(arrays)
            for name in npz.files:
                assert npz[name].tobytes() == arrays[name].tobytes(), name
    # the followers' centers are their own: not the lead's
    assert len({r["nearest_center_accuracy"] for r in shared} | {tuple(r["curve_center_loss"]) for r in shared}) > 2


def test_only_cells_that_differ_in_inert_keys_at_lambda_0_share_a_training():
    assert shared_training_key(cell().to_dict()) == shared_training_key(cell(alpha=1.0, rule="sgd").to_dict())
    assert shared_training_key(cell().to_dict()) != shared_training_key(cell(seed=4).to_dict())
    assert shared_training_key(cell().to_dict()) != shared_training_key(cell(variant="naive").to_dict())
    assert shared_training_key(cell(**{"lambda": 0.1}).to_dict()) is None
    with pytest.raises(ValueError, match="differ in rule, convention, alpha, center_space alone"):
        run_shared_cells(cell(), [cell(seed=4)])


# --- in a grid ---------------------------------------------------------------------------------------------------

def test_a_grid_trains_the_cells_at_lambda_0_once_and_the_report_says_so(tmp_path):
    spec = GridSpec(axes={"dataset": ["digits"], "epochs": [1], "lambda": [0, 0.1], "alpha": [0.1, 0.5],
                          "rule": ["paper", "sgd"]})
    outcome = run_grid(spec, tmp_path, SerialExecutor(), quiet=True)
    records = list(outcome.records.values())
    assert len(records) == 8 and outcome.status_counts() == {"ok": 8}
    at_zero = [r for r in records if r["lambda"] == 0]
    (lead,) = [r for r in at_zero if r.get(SHARES_TRAINING_WITH) is None]
    followers = [r for r in at_zero if r.get(SHARES_TRAINING_WITH) is not None]
    assert len(followers) == 3 and all(r[SHARES_TRAINING_WITH] == lead["cell_id"] for r in followers)
    assert all(r.get(SHARES_TRAINING_WITH) is None for r in records if r["lambda"] > 0)
    assert {r["test_accuracy"] for r in at_zero} == {lead["test_accuracy"]}  # one model
    for record in followers:  # each keeps its own features file, with its own centers
        with np.load(tmp_path / "cells" / f"{record['cell_id']}.npz") as npz:
            assert npz["centers"].shape == (10, 2)
    (note,) = shared_training_notes(load_run(tmp_path))
    assert note.text.startswith("3 cells at lambda = 0 shared the training of 1 other cell (column "
                                "shares_training_with), from which they differ only in rule, alpha: ")


def test_the_cells_of_a_training_that_failed_all_fail_with_its_error(tmp_path):
    spec = GridSpec(axes={"dataset": ["fashion-mnist"], "data_dir": [str(tmp_path / "none")], "epochs": [1],
                          "lambda": [0], "alpha": [0.1, 0.5]})
    outcome = run_grid(spec, tmp_path / "run", SerialExecutor(), quiet=True)
    assert outcome.status_counts() == {"failed": 2}
    errors = {r["error"].splitlines()[-1] for r in outcome.records.values()}
    assert len(errors) == 1 and "fashion" in errors.pop().lower()


@pytest.mark.slow  # 12 s; the fast lane keeps tests/grid/test_run.py's dying worker
def test_a_worker_that_dies_fails_every_cell_of_its_task(tmp_path):
    """A task's followers come back with its result; a task lost with its worker loses them too: each is recorded
    failed with the lead's error, none is silently missing."""
    executor = make_executor("local", workers=2, cell_fn=dies_at_seed_one_cell)
    spec = GridSpec(axes={"dataset": ["digits"], "epochs": [1], "lambda": [0], "alpha": [0.1, 0.5],
                          "seed": [0, 1]})
    outcome = run_grid(spec, tmp_path, executor, quiet=True)
    statuses = {(r["seed"], r["alpha"]): r["status"] for r in outcome.records.values()}
    assert statuses == {(0, 0.1): "ok", (0, 0.5): "ok", (1, 0.1): "failed", (1, 0.5): "failed"}
    assert all("worker process died" in r["error"] for r in outcome.failed().values())


def dies_at_seed_one_cell(config: dict, features_path) -> dict:
    """A stand-in cell (not the trainer: its task runs the followers after the lead) whose worker dies at seed 1."""
    if config["seed"] == 1:
        os._exit(1)
    return {**config, "status": "ok", "test_accuracy": 1.0, "wall_time_s": 0.0}
