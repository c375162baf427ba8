"""The Metric registry: every metric of a trained cell, declared once.

An entry says how the metric is computed (from an Evaluation of the test split, or None for what the
training run measures itself), its label, its direction (higher is better, lower is better, or None:
reported but never ranked), whether it is unchanged when every feature is scaled by one constant, whether
it is summarized over seeds, the views that show it, whether the findings compare it against the reference (a
headline metric) and how a change of it is said, which test samples it is measured on in an open-set cell,
whether it is one of the primary metrics (the family the findings' opening sentence and their adjustment speak of),
the geometry of the features it measures (raw Euclidean, cosine on L2-normalized features, or the centers'
space), so that every finding can say which one it uses, and the range its values can take (an interval over seeds
that leaves it was computed from too few seeds, and is said so instead of printed).
The record (ablate.train.evaluate), the summary table (ablate.runs.summary), the command-line summaries and the
report read these entries; no other module names a metric in its logic. An installed package adds a metric through
the entry-point group "ablate.metrics" (`name = "pkg.module:METRIC"`, a Metric; the entry point's name becomes its
name); one that fails to load is left out and kept in METRICS.plugin_errors. This module imports nothing heavy, so
the report can read it.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ablate.registry import Registry

# The views beyond the summary tables that may show a metric.
TRAIN_SUMMARY = "train summary"  # the lines `ablate train` prints
GRID_SUMMARY = "grid summary"  # the table `ablate grid` prints
HEATMAP = "heatmap"  # the report's heatmaps over lambda x alpha
AGAINST_LAMBDA = "against lambda"  # the report's metric-against-lambda panels
AGREEMENT = "agreement"  # the report's variant-agreement table
VIEWS = (TRAIN_SUMMARY, GRID_SUMMARY, HEATMAP, AGAINST_LAMBDA, AGREEMENT)

# How the findings say a change of a headline metric (ablate.analysis.stats).
POINTS = "points"  # a share in [0, 1]: the difference in percentage points ("accuracy +0.8 pts")
RATIO = "ratio"  # a positive ratio or distance: the factor, compared on the log scale ("separation ratio x2.2")
DIFFERENCE = "difference"  # anything else: the plain difference
CHANGES = (POINTS, RATIO, DIFFERENCE)
# The test samples of an open-set cell (classes held out of training) a metric is measured on.
SEEN = "seen"  # the trained classes: what needs the classifier or the centers
HELD_OUT = "held out"  # the held-out classes: what needs the features alone (retrieval, verification, compactness)
OPEN_SET_SPLITS = (SEEN, HELD_OUT)
# The geometry of the features a metric measures (None: not the features' geometry: logits, times, counts).
EUCLIDEAN = "Euclidean"  # distances between the raw features
COSINE = "cosine"  # cosine similarity: distances between the L2-normalized features
CENTER_SPACE = "center space"  # Euclidean distances in the space the centers were learned in (the cell's center_space)
GEOMETRIES = (EUCLIDEAN, COSINE, CENTER_SPACE)
# The ranges the registry's metrics take (value_range).
UNBOUNDED = (-math.inf, math.inf)
SHARE = (0.0, 1.0)  # accuracies, precisions, MAP@R, AUC, TAR, FAR
NON_NEGATIVE = (0.0, math.inf)  # distances, norms, ratios of them, times, rates
UNIT_DISTANCE = (0.0, 2.0)  # a distance between unit-length vectors


def too_few_seeds(seeds: object) -> str:
    """What is shown instead of an interval that leaves its metric's range (or a detectable change wider than the
    range): 'too few seeds (3)'; `seeds` as the comparison counts them (3, '3 vs 5')."""
    return f"too few seeds ({seeds})"


@dataclass(frozen=True)
class Metric:
    """One metric: its record key `name` and everything the suite needs to know about it.

    compute: Evaluation -> float (ablate.metrics.features.Evaluation: test features (N, D), labels (N,),
    predictions (N,), centers (C, D), and attributes holding shared results such as e.retrieval); None for a
    metric the training run measures itself (times, rates).
    higher_is_better: True, False, or None for a value that is reported but never ranked (raw distances
    shrink with the whole feature scale, so a smaller one is not a better one).
    scale_invariant: the value does not change when every feature (and center) is multiplied by one constant.
    summarized: mean and 95% CI over seeds in summary tables.
    headline: the findings compare it against the grid's reference setting (over seeds, ablate.analysis.stats); it needs
    a direction and a compute.
    primary: a headline metric of the primary family: the findings' opening sentence speaks of these only, and
    their p-values and intervals are adjusted over them; the other headline metrics are secondary (their own
    family, labelled so). One quantity measured several ways is one primary metric, not several.
    missing: what the findings say where its values are not finite (NaN, inf) on a side.
    change: how the findings say a change of it, one of CHANGES.
    open_set: the test samples it is measured on when classes are held out of training, one of OPEN_SET_SPLITS.
    geometry: the geometry of the features it measures, one of GEOMETRIES, or None where it measures no distance
    between features.
    value_range: (low, high), the values it can take (SHARE, NON_NEGATIVE, ...; UNBOUNDED when not declared): an
    interval over seeds that leaves it is said to come from too few seeds, never printed.
    """

    name: str
    label: str
    higher_is_better: bool | None
    scale_invariant: bool
    compute: Callable | None = None
    summarized: bool = True
    views: tuple = ()
    headline: bool = False
    change: str = DIFFERENCE
    open_set: str = HELD_OUT
    primary: bool = False
    missing: str = "not comparable"
    geometry: str | None = None
    value_range: tuple = UNBOUNDED

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"metric name {self.name!r} must be an identifier (it becomes a column name)")
        unknown = [v for v in self.views if v not in VIEWS]
        if unknown:
            raise ValueError(f"metric {self.name!r}: unknown views {unknown}; expected some of {list(VIEWS)}")
        if self.views and not self.summarized and set(self.views) - {TRAIN_SUMMARY}:
            raise ValueError(f"metric {self.name!r} is not summarized over seeds, so only {TRAIN_SUMMARY!r} can "
                             "show it")
        if self.change not in CHANGES:
            raise ValueError(f"metric {self.name!r}: unknown change {self.change!r}; expected one of {list(CHANGES)}")
        if self.open_set not in OPEN_SET_SPLITS:
            raise ValueError(f"metric {self.name!r}: unknown open_set {self.open_set!r}; "
                             f"expected one of {list(OPEN_SET_SPLITS)}")
        if self.headline and (self.higher_is_better is None or self.compute is None or not self.summarized):
            raise ValueError(f"metric {self.name!r} is a headline metric, so it needs a direction (higher_is_better "
                             "True or False), a compute and summarized=True")
        if self.geometry is not None and self.geometry not in GEOMETRIES:
            raise ValueError(f"metric {self.name!r}: unknown geometry {self.geometry!r}; expected one of "
                             f"{list(GEOMETRIES)} or None")
        if self.primary and not self.headline:
            raise ValueError(f"metric {self.name!r} is primary, so it must be a headline metric (headline=True)")
        if not (len(self.value_range) == 2 and self.value_range[0] < self.value_range[1]):
            raise ValueError(f"metric {self.name!r}: value_range must be (low, high) with low < high, got "
                             f"{self.value_range!r}")

    @property
    def ranked(self) -> bool:
        return self.higher_is_better is not None

    def holds(self, low: float, high: float) -> bool:
        """Whether the interval [low, high] of this metric's values lies within its range."""
        return self.value_range[0] <= low and high <= self.value_range[1]


