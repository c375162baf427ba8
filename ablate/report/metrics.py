"""The grid metrics the report shows: display names and which direction is better."""

# name -> (label, +1 if higher is better, -1 if lower is better, 0 if neither)
METRICS = {
    "test_accuracy": ("test accuracy", +1),
    "nearest_center_accuracy": ("nearest-center accuracy", +1),
    "intra_class_distance": ("intra-class distance", -1),
    "inter_class_distance": ("inter-class distance", +1),
    "inter_class_distance_min": ("min inter-class distance", +1),
    "separation_ratio": ("separation ratio", +1),
    "silhouette": ("silhouette", +1),
    "precision_at_1": ("precision@1", +1),
    "map_at_r": ("MAP@R", +1),
    "verification_auc": ("verification AUC", +1),
    "tar_at_far_1e3": ("TAR @ FAR 1e-3", +1),
    "center_to_mean_distance": ("center-to-mean distance", -1),
    "train_samples_per_s": ("train samples/s", +1),
    "train_time_s": ("train time (s)", -1),
}

CURVE_METRICS = {"softmax_loss": "softmax loss", "center_loss": "center loss", "train_accuracy": "train accuracy"}


def label(metric: str) -> str:
    return METRICS.get(metric, (metric.replace("_", " "), 0))[0]
