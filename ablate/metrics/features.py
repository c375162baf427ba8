"""What center loss is meant to change, measured on test features (N, D) with labels (N,).

Compactness and separation of the classes, the learned centers, retrieval by nearest neighbours
and face-style verification on same/different pairs. Every function takes numpy arrays and
returns plain floats; the work is done by scikit-learn and scipy.
"""

from functools import cached_property

import numpy as np
from scipy.spatial.distance import pdist
from sklearn.metrics import accuracy_score, auc, pairwise_distances_argmin, roc_curve, silhouette_score
from sklearn.metrics.pairwise import paired_cosine_distances, paired_euclidean_distances
from sklearn.neighbors import NearestCentroid, NearestNeighbors

# Verification scores every pair when there are at most this many, else this many pairs drawn with
# a fixed seed (so every cell on one dataset is scored on the same pairs). 500,000 pairs hold about
# 450,000 different-class pairs with 10 classes, so FAR = 1e-3 rests on ~450 false accepts.
MAX_VERIFICATION_PAIRS = 500_000
PAIR_SEED = 0
# silhouette is O(N^2); above this many test samples it is estimated on a fixed-seed sample of them.
MAX_SILHOUETTE_SAMPLES = 5_000
TARGET_FAR = 1e-3


def class_means(features, labels):
    """The classes present (K,) and the mean feature of each (K, D), by scikit-learn's NearestCentroid."""
    centroid = NearestCentroid().fit(features, labels)
    return centroid.classes_, centroid.centroids_


def intra_class_distance(features, labels) -> float:
    """Mean Euclidean distance of each feature to its class mean."""
    classes, means = class_means(features, labels)
    own_mean = means[np.searchsorted(classes, labels)]  # (N, D)
    return float(paired_euclidean_distances(features, own_mean).mean())


def inter_class_distances(features, labels) -> dict:
    """Mean and min Euclidean distance over all pairs of class means (NaN with fewer than 2 classes)."""
    _, means = class_means(features, labels)
    if len(means) < 2:
        return {"inter_class_distance": float("nan"), "inter_class_distance_min": float("nan")}
    distances = pdist(means)  # (K(K-1)/2,)
    return {"inter_class_distance": float(distances.mean()), "inter_class_distance_min": float(distances.min())}


def nearest_center_accuracy(features, labels, centers) -> float:
    """Accuracy of predicting each feature's class as the nearest of the centers (C, D)."""
    return float(accuracy_score(labels, pairwise_distances_argmin(features, centers)))


def center_to_mean_distance(features, labels, centers) -> float:
    """Mean over the classes present of the Euclidean distance from the center (C, D) to the class mean."""
    classes, means = class_means(features, labels)
    return float(paired_euclidean_distances(centers[classes], means).mean())


def silhouette(features, labels) -> float:
    """scikit-learn's silhouette (Euclidean), on a fixed-seed sample above MAX_SILHOUETTE_SAMPLES."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    sample_size = MAX_SILHOUETTE_SAMPLES if len(labels) > MAX_SILHOUETTE_SAMPLES else None
    return float(silhouette_score(features, labels, sample_size=sample_size, random_state=PAIR_SEED))


def retrieval_metrics(features, labels) -> dict:
    """precision@1 and MAP@R (Musgrave et al. 2020) with each sample as a query against all others.

    MAP@R: for a query with R other samples of its class, AP@R = (1/R) sum_{k<=R} P(k) [k-th neighbour
    relevant], over its R nearest neighbours (Euclidean); averaged over queries with R >= 1.
    """
    counts = np.bincount(labels)
    r = counts[labels] - 1  # (N,) relevant samples per query
    k = int(r.max())
    if k == 0:
        return {"precision_at_1": float("nan"), "map_at_r": float("nan")}
    # kneighbors() without X leaves each sample out of its own neighbour list.
    neighbours = NearestNeighbors(n_neighbors=k).fit(features).kneighbors(return_distance=False)  # (N, k)
    relevant = labels[neighbours] == labels[:, None]  # (N, k)
    within_r = np.arange(1, k + 1)[None, :] <= r[:, None]  # (N, k)
    hits = relevant & within_r
    precision_at_k = np.cumsum(hits, axis=1) / np.arange(1, k + 1)  # (N, k)
    queries = r > 0
    average_precision = (precision_at_k * hits).sum(axis=1)[queries] / r[queries]
    return {"precision_at_1": float(relevant[:, 0].mean()), "map_at_r": float(average_precision.mean())}


def verification_pairs(n: int, max_pairs: int = MAX_VERIFICATION_PAIRS, seed: int = PAIR_SEED):
    """Index arrays (P,), (P,) of pairs of different samples: all i < j if they number at most max_pairs, else a
    seeded sample drawn with replacement (so a pair may repeat, in either order)."""
    if n * (n - 1) // 2 <= max_pairs:
        return np.triu_indices(n, k=1)
    pairs = np.random.default_rng(seed).integers(0, n, size=(max_pairs, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return pairs[:, 0], pairs[:, 1]


def verification_metrics(features, labels, max_pairs: int = MAX_VERIFICATION_PAIRS) -> dict:
    """ROC AUC and TAR at FAR = 1e-3 of cosine similarity for telling same-class from different-class pairs."""
    first, second = verification_pairs(len(labels), max_pairs)
    same = labels[first] == labels[second]  # (P,)
    if same.all() or not same.any():
        return {"verification_auc": float("nan"), "tar_at_far_1e3": float("nan")}
    similarity = 1.0 - paired_cosine_distances(features[first], features[second])  # (P,)
    far, tar, _ = roc_curve(same, similarity, drop_intermediate=False)
    return {"verification_auc": float(auc(far, tar)),
            "tar_at_far_1e3": float(tar[far <= TARGET_FAR].max())}


def _computed_once(function, with_centers: bool = False) -> cached_property:
    """An Evaluation attribute: function(features, labels[, centers]), computed on first use and kept, so that the
    metrics that read one result (mean and min inter-class distance, say) share its work."""
    def value(evaluation):
        extra = (evaluation.centers,) if with_centers else ()
        return function(evaluation.features, evaluation.labels, *extra)
    return cached_property(value)


class Evaluation:
    """What every metric is computed from: test features (N, D) float64, labels (N,), predicted classes (N,) and
    learned centers (C, D) float64, as numpy arrays; and the results of this module's functions on them."""

    def __init__(self, features, labels, predictions, centers):
        self.features = np.asarray(features, dtype=np.float64)  # (N, D)
        self.labels = np.asarray(labels)  # (N,)
        self.predictions = np.asarray(predictions)  # (N,)
        self.centers = np.asarray(centers, dtype=np.float64)  # (C, D)

    nearest_center_accuracy = _computed_once(nearest_center_accuracy, with_centers=True)
    center_to_mean_distance = _computed_once(center_to_mean_distance, with_centers=True)
    silhouette = _computed_once(silhouette)
    intra_class_distance = _computed_once(intra_class_distance)
    inter_class_distances = _computed_once(inter_class_distances)
    retrieval = _computed_once(retrieval_metrics)
    verification = _computed_once(verification_metrics)

    @cached_property
    def test_accuracy(self) -> float:
        return float(accuracy_score(self.labels, self.predictions))

    @cached_property
    def separation_ratio(self) -> float:
        """Mean inter-class distance over mean intra-class distance (NaN when the classes have no spread)."""
        intra = self.intra_class_distance
        return self.inter_class_distances["inter_class_distance"] / intra if intra > 0 else float("nan")
