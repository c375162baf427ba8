"""What center loss is meant to change, measured on test features (N, D) with labels (N,).

Compactness and separation of the classes (raw distances, which shrink with the whole feature scale, and
scale-invariant measures), the learned centers, retrieval by nearest neighbours and face-style verification on
same/different pairs. Every function takes numpy arrays and returns plain floats; the work is done by
scikit-learn and scipy.
"""

from functools import cached_property

import numpy as np
from scipy.spatial.distance import pdist
from sklearn.metrics import accuracy_score, auc, pairwise_distances_argmin, roc_curve, silhouette_score
from sklearn.metrics.pairwise import paired_euclidean_distances
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

from ablate.metrics.registry import HELD_OUT, SEEN

# Verification scores every pair when there are at most this many, else this many pairs drawn with
# a fixed seed (so every cell on one dataset is scored on the same pairs). 500,000 pairs hold about
# 450,000 different-class pairs with 10 classes, so FAR = 1e-3 rests on ~450 false accepts.
MAX_VERIFICATION_PAIRS = 500_000
PAIR_SEED = 0
# Retrieval looks at every query's k = (largest class - 1) neighbours: (N, k) at once would be 8 N k bytes (7 TiB for a
# million samples of one class), so queries go in chunks of at most this many bytes of per-neighbour arrays
# (index, relevance, hit, precision: about 26 bytes an entry).
RETRIEVAL_CHUNK_BYTES = 256 * 2**20
RETRIEVAL_BYTES_PER_ENTRY = 26
# silhouette is O(N^2); above this many test samples it is estimated on a fixed-seed sample of them.
MAX_SILHOUETTE_SAMPLES = 5_000
TARGET_FAR = 1e-3
# TAR at FAR f is read where f * (different-class pairs) false accepts are allowed: with fewer than this many, the
# threshold rests on a handful of pairs (noise of tens of points), so the value is not reported.
MIN_FALSE_ACCEPTS = 100
# A class spread below this share of the mean feature norm is rounding noise of float32 features (about 8 ulps),
# not a spread: the classes have collapsed to points, and a ratio over it is inf (or NaN), not 1e15.
COLLAPSE_RTOL = 1e-6
# The cosine similarity given to a pair with a zero feature: a feature without a direction matches nothing.
NO_DIRECTION_SIMILARITY = -1.0


def class_means(features, labels):
    """The classes (K,), the mean feature of each (K, D), and for every sample the row of its class in those
    means (N,)."""
    classes, row = np.unique(labels, return_inverse=True)
    sums = np.zeros((len(classes), features.shape[1]))
    np.add.at(sums, row, features)
    return classes, sums / np.bincount(row)[:, None], row


def intra_class_distance(features, labels) -> float:
    """Mean Euclidean distance of each feature to its class mean."""
    _, means, row = class_means(features, labels)
    return float(paired_euclidean_distances(features, means[row]).mean())


def inter_class_distances(features, labels) -> dict:
    """Mean and min Euclidean distance over all pairs of class means (NaN with fewer than 2 classes)."""
    _, means, _ = class_means(features, labels)
    if len(means) < 2:
        return {"inter_class_distance": float("nan"), "inter_class_distance_min": float("nan")}
    distances = pdist(means)  # (K(K-1)/2,)
    return {"inter_class_distance": float(distances.mean()), "inter_class_distance_min": float(distances.min())}


def mean_feature_norm(features) -> float:
    """The mean Euclidean norm of the features: the scale the raw distances are measured in."""
    return float(np.linalg.norm(features, axis=1).mean())


def spread_ratio(spread_between: float, spread_within: float, scale: float) -> float:
    """between / within; inf when the classes have collapsed to points (within below COLLAPSE_RTOL * scale) but
    lie apart, NaN when everything collapsed to one point."""
    tolerance = COLLAPSE_RTOL * scale
    if spread_within > tolerance:
        return spread_between / spread_within
    return float("inf") if spread_between > tolerance else float("nan")


