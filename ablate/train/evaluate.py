"""Evaluation of a trained cell on the test split: test accuracy and every feature metric."""

import numpy as np
import torch
from sklearn.metrics import accuracy_score
from torch import nn

from ablate.metrics import feature_metrics

EVAL_BATCH = 1024
METRIC_KEYS = (
    "test_accuracy", "nearest_center_accuracy", "intra_class_distance", "inter_class_distance",
    "inter_class_distance_min", "separation_ratio", "silhouette", "precision_at_1", "map_at_r",
    "verification_auc", "tar_at_far_1e3", "center_to_mean_distance",
)


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


def evaluate(features: np.ndarray, predictions: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> dict:
    """All METRIC_KEYS from test features (N, D), predictions (N,), labels (N,) and centers (C, D)."""
    metrics = {"test_accuracy": float(accuracy_score(labels, predictions)),
               **feature_metrics(features, labels, centers)}
    return {key: metrics[key] for key in METRIC_KEYS}
