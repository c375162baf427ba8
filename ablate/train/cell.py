"""`run_cell`: train and evaluate one cell, and return its flat record (its test features and weights kept where
asked); `restore_cell`: a kept cell's model rebuilt with its weights."""

import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from ablate.data import DATASETS, dataset_size
from ablate.distributed.context import ONE_PROCESS
from ablate.io import atomic_write_bytes
from ablate.loss import CenterLoss, available_variants
from ablate.loss.devices import AUTO, device_present, device_type
from ablate.metrics import computed_metrics
from ablate.models import EMBEDDING_NORMS, MODELS, build_model
from ablate.objectives import describe_objective
from ablate.runs.features import features_npz
from ablate.runs.record import CellRecord
from ablate.runs.weights import CENTERS, read_weights_header
from ablate.train.batches import cell_data, test_features, training_batches
from ablate.train.config import CellConfig
from ablate.train.evaluate import evaluate
from ablate.train.heads import TrainingObjective
from ablate.train.loop import TrainingHistory, in_center_space, train
from ablate.train.memory import cell_memory, check_fits
from ablate.train.probe import check_outputs
from ablate.train.weights import model_state, weights_bytes


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
    """Refuse (ValueError) a cell whose variant cannot run on `device`, whose model or dataset from outside the
    package does not give what a cell needs (check_factories), or that this machine's memory cannot hold."""
    if config.variant not in available_variants(device):
        raise ValueError(f"variant {config.variant!r} cannot run on {device}; "
                         f"available there: {', '.join(available_variants(device))}")
    check_factories(config)
    check_fits(config, device)


def check_factories(config: CellConfig) -> None:
    """For a cell whose model or dataset is a factory outside the package: the dataset's parts checked (shapes,
    labels in range: ablate.data.external, when it is first loaded) and the model's outputs for its inputs
    (ablate.train.probe.check_outputs); a ValueError naming the factory and its file otherwise. Nothing for the
    built-ins (their tests check them)."""
    if DATASETS.get(config.dataset).factory is None and MODELS.get(config.model).factory is None:
        return
    _, input_shape, classes = dataset_size(config.dataset, num_classes=config.num_classes,
                                           synthetic_dim=config.synthetic_dim,
                                           samples_per_class=config.samples_per_class)
    check_outputs(config, input_shape, classes - config.holdout_classes)


def run_cell(config: CellConfig, features_path=None, progress: bool = False, *, weights_path=None,
             loader_workers: int = 0, on_epoch=None) -> dict:
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
        return train_and_evaluate(config, device, features_path, progress, started=started, weights_path=weights_path,
                                  loader_workers=loader_workers, on_epoch=on_epoch)
    if on_epoch is not None:
        raise ValueError(f"a live view of the epochs (on_epoch) watches one process; this cell trains in nproc "
                         f"{config.nproc}")
    from ablate.distributed.launch import check_world, run_ranks

    check_world(config.nproc, device, cell_memory(config)["host"], option="--nproc")
    return run_ranks(train_rank, config.nproc, (config, device, features_path, weights_path, loader_workers),
                     device=device)[0]


def train_rank(rank: int, world_size: int, config: CellConfig, device: torch.device, features_path, weights_path,
               loader_workers: int) -> dict | None:
    """Rank `rank`'s part of a multi-process cell: its slice of every batch; rank 0 evaluates, keeps the features
    and weights, and returns the record. `device` as run_cell resolved it (on CUDA, "cuda" is this rank's own GPU,
    which the launcher made current)."""
    from ablate.distributed.context import RankContext

    first = rank == 0
    return train_and_evaluate(config, device, features_path if first else None, False,
                              RankContext(config.distributed), weights_path=weights_path if first else None,
                              loader_workers=loader_workers)


def build_cell_model(config: CellConfig, input_shape: tuple, trained_classes: int) -> tuple[nn.Module,
                                                                                           TrainingObjective]:
    """(the model a cell trains, its objective): the model of config.model for inputs of input_shape with its
    embedding norm, the objective's head attached; its weights drawn from config.seed (then the head's)."""
    torch.manual_seed(config.seed)  # the weights and the centers; the batch order has its own generator
    model = build_model(config.model, input_shape, config.feat_dim, trained_classes, config.embedding_norm)
    objective = TrainingObjective(config, trained_classes)  # after the model's weights: softmax cells draw as before
    return objective.attach(model), objective


