"""Metrics of a trained cell: the registry (registry.py, imported here; light) and the functions that compute
them from test features (features.py; scikit-learn and scipy, imported where a metric is computed)."""

from ablate.metrics.registry import (
    AGAINST_LAMBDA,
    AGREEMENT,
    CENTER_SPACE,
    COSINE,
    DIFFERENCE,
    EUCLIDEAN,
    GEOMETRIES,
    GRID_SUMMARY,
    HEATMAP,
    HELD_OUT,
    METRICS,
    POINTS,
    RATIO,
    SEEN,
    TRAIN_SUMMARY,
    VIEWS,
    Metric,
    computed_metrics,
    get_metric,
    headline_metrics,
    label,
    primary_metrics,
    register_metric,
    secondary_metrics,
    shown_in,
    summarized_metrics,
)

__all__ = ["AGAINST_LAMBDA", "AGREEMENT", "CENTER_SPACE", "COSINE", "DIFFERENCE", "EUCLIDEAN", "GEOMETRIES",
           "GRID_SUMMARY", "HEATMAP", "HELD_OUT", "METRICS", "POINTS", "RATIO", "SEEN", "TRAIN_SUMMARY", "VIEWS",
           "Metric", "computed_metrics", "get_metric", "headline_metrics", "label", "primary_metrics",
           "register_metric", "secondary_metrics", "shown_in", "summarized_metrics"]
