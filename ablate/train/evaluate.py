"""Evaluation of a trained cell on a split (validation or test): every metric of the registry that is computed from
it, or one of them after each epoch."""

import numpy as np
import torch
from torch import nn

from ablate.data import Samples
from ablate.metrics import computed_metrics, get_metric
from ablate.metrics.features import split_evaluations
from ablate.train.loop import in_center_space

EVAL_BATCH = 1024


@torch.no_grad()
def features_and_predictions(model: nn.Module, x: torch.Tensor):
    """Features (N, D) float32 and predicted classes (N,) int64 of inputs x (N, ...), as numpy arrays."""
    model.eval()
    features, predictions = [], []
    for inputs in x.split(EVAL_BATCH):
        batch_features, logits = model(inputs)  # (b, D), (b, C)
        features.append(batch_features.float().cpu())
        predictions.append(logits.argmax(1).cpu())
    return torch.cat(features).numpy(), torch.cat(predictions).numpy()


def evaluate(features: np.ndarray, predictions: np.ndarray, labels: np.ndarray, centers: np.ndarray,
             center_features: np.ndarray | None = None) -> dict:
    """{name: value} of every computed metric, in registry order, from features (N, D), predictions (N,), labels (N,)
    and centers (C, D) of one split; center_features (N, D): the features in the space the centers live in (the
    cell's center space; default the features); in an open-set cell (labels >= C: classes held out of training) each
    metric on the samples its registry entry names."""
    evaluations = split_evaluations(features, labels, predictions, centers, center_features)
    return {metric.name: float(metric.compute(evaluations[metric.open_set])) for metric in computed_metrics()}


class Scoring:
    """One split's samples (ablate.data.Samples), moved to `device` once, to score a model on."""

    def __init__(self, samples: Samples, device: torch.device):
        self.samples = samples
        self.x = torch.tensor(samples.x, device=device)  # (N, *input_shape)

    def features_and_predictions(self, model: nn.Module):
        """Features (N, D) and predictions (N,) of the split (the model left in eval mode)."""
        return features_and_predictions(model, self.x)

    def metric(self, name: str, model: nn.Module, centers: np.ndarray, center_space: str) -> float:
        """The registry's metric `name` of the model on this split, with centers (C, D) in `center_space` (the cell's);
        NaN where the features are not finite (the cell is breaking down) or the metric is undefined."""
        features, predictions = self.features_and_predictions(model)
        if not (np.isfinite(features).all() and np.isfinite(centers).all()):
            return float("nan")
        metric = get_metric(name)
        in_space = in_center_space(torch.from_numpy(features), center_space).numpy()
        evaluations = split_evaluations(features, self.samples.y, predictions, centers, in_space)
        return float(metric.compute(evaluations[metric.open_set]))