def restore_cell(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, torch.Tensor]:
    """(model in eval mode, centers (C, D)) of a kept cell's weights file (ablate.runs.weights): the model built from
    the file's config as the cell built it (a factory's code runs to build it; the weights themselves are read
    without running code), then its state loaded, every key matched. RunFolderError for a file that is not a cell's
    weights."""
    header = read_weights_header(path)
    model, _ = build_cell_model(CellConfig.from_dict(header.config), header.input_shape, header.shapes[CENTERS][0])
    tensors = load_file(str(path), device=str(device))
    model.to(device).load_state_dict(model_state(tensors, header.head))
    return model.eval(), tensors[CENTERS]


def train_and_evaluate(config: CellConfig, device: torch.device, features_path=None, progress: bool = False,
                       ranks=ONE_PROCESS, started: float | None = None, *, weights_path=None, loader_workers: int = 0,
                       on_epoch=None) -> dict | None:
    """`run_cell` in this process, alone or as one of several ranks (then only rank 0 evaluates and returns), on
    `device` (resolved and checked by run_cell). started: the perf_counter the record's wall time counts from
    (default: now)."""
    started = time.perf_counter() if started is None else started
    data = cell_data(config)
    trained_classes = data.num_classes - config.holdout_classes
    training = training_batches(data, trained_classes, device, loader_workers)

    if EMBEDDING_NORMS[config.embedding_norm].batch_statistics and len(training) % config.batch_size == 1:
        raise ValueError(f"embedding_norm {config.embedding_norm} needs at least 2 samples in every batch, and the "
                         f"last batch of {len(training)} training samples at batch_size {config.batch_size} holds "
                         "one; choose another batch_size")
    model, objective = build_cell_model(config, data.input_shape, trained_classes)
    model = model.to(device)
    criterion = CenterLoss(trained_classes, config.feat_dim, variant=config.variant, convention=config.convention,
                           rule=config.rule, alpha=config.alpha, device=device,
                           placement=ranks.placement(trained_classes))

    _synchronize(device)
    train_started = time.perf_counter()
    history: TrainingHistory = train(model, criterion, training, config, progress=progress, ranks=ranks,
                                     objective=objective, on_epoch=on_epoch)
    _synchronize(device)
    train_time = time.perf_counter() - train_started

    centers = criterion.full_centers().float().cpu().numpy()  # a collective when the centers are sharded
    if ranks.rank != 0:
        return None
    features, predictions, y_test = test_features(model, data, device, loader_workers)
    if history.diverged_epoch is None and not (np.isfinite(features).all() and np.isfinite(centers).all()):
        history.diverged_epoch = config.epochs  # the last steps broke the weights after the last finite loss
    if history.diverged_epoch is None:
        # a metric undefined on this test set (NaN: a TAR its pairs do not resolve) is recorded as null: strict JSON
        in_space = in_center_space(torch.from_numpy(features), config.center_space).numpy()  # the centers' space
        metrics = {name: None if math.isnan(value) else value
                   for name, value in evaluate(features, predictions, y_test, centers, in_space).items()}
    else:
        metrics = dict.fromkeys(m.name for m in computed_metrics())
    if features_path is not None:
        write_features(features_path, features, y_test, centers, predictions)
    if weights_path is not None:
        atomic_write_bytes(weights_path, weights_bytes(model, objective.head_of(model), torch.from_numpy(centers),
                                                       config.to_dict(), data.input_shape))

    return CellRecord(
        config=config.to_dict(), objective=describe_objective(config.to_dict()), metrics=metrics,
        split_seed=config.seed, held_out_classes=",".join(map(str, data.held_out)),
        train_samples_per_s=history.samples / train_time if train_time > 0 else None, train_time_s=train_time,
        wall_time_s=time.perf_counter() - started, status="ok" if history.diverged_epoch is None else "diverged",
        diverged_epoch=history.diverged_epoch, resolved_device=str(device), torch_threads=torch.get_num_threads(),
        world_size=ranks.world_size, curves=history.curves(),
    ).to_dict()
