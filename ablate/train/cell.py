"""`run_cell`: train and evaluate one cell, and return its flat record."""

import io
import math
import time

import numpy as np
import torch

from ablate.data import load_dataset
from ablate.distributed.context import ONE_PROCESS
from ablate.io import atomic_write_bytes
from ablate.loss import CenterLoss, available_variants
from ablate.loss.devices import AUTO, device_present, device_type
from ablate.metrics import computed_metrics
from ablate.models import EMBEDDING_NORMS, build_model
from ablate.objectives import describe_objective
from ablate.train.config import CellConfig
from ablate.train.evaluate import evaluate, features_and_predictions
from ablate.train.heads import TrainingObjective
from ablate.train.loop import in_center_space, train
from ablate.train.memory import cell_memory, check_fits


def resolve_device(name: str) -> torch.device:
    """"auto" -> CUDA when present, else the CPU; any other device kind must be one torch sees here."""
    if name == AUTO:
        return torch.device("cuda" if device_present("cuda") else "cpu")
    if not device_present(name):
        raise ValueError(f"device {name!r} was asked for but torch sees no {device_type(name)} device here; "
                         "use 'cpu' or 'auto'")
    return torch.device(name)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_features(path, features: np.ndarray, labels: np.ndarray, centers: np.ndarray,
                   predictions: np.ndarray) -> None:
    """An .npz with features (N, D) float32, labels (N,) int64, centers (C, D) float32 and predictions (N,) int64,
    written atomically. In an open-set cell the labels >= C are the held-out classes (no center, never predicted)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, features=features.astype(np.float32), labels=labels.astype(np.int64),
                        centers=centers.astype(np.float32), predictions=predictions.astype(np.int64))
    atomic_write_bytes(path, buffer.getvalue())


def run_cell(config: CellConfig, features_path=None, progress: bool = False) -> dict:
    """Train one cell and evaluate it on the test split; returns one flat, JSON-serialisable record.

    The record holds every config key ("lambda", not "lambda_"), the metrics (None when the cell
    diverged, or where a metric is undefined on the test set), timings, status ("ok" | "diverged"), diverged_epoch,
    resolved_device, torch_threads, world_size, the objective in words (ablate.objectives.describe_objective) and the
    per-epoch curves curve_softmax_loss, curve_center_loss, curve_train_accuracy (and curve_pair_loss with a pair
    loss, curve_annealing_weight with SphereFace's annealing). A
    non-finite loss marks the cell "diverged"; bad options, missing data and a cell too large for this
    machine's memory raise (before anything is allocated). With features_path, the test features, labels,
    learned centers and predictions are saved there (.npz), also for a diverged cell.
    config.nproc > 1 trains in that many processes (ablate.distributed.launch); a rank that fails raises
    RanksFailed (a RuntimeError) once all ranks have been ended.

    With holdout_classes K (open set) the model and the centers know only C - K classes (the K held out are drawn
    by the seed, ablate.data): it trains on their samples, and is evaluated on every test sample
    (ablate.metrics.features.split_evaluations). The record holds split_seed and held_out_classes.
    """
    if config.nproc == 1:
        return train_and_evaluate(config, features_path, progress)
    from ablate.distributed.launch import check_world, run_ranks

    device = resolve_device(config.device)
    check_fits(config, device)  # first: a size far beyond this machine is refused before it is estimated per rank
    check_world(config.nproc, device, cell_memory(config)["host"], option="--nproc")
    return run_ranks(train_rank, config.nproc, (config, features_path), device=device)[0]


def train_rank(rank: int, world_size: int, config: CellConfig, features_path) -> dict | None:
    """Rank `rank`'s part of a multi-process cell: its slice of every batch; rank 0 evaluates and returns the record."""
    from ablate.distributed.context import RankContext

    return train_and_evaluate(config, features_path if rank == 0 else None, False, RankContext(config.distributed))


def train_and_evaluate(config: CellConfig, features_path, progress: bool, ranks=ONE_PROCESS) -> dict | None:
    """`run_cell` in this process, alone or as one of several ranks (then only rank 0 evaluates and returns)."""
    started = time.perf_counter()
    device = resolve_device(config.device)
    if config.variant not in available_variants(device):
        raise ValueError(f"variant {config.variant!r} cannot run on {device}; "
                         f"available there: {', '.join(available_variants(device))}")
    check_fits(config, device)
    data = load_dataset(config.dataset, config.data_dir, seed=config.seed, holdout_classes=config.holdout_classes,
                        test_fraction=config.test_fraction,
                        num_classes=config.num_classes, synthetic_dim=config.synthetic_dim,
                        samples_per_class=config.samples_per_class)

    trained_classes = data.num_classes - config.holdout_classes
    trained = data.y_train < trained_classes

    if EMBEDDING_NORMS[config.embedding_norm].batch_statistics and int(trained.sum()) % config.batch_size == 1:
        raise ValueError(f"embedding_norm {config.embedding_norm} needs at least 2 samples in every batch, and the "
                         f"last batch of "
                         f"{int(trained.sum())} training samples at batch_size {config.batch_size} holds one; choose "
                         "another batch_size")
    torch.manual_seed(config.seed)  # the weights and the centers; the batch order has its own generator
    model = build_model(config.model, data.input_shape, config.feat_dim, trained_classes, config.embedding_norm)
    objective = TrainingObjective(config, trained_classes)  # after the model's weights: softmax cells draw as before
    model = objective.attach(model).to(device)
    criterion = CenterLoss(trained_classes, config.feat_dim, variant=config.variant, convention=config.convention,
                           rule=config.rule, alpha=config.alpha, device=device,
                           placement=ranks.placement(trained_classes))
    x_train = torch.tensor(data.x_train[trained], device=device)
    y_train = torch.tensor(data.y_train[trained], device=device)

    _synchronize(device)
    train_started = time.perf_counter()
    history = train(model, criterion, x_train, y_train, config, progress=progress, ranks=ranks, objective=objective)
    _synchronize(device)
    train_time = time.perf_counter() - train_started

    centers = criterion.full_centers().float().cpu().numpy()  # a collective when the centers are sharded
    if ranks.rank != 0:
        return None
    features, predictions = features_and_predictions(model, torch.tensor(data.x_test, device=device))
    if history.diverged_epoch is None and not (np.isfinite(features).all() and np.isfinite(centers).all()):
        history.diverged_epoch = config.epochs  # the last steps broke the weights after the last finite loss
    if history.diverged_epoch is None:
        # a metric undefined on this test set (NaN: a TAR its pairs do not resolve) is recorded as null: strict JSON
        in_space = in_center_space(torch.from_numpy(features), config.center_space).numpy()  # the centers' space
        metrics = {name: None if math.isnan(value) else value
                   for name, value in evaluate(features, predictions, data.y_test, centers, in_space).items()}
    else:
        metrics = dict.fromkeys(m.name for m in computed_metrics())
    if features_path is not None:
        write_features(features_path, features, data.y_test, centers, predictions)

    return {
        **config.to_dict(),
        "objective": describe_objective(config.to_dict()),
        **metrics,
        "split_seed": config.seed,  # the train/test split (and held-out classes) this cell was drawn with
        "held_out_classes": ",".join(map(str, data.held_out)),  # the dataset's ids of the classes held out
        "train_samples_per_s": history.samples / train_time if train_time > 0 else None,
        "train_time_s": train_time,
        "wall_time_s": time.perf_counter() - started,
        "status": "ok" if history.diverged_epoch is None else "diverged",
        "diverged_epoch": history.diverged_epoch,
        "resolved_device": str(device),
        "torch_threads": torch.get_num_threads(),  # float sums, and so the trajectory, depend on it (per rank)
        "world_size": ranks.world_size,
        "curve_softmax_loss": history.softmax_loss,
        "curve_center_loss": history.center_loss,
        "curve_train_accuracy": history.train_accuracy,
        **({"curve_pair_loss": history.pair_loss} if history.pair_loss else {}),
        **({"curve_annealing_weight": history.annealing_weight} if history.annealing_weight else {}),
    }
