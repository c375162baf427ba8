"""The head and pair loss of a cell, built from their registry entries (ablate.objectives) with
pytorch-metric-learning, which is imported only when a cell uses one of them.

    TrainingObjective(config, num_classes)   .attach(model), .head_sum(features, logits, labels),
                                             .pair_loss(features, labels), .annealing_weight()
"""

from typing import TYPE_CHECKING, Protocol

import torch.nn.functional as F
from torch import Tensor, nn

from ablate.objectives import HEADS, PAIR_LOSSES, annealing_weight

if TYPE_CHECKING:
    # The mixins' base: at run time the pml head class _head_class combines them with, a subclass of this one (where
    # get_angles and modify_cosine_of_target_classes are defined); pml declares no types.
    from pytorch_metric_learning.losses import LargeMarginSoftmaxLoss as _MarginHead
else:
    _MarginHead = object

# pml takes a head's angle as acos(clamp(cos, -1, 1)), whose gradient is infinite at |cos| = 1: with 2-D features
# a float32 cosine reaches 1.0 within the first epoch and the cell diverges. The angle is taken at the cosine
# clamped to +-(1 - ANGLE_EPS) instead (at most 1.4e-3 rad away; no gradient through a clamped cosine).
ANGLE_EPS = 1e-6


class FiniteAngleGradient(_MarginHead):
    """Mixin for a pml head that computes angles (get_angles): the cosine clamped inside (-1, 1) first."""

    def get_angles(self, cosine_of_target_classes):
        return super().get_angles(cosine_of_target_classes.clamp(-1 + ANGLE_EPS, 1 - ANGLE_EPS))


