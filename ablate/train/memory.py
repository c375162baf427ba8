"""The memory a training cell needs, estimated from its config before anything is allocated.

A cell holds its dataset (in host memory, and once more on the device; a dataset streamed from a factory's torch
Datasets only the batches its DataLoader holds), the model with its gradients and optimizer state, the centers, the
activations of one batch kept for the backward pass, and the test features. The model's size and its activations
come from building it and running one batch on torch's "meta" device, which computes shapes without allocating
memory (ablate.train.probe; a model outside the package that cannot run there is built on the CPU and run on two
examples, its activations scaled to the batch).
"""

import math

import torch

from ablate.data import DATASETS, dataset_size
from ablate.limits import HOST_FRACTION, physical_memory_bytes
from ablate.train.probe import probe_model

FLOAT_BYTES = 4  # everything is trained in float32
DATA_COPIES = 6  # raw, float32, split, standardized arrays and the device tensors, at the peak of loading
STREAMED_BATCHES = 8  # batches a streaming DataLoader may hold at once (2 prefetched per worker, up to 4 workers)
OPTIMIZER_COPIES = {"sgd": 3, "adam": 4}  # weights, gradients and one (SGD momentum) or two (Adam) states
DEVICE_FRACTION = 0.9  # of a GPU's memory


def cell_memory(config) -> dict:
    """{"host": bytes, "device": bytes}: what the cell of `config` (a CellConfig) needs at its peak."""
    examples, input_shape, classes = _sizes(config)
    batch = min(config.batch_size, examples)
    if DATASETS.get(config.dataset).in_memory:
        data = examples * math.prod(input_shape) * FLOAT_BYTES
        host = DATA_COPIES * data
    else:  # streamed: the DataLoader's batches on the host, one on the device
        data = batch * math.prod(input_shape) * FLOAT_BYTES
        host = STREAMED_BATCHES * data
    model = probe_model(config, input_shape, classes, batch)
    activations = 2 * model.activations  # and their gradients
    training = (model.parameters * OPTIMIZER_COPIES[config.optimizer] + 3 * classes * config.feat_dim  # centers
                + activations + 2 * examples * config.feat_dim) * FLOAT_BYTES  # test features
    return {"host": host, "device": data + training}


def _sizes(config) -> tuple:
    return dataset_size(config.dataset, num_classes=config.num_classes, synthetic_dim=config.synthetic_dim,
                        samples_per_class=config.samples_per_class)


def memory_floor(config) -> int:
    """A lower bound of cell_memory's total, in Python integers (no overflow whatever the sizes): the data, the
    centers and the test features. Checked first, so that sizes far beyond any machine never build a model."""
    examples, input_shape, classes = _sizes(config)
    resident = examples if DATASETS.get(config.dataset).in_memory else 0
    data = DATA_COPIES * resident * math.prod(input_shape)
    return (data + (3 * classes + 2 * examples) * config.feat_dim) * FLOAT_BYTES


def check_fits(config, device: torch.device) -> None:
    """Refuse a cell whose estimated memory exceeds what this machine has (ValueError, with both numbers)."""
    host_budget = HOST_FRACTION * physical_memory_bytes()
    floor = memory_floor(config)
    if floor > host_budget:
        raise ValueError(f"this cell needs at least {floor / 1e9:,.4g} GB of host memory ({config.dataset}, feat_dim "
                         f"{config.feat_dim}, num_classes {config.num_classes}), over the {host_budget / 1e9:,.1f} GB "
                         "available: use smaller sizes")
    need = cell_memory(config)
    budgets = {"host": host_budget}
    if device.type == "cuda":
        budgets["device"] = DEVICE_FRACTION * torch.cuda.get_device_properties(device).total_memory
    else:
        need = {"host": need["host"] + need["device"]}
    for where, budget in budgets.items():
        if need[where] > budget:
            raise ValueError(
                f"this cell needs about {need[where] / 1e9:,.1f} GB of {where} memory ({config.dataset}, model "
                f"{config.model}, feat_dim {config.feat_dim}, batch_size {config.batch_size}), over the "
                f"{budget / 1e9:,.1f} GB available: use smaller sizes")


# The options cell_memory depends on: cells that share them need the same memory.
MEMORY_KEYS = ("dataset", "model", "feat_dim", "batch_size", "optimizer", "num_classes", "synthetic_dim",
               "samples_per_class")


def largest_host_memory(configs: list) -> int:
    """The most host memory (bytes) one of `configs` (resolved config dicts) needs, each size refused first by
    check_fits' bound when it is beyond this machine."""
    from ablate.train.config import CellConfig

    distinct = {tuple(config[k] for k in MEMORY_KEYS): config for config in configs}.values()
    largest = 0
    for config in distinct:
        cell = CellConfig.from_dict(config)
        check_fits(cell, torch.device("cpu"))
        largest = max(largest, cell_memory(cell)["host"])
    return largest
