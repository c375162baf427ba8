"""A cell's data as batches on its device: the bundled datasets and a factory's arrays from memory, a factory's torch
Datasets streamed through a DataLoader.

    cell_data(config)                                  the cell's data: Splits (arrays) or StreamedSplits
    training_batches(data, trained_classes, device, loader_workers)   InMemory | Streamed: .epoch(order, B, ranks)
    scoring(data, split, device, loader_workers)       Scoring | StreamedScoring of the validation or test part
    examples(part)                                     how many examples a part holds

Both kinds of training batches draw each epoch's order from the same generator in the same way (a permutation of the
examples, split into global batches of B), so a cell gets the same batches whether its data is held in memory or
streamed. Streaming loads each batch with `loader_workers` worker processes (0: in this process) and pins it in page-
locked memory when the device is CUDA, so that its copy overlaps the previous step; each streamed batch's inputs and
labels are checked (shape, integer labels in [0, C)) before they reach the model.
"""

import math
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from ablate.data import DATASETS, DataOptions, Samples, Splits, load_dataset
from ablate.data.external import FactorySource, StreamedSplits, load_factory_data
from ablate.distributed.context import ONE_PROCESS
from ablate.train.config import CellConfig
from ablate.train.evaluate import EVAL_BATCH, Scoring, features_of


def cell_data(config: CellConfig) -> Splits | StreamedSplits:
    """The data of the cell `config`, split into train / validation / test as config.split_seed draws, with
    config.val_fraction of the training part for validation and holdout_classes held out: a bundled dataset
    (ablate.data.load_dataset, standardized) or a factory's (ablate.data.external: as the factory returns it)."""
    source = DATASETS.get(config.dataset)
    if isinstance(source, FactorySource):
        options = DataOptions(seed=config.split_seed, test_fraction=config.test_fraction, data_dir=config.data_dir,
                              num_classes=config.num_classes, synthetic_dim=config.synthetic_dim,
                              samples_per_class=config.samples_per_class)
        return load_factory_data(source, options, config.holdout_classes, config.val_fraction)
    return load_dataset(config.dataset, config.data_dir, seed=config.split_seed,
                        holdout_classes=config.holdout_classes, test_fraction=config.test_fraction,
                        val_fraction=config.val_fraction, num_classes=config.num_classes,
                        synthetic_dim=config.synthetic_dim, samples_per_class=config.samples_per_class)


