"""Datasets outside the package: a factory named `pkg.module:factory` or `path/to/file.py:factory` (or registered by
an installed package under the entry-point group `ablate.datasets`), checked before any cell trains on it.

A dataset factory is called with the keywords its signature names among the DataOptions fields (seed, test_fraction,
data_dir, ...) and returns a dict:

    {"train": PART, "test": PART, "validation": PART (optional), "num_classes": C (optional for arrays)}

each PART either a pair of arrays (inputs (N, *input_shape), labels (N,) integers in [0, C)) (numpy arrays or
tensors), or a torch.utils.data.Dataset whose items are (input, label) pairs. Arrays are trained from memory as the
bundled datasets are; Datasets are streamed through a DataLoader (ablate.train.batches), so that data larger than
memory trains (then every part streams, arrays included, and num_classes must be given). The data is trained as the
factory returns it: ablate standardizes only its bundled datasets. A factory may declare the options it trains with,
`factory.recipe = {"model": "path/to/models.py:convnet", "epochs": 5, ...}` (Recipe's fields), over FACTORY_RECIPE.

A cell's data from a factory has the three parts of a bundled dataset's (ablate.data.Splits; StreamedSplits for
Datasets): the test part is its test split, handed out only by test() (a cell scored on validation alone, a tuning
trial, never reads it); the validation split is carved out of the train part as for the bundled datasets, a
val_fraction share drawn by the cell's split seed, stratified by class (a streamed train Dataset is stratified by its
`targets`, where it has them as torchvision's datasets do, since ablate does not read a whole Dataset ahead of
training; else drawn uniformly). A factory that gives its own validation part keeps it as the validation split
(val_fraction 0 still leaves none). The split seed is the factory's `seed` keyword.

Checked, each error naming the factory and its file: a result that is not such a dict, inputs of different shapes
across parts, non-finite inputs, labels that are not integers or lie outside [0, C), an empty part, fewer than two
classes to train on. Arrays are checked whole; a Dataset by its first item here and by every batch as it streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Subset, TensorDataset

from ablate.data.dataset import Dataset, Samples, Splits, held_out_split, three_way_split
from ablate.data.registry import FACTORY_RECIPE, DataOptions, DatasetSource, Recipe
from ablate.factories import Factory, FactoryError, call_with, declared_recipe, factory_of, load_factory, taken

PARTS = ("train", "test", "validation")  # "validation" is optional
RESULT_KEYS = (*PARTS, "num_classes")


@dataclass(frozen=True)
class FactoryArrays(Dataset):
    """A factory's arrays (as Dataset, trained from memory), with its validation part where it gave one."""

    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


@dataclass(frozen=True)
class StreamedData:
    """A factory's parts as it returned them, as torch Datasets of (input, label) items, streamed through a
    DataLoader: train and test, validation where given (None otherwise); num_classes C; input_shape: one input's
    shape. A cell trains on its StreamedSplits (load_factory_data)."""

    name: str
    train: TorchDataset
    test: TorchDataset
    validation: TorchDataset | None
    num_classes: int
    input_shape: tuple


@dataclass(frozen=True)
class Probe:
    """What a factory's data is, learned from one call (with the default DataOptions): its classes, the shape of one
    input, its examples (all parts) and whether it is held in memory (arrays) or streamed (Datasets)."""

    classes: int
    input_shape: tuple
    examples: int
    in_memory: bool


def _what(factory: Factory) -> str:
    return f"dataset factory {factory.describe()}"


