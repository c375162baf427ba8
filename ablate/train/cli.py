"""`ablate train`: one training cell from the command line; every CellConfig option is a flag."""

from dataclasses import fields

import click

from ablate.distributed.launch import RanksFailed
from ablate.io import atomic_write_json
from ablate.train.cell import run_cell
from ablate.train.config import CellConfig, key_name

SUMMARY_KEYS = ("test_accuracy", "nearest_center_accuracy", "intra_class_distance", "inter_class_distance",
                "separation_ratio", "silhouette", "map_at_r", "verification_auc")


def _click_type(f):
    if f.metadata["choices"] is not None:
        return click.Choice(f.metadata["choices"])
    if f.name == "data_dir":
        return click.Path(file_okay=False)
    return f.type


def config_options(command):
    """Decorate `command` with one --flag per CellConfig field (--lambda for lambda_), defaults from the dataclass."""
    for f in reversed(fields(CellConfig)):
        flag = "--" + key_name(f.name).replace("_", "-")
        command = click.option(flag, f.name, type=_click_type(f), default=f.default, show_default=True,
                               help=f.metadata["help"])(command)
    return command


def summary_lines(record: dict) -> list:
    """A few human-readable lines: the setup, the status and the main metrics."""
    setup = (f"{record['dataset']} model={record['model']} feat_dim={record['feat_dim']} variant={record['variant']} "
             f"rule={record['rule']} convention={record['convention']} lambda={record['lambda']} "
             f"alpha={record['alpha']} seed={record['seed']} on {record['resolved_device']}"
             + (f" x {record['world_size']} ranks, {record['distributed']} centers" if record["world_size"] > 1 else ""))
    status = record["status"] + (f" at epoch {record['diverged_epoch']}" if record["status"] == "diverged" else "")
    lines = [setup, f"status {status}, trained in {record['train_time_s']:.2f} s "
                    f"({record['train_samples_per_s']:.0f} samples/s), {record['wall_time_s']:.2f} s in all"]
    if record["status"] == "ok":
        lines += [f"  {key:<24} {record[key]:.4f}" for key in SUMMARY_KEYS]
    return lines


@click.command("train")
@config_options
@click.option("--out", type=click.Path(dir_okay=False), help="Write the record (config, metrics, curves) to this JSON file.")
@click.option("--features", "features_path", type=click.Path(dir_okay=False),
              help="Save the test features, labels and centers to this .npz file.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar over epochs.")
def train_command(out, features_path, progress, **options):
    """Train and evaluate one cell: softmax + lambda * center loss on one dataset."""
    try:
        config = CellConfig(**options)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    try:
        record = run_cell(config, features_path=features_path, progress=progress)
    except (ValueError, FileNotFoundError, ImportError, RanksFailed) as error:
        raise click.ClickException(str(error)) from None
    for line in summary_lines(record):
        click.echo(line)
    if out is not None:
        atomic_write_json(out, record)
        click.echo(f"record written to {out}")
    if features_path is not None:
        click.echo(f"features written to {features_path}")
