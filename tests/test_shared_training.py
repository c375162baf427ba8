"""Cells at lambda 0 that differ only in options inert there (INERT_AT_ZERO_LAMBDA) train the same model, bit for bit;
one training shared by them (run_shared_cells) gives each the record and features its own training gives.

Real digits cells of two epochs, on the CPU in this process (the thread count is the same for both trainings: float
sums depend on it).
"""

import numpy as np
import pytest

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