def _array(value: Any, factory: Factory, where: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as exc:
        raise FactoryError(f"{_what(factory)}: its {where} is not an array ({type(exc).__name__}: {exc})") from None


def _labels(y: np.ndarray, factory: Factory, where: str) -> np.ndarray:
    """y as int64 (N,): integers (an integer dtype, or floats that are whole numbers)."""
    if y.ndim != 1:
        raise FactoryError(f"{_what(factory)}: its {where} labels must be one integer per example, shape (N,); got "
                           f"shape {y.shape}")
    if y.dtype.kind in "iu":
        return y.astype(np.int64)
    if y.dtype.kind == "f" and np.isfinite(y).all() and (y == np.round(y)).all():
        return y.astype(np.int64)
    raise FactoryError(f"{_what(factory)}: its {where} labels must be integers, got dtype {y.dtype}")


def _check_range(y: np.ndarray, classes: int, factory: Factory, where: str) -> None:
    if len(y) and (y.min() < 0 or y.max() >= classes):
        bad = int(y.min()) if y.min() < 0 else int(y.max())
        raise FactoryError(f"{_what(factory)}: its {where} labels must lie in [0, {classes}) (num_classes {classes}); "
                           f"found {bad}")


def _arrays(part: Any, factory: Factory, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A part given as (inputs, labels): inputs float32 (N, ...) finite, labels int64 (N,)."""
    if not isinstance(part, (tuple, list)) or len(part) != 2:
        raise FactoryError(f"{_what(factory)}: its {where} part must be (inputs, labels) arrays or a "
                           f"torch.utils.data.Dataset of (input, label) items, got {type(part).__name__}")
    x, y = _array(part[0], factory, f"{where} inputs"), _labels(_array(part[1], factory, f"{where} labels"),
                                                                factory, where)
    if x.ndim < 2 or len(x) != len(y):
        raise FactoryError(f"{_what(factory)}: its {where} inputs must be (N, *input_shape) with N = {len(y)} labels, "
                           f"got shape {x.shape}")
    if x.dtype.kind not in "fiub":
        raise FactoryError(f"{_what(factory)}: its {where} inputs must be numbers, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise FactoryError(f"{_what(factory)}: its {where} inputs hold NaN or infinite values; expected finite inputs")
    return x, y


def first_item(dataset: TorchDataset, factory: Factory, where: str) -> tuple[tuple, int]:
    """(input shape, label) of a Dataset's first item, checked: a pair of a numeric input and an integer label."""
    try:
        item = dataset[0]
    except Exception as exc:
        raise FactoryError(f"{_what(factory)}: its {where} Dataset's item 0 raised {type(exc).__name__}: "
                           f"{exc}") from None
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise FactoryError(f"{_what(factory)}: its {where} Dataset's items must be (input, label) pairs, item 0 is a "
                           f"{type(item).__name__}")
    x = _array(item[0], factory, f"{where} Dataset's item 0 input")
    label = _labels(_array(item[1], factory, f"{where} Dataset's item 0 label").reshape(1), factory, where)
    if x.ndim < 1 or x.dtype.kind not in "fiub":
        raise FactoryError(f"{_what(factory)}: its {where} Dataset's inputs must be numeric arrays or tensors, item 0 "
                           f"is {x.dtype} of shape {x.shape}")
    return tuple(x.shape), int(label[0])


def _length(dataset: TorchDataset, factory: Factory, where: str) -> int:
    try:
        return len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise FactoryError(f"{_what(factory)}: its {where} Dataset has no len(); ablate streams map-style Datasets "
                           "(__getitem__ and __len__)") from None


def _result(result: Any, factory: Factory) -> dict:
    if not isinstance(result, Mapping):
        raise FactoryError(f"{_what(factory)} must return a dict with train and test (and optionally validation and "
                           f"num_classes), got {type(result).__name__}")
    unknown = [key for key in result if key not in RESULT_KEYS]
    missing = [key for key in ("train", "test") if key not in result]
    if unknown or missing:
        problem = f"lacks {', '.join(missing)}" if missing else f"has unknown keys {', '.join(map(str, unknown))}"
        raise FactoryError(f"{_what(factory)}: its result {problem}; expected keys among {', '.join(RESULT_KEYS)}")
    classes = result.get("num_classes")
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, (int, np.integer))
                                or classes < 2):
        raise FactoryError(f"{_what(factory)}: num_classes must be an integer >= 2, got {classes!r}")
    return {**result, "num_classes": None if classes is None else int(classes)}


def _parts(result: dict) -> dict:
    return {name: result[name] for name in PARTS if result.get(name) is not None}


def _in_memory(result: dict, factory: Factory, name: str) -> FactoryArrays:
    parts = {where: _arrays(part, factory, where) for where, part in _parts(result).items()}
    classes = result["num_classes"] or 1 + max(int(y.max()) for _, y in parts.values() if len(y))
    shape = parts["train"][0].shape[1:]
    for where, (x, y) in parts.items():
        if x.shape[1:] != shape:
            raise FactoryError(f"{_what(factory)}: its {where} inputs have shape {x.shape[1:]} each, its train inputs "
                               f"{shape}; every part must hold inputs of one shape")
        _check_range(y, classes, factory, where)
    (x_train, y_train), (x_test, y_test) = parts["train"], parts["test"]
    x_val, y_val = parts.get("validation", (None, None))
    return FactoryArrays(name, x_train, y_train, x_test, y_test, classes, x_val=x_val, y_val=y_val)


