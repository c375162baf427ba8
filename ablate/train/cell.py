"""`run_cell`: train and evaluate one cell, and return its flat record (its test features and weights kept where
asked); `restore_cell`: a kept cell's model rebuilt with its weights."""

import math
import time
from collections.abc import Callable, Sequence
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
from ablate.runs.record import CellRecord, validation_key
from ablate.runs.weights import CENTERS, read_weights_header
from ablate.train.batches import cell_data, examples, scoring, training_batches
from ablate.train.center_space import in_center_space
from ablate.train.config import INERT_AT_ZERO_LAMBDA, CellConfig, shared_training_key
from ablate.train.evaluate import evaluate
from ablate.train.followers import CenterFollower
from ablate.train.heads import TrainingObjective
from ablate.train.loop import EpochWatch, TrainingHistory, train
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


def run_cell(config: CellConfig, features_path=None, progress: bool = False, *, scored_on_test: bool = True,
             watch: EpochWatch | None = None, weights_path=None, loader_workers: int = 0,
             epoch_view: Callable[[int, TrainingHistory], None] | None = None,
             on_epoch: Callable[[int, int], object] | None = None) -> dict:
    """Train one cell and evaluate it on the validation split and, unless scored_on_test is False, on the test split;
    returns one flat, JSON-serialisable record (ablate.runs.record.CellRecord.to_dict()).

    The record holds every config key ("lambda", not "lambda_"; split_seed names the split), the objective in words
    (ablate.objectives.describe_objective), the metrics on validation ("val_<name>", ablate.runs.record.validation_key;
    none at val_fraction 0) and on test (the metric's own name) (None when the cell diverged or was pruned, or where
    a metric is undefined on its split), the held-out classes, whether it read its test split, timings, status ("ok"
    | "diverged" | "pruned"), diverged_epoch, resolved_device, torch_threads, world_size and the per-epoch curves
    (ablate.runs.record.CURVES_OF_EPOCHS: curve_softmax_loss, curve_center_loss, curve_train_accuracy, curve_pair_loss
    with a pair loss, curve_validation with a watch). A non-finite loss marks the cell "diverged"; bad options,
    missing data and a cell too large for this machine's memory raise (before anything is allocated). With
    features_path, the test features, labels, learned centers and predictions are saved there (.npz), also for a
    diverged cell.
    config.nproc > 1 trains in that many processes (ablate.distributed.launch); a rank that fails raises
    RanksFailed (a RuntimeError) once all ranks have been ended. The device is resolved and the cell checked
    here, once, before any rank starts.

    scored_on_test False (a tuning trial): the test split is never read (ablate.data.Splits.test is not called), the
    record has no test metrics and no features are saved. watch (ablate.train.watch.EpochWatch): after every epoch
    its metric is measured on the validation split, kept in curve_validation and handed to watch.stop; a True
    ends training there and the cell is recorded as "pruned" (a trial that fell behind), without metrics.
    epoch_view(epoch, history): called after each finished epoch, after the watch (a live view such as TensorBoard's,
    ablate.train.tensorboard). on_epoch(epoch, epochs): likewise, for a grid's progress (one process only).
    weights_path: the trained model, head and centers kept there (safetensors, ablate.train.weights), also for a
    diverged or pruned cell. loader_workers: DataLoader workers of a dataset that
    streams (a factory's torch Datasets, ablate.train.batches).

    With holdout_classes K (open set) the model and the centers know only C - K classes (the K held out are drawn
    by the split seed, ablate.data): it trains on their samples, is validated on their validation samples, and is
    evaluated on every test sample (ablate.metrics.features.split_evaluations).
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    check_runnable(config, device)  # first: a size far beyond this machine is refused before it is estimated per rank
    if config.nproc == 1:
        return _train_and_evaluate(config, device, [features_path], progress, started=started,
                                   scored_on_test=scored_on_test, watch=watch, weights_path=weights_path,
                                   loader_workers=loader_workers, epoch_view=epoch_view, on_epoch=on_epoch)[0]
    if watch is not None or not scored_on_test:
        raise ValueError(f"a tuning trial trains in one process (nproc 1), got nproc {config.nproc}")
    if epoch_view is not None:
        raise ValueError(f"a live view of the epochs (epoch_view) watches one process; this cell trains in nproc "
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
    assert config.embedding_norm is not None  # unset only until CellConfig fills in the head's recipe
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


def _finite_or_none(value: float | None) -> float | None:
    """A metric undefined on its split (NaN: a TAR its pairs do not resolve), or not measured (a cell that diverged
    or was pruned), as null: strict JSON."""
    return None if value is None or math.isnan(value) else value


def _test_key(metric: str) -> str:
    """The record key of a metric on the test split: its own name."""
    return metric


def train_and_evaluate(config: CellConfig, device: torch.device, features_path=None, progress: bool = False,
                       ranks=ONE_PROCESS, started: float | None = None, *, weights_path=None,
                       loader_workers: int = 0) -> dict | None:
    """`run_cell` in this process, alone or as one of several ranks (then only rank 0 evaluates and returns), on
    `device` (resolved and checked by run_cell). started: the perf_counter the record's wall time counts from
    (default: now)."""
    return _train_and_evaluate(config, device, [features_path], progress, ranks, started, weights_path=weights_path,
                               loader_workers=loader_workers)[0]


def run_shared_cells(lead: CellConfig, followers: Sequence[CellConfig], features_paths: Sequence | None = None, *,
                     on_epoch: Callable[[int, int], object] | None = None) -> list:
    """Train `lead` once and return the records of it and of every follower, in that order: cells at lambda 0, in
    one process, that differ from it only in ablate.train.config.INERT_AT_ZERO_LAMBDA (a ValueError otherwise).
    Each follower's record is what `run_cell` would give it (ablate.train.followers); None for a follower the shared
    training does not stand for (its own center loss went non-finite, or the lead diverged): train that one alone.
    features_paths: one .npz path (or None) per cell, lead first. on_epoch as run_cell's."""
    key = shared_training_key(lead.to_dict())
    for follower in followers:
        if key is None or shared_training_key(follower.to_dict()) != key:
            raise ValueError(f"a cell shares the training of another only at lambda 0 in one process and when they "
                             f"differ in {', '.join(INERT_AT_ZERO_LAMBDA)} alone: {follower.to_dict()} does not share "
                             f"that of {lead.to_dict()}")
    paths = list(features_paths) if features_paths is not None else [None] * (1 + len(followers))
    if len(paths) != 1 + len(followers):
        raise ValueError(f"expected {1 + len(followers)} features paths (the lead's, then each follower's), got "
                         f"{len(paths)}")
    started = time.perf_counter()
    device = resolve_device(lead.device)
    check_runnable(lead, device)
    return _train_and_evaluate(lead, device, paths, started=started, followers=followers, on_epoch=on_epoch)


