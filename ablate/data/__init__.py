"""Offline datasets: digits (default), mnist5k, fashion-mnist, synthetic and any other registered in DATASETS
(ablate.data.registry: each dataset's loader, size and recipe).

    load_dataset(name, data_dir=None, *, seed, holdout_classes, test_fraction, val_fraction, num_classes,
                 synthetic_dim, samples_per_class) -> Splits (train / validation / test) with standardized float32
                 inputs and int64 labels

Each split seed draws its own stratified train/test split (fashion-mnist keeps the release's 60,000 / 10,000 split:
its 10,000 test images hold the test set's noise to about 0.3 points of accuracy, and published results use that
split), then carves a stratified validation part out of the training part, and, in an open set, draws its own classes
to hold out of training and validation.
"""

from functools import lru_cache

import numpy as np

from ablate.data.dataset import (
    Dataset,
    Samples,
    Splits,
    held_out_split,
    split_dataset,
    standardized,
    three_way_split,
)
from ablate.data.idx import read_idx
from ablate.data.registry import DATASETS, DataOptions, DatasetSource, Recipe, recipe


def dataset_size(name: str, *, num_classes: int = 10, synthetic_dim: int = 32, samples_per_class: int = 200) -> tuple:
    """(examples, shape of one example, classes) of a dataset, known without loading it."""
    source = DATASETS.get(name)
    options = DataOptions(num_classes=num_classes, synthetic_dim=synthetic_dim, samples_per_class=samples_per_class)
    return (*source.size(options), source.class_count(num_classes))


# Cached so that a grid running many cells in one process reads and parses each dataset once;
# the arrays are read-only (ablate.data.dataset.standardized) so that no caller can change what the next one gets.
@lru_cache(maxsize=4)
def load_dataset(name: str, data_dir=None, *, seed: int = 0, holdout_classes: int = 0, test_fraction: float = 0.2,
                 val_fraction: float = 0.2, num_classes: int = 10, synthetic_dim: int = 32,
                 samples_per_class: int = 200) -> Splits:
    """The named dataset split as `seed` (a cell's split seed) draws into train / validation / test, inputs
    standardized by the mean and std of the training images of the classes trained on.

    val_fraction: the share of the training part (what the test split leaves) held out for validation, stratified;
    0 leaves validation empty.

    holdout_classes K: K classes drawn by `seed` are relabelled to the last K labels (Splits.held_out names them).
    num_classes, synthetic_dim and samples_per_class shape the synthetic data; the other datasets
    have 10 classes and refuse any other num_classes. test_fraction splits those without a split
    of their own (all but fashion-mnist). data_dir is fashion-mnist's folder of IDX files.
    """
    source = DATASETS.get(name)
    if source.class_count(num_classes) != num_classes:
        raise ValueError(f"dataset {name!r} has {source.classes} classes; got num_classes={num_classes} "
                         "(only a dataset without a fixed number of classes, such as synthetic, takes another)")
    data = source.load(DataOptions(seed=seed, test_fraction=test_fraction, data_dir=data_dir, num_classes=num_classes,
                                   synthetic_dim=synthetic_dim, samples_per_class=samples_per_class))
    for split, array in (("train", data.x_train), ("test", data.x_test)):
        if not np.isfinite(array).all():
            raise ValueError(f"dataset {name!r}: its {split} images hold NaN or infinite values; expected finite "
                             "inputs")
    return standardized(held_out_split(three_way_split(data, val_fraction, seed), holdout_classes, seed))


__all__ = ["DATASETS", "DataOptions", "Dataset", "DatasetSource", "Recipe", "Samples", "Splits", "dataset_size",
           "load_dataset", "read_idx", "recipe", "split_dataset"]
