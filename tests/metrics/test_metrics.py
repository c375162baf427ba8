"""Each metric against an independent plain-loop computation on tiny random data."""

import itertools
import math

import numpy as np
import pytest

from ablate.metrics import features as metrics
from ablate.train.evaluate import evaluate

# Loops in float64 against library code in float64; 1e-9 relative covers summation order only.
RTOL = 1e-9


def loop_class_means(x, y):
    means = {}
    for c in sorted(set(y)):
        rows = [x[i] for i in range(len(y)) if y[i] == c]
        means[c] = [sum(row[d] for row in rows) / len(rows) for d in range(len(rows[0]))]
    return means


def loop_intra(x, y, centers):
    means = loop_class_means(x, y)
    return sum(math.dist(x[i], means[y[i]]) for i in range(len(y))) / len(y)


def loop_inter(x, y, centers):
    means = list(loop_class_means(x, y).values())
    distances = [math.dist(a, b) for a, b in itertools.combinations(means, 2)]
    return {"inter_class_distance": sum(distances) / len(distances), "inter_class_distance_min": min(distances)}


def loop_nearest_center(x, y, centers):
    hits = 0
    for i in range(len(y)):
        distances = [math.dist(x[i], c) for c in centers]
        hits += distances.index(min(distances)) == y[i]
    return hits / len(y)


def loop_center_to_mean(x, y, centers):
    means = loop_class_means(x, y)
    return sum(math.dist(centers[c], m) for c, m in means.items()) / len(means)


def loop_silhouette(x, y, centers):
    scores = []
    for i in range(len(y)):
        by_class = {}
        for j in range(len(y)):
            if j != i:
                by_class.setdefault(y[j], []).append(math.dist(x[i], x[j]))
        if y[i] not in by_class:  # a singleton class scores 0
            scores.append(0.0)
            continue
        a = sum(by_class[y[i]]) / len(by_class[y[i]])
        b = min(sum(d) / len(d) for c, d in by_class.items() if c != y[i])
        scores.append((b - a) / max(a, b))
    return sum(scores) / len(scores)


def loop_retrieval(x, y, centers, geometry="euclidean"):
    """Both metrics over the queries with a same-class reference (a query without one can neither hit nor miss);
    neighbours by Euclidean distance, or by cosine similarity (the most similar first)."""
    def dissimilarity(a, b):
        return math.dist(a, b) if geometry == "euclidean" else -cosine(a, b)

    first_hits, average_precisions = 0, []
    for i in range(len(y)):
        others = sorted((dissimilarity(x[i], x[j]), j) for j in range(len(y)) if j != i)
        r = sum(1 for j in range(len(y)) if j != i and y[j] == y[i])
        if r == 0:
            continue
        first_hits += y[others[0][1]] == y[i]
        hits, total = 0, 0.0
        for k, (_, j) in enumerate(others[:r], start=1):
            if y[j] == y[i]:
                hits += 1
                total += hits / k
        average_precisions.append(total / r)
    return {"precision_at_1": first_hits / len(average_precisions),
            "map_at_r": sum(average_precisions) / len(average_precisions)}


def loop_cosine_retrieval(x, y, centers):
    return loop_retrieval(x, y, centers, geometry="cosine")


def cosine_retrieval(x, y):
    """What the registry's cosine retrieval metrics read: Evaluation.cosine_retrieval."""
    return metrics.Evaluation(x, y, y, np.zeros((1, x.shape[1]))).cosine_retrieval


def loop_fisher(x, y, centers):
    means = loop_class_means(x, y)
    overall = [sum(row[d] for row in x) / len(x) for d in range(len(x[0]))]
    within = sum(math.dist(x[i], means[y[i]]) ** 2 for i in range(len(y)))
    between = sum(math.dist(means[y[i]], overall) ** 2 for i in range(len(y)))
    return between / within


def cosine(a, b):
    return sum(p * q for p, q in zip(a, b)) / (math.hypot(*a) * math.hypot(*b))


def loop_verification(x, y, centers):
    same, different = [], []
    for i, j in itertools.combinations(range(len(y)), 2):
        (same if y[i] == y[j] else different).append(cosine(x[i], x[j]))
    # AUC as the Mann-Whitney probability that a same pair outscores a different pair (ties count 1/2)
    wins = sum((s > d) + 0.5 * (s == d) for s in same for d in different)
    # TAR at FAR <= 1e-3: the best acceptance over thresholds t that accept at most 0.1% of different pairs
    thresholds = sorted(set(same + different)) + [math.inf]
    tar = max(sum(s >= t for s in same) / len(same) for t in thresholds
              if sum(d >= t for d in different) <= 1e-3 * len(different))
    return {"verification_auc": wins / (len(same) * len(different)), "tar_at_far_1e3": tar}


