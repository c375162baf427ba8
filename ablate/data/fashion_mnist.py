"""fashion-mnist: the four IDX .gz files of Fashion-MNIST (60,000 train and 10,000 test images)."""

from pathlib import Path

import numpy as np

from ablate.data.dataset import Dataset
from ablate.data.idx import read_idx
from ablate.data.registry import DataOptions

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")  # where Debian's dataset-fashion-mnist puts them
IMAGE_SIZE = 28
NUM_CLASSES = 10
# The release's sizes: what dataset_size reports and the memory estimate assumes; a header claiming more is refused.
MAX_IMAGES = {"train": 60_000, "test": 10_000}
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


def load(options: DataOptions) -> Dataset:
    """Images (N, 1, 28, 28) scaled to [0, 1] and labels 0-9 from the IDX files in options.data_dir (default
    DEFAULT_DIR), with the dataset's own train/test split."""
    folder = Path(options.data_dir) if options.data_dir is not None else DEFAULT_DIR
    missing = [name for name in FILES.values() if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(missing_files_message(folder, missing))
    # Each header is checked (uint8, images N x 28 x 28, labels N) before its values are decompressed.
    arrays = {key: read_idx(folder / name, dtype="uint8",
                            shape=(None, IMAGE_SIZE, IMAGE_SIZE) if key.startswith("x") else (None,),
                            max_items=MAX_IMAGES[key.split("_")[1]])
              for key, name in FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"fashion-mnist {split} files in {folder}: {len(images)} images but {len(labels)} labels")
        if len(labels) == 0:
            raise ValueError(f"fashion-mnist {split} files in {folder}: no images")
        if labels.max() >= NUM_CLASSES:
            raise ValueError(f"{folder / FILES[f'y_{split}']}: labels must lie in [0, {NUM_CLASSES}), got up to "
                             f"{labels.max()}")
    return Dataset(
        "fashion-mnist",
        (arrays["x_train"] / 255.0).astype(np.float32)[:, None],
        arrays["y_train"].astype(np.int64),
        (arrays["x_test"] / 255.0).astype(np.float32)[:, None],
        arrays["y_test"].astype(np.int64),
        NUM_CLASSES,
    )