class InMemory:
    """Training examples held on the device: x (N, ...) and y (N,)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def epoch(self, order: torch.Generator, global_batch: int, ranks=ONE_PROCESS) -> Iterator[tuple]:
        """(inputs (b, ...), labels (b,), B) per global batch of B rows, this rank's b of them, in the order drawn
        from `order` (a CPU generator)."""
        for batch in torch.randperm(len(self.y), generator=order).to(self.x.device).split(global_batch):
            mine = ranks.batch_slice(batch)
            yield self.x[mine], self.y[mine], len(batch)


class EpochOrder(Sampler):
    """The global batches of one epoch as lists of indices: a permutation of range(n) drawn from `order` when the
    epoch starts (as InMemory draws it), split into batches of `batch` (the last one shorter)."""

    def __init__(self, n: int, batch: int, order: torch.Generator):
        self.n, self.batch, self.order = n, batch, order

    def __iter__(self):
        # a generator function: the permutation is drawn at the first batch asked for, not when the iterator is
        # made (a DataLoader with workers makes one it never reads)
        for indices in torch.randperm(self.n, generator=self.order).split(self.batch):
            yield indices.tolist()

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch)


class CheckedBatches:
    """collate_fn of a streamed part: the default collation, then inputs as float32 (b, *input_shape) and labels as
    int64 (b,) in [0, classes); a ValueError naming the part otherwise."""

    def __init__(self, what: str, input_shape: tuple, classes: int):
        self.what, self.input_shape, self.classes = what, tuple(input_shape), classes

    def __call__(self, items: list) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, labels = torch.utils.data.default_collate(items)
        inputs, labels = torch.as_tensor(inputs), torch.as_tensor(labels).reshape(-1)
        if tuple(inputs.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.what}: a batch's inputs have shape {tuple(inputs.shape[1:])} each, its first "
                             f"item {self.input_shape}; every input must have one shape")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"{self.what}: labels must be integers, a batch holds {labels.dtype}")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.classes):
            raise ValueError(f"{self.what}: labels must lie in [0, {self.classes}); a batch holds "
                             f"{int(labels.min())} to {int(labels.max())}")
        return inputs.float(), labels.long()


def _loader(dataset, what: str, data: StreamedSplits, device: torch.device, workers: int, **batching) -> DataLoader:
    return DataLoader(dataset, num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                      collate_fn=CheckedBatches(what, data.input_shape, data.num_classes), **batching)


class Streamed:
    """Training examples of a torch Dataset, loaded batch by batch (see the module docstring)."""

    def __init__(self, data: StreamedSplits, device: torch.device, workers: int):
        self.data, self.device, self.workers = data, device, workers
        self.loader: DataLoader | None = None

    def __len__(self) -> int:
        return examples(self.data.train)

    def epoch(self, order: torch.Generator, global_batch: int, ranks=ONE_PROCESS) -> Iterator[tuple]:
        """As InMemory.epoch; every rank loads the global batch and keeps its rows."""
        if self.loader is None:  # one loader for every epoch: its worker processes start once
            self.loader = _loader(self.data.train, f"{self.data.name} (train part)", self.data, self.device,
                                  self.workers, batch_sampler=EpochOrder(len(self), global_batch, order))
        for inputs, labels in self.loader:
            mine = ranks.batch_slice(torch.arange(len(labels)))
            yield (inputs[mine].to(self.device, non_blocking=True), labels[mine].to(self.device, non_blocking=True),
                   len(labels))


def training_batches(data: Splits | StreamedSplits, trained_classes: int, device: torch.device,
                     loader_workers: int = 0) -> InMemory | Streamed:
    """The cell's training examples: those of the trained classes (labels < trained_classes) in memory on `device`,
    or the factory's train Dataset streamed (a streamed dataset holds no held-out class: ablate.data.external)."""
    if isinstance(data, StreamedSplits):
        return Streamed(data, device, loader_workers)
    trained = data.train.y < trained_classes
    return InMemory(torch.tensor(data.train.x[trained], device=device), torch.tensor(data.train.y[trained],
                                                                                     device=device))


class StreamedScoring(Scoring):
    """A part of a factory's streamed data (a torch Dataset) to score a model on, loaded batch by batch each time."""

    def __init__(self, part, what: str, data: StreamedSplits, device: torch.device, workers: int):
        self.part, self.what, self.data, self.device, self.workers = part, what, data, device, workers

    def __len__(self) -> int:
        return len(self.part)

    def outputs(self, model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As Scoring.outputs: the labels are those the batches held."""
        labels: list = []

        def inputs():
            for batch_inputs, batch_labels in _loader(self.part, self.what, self.data, self.device, self.workers,
                                                      batch_size=EVAL_BATCH):
                labels.append(batch_labels)
                yield batch_inputs.to(self.device, non_blocking=True)

        features, predictions = features_of(model, inputs())
        return features, predictions, torch.cat(labels).numpy()


def scoring(data: Splits | StreamedSplits, split: Literal["validation", "test"], device: torch.device,
            loader_workers: int = 0) -> Scoring:
    """How to score a model on the `split` ("validation" or "test": data.validation or data.test()) of `data`: its
    arrays moved to `device` once, or a streamed Dataset loaded with `loader_workers`."""
    if isinstance(data, StreamedSplits):
        part = data.validation if split == "validation" else data.test()
        return StreamedScoring(part, f"{data.name} ({split} part)", data, device, loader_workers)
    return Scoring(data.validation if split == "validation" else data.test(), device)


def examples(part: Samples | TorchDataset) -> int:
    """The number of examples of a part of a cell's data (a streamed Dataset's len(): ablate.data.external checked
    that it has one)."""
    return len(part)  # type: ignore[arg-type]  # torch's Dataset declares no __len__ (not every Dataset has one)
