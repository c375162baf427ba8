"""digits: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes)."""

import numpy as np
from sklearn.datasets import load_digits

from ablate.data.dataset import Dataset, split_dataset
from ablate.data.registry import DataOptions


def load(options: DataOptions) -> Dataset:
    """Images (N, 1, 8, 8) scaled to [0, 1], labels 0-9, split by options.test_fraction as options.seed draws."""
    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    return split_dataset("digits", x, bunch.target.astype(np.int64), 10, options.test_fraction, options.seed)