def metric_from_entry_point(name: str, loaded: Any, source: str) -> Metric:
    """The Metric an "ablate.metrics" entry point named `name` loaded (from `source`), renamed to `name`."""
    if not isinstance(loaded, Metric):
        raise TypeError(f"expected an ablate.metrics.Metric, got {type(loaded).__name__}")
    return replace(loaded, name=name)


METRICS: Registry[Metric] = Registry("metric", entry_point_group="ablate.metrics",
                                     from_entry_point=metric_from_entry_point)


def register_metric(metric: Metric) -> Metric:
    """Add `metric` to the registry (in the order of registration); a name already taken is an error."""
    return METRICS.register(metric)


def get_metric(name: str) -> Metric:
    return METRICS.get(name)


def label(name: str) -> str:
    """The display label of a metric; any other column is named by its key with spaces."""
    return METRICS.get(name).label if name in METRICS else name.replace("_", " ")


def computed_metrics() -> list:
    """The metrics computed from the test split, in registry order: the keys evaluate() puts in a record."""
    return [m for m in METRICS if m.compute is not None]


def summarized_metrics() -> list:
    return [m for m in METRICS if m.summarized]


def headline_metrics() -> list:
    """The metrics the findings compare against the reference, in registry order: the primary ones first."""
    return [m for m in METRICS if m.headline and m.primary] + secondary_metrics()