def _streamed(result: dict, factory: Factory, name: str) -> StreamedData:
    classes = result["num_classes"]
    if classes is None:
        raise FactoryError(f"{_what(factory)}: a factory that returns torch Datasets must say num_classes in its "
                           "result (ablate does not read a whole Dataset to count them)")
    parts: dict = {}
    shape = None
    for where, part in _parts(result).items():
        if not isinstance(part, TorchDataset):
            x, y = _arrays(part, factory, where)
            part = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        item_shape, label = first_item(part, factory, where)
        shape = item_shape if shape is None else shape
        if item_shape != shape:
            raise FactoryError(f"{_what(factory)}: its {where} inputs have shape {item_shape} each, its train inputs "
                               f"{shape}; every part must hold inputs of one shape")
        _check_range(np.array([label]), classes, factory, f"{where} Dataset's item 0")
        parts[where] = part
    return StreamedData(name, parts["train"], parts["test"], parts.get("validation"), classes, tuple(shape or ()))


def _check_sizes(data: FactoryArrays | StreamedData, factory: Factory) -> None:
    sizes = {where: _size(data, where, factory) for where in ("train", "test")}
    empty = [where for where, size in sizes.items() if size == 0]
    if empty:
        raise FactoryError(f"{_what(factory)}: its {' and '.join(empty)} part holds no example")
    if isinstance(data, FactoryArrays) and len(np.unique(data.y_train)) < 2:
        raise FactoryError(f"{_what(factory)}: its train part holds one class; a cell needs at least two to train")


def _size(data: FactoryArrays | StreamedData, where: str, factory: Factory) -> int:
    if isinstance(data, FactoryArrays):
        return len(data.y_train if where == "train" else data.y_test)
    return _length(getattr(data, where), factory, where)


def call_factory(factory: Factory, options: DataOptions, name: str) -> FactoryArrays | StreamedData:
    """The factory called with those of `options` its signature names, its result checked (see the module
    docstring): arrays when every part is arrays, else every part as a torch Dataset."""
    result = _result(call_with(factory, "dataset", **asdict(options)), factory)
    streams = any(isinstance(part, TorchDataset) for part in _parts(result).values())
    data = _streamed(result, factory, name) if streams else _in_memory(result, factory, name)
    _check_sizes(data, factory)
    return data


def _probe(factory: Factory, name: str, cache: dict) -> Probe:
    """What the factory's data is (Probe), from one call with the default DataOptions, kept in `cache`."""
    if "probe" not in cache:
        data = call_factory(factory, DataOptions(), name)
        if isinstance(data, FactoryArrays):
            examples = sum(len(y) for y in (data.y_train, data.y_test, data.y_val) if y is not None)
            cache["probe"] = Probe(data.num_classes, data.input_shape, examples, in_memory=True)
        else:
            parts = {where: getattr(data, where) for where in PARTS if getattr(data, where) is not None}
            cache["probe"] = Probe(data.num_classes, data.input_shape,
                                   sum(_length(part, factory, where) for where, part in parts.items()), in_memory=False)
    return cache["probe"]


@dataclass(frozen=True)
class FactorySource(DatasetSource):
    """A DatasetSource whose loader is a factory outside the package; its classes, size and whether it streams are
    learned by calling the factory once (`probe`, on first use, with the default DataOptions)."""

    probed: dict = field(default_factory=dict, repr=False, compare=False)  # the Probe, once known

    def probe(self) -> Probe:
        assert self.factory is not None
        return _probe(self.factory, self.name, self.probed)

    def class_count(self, num_classes: int) -> int:
        """Its own classes, as the factory's data says (num_classes is the synthetic data's option)."""
        return self.probe().classes

    @property
    def in_memory(self) -> bool:
        return self.probe().in_memory


def _source(name: str, factory: Factory) -> FactorySource:
    recipe = Recipe(**{**asdict(FACTORY_RECIPE), **declared_recipe(factory, "dataset",
                                                                    tuple(f.name for f in fields(Recipe)))})
    probed: dict = {}

    def size(options: DataOptions) -> tuple[int, tuple]:
        probe = _probe(factory, name, probed)
        return probe.examples, probe.input_shape

    # the options its signature does not take: a cell refuses any value but the default for them (DatasetSource)
    ignores = tuple(f.name for f in fields(DataOptions)
                    if f.name != "seed" and f.name not in taken(factory, (f.name,)))
    # the source's loader returns a factory's parts, which ablate.data splits as it splits a bundled dataset's
    return FactorySource(name, lambda options: call_factory(factory, options, name),  # type: ignore[arg-type,return-value]
                         size, recipe, factory=factory, ignores=ignores, probed=probed)


_REFERENCED: dict[tuple[str, str], FactorySource] = {}  # (reference, digest) -> its source, probed once