def fisher_ratio(features, labels) -> float:
    """The trace ratio tr(S_B) / tr(S_W) (record key fisher_ratio, from when it was called a Fisher ratio): the
    mean squared distance of the class means to the overall mean (weighted by class size) over that of the
    features to their class means. Scale-invariant."""
    _, means, row = class_means(features, labels)
    overall = features.mean(axis=0)
    within = ((features - means[row]) ** 2).sum(axis=1).mean()
    between = ((means[row] - overall) ** 2).sum(axis=1).mean()
    scale = mean_feature_norm(features) ** 2
    return spread_ratio(between, within, scale)


def nearest_center_accuracy(features, labels, centers) -> float:
    """Accuracy of predicting each feature's class as the nearest of the centers (C, D)."""
    return float(accuracy_score(labels, pairwise_distances_argmin(features, centers)))


def center_to_mean_distance(features, labels, centers) -> float:
    """Mean over the classes present of the Euclidean distance from the center (C, D) to the class mean."""
    classes, means, _ = class_means(features, labels)
    return float(paired_euclidean_distances(centers[classes], means).mean())


def silhouette(features, labels) -> float:
    """scikit-learn's silhouette (Euclidean), on a fixed-seed sample above MAX_SILHOUETTE_SAMPLES."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    sample_size = MAX_SILHOUETTE_SAMPLES if len(labels) > MAX_SILHOUETTE_SAMPLES else None
    return float(silhouette_score(features, labels, sample_size=sample_size, random_state=PAIR_SEED))


def retrieval_per_query(features, labels) -> dict:
    """Each sample as a query against all others: first_hit (N,) whether its nearest neighbour (Euclidean) is of
    its class, average_precision (N,) its AP@R (Musgrave et al. 2020), and has_reference (N,) whether any other
    sample is of its class (R >= 1). A query without one can neither hit nor miss: both metrics leave it out.
    On L2-normalized features (Evaluation.unit_features) the Euclidean order is the cosine order: ||u - v||^2 =
    2 - 2 cos(u, v) (a zero feature stays at the origin, as far from every unit feature as an orthogonal one).

    AP@R: for a query with R other samples of its class, (1/R) sum_{k<=R} P(k) [k-th neighbour relevant].
    """
    _, slot = np.unique(labels, return_inverse=True)
    r = np.bincount(slot)[slot] - 1  # (N,) relevant samples per query
    k = int(r.max())
    if k == 0:
        nothing = np.zeros(len(labels))
        return {"first_hit": nothing, "average_precision": nothing, "has_reference": r > 0}
    index = NearestNeighbors(n_neighbors=k).fit(features)
    first_hit, average_precision = np.zeros(len(labels)), np.zeros(len(labels))
    rows = max(1, RETRIEVAL_CHUNK_BYTES // (RETRIEVAL_BYTES_PER_ENTRY * (k + 1)))  # queries per chunk
    for start in range(0, len(labels), rows):
        queries = np.arange(start, min(start + rows, len(labels)))  # (q,)
        neighbours = _neighbours_but_self(index, features, queries, k)  # (q, k)
        relevant = labels[neighbours] == labels[queries, None]  # (q, k)
        hits = relevant & (np.arange(1, k + 1)[None, :] <= r[queries, None])
        precision_at_k = np.cumsum(hits, axis=1) / np.arange(1, k + 1)  # (q, k)
        average_precision[queries] = (precision_at_k * hits).sum(axis=1) / np.maximum(r[queries], 1)
        first_hit[queries] = relevant[:, 0]
    return {"first_hit": first_hit, "average_precision": average_precision, "has_reference": r > 0}


def _neighbours_but_self(index, features, queries, k: int) -> np.ndarray:
    """The k nearest neighbours (q, k) of the samples `queries` among all others, as kneighbors() without X finds
    them (scikit-learn asks for k + 1 and removes the query itself, else the first neighbour: a duplicate)."""
    neighbours = index.kneighbors(features[queries], n_neighbors=k + 1, return_distance=False)  # (q, k + 1)
    keep = neighbours != queries[:, None]
    keep[keep.all(axis=1), 0] = False
    return neighbours[keep].reshape(len(queries), k)


def retrieval_metrics(features, labels, per_query=None) -> dict:
    """precision@1 and MAP@R, each the mean over the queries with a same-class reference (NaN if none);
    per_query: retrieval_per_query's result, when already computed."""
    per_query = per_query or retrieval_per_query(features, labels)
    queries = per_query["has_reference"]
    if not queries.any():
        return {"precision_at_1": float("nan"), "map_at_r": float("nan")}
    return {"precision_at_1": float(per_query["first_hit"][queries].mean()),
            "map_at_r": float(per_query["average_precision"][queries].mean())}


