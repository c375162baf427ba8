"""The `ablate` command line: one Click group; each subcommand lives beside the code it drives."""

import click
import torch

from ablate.bench.cli import bench_command
from ablate.grid.cli import grid_command
from ablate.loss import VARIANTS, available_variants, get_variant
from ablate.report.cli import report_command
from ablate.train.cli import train_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ablate")
def main():
    """Benchmarks and ablations of Center Loss (Wen et al., ECCV 2016)."""


@main.command("variants")
@click.option("--device", default="cpu", show_default=True, help="Device to check availability on.")
def variants_command(device):
    """List the center-loss variants, their cost and whether they run on DEVICE."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise click.BadParameter(f"expected a torch device such as cpu, cuda or cuda:1, got {device!r}",
                                 param_hint="--device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        click.echo("torch sees no CUDA device here: no variant runs on cuda", err=True)
    runnable = set(available_variants(dev)) if dev.type != "cuda" or torch.cuda.is_available() else set()
    for name in VARIANTS:
        v = get_variant(name)
        state = "available" if name in runnable else "unavailable"
        click.echo(f"{name:<9} {state:<11} work {v.work:<17} memory {v.memory}")


main.add_command(bench_command)
main.add_command(grid_command)
main.add_command(train_command)
main.add_command(report_command)
