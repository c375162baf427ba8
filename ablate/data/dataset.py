"""`Dataset`: the train and test arrays a dataset's loader returns (the split drawn per seed for those shipped
without one); `Splits`: one seed's train / validation / test split of it, with the classes held out of training
(open set) drawn per seed and the inputs standardized. The test split is handed out only by `Splits.test()`, which a
cell scored on validation alone (a tuning trial) never calls."""

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """What a loader returns: x_train (N, *input_shape) float32, y_train (N,) int64 in [0, num_classes); the same
    for test (the release's test set, or the one drawn by the seed)."""

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


@dataclass(frozen=True)
class Samples:
    """x (N, *input_shape) float32 and y (N,) int64: one part of a split."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Splits:
    """One seed's split of a dataset: train, validation (carved out of the loader's training part, stratified; empty
    at val_fraction 0) and test, handed out only by test().

    held_out: in an open-set split, the dataset's own ids of the classes held out of training, which carry the last
    labels here (num_classes - K ... num_classes - 1) and appear in the test split only (neither in training nor in
    validation); empty for a closed set.
    """

    name: str
    train: Samples
    validation: Samples
    num_classes: int
    val_fraction: float
    held_out: tuple = ()
    _test: Samples = field(default=None, repr=False)  # type: ignore[assignment]

    @property
    def input_shape(self) -> tuple:
        """The shape of one example: (1, H, W) for images, (D,) for vectors."""
        return tuple(self.train.x.shape[1:])

    @property
    def trained_classes(self) -> int:
        """The classes the model trains on (labels 0 ... trained_classes - 1)."""
        return self.num_classes - len(self.held_out)

    def test(self) -> Samples:
        """The test split. Only a cell scored on it calls this: a tuning trial never does (tests/tune/test_tune.py spies
        on it), so that the settings a tune selects never saw a test image."""
        return self._test


def split_dataset(name: str, x: np.ndarray, y: np.ndarray, num_classes: int, test_fraction: float,
                  seed: int) -> Dataset:
    """A stratified train/test split of x (N, ...) and y (N,) drawn by `seed` (a cell's split seed: each seed of a
    grid trains and is scored on its own split, so the spread over seeds holds the test set's sampling noise too)."""
    from sklearn.model_selection import train_test_split  # here: the dataset registry is read without scikit-learn

    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes)


def three_way_split(data: Dataset, val_fraction: float, seed: int) -> Splits:
    """`data` with a validation part of val_fraction of its training part carved out, stratified by class and drawn
    by `seed` (the release's test set, or the one the loader drew, stays the test split)."""
    from sklearn.model_selection import train_test_split

    if val_fraction == 0:
        empty = Samples(data.x_train[:0], data.y_train[:0])
        return Splits(data.name, Samples(data.x_train, data.y_train), empty, data.num_classes, val_fraction,
                      _test=Samples(data.x_test, data.y_test))
    try:
        x_train, x_val, y_train, y_val = train_test_split(data.x_train, data.y_train, test_size=val_fraction,
                                                          stratify=data.y_train, random_state=seed)
    except ValueError as exc:  # too few samples of a class, or a validation part smaller than the class count
        raise ValueError(f"{data.name}: a stratified validation split of val_fraction {val_fraction:g} of its "
                         f"{len(data.y_train)} training samples cannot be drawn ({exc}); use a larger val_fraction or "
                         "more samples per class") from None
    return Splits(data.name, Samples(x_train, y_train), Samples(x_val, y_val), data.num_classes, val_fraction,
                  _test=Samples(data.x_test, data.y_test))


def held_out_split(splits: Splits, holdout_classes: int, seed: int) -> Splits:
    """The split with `holdout_classes` classes, drawn by `seed`, relabelled to the last labels (the classes the
    model never sees, ablate.train.cell) and the others to 0 ... C - K - 1 in their own order; the held-out classes'
    validation samples dropped (they are test identities). Unchanged for 0."""
    if holdout_classes == 0:
        return splits
    classes = splits.num_classes
    held_out = np.sort(np.random.default_rng([seed, holdout_classes]).permutation(classes)[:holdout_classes])
    order = np.concatenate([np.setdiff1d(np.arange(classes), held_out), held_out])  # new label -> old id
    relabel = np.argsort(order)  # old id -> new label
    seen = classes - holdout_classes
    validation = Samples(splits.validation.x, relabel[splits.validation.y])
    keep = validation.y < seen
    return Splits(splits.name, Samples(splits.train.x, relabel[splits.train.y]),
                  Samples(validation.x[keep], validation.y[keep]), classes, splits.val_fraction,
                  tuple(int(c) for c in held_out), _test=Samples(splits._test.x, relabel[splits._test.y]))


def standardized(splits: Splits) -> Splits:
    """The inputs shifted and scaled by the overall mean and std (one scalar each) of the training images of the
    classes the model trains on (not the held-out classes of an open-set split, nor validation: that would leak
    them); every array read-only, so that no caller can change what the next one gets."""
    train = splits.train
    seen = train.x[train.y < splits.trained_classes]
    mean, std = seen.mean(), seen.std()
    scale = 1.0 / std if std > 0 else 1.0

    def scaled(part: Samples) -> Samples:
        x, y = ((part.x - mean) * scale).astype(np.float32), part.y.astype(np.int64)
        x.flags.writeable = y.flags.writeable = False
        return Samples(x, y)

    return Splits(splits.name, scaled(train), scaled(splits.validation), splits.num_classes, splits.val_fraction,
                  splits.held_out, _test=scaled(splits._test))
