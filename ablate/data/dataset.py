"""`Dataset`: the train and test arrays of one dataset; the split drawn per seed for those shipped without one, the
classes held out of training (open set) drawn per seed, and the standardization."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """x_train (N, *input_shape) float32, y_train (N,) int64 in [0, num_classes); the same for test.

    held_out: in an open-set split, the dataset's own ids of the classes held out of training, which carry the
    last labels here (num_classes - K ... num_classes - 1); empty for a closed set.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    held_out: tuple = ()

    @property
    def input_shape(self) -> tuple:
        """The shape of one example: (1, H, W) for images, (D,) for vectors."""
        return tuple(self.x_train.shape[1:])


def split_dataset(name: str, x: np.ndarray, y: np.ndarray, num_classes: int, test_fraction: float,
                  seed: int) -> Dataset:
    """A stratified train/test split of x (N, ...) and y (N,) drawn by `seed` (a cell's seed: each seed of a grid
    trains and is scored on its own split, so the spread over seeds holds the test set's sampling noise too)."""
    from sklearn.model_selection import train_test_split  # here: the dataset registry is read without scikit-learn

    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes)


def held_out_split(data: Dataset, holdout_classes: int, seed: int) -> Dataset:
    """The dataset with `holdout_classes` classes, drawn by `seed`, relabelled to the last labels (the classes the
    model never sees, ablate.train.cell) and the others to 0 ... C - K - 1 in their own order; unchanged for 0."""
    if holdout_classes == 0:
        return data
    held_out = np.sort(np.random.default_rng([seed, holdout_classes]).permutation(data.num_classes)[:holdout_classes])
    order = np.concatenate([np.setdiff1d(np.arange(data.num_classes), held_out), held_out])  # new label -> old id
    relabel = np.argsort(order)  # old id -> new label
    return Dataset(data.name, data.x_train, relabel[data.y_train], data.x_test, relabel[data.y_test],
                   data.num_classes, tuple(int(c) for c in held_out))


def standardized(data: Dataset) -> Dataset:
    """The inputs shifted and scaled by the overall mean and std (one scalar each) of the training images of the
    classes the model trains on (not the held-out classes of an open-set split: that would leak them)."""
    seen = data.x_train[data.y_train < data.num_classes - len(data.held_out)]
    mean, std = seen.mean(), seen.std()
    scale = 1.0 / std if std > 0 else 1.0
    x_train = ((data.x_train - mean) * scale).astype(np.float32)
    x_test = ((data.x_test - mean) * scale).astype(np.float32)
    return Dataset(data.name, x_train, data.y_train.astype(np.int64), x_test, data.y_test.astype(np.int64),
                   data.num_classes, data.held_out)