def source_from_reference(reference: str) -> FactorySource:
    """The dataset of a factory named pkg.module:factory or path/to/file.py:factory (FactoryError if it cannot load)."""
    factory = load_factory(reference, "dataset")
    key = (reference, factory.digest)
    if key not in _REFERENCED:
        _REFERENCED[key] = _source(reference, factory)
    return _REFERENCED[key]


def source_from_entry_point(name: str, obj: Any, source: str) -> FactorySource:
    """An `ablate.datasets` entry point: a dataset factory (as above), registered under the entry point's name."""
    distribution, _, reference = source.partition(": ")
    return _source(name, factory_of(obj, reference, "dataset", "entry point", distribution))


@dataclass(frozen=True)
class StreamedSplits:
    """One cell's split of a factory's torch Datasets, as ablate.data.Splits is of arrays: train and validation (a
    Dataset each; validation empty at val_fraction 0), the test part handed out only by test(); num_classes C;
    input_shape: one input's shape. A streamed dataset holds out no class (held_out is empty)."""

    name: str
    train: TorchDataset
    validation: TorchDataset
    num_classes: int
    input_shape: tuple
    val_fraction: float
    _test: TorchDataset = field(repr=False)
    held_out: tuple = ()

    @property
    def trained_classes(self) -> int:
        return self.num_classes

    def test(self) -> TorchDataset:
        """The test part. Only a cell scored on it calls this (see ablate.data.Splits.test)."""
        return self._test


def _streamed_splits(data: StreamedData, val_fraction: float, seed: int, factory: Factory) -> StreamedSplits:
    """The streamed parts with a validation split: the factory's own, or val_fraction of the train Dataset's indices
    drawn by `seed` (stratified by its `targets` where it has them)."""
    train, validation = data.train, data.validation
    if val_fraction == 0:
        validation = Subset(train, [])
    elif validation is None:
        from sklearn.model_selection import train_test_split

        n = _length(train, factory, "train")
        targets = getattr(train, "targets", None)
        stratify = None if targets is None else np.asarray(targets)
        if stratify is not None and stratify.shape != (n,):
            stratify = None  # not one label per item: drawn uniformly
        try:
            kept, held = train_test_split(np.arange(n), test_size=val_fraction, stratify=stratify, random_state=seed)
        except ValueError as exc:  # too few items, or of a class
            raise FactoryError(f"{_what(factory)}: a validation split of val_fraction {val_fraction:g} of its {n} "
                               f"training items cannot be drawn ({exc}); use a larger val_fraction, more items, or "
                               "give a validation part") from None
        train, validation = Subset(train, kept.tolist()), Subset(train, held.tolist())
    return StreamedSplits(data.name, train, validation, data.num_classes, data.input_shape, val_fraction,
                          _test=data.test)


def _array_splits(data: FactoryArrays, val_fraction: float, seed: int) -> Splits:
    """The arrays with a validation split: the factory's own, or carved out of the train part as for a bundled
    dataset (ablate.data.dataset.three_way_split: stratified, drawn by `seed`)."""
    if data.x_val is None or data.y_val is None or val_fraction == 0:
        return three_way_split(data, val_fraction, seed)
    return Splits(data.name, Samples(data.x_train, data.y_train), Samples(data.x_val, data.y_val), data.num_classes,
                  val_fraction, _test=Samples(data.x_test, data.y_test))


def load_factory_data(source: FactorySource, options: DataOptions, holdout_classes: int = 0,
                      val_fraction: float = 0.2) -> Splits | StreamedSplits:
    """One cell's data from a factory: called with the cell's options (options.seed: its split seed), checked, its
    classes as the probe found them, split into train / validation / test (see the module docstring), then
    `holdout_classes` drawn by the split seed and relabelled last (arrays only: a streamed dataset's labels are not
    read ahead of training). The inputs are kept as the factory gives them (not standardized)."""
    assert source.factory is not None
    data = call_factory(source.factory, options, source.name)
    expected = source.probe().classes
    if data.num_classes != expected:
        raise FactoryError(f"{_what(source.factory)}: gave {data.num_classes} classes for seed {options.seed}, "
                           f"{expected} for the default options; its classes must not depend on its options")
    if isinstance(data, StreamedData):
        if holdout_classes:
            raise FactoryError(f"{_what(source.factory)}: holdout_classes needs its labels ahead of training, which a "
                               "streamed Dataset does not give; return arrays, or train a closed set (holdout_classes "
                               "0)")
        return _streamed_splits(data, val_fraction, options.seed, source.factory)
    try:
        splits = _array_splits(data, val_fraction, options.seed)
    except ValueError as exc:
        raise FactoryError(f"{_what(source.factory)}: {exc}") from None
    return held_out_split(splits, holdout_classes, options.seed)
