"""Evaluation of a trained cell on a split (validation or test): every metric of the registry that is computed from
it, or one of them after each epoch."""

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from ablate.data import Samples
from ablate.metrics import computed_metrics, get_metric
from ablate.metrics.features import split_evaluations
from ablate.train.center_space import in_center_space

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
    """{name: value} of every computed metric, in registry order, from features (N, D), predictions (N,), labels (N,)
    and centers (C, D) of one split; center_features (N, D): the features in the space the centers live in (the
    cell's center space; default the features); in an open-set cell (labels >= C: classes held out of training) each
    metric on the samples its registry entry names."""
    evaluations = split_evaluations(features, labels, predictions, centers, center_features)
    return {metric.name: float(metric.compute(evaluations[metric.open_set])) for metric in computed_metrics()}


class Scoring:
    """One split's samples (ablate.data.Samples), moved to `device` once, to score a model on (a split streamed from a
    factory's torch Dataset: ablate.train.batches.StreamedScoring)."""

    def __init__(self, samples: Samples, device: torch.device):
        self.samples = samples
        self.x = torch.tensor(samples.x, device=device)  # (N, *input_shape)

    def __len__(self) -> int:
        return len(self.samples)

    def outputs(self, model: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features (N, D), predictions (N,) and labels (N,) of the split, in its order (the model left in eval
        mode)."""
        features, predictions = features_of(model, self.x.split(EVAL_BATCH))
        return features, predictions, self.samples.y

    def metric(self, name: str, model: nn.Module, centers: np.ndarray, center_space: str) -> float:
        """The registry's metric `name` of the model on this split, with centers (C, D) in `center_space` (the cell's);
        NaN where the features are not finite (the cell is breaking down) or the metric is undefined. A ValueError
        for a metric the training run measures itself (times, rates: nothing to compute from a split)."""
        metric = get_metric(name)
        if metric.compute is None:
            raise ValueError(f"metric {name!r} is measured by the training run, not computed from a split; expected "
                             f"one of {', '.join(m.name for m in computed_metrics())}")
        features, predictions, labels = self.outputs(model)
        if not (np.isfinite(features).all() and np.isfinite(centers).all()):
            return float("nan")
        in_space = in_center_space(torch.from_numpy(features), center_space).numpy()
        evaluations = split_evaluations(features, labels, predictions, centers, in_space)
        return float(metric.compute(evaluations[metric.open_set]))
