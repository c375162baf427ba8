"""Small generated run folders in the layouts of `ablate grid` and `ablate bench`, for the report tests.

The numbers are made up but shaped like real ones (accuracy and separation rise with lambda, classes
shrink around their centers), so that every figure has something to draw.
"""

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ablate.metrics import computed_metrics
from ablate.runs.cells import CellStore
from ablate.runs.folder import claim, write_tables
from ablate.runs.schema import cell_id
from ablate.runs.tables import grid_tables
from ablate.train import CellConfig
from ablate.train.config import config_columns

PROVENANCE = {"git_commit": "0" * 40, "git_dirty": False, "python": "3.12.0", "torch": "2.13.0", "host": "test-host",
              "cpu": "test cpu", "cpu_count": 2, "command": "ablate grid", "started_at": "2025-01-01T00:00:00+00:00",
              "finished_at": "2025-01-01T00:01:00+00:00"}


def _metrics(lam: float, alpha: float, rng) -> dict:
    """A run_cell record's metrics: accuracy and separation rise with lambda, intra-class distance falls."""
    spread = 1.0 / (1.0 + 30 * lam) + 0.02 * rng.random()
    accuracy = min(0.99, 0.85 + 0.1 * lam / (lam + 0.01) + 0.01 * alpha + 0.01 * rng.standard_normal())
    inter = 3.0 + 0.1 * rng.standard_normal()
    return {"test_accuracy": accuracy, "nearest_center_accuracy": accuracy - 0.01, "intra_class_distance": spread,
            "inter_class_distance": inter, "inter_class_distance_min": inter / 2, "separation_ratio": inter / spread,
            "silhouette": 0.5 - spread / 4, "precision_at_1": accuracy, "map_at_r": accuracy - 0.1,
            "cosine_precision_at_1": accuracy, "cosine_map_at_r": accuracy - 0.05,
            "unit_intra_class_distance": spread / (1 + spread), "unit_inter_class_distance": 1.2,
            "verification_auc": accuracy + 0.005, "tar_at_far_1e3": accuracy - 0.2, "center_to_mean_distance": 0.1,
            "train_samples_per_s": 5000 + 100 * rng.standard_normal(), "train_time_s": 0.5, "wall_time_s": 0.7,
            "status": "ok", "diverged_epoch": None, "resolved_device": "cpu"}


METRIC_NAMES = tuple(k for k, v in _metrics(0.0, 0.5, np.random.default_rng(0)).items() if isinstance(v, float))
COMPUTED = {m.name for m in computed_metrics()}  # a diverged cell has none of them; it has its times


def _curves(lam: float, epochs: int, rng) -> dict:
    noise = lambda: 1 + 0.05 * rng.standard_normal()  # noqa: E731
    return {"curve_softmax_loss": [2.0 / e * noise() for e in range(1, epochs + 1)],
            "curve_center_loss": [(1 + 10 * lam) / e ** 2 * noise() for e in range(1, epochs + 1)],
            "curve_train_accuracy": [(1 - 0.5 / e) * noise() for e in range(1, epochs + 1)]}


TEST_PER_CLASS = 40  # test samples per class in a cell's .npz


def _features_npz(num_classes: int, feat_dim: int, lam: float, rng, per_class: int = TEST_PER_CLASS) -> bytes:
    """An .npz of test features (N, D) around centers (C, D), their spread shrinking as lambda grows."""
    centers = rng.standard_normal((num_classes, feat_dim)).astype(np.float32) * 3
    labels = np.repeat(np.arange(num_classes), per_class).astype(np.int64)
    features = centers[labels] + rng.standard_normal((len(labels), feat_dim)) / (1.0 + 30 * lam)
    predictions = np.where(rng.random(len(labels)) < 0.9, labels, (labels + 1) % num_classes)
    buffer = io.BytesIO()
    np.savez(buffer, features=features.astype(np.float32), labels=labels, centers=centers, predictions=predictions)
    return buffer.getvalue()


