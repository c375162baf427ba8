"""`Dataset`: the train and test arrays of one dataset, and the fixed split for those shipped without one."""

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

# The split and the synthetic clusters never depend on a cell's seed: every seed of a grid trains
# on the same examples and is scored on the same test set, so seeds vary the training only.
SPLIT_SEED = 0


@dataclass(frozen=True)
class Dataset:
    """x_train (N, *input_shape) float32, y_train (N,) int64 in [0, num_classes); the same for test."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple:
        """The shape of one example: (1, H, W) for images, (D,) for vectors."""
        return tuple(self.x_train.shape[1:])


def split_dataset(name: str, x: np.ndarray, y: np.ndarray, num_classes: int, test_fraction: float) -> Dataset:
    """A stratified train/test split of x (N, ...) and y (N,), the same on every call."""
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=SPLIT_SEED)
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes)


def standardized(data: Dataset) -> Dataset:
    """The inputs shifted and scaled by the train split's overall mean and std (one scalar each)."""
    mean, std = data.x_train.mean(), data.x_train.std()
    scale = 1.0 / std if std > 0 else 1.0
    x_train = ((data.x_train - mean) * scale).astype(np.float32)
    x_test = ((data.x_test - mean) * scale).astype(np.float32)
    return Dataset(data.name, x_train, data.y_train.astype(np.int64), x_test, data.y_test.astype(np.int64),
                   data.num_classes)
