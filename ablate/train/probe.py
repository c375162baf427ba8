"""What a cell's model is before it trains: its parameters, the activations one batch keeps, and the shapes of its
outputs, learned by building it and running a batch on torch's "meta" device (shapes without memory or compute).

    probe_model(config, input_shape, classes, batch) -> ModelProbe
    check_outputs(config)     a model that does not give (features (B, feat_dim), logits (B, C)) refused by name

A model that cannot be built or run on the meta device (one that reads tensor values while it is built or in its
forward, say) is built on the CPU instead and run on a batch of two zero inputs: its parameters are then counted
exactly and its activations scaled from those two examples to the batch (ModelProbe.device says which).
"""

from dataclasses import dataclass

import torch

from ablate.models import MODELS, build_model

PROBE_BATCH = 2  # the examples a model runs on the CPU when the meta device cannot run it


@dataclass(frozen=True)
class ModelProbe:
    """parameters: elements of the model's parameters; activations: elements of every leaf module's outputs for a
    batch (kept for the backward pass); outputs: the shapes its forward returned for that batch (None for an output
    that is not a tensor); device: "meta" or "cpu" (see the module docstring)."""

    parameters: int
    activations: int
    outputs: tuple
    device: str


def _run(model: torch.nn.Module, batch_shape: tuple, device: str) -> tuple[int, tuple]:
    """(activation elements, output shapes) of one forward pass on an empty (meta) or zero (CPU) batch."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        for t in output if isinstance(output, tuple) else (output,):
            if isinstance(t, torch.Tensor):
                total += t.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad() if device == "cpu" else torch.enable_grad():
            output = model(torch.zeros(batch_shape, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    outputs = output if isinstance(output, (tuple, list)) else (output,)
    return total, tuple(tuple(t.shape) if isinstance(t, torch.Tensor) else None for t in outputs)


def probe_model(config, input_shape: tuple, classes: int, batch: int) -> ModelProbe:
    """The ModelProbe of the cell `config`'s model (built for `classes` classes) on a batch of `batch` examples."""
    build = lambda: build_model(config.model, input_shape, config.feat_dim, classes,  # noqa: E731
                                config.embedding_norm)
    try:
        with torch.device("meta"):
            model = build()
            parameters = sum(p.numel() for p in model.parameters())
            activations, outputs = _run(model, (batch, *input_shape), "meta")
        return ModelProbe(parameters, activations, outputs, "meta")
    except (NotImplementedError, RuntimeError, TypeError, ValueError, AttributeError, IndexError) as meta_error:
        if MODELS.get(config.model).factory is None:
            raise  # a built-in model always runs on meta: this is a bug, not a model to work around
        reason = f"{type(meta_error).__name__}: {meta_error}"
    try:
        model = build()
        parameters = sum(p.numel() for p in model.parameters())
        activations, outputs = _run(model, (PROBE_BATCH, *input_shape), "cpu")
    except Exception as exc:
        raise ValueError(f"model {config.model} cannot be built and run on a batch of {PROBE_BATCH} inputs of shape "
                         f"{tuple(input_shape)} on the meta device ({reason}) nor on the CPU ({type(exc).__name__}: "
                         f"{exc})") from None
    return ModelProbe(parameters, activations * batch // PROBE_BATCH, outputs, "cpu")


def check_outputs(config, input_shape: tuple, classes: int) -> None:
    """Refuse (ValueError naming the model) a model whose forward on (B, *input_shape) does not return (features
    (B, feat_dim), logits (B, classes)); classes: those the cell trains on."""
    outputs = probe_model(config, input_shape, classes, PROBE_BATCH).outputs
    expected = ((PROBE_BATCH, config.feat_dim), (PROBE_BATCH, classes))
    if outputs != expected:
        entry = MODELS.get(config.model)
        name = entry.factory.describe() if entry.factory is not None else config.model
        got = " and ".join("a non-tensor" if shape is None else str(shape) for shape in outputs)
        raise ValueError(f"model {name} returned {len(outputs)} output(s) of shape {got} for a batch of "
                         f"{PROBE_BATCH} inputs of shape {tuple(input_shape)}; expected (features, logits) of shapes "
                         f"{expected[0]} (feat_dim {config.feat_dim}) and {expected[1]} ({classes} classes)")
