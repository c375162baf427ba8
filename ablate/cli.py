"""The `ablate` command line: one Click group; each subcommand lives beside the code it drives.

`ablate --help` and `ablate --version` import neither torch nor any subcommand's module; `ablate variants` imports
the variant registry, and torch only to read a device other than the CPU.
"""

from typing import NamedTuple

import click

from ablate.limits import check_environment, environment_help
from ablate.messages import say, standalone
from ablate.registry import lazy
from ablate.signals import Terminated, termination_raises, writes_fail_instead_of_killing


class LazyCommand(NamedTuple):
    """A subcommand imported only when it runs or shows its own help: `target` names it ("module:attribute"),
    `short_help` is its line in `ablate --help`: the start of its own help as Click cuts it for that listing at its
    widest (a test holds the two equal)."""

    target: str
    short_help: str


# Subcommands by name, imported when run, so that `ablate report` never loads the training stack (ablate.train,
# ablate.grid, scikit-learn) and `ablate --help` loads none of them.
LAZY_COMMANDS = {
    "bench": LazyCommand("ablate.bench.cli:bench_command",
                         "Time center-loss variants (run) or the distributed placements..."),
    "check": LazyCommand("ablate.check.cli:check_command", "Check TARGET against the float64 reference and print a..."),
    "compare": LazyCommand("ablate.compare:compare_command",
                           "Compare every configuration RUN_A and RUN_B both hold (every..."),
    "export": LazyCommand("ablate.export.cli:export_command", "Export RUN_DIR, a grid run: kept weights, MLflow runs."),
    "gate": LazyCommand("ablate.gate.cli:gate_command",
                        "Gate a change's speed: A/B against a base revision and the..."),
    "grid": LazyCommand("ablate.export.cli:grid_command",  # ablate.grid.cli's, with --track (ablate.export.cli)
                        "Train every cell of GRID (a bundled grid name or a .toml..."),
    "report": LazyCommand("ablate.report.cli:report_command",
                          "Write an HTML report of RUN_DIRS (grid runs from `ablate..."),
    "train": LazyCommand("ablate.train.cli:train_command",
                         "Train and evaluate one cell: a head (softmax unless --head) +..."),
    "tune": LazyCommand("ablate.tune.cli:tune_command",
                        "Tune every objective of GRID (a bundled grid name or a .toml..."),
}


class Moved(NamedTuple):
    """Where an old spelling of a command went: `to`, typed after `ablate`; `works`: the old spelling still runs
    (saying the new one on stderr), or it is refused in one line naming the new one (what it meant has moved)."""

    to: str
    works: bool


# Every old spelling, in one map (as timm's _registry declares its deprecated model names). A key is what was typed
# after `ablate`: words, then "[OPTIONS]" for any option right after them or "--name" for that option anywhere after.
MOVED = {
    "bench [OPTIONS]": Moved("bench run [OPTIONS]", works=True),
    "bench gate": Moved("gate run", works=True),
    "bench counts": Moved("gate counts", works=True),
    "bench baseline": Moved("gate baseline", works=True),
    "bench run --world": Moved("bench world --world N", works=False),
    "bench run --gate": Moved("gate run [--against REV]", works=False),
    "bench run --write-baseline": Moved("gate baseline", works=False),
}
HELP_OPTIONS = ("-h", "--help")


def _matches(old: str, args: list) -> int:
    """How many leading words of `args` the old spelling `old` (a key of MOVED) replaces; 0 when it does not match."""
    *words, last = old.split()
    n = len(words)
    if args[:n] != words:
        return 0
    if last == "[OPTIONS]":
        return n if len(args) > n and args[n].startswith("-") and args[n] not in HELP_OPTIONS else 0
    if last.startswith("--"):
        return n if any(arg == last or arg.startswith(last + "=") for arg in args[n:]) else 0
    return n + 1 if args[n:n + 1] == [last] else 0


def respell(args: list, note=lambda line: click.echo(line, err=True)) -> list:
    """`args` (what follows `ablate`) with every old spelling in MOVED replaced by its new one, each replacement
    then told through `note`; a click.UsageError naming the new spelling for one that no longer works."""
    args, notes = list(args), []
    for old, moved in MOVED.items():
        matched = _matches(old, args)
        if not matched:
            continue
        if not moved.works:
            raise click.UsageError(f"`ablate {old}` is now `ablate {moved.to}`")
        notes.append(f"note: `ablate {old}` is now `ablate {moved.to}`; the old spelling still works for now")
        args = [*(word for word in moved.to.split() if word != "[OPTIONS]"), *args[matched:]]
    for line in notes:
        note(line)
    return args


class LazyGroup(click.Group):
    """A Click group whose LAZY_COMMANDS are imported only when invoked; its help lists them by their declared
    short help. Old spellings of commands are replaced (or refused) first, as MOVED declares."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Click's main. Standalone (the command line), every ending of a command goes through
        ablate.messages.standalone: a bounded, escaped message and the exit status of what ended it, no traceback.
        SIGTERM and SIGHUP end it as Ctrl-C does (ablate.signals.Terminated) from here on, importing a command's
        modules included, so that every way it ends runs its cleanup and exits 128 + the signal's number."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        writes_fail_instead_of_killing()
        with termination_raises(Terminated):
            standalone(lambda: super(LazyGroup, self).main(args, prog_name, complete_var, standalone_mode=False,
                                                           **extra))

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, args if ctx.resilient_parsing else respell(args))

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS:
            return lazy(LAZY_COMMANDS[name].target).resolve()
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        """Click's Commands section, each name with its short help, without importing a lazy command."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))  # as Click cuts every short help of the section
        rows = []
        for name in names:
            if name in LAZY_COMMANDS:
                rows.append((name, LAZY_COMMANDS[name].short_help))
                continue
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=environment_help())
@click.version_option(package_name="ablate")
def main():
    """Benchmarks and ablations of Center Loss (Wen et al., ECCV 2016)."""
    try:
        check_environment()  # a bad limit fails every command, before it starts
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("variants")
@click.option("--device", default="cpu", show_default=True, help="Device to check availability on.")
def variants_command(device):
    """List the center-loss variants (built-in and installed plugins), their cost and whether they run on DEVICE;
    then any plugin that failed to load, with its error."""
    from ablate.loss.devices import device_type
    from ablate.loss.registry import PLUGIN_ERRORS, available_variants, get_variant, variant_names

    try:
        kind = device_type(device)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--device") from None
    runnable = set(available_variants(kind))
    if not runnable:
        say(f"torch cannot compute on a {kind} device here: no variant runs on {device}", err=True)
    for name in variant_names():
        v = get_variant(name)
        state = "available" if name in runnable else "unavailable"
        extra = f"; own update: {', '.join(v.update_rules)}" if v.update is not None else ""
        extra += f"; needs {v.runs_on}" if name not in runnable else ""
        extra += f"; from {v.source}" if v.source != "built-in" else ""
        click.echo(f"{name:<9} {state:<11} work {v.work:<17} memory {v.memory}{extra}")
    for name, error in PLUGIN_ERRORS.items():
        say(f"{name:<9} {'broken':<11} plugin failed to load: {error}")