class AnnealedTarget(_MarginHead):
    """Mixin for pml's SphereFaceLoss (whose target cosine becomes psi(theta_y)): the target's cosine becomes
    (lambda cos theta_y + psi(theta_y)) / (1 + lambda), pml's logit scale (s ||x||) applied after, with lambda
    annealed over the training steps by the paper's schedule (ablate.objectives.annealing_weight). Each loss
    computation is one training step; the first is step 1, as in the paper's Caffe layer. The gradient is autograd's
    of this target logit (the Caffe layer's backward rescales the pair of coefficients of x and W of the target to
    unit length, an approximation of it)."""

    def __init__(self, *args, anneal_base: float, anneal_gamma: float, anneal_power: float, anneal_min: float,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.schedule = (anneal_base, anneal_gamma, anneal_power, anneal_min)
        self.steps = 0  # training steps taken
        self.weight = annealing_weight(0, *self.schedule)  # lambda of the last step (of step 0 before the first)

    def compute_loss(self, *args, **kwargs):
        self.steps += 1
        self.weight = annealing_weight(self.steps, *self.schedule)
        return super().compute_loss(*args, **kwargs)

    def modify_cosine_of_target_classes(self, cosine_of_target_classes):
        psi = super().modify_cosine_of_target_classes(cosine_of_target_classes)  # (B,)
        return (self.weight * cosine_of_target_classes + psi) / (1.0 + self.weight)


def _head_class(library_class, annealed: bool):
    """pml's head class, with FiniteAngleGradient where it computes angles and AnnealedTarget for an annealed
    head."""
    mixins = ((AnnealedTarget,) if annealed else ()) + ((FiniteAngleGradient,) if hasattr(library_class, "get_angles")
                                                          else ())
    return type(library_class.__name__, (*mixins, library_class), {}) if mixins else library_class


def _library_options(entry, config) -> dict:
    """pml's keyword arguments of a registry entry: its parameters from the config, converted to pml's units."""
    options = {p.library_name: p.to_library(getattr(config, p.key)) for p in entry.parameters}
    return {**entry.fixed, **options}


class LibraryHead(Protocol):
    """What a cell calls of a pml head (pml declares no types): its loss (a scalar, the mean over the batch) of
    features (B, D) and labels (B,), and its logits (B, C) of features (B, D) without the margin."""

    def __call__(self, embeddings: Tensor, labels: Tensor) -> Tensor: ...

    def get_logits(self, embeddings: Tensor) -> Tensor: ...


class HeadLogits(nn.Module):
    """The logits (B, C) of a pml head from features (B, D), without the margin (pml's get_logits): what the cell's
    predictions are made from. It holds the head's loss module, so that the head's weights W (D, C) are parameters
    of the model: trained by its optimizer, moved with it, and evaluated with it."""

    def __init__(self, loss: LibraryHead):
        super().__init__()
        self.loss = loss

    def forward(self, features):
        return self.loss.get_logits(features)  # (B, C)


class WithHead(nn.Module):
    """A model without a `classifier` and a pml head: inputs -> (the model's features (B, D), the head's logits
    (B, C)); the model's own logits are left unused."""

    def __init__(self, model: nn.Module, head: nn.Module):
        super().__init__()
        self.model, self.head = model, head

    def forward(self, inputs):
        features, _ = self.model(inputs)  # (B, D)
        return features, self.head(features)  # (B, D), (B, C)


class TrainingObjective:
    """The head's loss and the pair loss of one cell; center loss stays with the training loop."""

    def __init__(self, config, num_classes: int):
        head, pair = HEADS[config.head], PAIR_LOSSES[config.pair_loss]
        self.head_module = self.pair_module = self.miner = None
        if head.library_class is not None or pair.library_class is not None:
            from pytorch_metric_learning import distances, losses, miners  # heavy: loaded for the cells that use it
        if head.library_class is not None:
            head_class = _head_class(getattr(losses, head.library_class), head.annealed)
            loss = head_class(num_classes=num_classes, embedding_size=config.feat_dim,
                              **_library_options(head, config))
            loss.W.requires_grad_(head.learned)  # a head with fixed class weights keeps its initial ones
            self.head_module = HeadLogits(loss)
        if pair.library_class is not None:
            options = _library_options(pair, config)
            distance = getattr(distances, pair.distance)
            self.pair_module = getattr(losses, pair.library_class)(distance=distance(), **options)
            if pair.miner is not None:
                self.miner = getattr(miners, pair.miner)(margin=options["margin"], distance=distance(),
                                                         **pair.miner_options)

    def attach(self, model: nn.Module) -> nn.Module:
        """The model with the head's logits in place of its own (for a pml head): the head replaces the model's
        `classifier` (the built-in models' last layer); a model without one (a factory's) is wrapped, its features
        going to the head. Returns the model to train."""
        if self.head_module is None:
            return model
        if isinstance(getattr(model, "classifier", None), nn.Module):
            model.classifier = self.head_module
            return model
        return WithHead(model, self.head_module)

    def head_of(self, model: nn.Module) -> nn.Module | None:
        """The module of `model` (as attach returned it) that turns features into logits: the pml head, else the
        model's `classifier` (the built-in models' last layer); None for a model whose logits are its own."""
        if self.head_module is not None:
            return self.head_module
        classifier = getattr(model, "classifier", None)
        return classifier if isinstance(classifier, nn.Module) else None

    def head_sum(self, features, logits, labels):
        """The head's loss summed over the batch: cross-entropy of the model's logits (B, C) for softmax, the pml
        head's loss (a mean over the batch) of the features (B, D) times B otherwise; labels (B,)."""
        if self.head_module is None:
            return F.cross_entropy(logits, labels, reduction="sum")
        return self.head_module.loss(features, labels) * len(labels)

    def annealing_weight(self) -> float | None:
        """The annealed head's lambda at its last training step (None for a head without annealing)."""
        loss = self.head_module.loss if self.head_module is not None else None
        return loss.weight if isinstance(loss, AnnealedTarget) else None

    def pair_loss(self, features, labels):
        """The pair loss of features (B, D) with labels (B,) (a scalar), None without one."""
        if self.pair_module is None:
            return None
        pairs = self.miner(features, labels) if self.miner is not None else None
        return self.pair_module(features, labels, pairs)

