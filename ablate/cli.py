"""The `ablate` command line: one Click group; each subcommand lives beside the code it drives."""

import importlib

import click

from ablate.signals import interrupt_on_termination
from ablate.loss import PLUGIN_ERRORS, available_variants, get_variant, variant_names
from ablate.loss.devices import device_type

# Subcommands imported when run, so that `ablate report` never loads the training stack (ablate.train,
# ablate.grid, scikit-learn): name -> "module:attribute".
LAZY_COMMANDS = {"bench": "ablate.bench.cli:bench_command", "check": "ablate.check.cli:check_command",
                 "compare": "ablate.compare:compare_command", "grid": "ablate.grid.cli:grid_command",
                 "report": "ablate.report.cli:report_command", "train": "ablate.train.cli:train_command"}


class LazyGroup(click.Group):
    """A Click group whose LAZY_COMMANDS are imported only when invoked (or listed by --help)."""

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS:
            module, attribute = LAZY_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ablate")
@click.pass_context
def main(ctx):
    """Benchmarks and ablations of Center Loss (Wen et al., ECCV 2016)."""
    interrupt_on_termination(ctx)


@main.command("variants")
@click.option("--device", default="cpu", show_default=True, help="Device to check availability on.")
def variants_command(device):
    """List the center-loss variants (built-in and installed plugins), their cost and whether they run on DEVICE;
    then any plugin that failed to load, with its error."""
    try:
        kind = device_type(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    runnable = set(available_variants(kind))
    if not runnable:
        click.echo(f"torch cannot compute on a {kind} device here: no variant runs on {device}", err=True)
    for name in variant_names():
        v = get_variant(name)
        state = "available" if name in runnable else "unavailable"
        extra = f"; own update: {', '.join(v.update_rules)}" if v.update is not None else ""
        extra += f"; needs {v.runs_on}" if name not in runnable else ""
        extra += f"; from {v.source}" if v.source != "built-in" else ""
        click.echo(f"{name:<9} {state:<11} work {v.work:<17} memory {v.memory}{extra}")
    for name, error in PLUGIN_ERRORS.items():
        click.echo(f"{name:<9} {'broken':<11} plugin failed to load: {error}")