def _train_and_evaluate(config: CellConfig, device: torch.device, features_paths: list, progress: bool = False,
                        ranks=ONE_PROCESS, started: float | None = None, *, scored_on_test: bool = True,
                        watch: EpochWatch | None = None, weights_path=None, loader_workers: int = 0,
                        followers: Sequence[CellConfig] = (),
                        epoch_view: Callable[[int, TrainingHistory], None] | None = None,
                        on_epoch: Callable[[int, int], object] | None = None) -> list:
    """The records of `config`'s cell and of its followers (run_shared_cells), trained once; [None] on a rank but
    0. scored_on_test, watch, weights_path (the lead's), loader_workers, epoch_view, on_epoch: as run_cell's (a
    tuning trial has no followers)."""
    started = time.perf_counter() if started is None else started
    data = cell_data(config)
    trained_classes = data.trained_classes
    training = training_batches(data, trained_classes, device, loader_workers)

    assert config.embedding_norm is not None  # unset only until CellConfig fills in the head's recipe
    if EMBEDDING_NORMS[config.embedding_norm].batch_statistics and len(training) % config.batch_size == 1:
        raise ValueError(f"embedding_norm {config.embedding_norm} needs at least 2 samples in every batch, and the "
                         f"last batch of {len(training)} training samples at batch_size {config.batch_size} holds "
                         "one; choose another batch_size")
    model, objective = build_cell_model(config, data.input_shape, trained_classes)
    model = model.to(device)
    centers_drawn_at = torch.get_rng_state()  # where every follower draws its initial centers too
    criterion = CenterLoss(trained_classes, config.feat_dim, variant=config.variant, convention=config.convention,
                           rule=config.rule, alpha=config.alpha, device=device,
                           placement=ranks.placement(trained_classes))
    trackers = [CenterFollower(f, trained_classes, device, centers_drawn_at) for f in followers]
    validation = scoring(data, "validation", device, loader_workers) if examples(data.validation) else None
    if watch is not None and validation is None:
        raise ValueError("a watched cell (a tuning trial) needs a validation split: val_fraction must be above 0")

    def after_step(features: torch.Tensor, labels: torch.Tensor) -> None:
        for tracker in trackers:
            tracker.step(features, labels)

    def after_epoch(epoch: int, history: TrainingHistory) -> bool:
        """The followers' epoch closed, the watch's validation (True stops the training), then the views."""
        for tracker in trackers:
            tracker.end_epoch(len(training))
        stop = False
        if watch is not None:
            assert validation is not None  # a watched cell has one (refused above otherwise)
            value = validation.metric(watch.metric, model, criterion.full_centers().float().cpu().numpy(),
                                      config.center_space)
            history.validation.append(None if math.isnan(value) else value)
            stop = watch.stop(epoch, value)
        if epoch_view is not None:
            epoch_view(epoch, history)
        if on_epoch is not None:
            on_epoch(epoch, config.epochs)
        return stop

    watched = trackers or watch is not None or epoch_view is not None or on_epoch is not None
    _synchronize(device)
    train_started = time.perf_counter()
    history = train(model, criterion, training, config, progress=progress, ranks=ranks, objective=objective,
                    after_step=after_step if trackers else None, after_epoch=after_epoch if watched else None)
    _synchronize(device)
    train_time = time.perf_counter() - train_started

    centers = criterion.full_centers().float().cpu().numpy()  # a collective when the centers are sharded
    if ranks.rank != 0:
        return [None]
    scorings = {validation_key: validation} if validation is not None else {}
    if scored_on_test:  # the only read of the test split
        scorings[_test_key] = scoring(data, "test", device, loader_workers)
    outputs = {key: scorer.outputs(model) for key, scorer in scorings.items()}
    if history.finished_ok and not all(np.isfinite(features).all() for features, _, _ in outputs.values()):
        history.diverged_epoch = config.epochs  # the last steps broke the weights after the last finite loss
    if weights_path is not None:
        atomic_write_bytes(weights_path, weights_bytes(model, objective.head_of(model), torch.from_numpy(centers),
                                                       config.to_dict(), data.input_shape))

    def record(cell: CellConfig, centers: np.ndarray, curves: dict, features_path) -> dict:
        """The record of `cell` from the shared model's outputs and its own (C, D) centers."""
        diverged_epoch = history.diverged_epoch
        if history.finished_ok and not np.isfinite(centers).all():
            diverged_epoch = config.epochs
        status = "pruned" if history.pruned_epoch is not None else "ok" if diverged_epoch is None else "diverged"
        metrics: dict = {}
        for key, (features, predictions, labels) in outputs.items():
            in_space = in_center_space(torch.from_numpy(features), cell.center_space).numpy()  # the centers' space
            scored = evaluate(features, predictions, labels, centers, in_space) if status == "ok" else {}
            metrics.update({key(m.name): _finite_or_none(scored.get(m.name)) for m in computed_metrics()})
        if scored_on_test and features_path is not None:
            features, predictions, labels = outputs[_test_key]
            write_features(features_path, features, labels, centers, predictions)
        return CellRecord(
            config=cell.to_dict(), objective=describe_objective(cell.to_dict()), metrics=metrics,
            held_out_classes=",".join(map(str, data.held_out)), train_samples=len(training),
            validation_samples=examples(data.validation),
            test_samples=len(outputs[_test_key][2]) if scored_on_test else None, scored_on_test=scored_on_test,
            validation_metric=watch.metric if watch is not None else None,
            train_samples_per_s=history.samples / train_time if train_time > 0 else None, train_time_s=train_time,
            wall_time_s=time.perf_counter() - started, status=status,
            diverged_epoch=diverged_epoch, resolved_device=str(device), torch_threads=torch.get_num_threads(),
            world_size=ranks.world_size, curves=curves,
        ).to_dict()

    records: list[dict | None] = [record(config, centers, history.curves(), features_paths[0])]
    for tracker, path in zip(trackers, features_paths[1:]):
        stands = tracker.stands_for_its_cell and history.diverged_epoch is None
        records.append(record(tracker.config, tracker.centers().float().cpu().numpy(),
                              {**history.curves(), "center_loss": tracker.center_loss}, path) if stands else None)
    return records