def make_grid_run(run_dir, *, lambdas=(0.0, 0.003, 0.03, 0.3), alphas=(0.1, 0.5), rules=("paper", "sgd"),
                  variants=("gather",), seeds=(0, 1), feat_dim=2, num_classes=4, epochs=3, failed_cells=0,
                  diverged_cells=0, features=True, data_dirs=(None,)) -> Path:
    """A grid run folder as `ablate grid` leaves it, one synthetic cell per lambda x alpha x rule x variant
    x seed x data_dir (the first `failed_cells` of them failed, the last `diverged_cells` diverged in their
    last epoch), written with the grid's own store and tables. A data_dir is written into the records as given (a
    value a run folder may hold, which a cell of synthetic data would refuse)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    claim(run_dir, "grid", config_columns=config_columns())
    store = CellStore(run_dir)
    rng = np.random.default_rng(0)
    records = []
    cells = [(lam, alpha, rule, variant, seed, data_dir) for lam in lambdas for alpha in alphas for rule in rules
             for variant in variants for seed in seeds for data_dir in data_dirs]
    for i, (lam, alpha, rule, variant, seed, data_dir) in enumerate(cells):
        config = CellConfig(dataset="synthetic", num_classes=num_classes, feat_dim=feat_dim, epochs=epochs,
                            lambda_=lam, alpha=alpha, rule=rule, variant=variant, seed=seed).to_dict()
        config["data_dir"] = data_dir
        record = {**config, "cell_id": cell_id(config)}
        if i < failed_cells:
            record.update(status="failed", error="ValueError: no such data folder")
            npz = None
        elif i >= len(cells) - diverged_cells:
            curves = _curves(lam, epochs, rng)
            curves["curve_softmax_loss"][-1] = float("nan")
            record.update({m: float("nan") for m in METRIC_NAMES if m in COMPUTED}, train_time_s=0.5,
                          wall_time_s=0.7, status="diverged", diverged_epoch=epochs, resolved_device="cpu", **curves)
            npz = None
        else:
            record.update(_metrics(lam, alpha, rng), **_curves(lam, epochs, rng),
                          train_samples=4 * num_classes * TEST_PER_CLASS, test_samples=num_classes * TEST_PER_CLASS)
            npz = _features_npz(num_classes, feat_dim, lam, rng) if features else None
        store.save(record["cell_id"], record, npz)
        records.append(record)
    (run_dir / "provenance.json").write_text(json.dumps(PROVENANCE))
    write_tables(run_dir, grid_tables(records, config_columns()))
    return run_dir


def make_bench_run(run_dir, *, variants=("naive", "gather", "compiled"), device="cpu", classes=(10, 100, 1000, 10000),
                   batches=(64, 1024, 4096), numerics=True, train_step=True) -> Path:
    """A bench run folder: a classes sweep (forward, full) at B=256 and a batch sweep (full) at C=1000,
    naive O(B*C*D) and the others O(B*D); on cuda with roof fractions."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    claim(run_dir, "bench")
    (run_dir / "provenance.json").write_text(json.dumps({**PROVENANCE, "device_type": device}))
    dim = 128
    points = [(mode, 256, c) for mode in ("forward", "full") for c in classes] + [("full", b, 1000) for b in batches]
    points = list(dict.fromkeys(points))  # each point once, as the bench suites declare them
    rows = []
    for mode, batch, num_classes in points:
        for variant in variants:
            work = batch * num_classes * dim if variant == "naive" else batch * dim
            p50 = 1e-3 + work * 2e-7 * (3 if mode == "full" else 1)
            bytes_moved = 4.0 * (batch * dim + num_classes * dim)
            row = {"variant": variant, "mode": mode, "rule": "", "batch": batch, "classes": num_classes, "dim": dim,
                   "dtype": "float32", "device": device, "time_ms_p20": p50 * 0.9, "time_ms_p50": p50,
                   "time_ms_p80": p50 * 1.15, "samples_per_s": batch / (p50 * 1e-3), "bytes": bytes_moved,
                   "gb_per_s": bytes_moved / (p50 * 1e-3) / 1e9, "peak_mem_bytes": np.nan, "roof_fraction": np.nan,
                   "note": ""}
            if device == "cuda":
                row.update(peak_mem_bytes=2.0 * bytes_moved, roof_fraction=min(1.0, row["gb_per_s"] / 3000))
            rows.append(row)
    rows.append({**rows[-1], "classes": 10 ** 6, "time_ms_p20": np.nan, "time_ms_p50": np.nan, "time_ms_p80": np.nan,
                 "note": "skipped: needs about 512.0 GB, over the memory budget of 64.0 GB"})
    bench = pd.DataFrame(rows)
    bench.to_parquet(run_dir / "bench.parquet", index=False)
    bench.to_csv(run_dir / "bench.csv", index=False)
    if numerics:
        num_rows = []
        for dtype in ("float32", "bfloat16", "float16"):
            for norm in (1.0, 100.0):
                for variant in variants:
                    refused = variant == "naive" and dtype == "float16"
                    eps = {"float32": 6e-8, "bfloat16": 4e-3, "float16": 5e-4}[dtype]
                    err = np.nan if refused else eps * (norm ** 2 if variant == "naive" else 1.0)
                    num_rows.append({"variant": variant, "dtype": dtype, "convention": "mean", "batch": 64,
                                     "classes": 20, "dim": 16, "feature_norm": norm, "loss_rel_error": err,
                                     "grad_features_rel_error": err, "grad_centers_rel_error": err,
                                     "note": "RuntimeError: value cannot be converted to type at::Half" if refused
                                     else ""})
        pd.DataFrame(num_rows).to_parquet(run_dir / "numerics.parquet", index=False)
    if train_step:
        steps = [{"workload": w, "variant": v, "batch": 128, "classes": c, "dim": d, "device": device,
                  "samples_per_s": 1e4 / (1 + i), "time_ms_p20": 1.0, "time_ms_p50": 1.1, "time_ms_p80": 1.2,
                  "note": ""} for w, c, d in (("lenetpp", 10, 2), ("large_head", 1000, 64))
                 for i, v in enumerate(variants)]
        pd.DataFrame(steps).to_parquet(run_dir / "train_step.parquet", index=False)
    return run_dir