CASES = {
    "intra_class_distance": (metrics.intra_class_distance, loop_intra, False),
    "inter_class_distances": (metrics.inter_class_distances, loop_inter, False),
    "nearest_center_accuracy": (metrics.nearest_center_accuracy, loop_nearest_center, True),
    "center_to_mean_distance": (metrics.center_to_mean_distance, loop_center_to_mean, True),
    "silhouette": (metrics.silhouette, loop_silhouette, False),
    "fisher_ratio": (metrics.fisher_ratio, loop_fisher, False),
    "retrieval_metrics": (metrics.retrieval_metrics, loop_retrieval, False),
    "cosine_retrieval": (cosine_retrieval, loop_cosine_retrieval, False),
    "verification_metrics": (metrics.verification_metrics, loop_verification, False),
}


def tiny_data(seed, n=47, dim=3, classes=4):
    """Overlapping Gaussian classes of unequal sizes (one class of two samples), continuous values: no ties."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([rng.integers(0, classes - 1, n - 2), [classes - 1, classes - 1]])
    x = rng.normal(size=(n, dim)) + 1.5 * rng.normal(size=(classes, dim))[y]
    centers = rng.normal(size=(classes, dim))
    return x, y, centers


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", CASES)
def test_metric_matches_a_plain_loop(name, seed):
    ours, reference, takes_centers = CASES[name]
    x, y, centers = tiny_data(seed)
    got = ours(x, y, centers) if takes_centers else ours(x, y)
    expected = reference(x.tolist(), y.tolist(), centers.tolist())
    if isinstance(expected, dict):
        assert got.keys() == expected.keys()
        for key in expected:
            assert got[key] == pytest.approx(expected[key], rel=RTOL), key
    else:
        assert got == pytest.approx(expected, rel=RTOL)


def test_the_cosine_and_euclidean_retrieval_differ_on_the_tiny_data():
    # guards the cosine case above against ranking exactly as the Euclidean one on these data
    x, y, _ = tiny_data(0)
    assert cosine_retrieval(x, y) != metrics.retrieval_metrics(x, y)


@pytest.mark.parametrize("geometry", ["euclidean", "cosine"])
@pytest.mark.parametrize("seed", [0, 1])
def test_retrieval_agrees_with_pytorch_metric_learning(geometry, seed):
    # pml's AccuracyCalculator (Musgrave et al.'s own code for MAP@R): each sample a query against all the others,
    # k = the largest class's size; its k-NN by torch (CustomKNN) on the same distance, in float64.
    import torch
    from pytorch_metric_learning.distances import CosineSimilarity, LpDistance
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    x, y, _ = tiny_data(seed)
    distance = CosineSimilarity() if geometry == "cosine" else LpDistance(normalize_embeddings=False)
    calculator = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count",
                                    knn_func=CustomKNN(distance))
    theirs = calculator.get_accuracy(torch.tensor(x), torch.tensor(y))
    ours = cosine_retrieval(x, y) if geometry == "cosine" else metrics.retrieval_metrics(x, y)
    assert ours["precision_at_1"] == pytest.approx(theirs["precision_at_1"], rel=RTOL)
    assert ours["map_at_r"] == pytest.approx(theirs["mean_average_precision_at_r"], rel=RTOL)


def test_tar_at_far_is_not_always_zero_or_one_on_the_tiny_data():
    # guards the TAR comparison above against being trivially 0 == 0 or 1 == 1 on every seed
    tars = {metrics.verification_metrics(*tiny_data(seed)[:2])["tar_at_far_1e3"] for seed in range(3)}
    assert any(0 < t < 1 for t in tars), tars


def test_well_separated_classes_score_perfectly():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    directions = np.eye(3) * 10.0
    x = directions[y] + 0.01 * rng.normal(size=(30, 3))
    result = evaluate(x, y, y, directions)
    for key in ("test_accuracy", "nearest_center_accuracy", "precision_at_1", "map_at_r", "cosine_precision_at_1",
                "cosine_map_at_r", "verification_auc"):
        assert result[key] == 1.0, key
    # 300 different-class pairs resolve a FAR of 1/3 at best, not 1e-3: no TAR is reported
    assert np.isnan(result["tar_at_far_1e3"]) and result["lowest_resolvable_far"] == pytest.approx(100 / 300)
    assert result["silhouette"] > 0.99
    assert result["separation_ratio"] == pytest.approx(result["inter_class_distance"] / result["intra_class_distance"])


def test_verification_samples_pairs_above_the_limit():
    first, second = metrics.verification_pairs(2000, max_pairs=10_000)
    assert 9_900 < len(first) <= 10_000  # ~1/2000 of draws are i == j and dropped
    assert np.all(first != second)
    again = metrics.verification_pairs(2000, max_pairs=10_000)
    np.testing.assert_array_equal(first, again[0])  # fixed seed: the same pairs for every cell
    all_first, all_second = metrics.verification_pairs(50, max_pairs=10_000)
    assert len(all_first) == 50 * 49 // 2 and np.all(all_first < all_second)


def test_evaluate_gives_every_computed_metric_of_the_registry_in_its_order():
    x, y, centers = tiny_data(0)
    assert list(evaluate(x, y, y, centers)) == [
        "test_accuracy", "nearest_center_accuracy", "intra_class_distance", "inter_class_distance",
        "inter_class_distance_min", "mean_feature_norm", "separation_ratio", "relative_intra_class_distance",
        "unit_intra_class_distance", "unit_inter_class_distance", "fisher_ratio", "silhouette", "precision_at_1",
        "map_at_r", "cosine_precision_at_1", "cosine_map_at_r", "verification_auc", "tar_at_far_1e3",
        "lowest_resolvable_far", "center_to_mean_distance",
    ]


# --- the consistency fixes ----------------------------------------------------------------------------------

def test_tar_at_far_is_reported_only_where_the_pairs_resolve_it():
    rng = np.random.default_rng(0)
    for n, resolved in ((300, False), (600, True)):  # 300 samples, 10 classes: ~40,000 different-class pairs
        y = np.arange(n) % 10
        x = rng.normal(size=(n, 4)) + 3 * np.eye(10, 4)[y]
        evaluation = metrics.Evaluation(x, y, y, np.eye(10, 4))
        negatives = int(np.sum(y[:, None] != y[None, :]) // 2)
        assert evaluation.lowest_resolvable_far == pytest.approx(100 / negatives)
        assert np.isfinite(evaluation.resolved_tar_at_far) == resolved
        if resolved:
            assert evaluation.resolved_tar_at_far == evaluation.verification["tar_at_far_1e3"]


def test_precision_at_1_and_map_at_r_leave_out_the_same_queries():
    # class 2 has one sample: no same-class reference, so it can neither hit nor miss in either metric
    x = np.array([[0.0], [0.1], [5.0], [5.1], [9.0]])
    y = np.array([0, 0, 1, 1, 2])
    assert metrics.retrieval_metrics(x, y) == {"precision_at_1": 1.0, "map_at_r": 1.0}


def test_a_zero_feature_matches_nothing_instead_of_scoring_one_half():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    similarity = metrics.cosine_similarity_of_pairs(x, np.array([0, 0, 1]), np.array([1, 2, 2]))
    np.testing.assert_array_equal(similarity, [metrics.NO_DIRECTION_SIMILARITY, metrics.NO_DIRECTION_SIMILARITY, 0.0])
    # a zero feature's same-class pair is scored below every different-class pair: AUC < 1
    y = np.array([0, 0, 1, 1])
    result = metrics.verification_metrics(np.array([[0.0, 0.0], [1.0, 0.1], [0.1, 1.0], [0.2, 1.0]]), y)
    assert result["verification_auc"] < 1.0


def test_classes_collapsed_to_points_give_inf_and_nan_not_a_huge_ratio():
    y = np.repeat([0, 1, 2], 4)
    points = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]])
    x = points[y] + 1e-16 * np.arange(12)[:, None]  # rounding noise, not a spread
    result = evaluate(x, y, y, points)
    assert result["separation_ratio"] == np.inf and result["fisher_ratio"] == np.inf
    one_point = evaluate(np.ones((12, 2)), y, y, points)
    assert np.isnan(one_point["separation_ratio"]) and np.isnan(one_point["fisher_ratio"])



def test_the_center_metrics_compare_the_centers_with_the_features_in_their_own_space():
    # Centers learned on L2-normalized features (a cell's center_space normalized) are compared with those, not with
    # the raw features the other metrics read.
    x, y, _ = tiny_data(0)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    unit_centers = np.stack([unit[y == c].mean(axis=0) for c in range(4)])
    in_space = evaluate(10 * x, y, y, unit_centers, center_features=unit)
    assert in_space["nearest_center_accuracy"] == pytest.approx(loop_nearest_center(unit, y, unit_centers), rel=RTOL)
    assert in_space["center_to_mean_distance"] == pytest.approx(0.0, abs=1e-12)
    raw = evaluate(10 * x, y, y, unit_centers)
    assert raw["nearest_center_accuracy"] == pytest.approx(loop_nearest_center(10 * x, y, unit_centers), rel=RTOL)
    assert raw["nearest_center_accuracy"] != in_space["nearest_center_accuracy"]
    assert in_space["map_at_r"] == raw["map_at_r"]  # the other metrics read the features themselves