def primary_metrics() -> list:
    """The primary family of the findings, in registry order."""
    return [m for m in METRICS if m.primary]


def secondary_metrics() -> list:
    """The headline metrics outside the primary family, in registry order."""
    return [m for m in METRICS if m.headline and not m.primary]


def shown_in(view: str) -> list:
    """The names of the metrics a view shows, in registry order."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {list(VIEWS)}")
    return [m.name for m in METRICS if view in m.views]


_FIGURES = (HEATMAP, AGAINST_LAMBDA, AGREEMENT)
for _metric in (
    Metric("test_accuracy", "test accuracy", True, True, lambda e: e.test_accuracy,
           views=(TRAIN_SUMMARY, GRID_SUMMARY, *_FIGURES), headline=True, change=POINTS, open_set=SEEN, primary=True,
           value_range=SHARE),
    Metric("nearest_center_accuracy", "nearest-center accuracy", True, True, lambda e: e.nearest_center_accuracy,
           views=(TRAIN_SUMMARY, GRID_SUMMARY), open_set=SEEN, geometry=CENTER_SPACE, value_range=SHARE),
    # Raw distances shrink with the whole feature scale: reported, never ranked.
    Metric("intra_class_distance", "intra-class distance", None, False, lambda e: e.intra_class_distance,
           views=(TRAIN_SUMMARY, GRID_SUMMARY, AGAINST_LAMBDA, AGREEMENT), geometry=EUCLIDEAN,
           value_range=NON_NEGATIVE),
    Metric("inter_class_distance", "inter-class distance", None, False,
           lambda e: e.inter_class_distances["inter_class_distance"],
           views=(TRAIN_SUMMARY, AGAINST_LAMBDA, AGREEMENT), geometry=EUCLIDEAN, value_range=NON_NEGATIVE),
    Metric("inter_class_distance_min", "min inter-class distance", None, False,
           lambda e: e.inter_class_distances["inter_class_distance_min"], geometry=EUCLIDEAN,
           value_range=NON_NEGATIVE),
    Metric("mean_feature_norm", "mean feature norm", None, False, lambda e: e.mean_feature_norm,
           views=(TRAIN_SUMMARY, AGAINST_LAMBDA), geometry=EUCLIDEAN, value_range=NON_NEGATIVE),
    # Compactness and separation at the features' own scale. Separation ratio, intra / mean norm and the trace ratio
    # move together (|r| >= 0.988 across the cells of the default grid): one quantity, so one primary metric (the
    # separation ratio, which does not move with the origin) and the other two reported, not compared.
    Metric("separation_ratio", "separation ratio", True, True, lambda e: e.separation_ratio,
           views=(TRAIN_SUMMARY, GRID_SUMMARY, *_FIGURES), headline=True, change=RATIO, primary=True,
           geometry=EUCLIDEAN, value_range=NON_NEGATIVE),
    Metric("relative_intra_class_distance", "intra / mean norm", False, True, lambda e: e.relative_intra_class_distance,
           views=(TRAIN_SUMMARY, GRID_SUMMARY, AGAINST_LAMBDA), geometry=EUCLIDEAN, value_range=NON_NEGATIVE),
    Metric("unit_intra_class_distance", "intra-class distance (unit features)", False, True,
           lambda e: e.unit_intra_class_distance, views=(GRID_SUMMARY,), geometry=COSINE, value_range=UNIT_DISTANCE),
    Metric("unit_inter_class_distance", "inter-class distance (unit features)", True, True,
           lambda e: e.unit_inter_class_distance, views=(GRID_SUMMARY,), geometry=COSINE, value_range=UNIT_DISTANCE),
    # Named fisher_ratio in records since before it was labelled for what it is: tr(S_B) / tr(S_W), the trace
    # ratio (Fisher's criterion is a ratio of projected variances, not of traces).
    Metric("fisher_ratio", "trace ratio tr(S_B)/tr(S_W)", True, True, lambda e: e.fisher_ratio,
           views=(TRAIN_SUMMARY, GRID_SUMMARY), geometry=EUCLIDEAN, value_range=NON_NEGATIVE),
    Metric("silhouette", "silhouette", True, True, lambda e: e.silhouette, views=(TRAIN_SUMMARY,),
           geometry=EUCLIDEAN, value_range=(-1.0, 1.0)),
    # Retrieval on both geometries. Cosine is the primary one (Musgrave et al. 2020 retrieve on L2-normalized
    # embeddings): Euclidean retrieval rewards what shrinks the raw distances (center loss) and penalizes the heads
    # that classify directions. map_at_r and precision_at_1 are the Euclidean ones in every record since before the
    # cosine ones existed.
    Metric("precision_at_1", "precision@1 (Euclidean)", True, True, lambda e: e.retrieval["precision_at_1"],
           geometry=EUCLIDEAN, value_range=SHARE),
    Metric("map_at_r", "MAP@R (Euclidean)", True, True, lambda e: e.retrieval["map_at_r"], views=(TRAIN_SUMMARY,),
           headline=True, change=POINTS, geometry=EUCLIDEAN, value_range=SHARE),
    Metric("cosine_precision_at_1", "precision@1 (cosine)", True, True, lambda e: e.cosine_retrieval["precision_at_1"],
           views=(TRAIN_SUMMARY,), geometry=COSINE, value_range=SHARE),
    Metric("cosine_map_at_r", "MAP@R (cosine)", True, True, lambda e: e.cosine_retrieval["map_at_r"],
           views=(TRAIN_SUMMARY, GRID_SUMMARY), headline=True, change=POINTS, primary=True, geometry=COSINE,
           value_range=SHARE),
    Metric("verification_auc", "verification AUC", True, True, lambda e: e.verification["verification_auc"],
           views=(TRAIN_SUMMARY,), headline=True, change=POINTS, geometry=COSINE, value_range=SHARE),
    # NaN where fewer than 100 / FAR different-class pairs resolve it (ablate.metrics.features.MIN_FALSE_ACCEPTS).
    Metric("tar_at_far_1e3", "TAR @ FAR 1e-3", True, True, lambda e: e.resolved_tar_at_far,
           headline=True, change=POINTS, missing="not resolvable at this size (see lowest resolvable FAR)",
           geometry=COSINE, value_range=SHARE),
    Metric("lowest_resolvable_far", "lowest resolvable FAR", None, True, lambda e: e.lowest_resolvable_far,
           views=(GRID_SUMMARY,), value_range=SHARE),
    Metric("center_to_mean_distance", "center-to-mean distance", None, False, lambda e: e.center_to_mean_distance,
           open_set=SEEN, geometry=CENTER_SPACE, value_range=NON_NEGATIVE),
    # Measured by the training run itself (compute None).
    Metric("train_samples_per_s", "train samples/s", True, True, value_range=NON_NEGATIVE),
    Metric("train_time_s", "train time (s)", False, True, value_range=NON_NEGATIVE),
    Metric("wall_time_s", "wall time (s)", None, True, value_range=NON_NEGATIVE),
):
    register_metric(_metric)
