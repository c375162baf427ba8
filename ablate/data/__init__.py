"""Offline datasets: digits (default), mnist5k, fashion-mnist and synthetic.

    load_dataset(name, data_dir=None, *, seed, holdout_classes, test_fraction, num_classes, synthetic_dim,
                 samples_per_class) -> Dataset with standardized float32 inputs and int64 labels

Each seed draws its own stratified train/test split (fashion-mnist keeps the release's 60,000 / 10,000 split: its
10,000 test images hold the test set's noise to about 0.3 points of accuracy, and published results use that split)
and, in an open set, its own classes to hold out of training.
"""

from functools import lru_cache

import numpy as np

from ablate.data import digits, fashion_mnist, mnist5k, synthetic
from ablate.data.dataset import Dataset, held_out_split, standardized
from ablate.data.idx import read_idx

DATASETS = ("digits", "mnist5k", "fashion-mnist", "synthetic")
FIXED_CLASSES = {"digits": 10, "mnist5k": 10, "fashion-mnist": 10}
# Examples and the shape of one, of the datasets of fixed size (fashion-mnist: the release's 60,000 + 10,000).
FIXED_SIZES = {"digits": (1797, (1, 8, 8)), "mnist5k": (5000, (1, 28, 28)), "fashion-mnist": (70000, (1, 28, 28))}


def dataset_size(name: str, *, num_classes: int = 10, synthetic_dim: int = 32, samples_per_class: int = 200) -> tuple:
    """(examples, shape of one example, classes) of a dataset, known without loading it."""
    if name in FIXED_SIZES:
        return (*FIXED_SIZES[name], FIXED_CLASSES[name])
    return num_classes * samples_per_class, (synthetic_dim,), num_classes


# Cached so that a grid running many cells in one process reads and parses each dataset once;
# the arrays are made read-only so that no caller can change what the next one gets.
@lru_cache(maxsize=4)
def load_dataset(name: str, data_dir=None, *, seed: int = 0, holdout_classes: int = 0, test_fraction: float = 0.2,
                 num_classes: int = 10, synthetic_dim: int = 32, samples_per_class: int = 200) -> Dataset:
    """The named dataset split as `seed` draws, inputs standardized by the mean and std of the training images of
    the classes trained on.

    holdout_classes K: K classes drawn by `seed` are relabelled to the last K labels (Dataset.held_out names them).
    num_classes, synthetic_dim and samples_per_class shape the synthetic data; the other datasets
    have 10 classes and refuse any other num_classes. test_fraction splits those without a split
    of their own (all but fashion-mnist). data_dir is fashion-mnist's folder of IDX files.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if name in FIXED_CLASSES and num_classes != FIXED_CLASSES[name]:
        raise ValueError(f"dataset {name!r} has {FIXED_CLASSES[name]} classes; got num_classes={num_classes} "
                         "(only the synthetic dataset takes another number)")
    if name == "digits":
        data = digits.load(test_fraction, seed)
    elif name == "mnist5k":
        data = mnist5k.load(test_fraction, seed)
    elif name == "fashion-mnist":
        data = fashion_mnist.load(data_dir)
    else:
        data = synthetic.load(num_classes, synthetic_dim, samples_per_class, test_fraction, seed)
    for split, array in (("train", data.x_train), ("test", data.x_test)):
        if not np.isfinite(array).all():
            raise ValueError(f"dataset {name!r}: its {split} images hold NaN or infinite values; expected finite inputs")
    data = standardized(held_out_split(data, holdout_classes, seed))
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        array.flags.writeable = False
    return data


__all__ = ["DATASETS", "FIXED_CLASSES", "Dataset", "dataset_size", "load_dataset", "read_idx"]
