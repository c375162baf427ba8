"""A trained cell's weights in safetensors format (layout: ablate.runs.weights): written from the trained model,
restored into a freshly built one.

    weights_bytes(model, head, centers, config, input_shape) -> bytes    the file, to write atomically
    model_state(tensors, head) -> the model's state dict from the file's tensors

ablate.train.cell.restore_cell rebuilds a kept cell's model from its config and loads these into it.
"""

import json

import torch
from safetensors.torch import save
from torch import nn

from ablate.runs.weights import CENTERS, HEAD_PREFIX, MODEL_PREFIX, WEIGHTS_FORMAT, WEIGHTS_VERSION


def _place(model: nn.Module, head: nn.Module | None) -> str:
    """The name of `head` among the modules of `model` ("" for none)."""
    if head is None:
        return ""
    return next(name for name, module in model.named_modules() if module is head)


def weights_bytes(model: nn.Module, head: nn.Module | None, centers: torch.Tensor, config: dict,
                  input_shape: tuple) -> bytes:
    """The safetensors file of a trained cell: the model's state (as model.<key>), its head's (head.<key>), the
    centers (C, D) as float32, and the header (config, input_shape, the head's place). Every tensor is copied to
    the CPU on its own (tied weights are stored twice: safetensors refuses shared memory)."""
    place = _place(model, head)
    prefix = f"{place}." if place else None
    tensors = {}
    for key, value in model.state_dict().items():
        name = HEAD_PREFIX + key[len(prefix):] if prefix and key.startswith(prefix) else MODEL_PREFIX + key
        tensors[name] = value.detach().cpu().clone().contiguous()
    tensors[CENTERS] = centers.detach().float().cpu().clone().contiguous()
    metadata = {"format": WEIGHTS_FORMAT, "version": WEIGHTS_VERSION, "config": json.dumps(config),
                "input_shape": json.dumps(list(input_shape)), "head": place}
    return save(tensors, metadata=metadata)


def model_state(tensors: dict, head: str) -> dict:
    """The model's state dict from a weights file's tensors: model.<key> -> <key>, head.<key> -> <head>.<key>."""
    state = {}
    for name, value in tensors.items():
        if name.startswith(MODEL_PREFIX):
            state[name[len(MODEL_PREFIX):]] = value
        elif name.startswith(HEAD_PREFIX):
            state[f"{head}.{name[len(HEAD_PREFIX):]}"] = value
    return state
