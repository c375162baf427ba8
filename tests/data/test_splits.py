"""Three-way splits: train, validation and test disjoint and stratified, over datasets, seeds and open sets; the
release's test set kept whole; validation free of held-out classes; the test split handed out by test() alone."""

import numpy as np
import pytest

from ablate.data import DATASETS, DatasetSource, Recipe, load_dataset, split_dataset
from tests.data.test_data import write_fashion_folder
from tests.support import registered

SAMPLES, CLASSES = 600, 10


def numbered(options):
    """SAMPLES examples whose one input is their own number, labelled number mod CLASSES; its test split drawn by
    the seed."""
    x = np.arange(SAMPLES, dtype=np.float32)[:, None]
    return split_dataset("numbered", x, np.arange(SAMPLES) % CLASSES, CLASSES, options.test_fraction, options.seed)


NUMBERED = DatasetSource("numbered", numbered, lambda options: (SAMPLES, (1,)),
                         Recipe(model="mlp", epochs=1, batch_size=32, lr=0.05, lr_step=0, lr_gamma=0.5,
                                convention="mean"), classes=CLASSES)


def members(part) -> set:
    """The numbers of a split's examples."""
    return set(part.x[:, 0].astype(int).tolist())


@pytest.fixture
def numbered_dataset(monkeypatch):
    """The numbered dataset registered, its inputs left as they are (standardization is tested in test_data.py),
    so that every example's number can be read off its input."""
    monkeypatch.setattr("ablate.data.standardized", lambda splits: splits)
    load_dataset.cache_clear()
    with registered((DATASETS, NUMBERED)):
        yield
    load_dataset.cache_clear()


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("val_fraction", [0.2, 1 / 6])
@pytest.mark.parametrize("holdout", [0, 3])
def test_train_validation_and_test_are_disjoint_stratified_and_whole(numbered_dataset, seed, val_fraction, holdout):
    data = load_dataset("numbered", seed=seed, val_fraction=val_fraction, test_fraction=0.2,
                        holdout_classes=holdout)
    train, validation, test = data.train, data.validation, data.test()
    parts = [members(train), members(validation), members(test)]
    assert sum(map(len, parts)) == len(set().union(*parts))  # no example in two parts
    seen = CLASSES - holdout
    # every example is in a part, but the held-out classes' validation examples (test identities, dropped)
    missing = set(range(SAMPLES)) - set().union(*parts)
    assert all(number % CLASSES in data.held_out for number in missing) and (holdout > 0) == bool(missing)
    per_class_test = np.bincount(test.y, minlength=CLASSES)
    assert per_class_test.max() - per_class_test.min() <= 1  # stratified: 12 of each class's 60
    per_class_train = np.bincount(train.y, minlength=CLASSES)
    per_class_val = np.bincount(validation.y, minlength=CLASSES)
    for c in range(seen):  # validation: val_fraction of each class's training part, within one example
        assert abs(per_class_val[c] - val_fraction * (per_class_val[c] + per_class_train[c])) <= 1
    assert (validation.y < seen).all()  # the held-out classes are in no validation example
    assert set(np.unique(test.y[test.y >= seen])) == set(range(seen, CLASSES))  # but in the test split
    again = load_dataset.__wrapped__("numbered", seed=seed, val_fraction=val_fraction, test_fraction=0.2,
                                     holdout_classes=holdout)
    assert [members(p) for p in (again.train, again.validation, again.test())] == parts  # the seed decides


def test_another_seed_draws_another_validation_split(numbered_dataset):
    first, second = (load_dataset("numbered", seed=seed, val_fraction=0.2) for seed in (0, 1))
    assert members(first.validation) != members(second.validation)


def test_fashion_mnist_keeps_its_release_test_set_and_carves_validation_out_of_training(tmp_path):
    write_fashion_folder(tmp_path, n_train=120, n_test=20)
    for seed in (0, 1):
        data = load_dataset.__wrapped__("fashion-mnist", str(tmp_path), seed=seed, val_fraction=1 / 6)
        assert len(data.train) == 100 and len(data.validation) == 20 and len(data.test()) == 20
        np.testing.assert_array_equal(data.test().y, np.arange(20) % 10)  # the release's order, whole
        np.testing.assert_array_equal(np.bincount(data.validation.y), np.full(10, 2))  # stratified


def test_digits_validation_is_stratified_for_every_seed():
    for seed in range(3):
        data = load_dataset.__wrapped__("digits", seed=seed, val_fraction=0.2)
        per_class = np.bincount(data.validation.y) / (np.bincount(data.validation.y) + np.bincount(data.train.y))
        assert np.all(np.abs(per_class - 0.2) < 1 / 100)  # within one image of 20% of each class's ~144


def test_a_validation_split_too_small_for_the_classes_is_refused_by_name(tmp_path):
    write_fashion_folder(tmp_path, n_train=30, n_test=20)
    with pytest.raises(ValueError, match=r"fashion-mnist: a stratified validation split of val_fraction 0\.1 of its "
                                         r"30 training samples cannot be drawn"):
        load_dataset.__wrapped__("fashion-mnist", str(tmp_path), val_fraction=0.1)
