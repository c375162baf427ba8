"""`ablate train`: one training cell from the command line; every CellConfig option is a flag."""

import json
import socket
import sys
import tempfile
import typing
from dataclasses import fields
from pathlib import Path

import click

from ablate.distributed.launch import RanksFailed
from ablate.io import check_writable
from ablate.limits import OptionError
from ablate.messages import say
from ablate.metrics import TRAIN_SUMMARY, shown_in
from ablate.registry import LazyChoice, Registry
from ablate.runs import tables
from ablate.runs.folder import RunFolder, check_can_write
from ablate.runs.record import stamped
from ablate.runs.schema import cell_id
from ablate.train.cell import run_cell
from ablate.train.config import CellConfig, config_columns, key_name
from ablate.train.keep import keep
from ablate.train.tensorboard import EpochScalars


class _Folder(click.Path):
    """A folder's path, as click.Path(file_okay=False) checks it; one holding a NUL (which no path holds, and which
    os.stat refuses with an error of its own) is refused as such."""

    def __init__(self):
        super().__init__(file_okay=False)

    def convert(self, value, param, ctx):
        if "\0" in str(value):
            self.fail(f"a path holds no NUL character, got {value!r}", param, ctx)
        return super().convert(value, param, ctx)


def _click_type(f):
    choices = f.metadata["choices"]
    if isinstance(choices, Registry):
        return choices.choice()  # read when checked: later registrations are choices too
    if callable(choices):
        return LazyChoice(choices)  # the same, for choices a function gives
    if choices is not None:
        return click.Choice(choices)
    if f.name == "data_dir":
        return _Folder()
    unset_or = [t for t in typing.get_args(f.type) if t is not type(None)]  # float | None: a float, or unset
    return unset_or[0] if unset_or else f.type


def flag(key: str) -> str:
    """The command-line flag of a cell option's grid key: "--feat-dim" for feat_dim."""
    return "--" + key.replace("_", "-")


def config_options(command):
    """Decorate `command` with one --flag per CellConfig field (--lambda for lambda_), defaults from the dataclass."""
    for f in reversed(fields(CellConfig)):
        if f.metadata["derived"]:
            continue  # filled in from the other options
        command = click.option(flag(key_name(f.name)), f.name, type=_click_type(f), default=f.default,
                               show_default=True, help=f.metadata["help"])(command)
    return command


def summary_lines(record: dict) -> list:
    """A few human-readable lines: the setup, the status and the main metrics."""
    setup = (f"{record['dataset']} model={record['model']} feat_dim={record['feat_dim']} objective: "
             f"{record['objective']}; variant={record['variant']} "
             f"rule={record['rule']} convention={record['convention']} lambda={record['lambda']} "
             f"alpha={record['alpha']} seed={record['seed']} epochs={record['epochs']} "
             f"batch_size={record['batch_size']} lr={record['lr']} lr_step={record['lr_step']} "
             f"on {record['resolved_device']}"
             + (f" x {record['world_size']} ranks, {record['distributed']} centers"
                if record["world_size"] > 1 else ""))
    status = record["status"] + (f" at epoch {record['diverged_epoch']}" if record["status"] == "diverged" else "")
    epochs = len(record["curve_softmax_loss"]) or 1  # the epochs trained (a diverged cell stops early)
    lines = [setup, f"status {status}, trained in {record['train_time_s']:.2f} s "
                    f"({record['train_time_s'] / epochs:.2f} s an epoch, {record['train_samples_per_s']:.0f} "
                    f"samples/s), {record['wall_time_s']:.2f} s in all"]
    if record["status"] == "ok":
        lines += [f"  {key:<24} {record[key]:.4f}" for key in shown_in(TRAIN_SUMMARY)]
    return lines


def is_run_folder(out: str) -> bool:
    """--out names a run folder (an existing folder, or a new path not ending in .json), not a record file."""
    path = Path(out)
    return path.is_dir() or (not path.exists() and path.suffix.lower() != ".json")


def save_to_run_folder(run_dir: str, record: dict, features: bytes | None) -> str:
    """The cell into RUN_DIR as a grid run folder holds one (run.json, cells/<id>.json and .npz, the tables,
    provenance.json), beside any cells already there; returns its cell id. `ablate report RUN_DIR` reads it."""
    columns = config_columns()
    cell = cell_id({key: record[key] for key in columns})
    with RunFolder.writing(run_dir, "grid", config_columns=columns) as run:
        store = run.cells(columns)
        store.save(cell, stamped({**record, "cell_id": cell, "host": socket.gethostname()}, cell, run.stamp),
                   features)
        records, _ = store.records()
        run.tables = tables.grid_tables(list(records.values()), columns)
    return cell


@click.command("train")
@config_options
@click.option("--out", type=click.Path(),
              help="Write the record (config, metrics, curves) to this JSON file (a name ending in .json), or make "
                   "RUN_DIR a run folder of this cell (any other name, or an existing folder; more cells trained into "
                   "it join it) that `ablate report RUN_DIR` reads.")