def verification_pairs(n: int, max_pairs: int = MAX_VERIFICATION_PAIRS, seed: int = PAIR_SEED):
    """Index arrays (P,), (P,) of pairs of different samples: all i < j if they number at most max_pairs, else a
    seeded sample drawn with replacement (so a pair may repeat, in either order)."""
    if n * (n - 1) // 2 <= max_pairs:
        return np.triu_indices(n, k=1)
    pairs = np.random.default_rng(seed).integers(0, n, size=(max_pairs, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return pairs[:, 0], pairs[:, 1]


def cosine_similarity_of_pairs(features, first, second) -> np.ndarray:
    """Cosine similarity (P,) of the pairs (first[p], second[p]); NO_DIRECTION_SIMILARITY where either is zero."""
    unit = normalize(features)  # zero rows stay zero
    similarity = (unit[first] * unit[second]).sum(axis=1)
    has_direction = np.linalg.norm(features, axis=1) > 0
    return np.where(has_direction[first] & has_direction[second], similarity, NO_DIRECTION_SIMILARITY)


def verification_scores(features, labels, max_pairs: int = MAX_VERIFICATION_PAIRS) -> dict:
    """The scored pairs (verification_pairs): same (P,) whether they share a class, similarity (P,) their cosine."""
    first, second = verification_pairs(len(labels), max_pairs)
    return {"same": labels[first] == labels[second], "similarity": cosine_similarity_of_pairs(features, first, second)}


def verification_metrics(features, labels, max_pairs: int = MAX_VERIFICATION_PAIRS, scores=None) -> dict:
    """ROC AUC and TAR at FAR = 1e-3 of cosine similarity for telling same-class from different-class pairs (NaN
    without pairs of both kinds); scores: verification_scores' result, when already computed."""
    scores = scores or verification_scores(features, labels, max_pairs)
    same = scores["same"]
    if same.all() or not same.any():
        return {"verification_auc": float("nan"), "tar_at_far_1e3": float("nan")}
    far, tar, _ = roc_curve(same, scores["similarity"], drop_intermediate=False)
    return {"verification_auc": float(auc(far, tar)), "tar_at_far_1e3": float(tar[far <= TARGET_FAR].max())}


def _computed_once(function, with_centers: bool = False) -> cached_property:
    """An Evaluation attribute: function(features, labels) or, with_centers, function(center_features, labels,
    centers), computed on first use and kept, so that the metrics that read one result (mean and min inter-class
    distance, say) share its work."""
    def value(evaluation):
        if with_centers:
            return function(evaluation.center_features, evaluation.labels, evaluation.centers)
        return function(evaluation.features, evaluation.labels)
    return cached_property(value)


class Evaluation:
    """What every metric is computed from: test features (N, D) float64, labels (N,), predicted classes (N,) and
    learned centers (C, D) float64, as numpy arrays; and the results of this module's functions on them.
    center_features (N, D): the features in the space the centers were learned in (a cell's center space: the
    features themselves, or L2-normalized); the metrics of the centers compare those with them."""

    def __init__(self, features, labels, predictions, centers, center_features=None):
        self.features = np.asarray(features, dtype=np.float64)  # (N, D)
        self.labels = np.asarray(labels)  # (N,)
        self.predictions = np.asarray(predictions)  # (N,)
        self.centers = np.asarray(centers, dtype=np.float64)  # (C, D)
        self.center_features = (self.features if center_features is None
                                else np.asarray(center_features, dtype=np.float64))  # (N, D)

    nearest_center_accuracy = _computed_once(nearest_center_accuracy, with_centers=True)
    center_to_mean_distance = _computed_once(center_to_mean_distance, with_centers=True)
    silhouette = _computed_once(silhouette)
    intra_class_distance = _computed_once(intra_class_distance)
    inter_class_distances = _computed_once(inter_class_distances)
    fisher_ratio = _computed_once(fisher_ratio)
    retrieval_per_query = _computed_once(retrieval_per_query)
    verification_scores = _computed_once(verification_scores)

    @cached_property
    def unit_features(self) -> np.ndarray:
        """The features scaled to unit length (N, D); a zero feature stays zero."""
        return normalize(self.features)

    @cached_property
    def mean_feature_norm(self) -> float:
        return mean_feature_norm(self.features)

    @cached_property
    def unit_intra_class_distance(self) -> float:
        return intra_class_distance(self.unit_features, self.labels)

    @cached_property
    def unit_inter_class_distance(self) -> float:
        return inter_class_distances(self.unit_features, self.labels)["inter_class_distance"]

    @cached_property
    def retrieval(self) -> dict:
        """precision@1 and MAP@R on the raw features (Euclidean)."""
        return retrieval_metrics(self.features, self.labels, per_query=self.retrieval_per_query)

    @cached_property
    def cosine_retrieval(self) -> dict:
        """precision@1 and MAP@R on the L2-normalized features (cosine similarity)."""
        return retrieval_metrics(self.unit_features, self.labels)

    @cached_property
    def verification(self) -> dict:
        return verification_metrics(self.features, self.labels, scores=self.verification_scores)

    @cached_property
    def lowest_resolvable_far(self) -> float:
        """MIN_FALSE_ACCEPTS over the number of different-class pairs scored: the lowest FAR a TAR can be read at."""
        negatives = int(np.count_nonzero(~self.verification_scores["same"]))
        return MIN_FALSE_ACCEPTS / negatives if negatives else float("nan")

    @cached_property
    def resolved_tar_at_far(self) -> float:
        """TAR at TARGET_FAR where the pairs resolve it (TARGET_FAR >= lowest_resolvable_far), else NaN."""
        resolvable = TARGET_FAR >= self.lowest_resolvable_far
        return self.verification["tar_at_far_1e3"] if resolvable else float("nan")

    @cached_property
    def test_accuracy(self) -> float:
        return float(accuracy_score(self.labels, self.predictions))

    @cached_property
    def separation_ratio(self) -> float:
        """Mean inter-class distance over mean intra-class distance: inf for classes collapsed to separate points,
        NaN when all collapsed to one (see spread_ratio)."""
        return spread_ratio(self.inter_class_distances["inter_class_distance"], self.intra_class_distance,
                            self.mean_feature_norm)

    @cached_property
    def relative_intra_class_distance(self) -> float:
        """Intra-class distance over the mean feature norm: compactness at the features' own scale."""
        norm = self.mean_feature_norm
        return self.intra_class_distance / norm if norm > 0 else float("nan")


def split_masks(labels, num_centers: int) -> dict:
    """{SEEN: (N,) bool, HELD_OUT: (N,) bool}: the test samples of the trained classes (labels < num_centers) and of
    the classes held out of training (an open-set cell); in a closed-set cell both are every sample."""
    trained = np.asarray(labels) < num_centers
    return {SEEN: trained, HELD_OUT: trained if trained.all() else ~trained}


def split_evaluations(features, labels, predictions, centers, center_features=None) -> dict:
    """{SEEN: Evaluation, HELD_OUT: Evaluation} of test features (N, D), labels (N,), predictions (N,), centers
    (C, D) and the features in the centers' space (N, D; default the features), over split_masks' samples; one
    Evaluation for both in a closed-set cell."""
    center_features = features if center_features is None else center_features
    masks = split_masks(labels, len(centers))
    if masks[SEEN] is masks[HELD_OUT]:
        evaluation = Evaluation(features, labels, predictions, centers, center_features)
        return {SEEN: evaluation, HELD_OUT: evaluation}
    features, labels, predictions, center_features = map(np.asarray, (features, labels, predictions, center_features))
    return {split: Evaluation(features[mask], labels[mask], predictions[mask], centers, center_features[mask])
            for split, mask in masks.items()}
