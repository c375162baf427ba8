"""`run_cell`: train and evaluate one cell, and return its flat record."""

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
from ablate.runs.features import features_npz
from ablate.runs.record import CellRecord
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
    """The cell's test features as an .npz (ablate.runs.features.features_npz), written atomically to `path`."""
    atomic_write_bytes(path, features_npz(features, labels, centers, predictions))


def check_runnable(config: CellConfig, device: torch.device) -> None:
    """Refuse (ValueError) a cell whose variant cannot run on `device`, or that this machine's memory cannot hold."""
    if config.variant not in available_variants(device):
        raise ValueError(f"variant {config.variant!r} cannot run on {device}; "
                         f"available there: {', '.join(available_variants(device))}")
    check_fits(config, device)


def run_cell(config: CellConfig, features_path=None, progress: bool = False) -> dict:
    """Train one cell and evaluate it on the test split; returns one flat, JSON-serialisable record
    (ablate.runs.record.CellRecord.to_dict()).

    The record holds every config key ("lambda", not "lambda_"), the objective in words
    (ablate.objectives.describe_objective), the metrics (None when the cell diverged, or where a metric is undefined
    on the test set), the split seed and held-out classes, timings, status ("ok" | "diverged"), diverged_epoch,
    resolved_device, torch_threads, world_size and the per-epoch curves (ablate.runs.record.CURVES_OF_EPOCHS:
    curve_softmax_loss, curve_center_loss, curve_train_accuracy, and curve_pair_loss with a pair loss). A
    non-finite loss marks the cell "diverged"; bad options, missing data and a cell too large for this
    machine's memory raise (before anything is allocated). With features_path, the test features, labels,
    learned centers and predictions are saved there (.npz), also for a diverged cell.
    config.nproc > 1 trains in that many processes (ablate.distributed.launch); a rank that fails raises
    RanksFailed (a RuntimeError) once all ranks have been ended. The device is resolved and the cell checked
    here, once, before any rank starts.

    With holdout_classes K (open set) the model and the centers know only C - K classes (the K held out are drawn
    by the seed, ablate.data): it trains on their samples, and is evaluated on every test sample
    (ablate.metrics.features.split_evaluations). The record holds split_seed and held_out_classes.
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    check_runnable(config, device)  # first: a size far beyond this machine is refused before it is estimated per rank
    if config.nproc == 1:
        return train_and_evaluate(config, device, features_path, progress, started=started)
    from ablate.distributed.launch import check_world, run_ranks

    check_world(config.nproc, device, cell_memory(config)["host"], option="--nproc")
    return run_ranks(train_rank, config.nproc, (config, device, features_path), device=device)[0]


def train_rank(rank: int, world_size: int, config: CellConfig, device: torch.device, features_path) -> dict | None:
    """Rank `rank`'s part of a multi-process cell: its slice of every batch; rank 0 evaluates and returns the record.
    `device` as run_cell resolved it (on CUDA, "cuda" is this rank's own GPU, which the launcher made current)."""
    from ablate.distributed.context import RankContext

    return train_and_evaluate(config, device, features_path if rank == 0 else None, False,
                              RankContext(config.distributed))


def train_and_evaluate(config: CellConfig, device: torch.device, features_path=None, progress: bool = False,
                       ranks=ONE_PROCESS, started: float | None = None) -> dict | None:
    """`run_cell` in this process, alone or as one of several ranks (then only rank 0 evaluates and returns), on
    `device` (resolved and checked by run_cell). started: the perf_counter the record's wall time counts from
    (default: now)."""
    started = time.perf_counter() if started is None else started
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

    return CellRecord(
        config=config.to_dict(), objective=describe_objective(config.to_dict()), metrics=metrics,
        split_seed=config.seed, held_out_classes=",".join(map(str, data.held_out)),
        train_samples=int(trained.sum()), test_samples=len(data.y_test),
        train_samples_per_s=history.samples / train_time if train_time > 0 else None, train_time_s=train_time,
        wall_time_s=time.perf_counter() - started, status="ok" if history.diverged_epoch is None else "diverged",
        diverged_epoch=history.diverged_epoch, resolved_device=str(device), torch_threads=torch.get_num_threads(),
        world_size=ranks.world_size, curves=history.curves(),
    ).to_dict()