@click.option("--features", "features_path", type=click.Path(dir_okay=False),
              help="Save the test features, labels and centers to this .npz file.")
@click.option("--save-weights", "weights_path", type=click.Path(dir_okay=False),
              help="Keep the trained model, head and centers in this safetensors file.")
@click.option("--loader-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="DataLoader worker processes for a dataset that streams (a factory's torch Datasets).")
@click.option("--tensorboard", "tensorboard_dir", type=_Folder(),
              help="Write TensorBoard scalars to this folder as the cell trains (needs the tensorboard extra).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar over epochs.")
def train_command(out, features_path, weights_path, loader_workers, tensorboard_dir, progress, **options):
    """Train and evaluate one cell: a head (softmax unless --head) + a pair loss (--pair-loss) + lambda * center
    loss on one dataset. Options left out take the dataset's recipe (model, epochs, batch size, learning rate and
    its schedule, convention: see the README)."""
    try:
        config = CellConfig(**options)
    except OptionError as error:
        raise click.BadParameter(str(error), param_hint=flag(error.key)) from None
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    outputs = {"--out": out, "--features": features_path, "--save-weights": weights_path}
    folder = out is not None and is_run_folder(out)
    for hint, path in [*outputs.items(), ("--tensorboard", tensorboard_dir)]:
        if path is not None:
            try:  # before training: a result must never be lost to a path it cannot take (a symlink loop included)
                if folder and hint == "--out":
                    check_can_write(path, "grid")
                else:
                    check_writable(path, folder=hint == "--tensorboard")
            except ValueError as error:
                raise click.BadParameter(str(error), param_hint=hint) from None
    named = [(hint, Path(path).resolve()) for hint, path in outputs.items() if path is not None]
    for i, (hint, path) in enumerate(named):
        for other, other_path in named[i + 1:]:
            if path == other_path:
                raise click.UsageError(f"{hint} and {other} name the same file {path}; give each its own")
    if tensorboard_dir is not None and config.nproc > 1:
        raise click.BadParameter(f"watches a cell trained in one process; this one trains in --nproc {config.nproc}",
                                 param_hint="--tensorboard")
    try:
        scalars = EpochScalars(tensorboard_dir) if tensorboard_dir is not None else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--tensorboard") from None
    with tempfile.TemporaryDirectory(prefix="ablate-train-") as scratch:
        # the features and weights go to a folder of this run's own first, and to their paths (or the run folder)
        # once training has finished: a path that fails then fails the write, not the record
        trained_features = Path(scratch) / "features.npz" if features_path is not None or folder else None
        trained_weights = Path(scratch) / "weights.safetensors" if weights_path is not None else None
        try:
            record = run_cell(config, features_path=trained_features, progress=progress, weights_path=trained_weights,
                              loader_workers=loader_workers, epoch_view=scalars.epoch if scalars else None)
        except (ValueError, FileNotFoundError, ImportError, RanksFailed) as error:
            raise click.ClickException(str(error)) from None
        finally:
            if scalars is not None:
                scalars.close()  # what the epochs wrote stays readable, whatever the end
        if scalars is not None:
            scalars.finish(record)
        for line in summary_lines(record):
            say(line)
        features = trained_features.read_bytes() if trained_features is not None and trained_features.exists() else b""
        record_bytes = (json.dumps(record, indent=2, sort_keys=True, default=str) + "\n").encode()
        results, lost = [], []
        if folder:
            try:
                cell = save_to_run_folder(out, record, features or None)
                say(f"cell {cell} written to the run folder {out} (`ablate report {out}` reads it)")
            except (OSError, ValueError) as error:  # the disk filled, or the folder changed, during training
                lost.append(f"cannot write the cell into the run folder {out}: {error}")
                results.append(("record", Path(out) / "record.json", record_bytes, ".json"))
        elif out is not None:
            results.append(("record", out, record_bytes, ".json"))
        if features_path is not None:
            results.append(("features", features_path, features, ".npz"))
        if weights_path is not None:
            results.append(("weights", weights_path, trained_weights.read_bytes() if trained_weights else b"",
                            ".safetensors"))
        lost += _keep_each(results)
    if tensorboard_dir is not None:
        say(f"TensorBoard scalars written to {tensorboard_dir}")
    if lost:
        raise click.ClickException("training finished, but " + "; ".join(lost))


def _keep_each(results: list) -> list:
    """Write each (what, path, bytes, suffix) where it was asked to go, else to a fallback file (ablate.train.keep),
    saying where; a record no file takes is printed on stdout. Returns a line per result not where it was asked
    to go."""
    lost = []
    for what, path, data, suffix in results:
        kept = keep(data, path, suffix)
        if not kept.moved:
            say(f"{what} written to {kept.path}")
        elif kept.path is not None:
            lost.append(f"{kept.refusals[0]}: the {what} was written to {kept.path} instead")
        else:
            lost.append(f"no file took the {what} ({'; '.join(kept.refusals)})"
                        + (": it follows on standard output" if what == "record" else ""))
            if what == "record":
                sys.stdout.write(data.decode() + "\n")
    return lost
