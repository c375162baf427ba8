"""The Dataset registry: every dataset a cell can train on, declared once with its loader, its size and its recipe.

load_dataset, CellConfig (its choices, its defaults, its class count), the memory estimate, the command line and
grids read these entries; a new dataset is one module with a loader and one `DATASETS.register(...)`. Loaders are
named lazily (scikit-learn and the IDX reader load when a cell loads its data), so this module imports nothing heavy.

A recipe that trains on one dataset can diverge on another: digits' (lr 0.05, momentum 0.9, batch 64, sum/B) makes
every Fashion-MNIST cell diverge, softmax alone included. Each entry holds the recipe measured to train on it.

A dataset outside the package (a factory named pkg.module:factory or path/to/file.py:factory wherever a dataset is
named, or an `ablate.datasets` entry point of an installed package) becomes an entry of ablate.data.external, its
recipe FACTORY_RECIPE under what the factory declares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from ablate.registry import Registry, lazy

if TYPE_CHECKING:
    from ablate.data.dataset import Dataset
    from ablate.factories import Factory


@dataclass(frozen=True)
class Recipe:
    """The defaults of a cell on one dataset, by CellConfig field name. lr_step 0: a constant learning rate.
    val_fraction: the share of the training part held out for validation."""

    model: str
    epochs: int
    batch_size: int
    lr: float
    lr_step: int
    lr_gamma: float
    convention: str
    val_fraction: float = 0.2

    def options(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Cost:
    """What a cell on a dataset costs on the CPU, in CPU seconds of one torch thread (measured where
    ablate.grid.estimate.MEASURED_ON says, by `python -m ablate.grid.calibrate`), for each model measured: epoch_s,
    model -> an epoch of the training split at the recipe (softmax + center loss, gather, 2-D features); rest_s, model
    -> the rest of a cell (its first epoch's extra, evaluating on the test split). A model not in them: no estimate."""

    epoch_s: dict
    rest_s: dict


@dataclass(frozen=True)
class DataOptions:
    """The options of a cell that shape its data (the CellConfig fields of the same names)."""

    seed: int = 0
    test_fraction: float = 0.2
    data_dir: str | None = None
    num_classes: int = 10
    synthetic_dim: int = 32
    samples_per_class: int = 200


@dataclass(frozen=True)
class DatasetSource:
    """One dataset: how it loads, how large it is, and the recipe a cell trains on it with.

    load(options) -> Dataset: inputs (N, *input_shape) float32 and labels (N,) int64 in [0, classes), split into
    train and test (by options.seed and options.test_fraction where the dataset has no split of its own); load_dataset
    then draws the held-out classes and standardizes the inputs.
    size(options) -> (examples, input_shape): known without loading it (the memory estimate reads it).
    classes: its number of classes; None for a dataset that takes options.num_classes (synthetic).
    cost: what its cells cost on the CPU (the time estimates of ablate.grid.estimate); None: not measured.
    factory: the function outside the package it loads with (ablate.data.external; None for the bundled datasets):
    its file's digest enters the id of every cell that trains on it.
    ignores: the DataOptions it does not read; a cell refuses any value but the default for them (else two cells of
    the same data would differ in id alone).
    """

    name: str
    load: Callable[[DataOptions], Dataset]
    size: Callable[[DataOptions], tuple[int, tuple[int, ...]]]
    recipe: Recipe
    classes: int | None = None
    cost: Cost | None = None
    factory: Factory | None = None
    ignores: tuple[str, ...] = ()

    def class_count(self, num_classes: int) -> int:
        """The classes a cell asking for `num_classes` trains on: the dataset's own, if it has a fixed number."""
        return num_classes if self.classes is None else self.classes

    @property
    def in_memory(self) -> bool:
        """Whether a cell holds the whole dataset in memory (else it streams its batches: ablate.train.batches)."""
        return True


DATASETS: Registry[DatasetSource] = Registry(
    "dataset", entry_point_group="ablate.datasets",
    from_entry_point=lazy("ablate.data.external:source_from_entry_point"),
    from_reference=lazy("ablate.data.external:source_from_reference"))


def recipe(dataset: str) -> Recipe:
    """The recipe of the dataset named `dataset` (a ValueError naming the datasets otherwise)."""
    return DATASETS.get(dataset).recipe


# digits: a 2-D-feature MLP trains in about a second a cell on one CPU core.
_SMALL = Recipe(model="mlp", epochs=15, batch_size=64, lr=0.05, lr_step=0, lr_gamma=0.5, convention="mean")
# A factory's dataset: digits' recipe, the model picked by the shape of its inputs, under what the factory declares.
FACTORY_RECIPE = Recipe(model="auto", epochs=15, batch_size=64, lr=0.05, lr_step=0, lr_gamma=0.5, convention="mean")
_SYNTHETIC_ONLY = ("num_classes", "synthetic_dim", "samples_per_class")
_BUNDLED = ("data_dir", *_SYNTHETIC_ONLY)  # a dataset shipped with a library: no folder, its own classes
for _dataset in (
    DatasetSource("digits", lazy("ablate.data.digits:load"), lambda options: (1797, (1, 8, 8)), _SMALL, classes=10,
                  cost=Cost(epoch_s={"mlp": 0.0415}, rest_s={"mlp": 0.0377}), ignores=_BUNDLED),
    # 28x28 images: LeNet++ (the paper's MNIST model), about a minute an epoch of 4,000 images on 2 CPU cores.
    DatasetSource("mnist5k", lazy("ablate.data.mnist5k:load"), lambda options: (5000, (1, 28, 28)), classes=10,
                  recipe=Recipe(model="lenetpp", epochs=15, batch_size=64, lr=0.05, lr_step=0, lr_gamma=0.5,
                                convention="mean"),
                  cost=Cost(epoch_s={"mlp": 0.202, "lenetpp": 6.56}, rest_s={"mlp": 0.162, "lenetpp": 12.2}),
                  ignores=_BUNDLED),
    # The release's 60,000 + 10,000 images. The Caffe layer's convention (sum/2B), a tenth of digits' step halved every
    # 4 epochs, batch 128; the MLP with 2-D features (LeNet++ trains the 60,000 images at about 50 a second a core:
    # ~20 min an epoch on 2 cores; not measured for the estimates).
    DatasetSource("fashion-mnist", lazy("ablate.data.fashion_mnist:load"), lambda options: (70000, (1, 28, 28)),
                  classes=10,
                  recipe=Recipe(model="mlp", epochs=10, batch_size=128, lr=0.01, lr_step=4, lr_gamma=0.5,
                               convention="half_mean", val_fraction=1 / 6),  # 10,000 validation images, as test
                  cost=Cost(epoch_s={"mlp": 2.29}, rest_s={"mlp": 3.98}), ignores=("test_fraction", *_SYNTHETIC_ONLY)),
    DatasetSource("synthetic", lazy("ablate.data.synthetic:load"),
                  lambda options: (options.num_classes * options.samples_per_class, (options.synthetic_dim,)), _SMALL,
                  cost=Cost(epoch_s={"mlp": 0.0452}, rest_s={"mlp": 0.0413}), ignores=("data_dir",)),
):
    DATASETS.register(_dataset)
