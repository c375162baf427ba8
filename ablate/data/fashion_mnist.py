"""fashion-mnist: the four IDX .gz files of Fashion-MNIST (60,000 train and 10,000 test images)."""

from pathlib import Path

import numpy as np

from ablate.data.dataset import Dataset
from ablate.data.idx import read_idx

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")  # where Debian's dataset-fashion-mnist puts them
FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


def missing_files_message(folder: Path, missing: list) -> str:
    return (
        f"fashion-mnist needs the four IDX files in {folder}; missing: {', '.join(missing)}. "
        "Get them with Debian's package (`apt-get install dataset-fashion-mnist`, which installs them "
        f"under {DEFAULT_DIR}), or put {', '.join(FILES.values())} from the Fashion-MNIST release "
        "(github.com/zalandoresearch/fashion-mnist, data/fashion) into a folder and pass it as --data-dir."
    )


def load(data_dir=None) -> Dataset:
    """Images (N, 1, 28, 28) scaled to [0, 1] and labels 0-9, with the dataset's own train/test split."""
    folder = Path(data_dir) if data_dir is not None else DEFAULT_DIR
    missing = [name for name in FILES.values() if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(missing_files_message(folder, missing))
    arrays = {key: read_idx(folder / name) for key, name in FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"fashion-mnist {split} files in {folder}: expected images (N, H, W) and labels (N,), "
                             f"got {images.shape} and {labels.shape}")
    return Dataset(
        "fashion-mnist",
        (arrays["x_train"] / 255.0).astype(np.float32)[:, None],
        arrays["y_train"].astype(np.int64),
        (arrays["x_test"] / 255.0).astype(np.float32)[:, None],
        arrays["y_test"].astype(np.int64),
        10,
    )
