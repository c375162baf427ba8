"""The `ablate` command line: one Click group; each subcommand lives beside the code it drives."""

import click

from ablate.bench.cli import bench_command
from ablate.check.cli import check_command
from ablate.compare import compare_command
from ablate.grid.cli import grid_command
from ablate.loss import PLUGIN_ERRORS, available_variants, get_variant, variant_names
from ablate.report.cli import report_command
from ablate.train.cli import train_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ablate")
def main():
    """Benchmarks and ablations of Center Loss (Wen et al., ECCV 2016)."""


@main.command("variants")
@click.option("--device", default="cpu", show_default=True, help="Device to check availability on.")
def variants_command(device):
    """List the center-loss variants (built-in and installed plugins), their cost and whether they run on DEVICE;
    then any plugin that failed to load, with its error."""
    runnable = set(available_variants(device))
    for name in variant_names():
        v = get_variant(name)
        state = "available" if name in runnable else "unavailable"
        extra = f"; own update: {', '.join(v.update_rules)}" if v.update is not None else ""
        extra += f"; needs {v.runs_on}" if name not in runnable else ""
        extra += f"; from {v.source}" if v.source != "built-in" else ""
        click.echo(f"{name:<9} {state:<11} work {v.work:<17} memory {v.memory}{extra}")
    for name, error in PLUGIN_ERRORS.items():
        click.echo(f"{name:<9} {'broken':<11} plugin failed to load: {error}")


main.add_command(bench_command)
main.add_command(check_command)
main.add_command(compare_command)
main.add_command(grid_command)
main.add_command(train_command)
main.add_command(report_command)
