"""synthetic: Gaussian class clusters of any number of classes and any dimension, for scale."""

import numpy as np

from ablate.data.dataset import Dataset, split_dataset
from ablate.data.registry import DataOptions

# Class means are drawn with per-coordinate std SPREAD / sqrt(dim), so two means lie about
# SPREAD * sqrt(2) ~ 3.5 noise stds apart whatever the dimension: classes overlap a little and
# the task is neither trivial nor hopeless.
SPREAD = 2.5
# The clusters are one distribution for every seed; only the split is drawn per seed.
CLUSTERS_SEED = 0


def load(options: DataOptions) -> Dataset:
    """Vectors (num_classes * samples_per_class, synthetic_dim) of options: unit-variance noise around each class
    mean, split by options.test_fraction as options.seed draws."""
    num_classes, dim, samples_per_class = options.num_classes, options.synthetic_dim, options.samples_per_class
    rng = np.random.default_rng(CLUSTERS_SEED)
    means = rng.normal(0.0, SPREAD / np.sqrt(dim), size=(num_classes, dim))  # (C, dim)
    y = np.repeat(np.arange(num_classes, dtype=np.int64), samples_per_class)  # (N,)
    x = (means[y] + rng.normal(size=(y.size, dim))).astype(np.float32)  # (N, dim)
    return split_dataset("synthetic", x, y, num_classes, options.test_fraction, options.seed)
