"""The models of a training cell, in the MODELS registry; each forward returns (features (B, feat_dim), logits
(B, num_classes)).

    lenetpp   LeNetPP: the paper's "LeNets++" for 1x28x28 images (MNIST, Fashion-MNIST)
    mlp       MLP: a small PReLU network for flat or small inputs (digits 8x8, synthetic vectors)
    auto      LeNet++ for 28x28 images, else the MLP
    build_model(name, input_shape, feat_dim, num_classes, embedding_norm="none") -> nn.Module

A model outside the package is named `pkg.module:factory` or `path/to/file.py:factory` wherever a name is taken, or
registered by an installed package under the entry-point group `ablate.models` (`name = "pkg.module:factory"`). The
factory is called with the keywords its signature names among feat_dim, num_classes and input_shape (the shape of one
example) and returns an nn.Module whose forward gives (features (B, feat_dim), logits (B, num_classes)); it may declare
the options it trains with, `factory.recipe = {"lr": 0.01, ...}` (MODEL_RECIPE_KEYS), which a cell takes before its
dataset's recipe.

EMBEDDING_NORMS: what may follow a model's feature layer (its `embed` module), so that the features are its output:
    none        nothing (the paper's LeNet++ features: PReLU of the last fc)
    batchnorm   BatchNorm1d over the feat_dim features (ArcFace's "FC-BN" embedding): in training each feature
                dimension is standardized over the batch, then scaled and shifted by learned weights; at test time by
                the running statistics. It fixes the scale of the features, which a normalized head's gradient
                (s / ||x||) otherwise blows up from the small norms a new model starts with.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ablate.factories import Factory, FactoryError, call_with, declared_recipe, factory_of, load_factory
from ablate.registry import Registry

LENETPP_INPUT = (28, 28)


def _conv_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 5x5 convolutions (padding 2) with PReLU, then 2x2 max-pooling: (B, in, H, W) -> (B, out, H/2, W/2)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 5, padding=2), nn.PReLU(),
        nn.Conv2d(out_channels, out_channels, 5, padding=2), nn.PReLU(),
        nn.MaxPool2d(2),
    )


class LeNetPP(nn.Module):
    """LeNets++ (Wen et al. 2016): stages of 32, 64, 128 channels, fc 1152 -> feat_dim with PReLU, fc -> classes.

    images (B, in_channels, 28, 28) -> features (B, feat_dim), logits (B, num_classes).
    """

    def __init__(self, in_channels: int = 1, feat_dim: int = 2, num_classes: int = 10):
        super().__init__()
        self.stages = nn.Sequential(_conv_stage(in_channels, 32), _conv_stage(32, 64), _conv_stage(64, 128))
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(128 * 3 * 3, feat_dim), nn.PReLU())  # 28->14->7->3
        self.classifier = nn.Linear(feat_dim, num_classes)

    def forward(self, images):
        if tuple(images.shape[-2:]) != LENETPP_INPUT:
            raise ValueError(f"LeNet++ expects images (B, C, 28, 28), got shape {tuple(images.shape)}")
        features = self.embed(self.stages(images))  # (B, feat_dim)
        return features, self.classifier(features)  # (B, feat_dim), (B, num_classes)


class MLP(nn.Module):
    """Flatten, hidden Linear+PReLU layers, Linear -> feat_dim with PReLU (the features), Linear -> classes.

    inputs (B, *input_shape) with prod(input_shape) = in_features -> features (B, feat_dim), logits (B, num_classes).
    """

    def __init__(self, in_features: int, feat_dim: int = 2, num_classes: int = 10, hidden: tuple = (256, 128)):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.PReLU()]
            width = size
        layers += [nn.Linear(width, feat_dim), nn.PReLU()]
        self.embed = nn.Sequential(*layers)
        self.classifier = nn.Linear(feat_dim, num_classes)

    def forward(self, inputs):
        features = self.embed(inputs)  # (B, feat_dim)
        return features, self.classifier(features)  # (B, feat_dim), (B, num_classes)


def _any_shape(input_shape: tuple) -> bool:
    return True


@dataclass(frozen=True)
class Model:
    """A model a cell can train, or a name that picks one by the dataset's examples.

    build(input_shape, feat_dim, num_classes) -> nn.Module mapping inputs (B, *input_shape) to (features (B, feat_dim),
    logits (B, num_classes)). takes(input_shape) -> whether it takes examples of that shape; `needs` says which it
    takes, for the error where it does not. picks(input_shape) -> the name of the model to build (for "auto"), in
    place of build. factory: the function outside the package it builds with (None for the built-ins): its file's
    digest enters the id of every cell that trains it. recipe: the options it trains with (MODEL_RECIPE_KEYS),
    taken before the dataset's.
    """

    name: str
    build: Callable[[tuple, int, int], nn.Module] | None = None
    takes: Callable[[tuple], bool] = _any_shape
    needs: str = "any input"
    picks: Callable[[tuple], str] | None = None
    factory: Factory | None = None
    recipe: dict = field(default_factory=dict)

    def __post_init__(self):
        if (self.build is None) == (self.picks is None):
            raise ValueError(f"model {self.name!r} needs either build (the model itself) or picks (the name of the "
                             "model to build), not both or neither")


# The options a model factory may declare as its recipe: a dataset's recipe but the model itself.
MODEL_RECIPE_KEYS = ("epochs", "batch_size", "lr", "lr_step", "lr_gamma", "convention")


def _factory_model(factory: Factory) -> Model:
    """The Model entry of a factory (see the module docstring), named by its reference."""

    def build(input_shape: tuple, feat_dim: int, num_classes: int) -> nn.Module:
        model = call_with(factory, "model", feat_dim=feat_dim, num_classes=num_classes, input_shape=tuple(input_shape))
        if not isinstance(model, nn.Module):
            raise FactoryError(f"model factory {factory.describe()} must return a torch.nn.Module giving (features, "
                               f"logits), got {type(model).__name__}")
        return model

    return Model(factory.reference, build=build, needs="what its factory takes", factory=factory,
                 recipe=declared_recipe(factory, "model", MODEL_RECIPE_KEYS))


_REFERENCED: dict[tuple[str, str], Model] = {}  # (reference, digest) -> entry: a file's edit makes a new entry


def model_from_reference(reference: str) -> Model:
    """The model of a factory named pkg.module:factory or path/to/file.py:factory (FactoryError if it cannot load)."""
    factory = load_factory(reference, "model")
    key = (reference, factory.digest)
    if key not in _REFERENCED:
        _REFERENCED[key] = _factory_model(factory)
    return _REFERENCED[key]


def model_from_entry_point(name: str, obj: Any, source: str) -> Model:
    """An `ablate.models` entry point: a factory function (as above), registered under the entry point's name."""
    distribution, _, reference = source.partition(": ")
    model = _factory_model(factory_of(obj, reference, "model", "entry point", distribution))
    return Model(name, build=model.build, needs=model.needs, factory=model.factory, recipe=model.recipe)


