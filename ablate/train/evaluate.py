"""Evaluation of a trained cell on the test split: every metric of the registry that is computed from it."""

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from ablate.metrics import computed_metrics
from ablate.metrics.features import split_evaluations

EVAL_BATCH = 1024


@torch.no_grad()
def features_of(model: nn.Module, batches: Iterable[torch.Tensor]):
    """Features (N, D) float32 and predicted classes (N,) int64 of the input batches (b, ...) in their order."""
    model.eval()
    features, predictions = [], []
    for inputs in batches:
        batch_features, logits = model(inputs)  # (b, D), (b, C)
        features.append(batch_features.float().cpu())
        predictions.append(logits.argmax(1).cpu())
    return torch.cat(features).numpy(), torch.cat(predictions).numpy()


def evaluate(features: np.ndarray, predictions: np.ndarray, labels: np.ndarray, centers: np.ndarray,
             center_features: np.ndarray | None = None) -> dict:
    """{name: value} of every computed metric, in registry order, from test features (N, D), predictions (N,),
    labels (N,) and centers (C, D); center_features (N, D): the features in the space the centers live in (the
    cell's center space; default the features); in an open-set cell (labels >= C: classes held out of training)
    each metric on the test samples its registry entry names."""
    evaluations = split_evaluations(features, labels, predictions, centers, center_features)
    return {metric.name: float(metric.compute(evaluations[metric.open_set])) for metric in computed_metrics()}
