"""The memory a training cell needs, estimated from its config before anything is allocated.

A cell holds its dataset (in host memory, and once more on the device), the model with its gradients
and optimizer state, the centers, the activations of one batch kept for the backward pass, and the test
features. The model's size and its activations come from building it and running one batch on torch's
"meta" device, which computes shapes without allocating memory.
"""

import math

import torch

from ablate.data import dataset_size
from ablate.limits import HOST_FRACTION, physical_memory_bytes
from ablate.models import build_model

FLOAT_BYTES = 4  # everything is trained in float32
DATA_COPIES = 6  # raw, float32, split, standardized arrays and the device tensors, at the peak of loading
OPTIMIZER_COPIES = {"sgd": 3, "adam": 4}  # weights, gradients and one (SGD momentum) or two (Adam) states
DEVICE_FRACTION = 0.9  # of a GPU's memory


def _activation_elements(model: torch.nn.Module, batch_shape: tuple) -> int:
    """Elements of every module's output for one batch (kept for the backward pass), counted on meta."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        for t in output if isinstance(output, tuple) else (output,):
            total += t.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        model(torch.empty(batch_shape, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def cell_memory(config) -> dict:
    """{"host": bytes, "device": bytes}: what the cell of `config` (a CellConfig) needs at its peak."""
    examples, input_shape, classes = _sizes(config)
    data = examples * math.prod(input_shape) * FLOAT_BYTES
    with torch.device("meta"):
        model = build_model(config.model, input_shape, config.feat_dim, classes)
        parameters = sum(p.numel() for p in model.parameters())
        activations = 2 * _activation_elements(model, (min(config.batch_size, examples), *input_shape))  # and grads
    training = (parameters * OPTIMIZER_COPIES[config.optimizer] + 3 * classes * config.feat_dim  # centers, update
                + activations + 2 * examples * config.feat_dim) * FLOAT_BYTES  # test features
    return {"host": DATA_COPIES * data, "device": data + training}


def _sizes(config) -> tuple:
    return dataset_size(config.dataset, num_classes=config.num_classes, synthetic_dim=config.synthetic_dim,
                        samples_per_class=config.samples_per_class)


def memory_floor(config) -> int:
    """A lower bound of cell_memory's total, in Python integers (no overflow whatever the sizes): the data, the
    centers and the test features. Checked first, so that sizes far beyond any machine never build a model."""
    examples, input_shape, classes = _sizes(config)
    data = DATA_COPIES * examples * math.prod(input_shape)
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