MODELS: Registry[Model] = Registry("model", entry_point_group="ablate.models", from_entry_point=model_from_entry_point,
                                   from_reference=model_from_reference)


def _is_lenetpp_image(input_shape: tuple) -> bool:
    return len(input_shape) == 3 and tuple(input_shape[1:]) == LENETPP_INPUT


for _model in (
    Model("auto", picks=lambda input_shape: "lenetpp" if _is_lenetpp_image(input_shape) else "mlp"),
    Model("lenetpp", takes=_is_lenetpp_image, needs="(C, 28, 28) images",
          build=lambda input_shape, feat_dim, num_classes: LeNetPP(input_shape[0], feat_dim, num_classes)),
    Model("mlp", build=lambda input_shape, feat_dim, num_classes: MLP(math.prod(input_shape), feat_dim, num_classes)),
):
    MODELS.register(_model)


def resolve_model_name(name: str, input_shape: tuple) -> str:
    """The model `name` builds for examples of shape input_shape ("auto" -> "lenetpp" for (C, 28, 28) images, "mlp"
    otherwise); a ValueError for an unknown name or a model that does not take such examples."""
    model = MODELS.get(name)
    if model.picks is not None:
        model = MODELS.get(model.picks(input_shape))
    if not model.takes(tuple(input_shape)):
        takers = [m.name for m in MODELS if m.picks is not None or m.takes(tuple(input_shape))]
        raise ValueError(f"model {model.name!r} needs {model.needs}, the dataset gives {tuple(input_shape)}; "
                         f"use one of {', '.join(takers)}")
    return model.name


@dataclass(frozen=True)
class EmbeddingNorm:
    """A layer that may follow a model's features: build(feat_dim) -> the layer (None: nothing); batch_statistics:
    it normalizes by the training batch's own statistics, so that a batch of one sample cannot train."""

    name: str
    build: Callable[[int], nn.Module] | None
    batch_statistics: bool = False


EMBEDDING_NORMS = {norm.name: norm for norm in (
    EmbeddingNorm("none", None),
    EmbeddingNorm("batchnorm", nn.BatchNorm1d, batch_statistics=True),
)}


def build_model(name: str, input_shape: tuple, feat_dim: int, num_classes: int,
                embedding_norm: str = "none") -> nn.Module:
    """The model called `name` (a MODELS entry) for examples of shape input_shape, its features passed through the
    EMBEDDING_NORMS entry `embedding_norm` (appended to the model's `embed` module, which every built-in model has)."""
    if embedding_norm not in EMBEDDING_NORMS:
        raise ValueError(f"unknown embedding_norm {embedding_norm!r}; expected one of {', '.join(EMBEDDING_NORMS)}")
    resolved = resolve_model_name(name, input_shape)
    build = MODELS.get(resolved).build
    assert build is not None  # resolve_model_name names a model that builds
    model = build(tuple(input_shape), feat_dim, num_classes)
    norm = EMBEDDING_NORMS[embedding_norm].build
    if norm is not None:
        embed = getattr(model, "embed", None)
        if not isinstance(embed, nn.Module):
            raise ValueError(f"embedding_norm {embedding_norm} follows a model's `embed` module (inputs -> features), "
                             f"and model {resolved!r} has none; use embedding_norm none (or give the model an `embed` "
                             "module)")
        model.embed = nn.Sequential(embed, norm(feat_dim))  # (B, ...) -> (B, feat_dim) -> (B, feat_dim)
    return model
