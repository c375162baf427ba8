"""`ablate gate`: `run` (A/B against a base revision, the scaling laws, this machine's baseline), `counts` (the gate
cases' work against the committed counts) and `baseline` (this machine's time ratios, recorded)."""

import dataclasses
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import pandas as pd

from ablate.gate import ab, baseline, expected_counts, instructions, scaling
from ablate.gate.cases import CASES
from ablate.gate.sides import GateError
from ablate.gate.verdicts import SIGNALS
from ablate.messages import say


def _format(table: pd.DataFrame) -> str:
    return table.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def _ab_failures(table: pd.DataFrame, threshold: float) -> list:
    failures = []
    for row in table.itertuples():
        if row.counts == "fail":
            failures.append(f"{row.case} does more work: {row.counts_moved}")
        if row.instructions == "fail":
            failures.append(f"{row.case} executes x{row.instructions_ratio:.4f} the instructions (limit "
                            f"{1 + instructions.THRESHOLD:g})")
        if row.wall == "fail":
            failures.append(f"{row.case} x{row.ratio:.3f} (95% CI [{row.ci_low:.3f}, {row.ci_high:.3f}], all above "
                            f"{1 + threshold:g})")
    return failures


def side_by_side(table: pd.DataFrame) -> pd.DataFrame:
    """The three signals per case, base -> head where both are counts: ops, MFLOP, MB allocated and their
    verdict; instructions per call and their verdict; the wall-clock ratio with its interval and verdict."""
    def pair(base, head, fmt):
        return "" if pd.isna(head) else f"{fmt(base)}->{fmt(head)}"

    def text(value):
        return "" if pd.isna(value) else value

    def ratio(row):
        return "" if pd.isna(row.ratio) else f"x{row.ratio:.3f} [{row.ci_low:.3f},{row.ci_high:.3f}]"

    return pd.DataFrame([{
        "case": row.case, "ops": pair(row.base_ops, row.head_ops, lambda v: f"{v:.0f}"),
        "MFLOP": pair(row.base_mflop, row.head_mflop, lambda v: f"{v:.4g}"),
        "MB alloc": pair(row.base_mb, row.head_mb, lambda v: f"{v:.4g}"), "counts": text(row.counts),
        "Minstr/call": pair(row.base_instructions, row.head_instructions, lambda v: f"{v / 1e6:.4g}"),
        "instr": "" if pd.isna(row.instructions_ratio) else f"x{row.instructions_ratio:.4f}",
        "instructions": text(row.instructions), "wall (95% CI)": ratio(row), "wall": text(row.wall),
        "verdict": row.verdict,
    } for row in table.itertuples()])


def _run_ab(repo: Path, rev: str, cases: tuple, signals: ab.Signals, allow_dirty: bool) -> list:
    if "instructions" in signals and instructions.unavailable():
        click.echo(f"instruction gate skipped: {instructions.unavailable()}")
        signals = dataclasses.replace(signals, names=tuple(name for name in signals.names if name != "instructions"))
    click.echo(f"A/B on {', '.join(signals.names) or 'no signal'}: work counts fail above "
               f"+{expected_counts.TOLERANCE:.0%} or on a new op; instructions above x{1 + instructions.THRESHOLD:g} "
               f"({instructions.CALLS} calls under callgrind per side); wall clock: {signals.processes} processes per "
               f"side, {signals.rounds} interleaved rounds of {signals.round_ms:g} ms, fails when the whole 95% "
               f"interval of head/base lies above {1 + signals.threshold:g}")
    try:
        table, sides = ab.compare(repo, rev, cases, signals, allow_dirty=allow_dirty,
                                  progress=lambda line: say(f"  {line}", err=True))
    except GateError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(sides)
    shown = side_by_side(table)
    click.echo(shown.to_string(index=False))
    notes = table[table["note"].fillna("") != ""]
    for row in notes.itertuples():
        say(f"  {row.case}: {row.note}")
    return _ab_failures(table, signals.threshold)


def _run_laws(slack: float) -> list:
    table = scaling.check_laws(slack=slack)
    click.echo("\nscaling laws (time at the larger class count over the smaller, same process):")
    click.echo(_format(table.drop(columns="why")))
    return [f"{row.law}: growth {row.growth:.3g}, expected {row.bound} ({row.why})"
            for row in table[~table["holds"]].itertuples()]


def _show_baseline() -> None:
    try:
        baselines = baseline.load_baselines()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    machine = baseline.fingerprint()
    if machine not in baselines:
        kept = "; ".join(baselines) or "none"
        click.echo(f"\nno baseline for this machine ({machine}); kept for: {kept}. Baselines inform, never fail: "
                   "`ablate gate baseline` records one for this machine.")
        return
    table = baseline.compare_with_baseline(baseline.measure_ratios(), baselines, machine)
    click.echo(f"\ntime ratios against this machine's baseline ({machine}; information, not a verdict):")
    click.echo(_format(table))


COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


@contextmanager
def own_compile_cache() -> Iterator[Path]:
    """A compile cache of the gate's own for the block: torch.compile's inductor (the compiled variant, in this
    process and in every worker, which inherit the environment) writes into a temp folder removed when the block
    ends, instead of leaving $TMPDIR/torchinductor_<user> behind; a cache the caller names in $TORCHINDUCTOR_CACHE_DIR
    is kept and used as it is."""
    if os.environ.get(COMPILE_CACHE_ENV):
        yield Path(os.environ[COMPILE_CACHE_ENV])
        return
    with tempfile.TemporaryDirectory(prefix="ablate-gate-inductor-") as folder:
        os.environ[COMPILE_CACHE_ENV] = folder
        try:
            yield Path(folder)
        finally:
            os.environ.pop(COMPILE_CACHE_ENV, None)


@click.group("gate")
@click.pass_context
def gate_command(ctx):
    """Gate a change's speed: A/B against a base revision and the scaling laws (run), the gate cases' work counts
    (counts), this machine's baseline (baseline)."""
    ctx.with_resource(own_compile_cache())


@gate_command.command("run")
@click.option("--against", "rev", default=None,
              help="Base revision to compare the working tree with (e.g. origin/main, HEAD~1). Without it, only "
                   "the scaling laws run.")
@click.option("--repo", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".",
              show_default=True, help="The git checkout whose working tree is the head side.")
@click.option("--case", "case_names", multiple=True, type=click.Choice([case.name for case in CASES]),
              help="Compare only this case (repeatable; default: every gate case).")
@click.option("--threshold", type=click.FloatRange(0.0, 10.0, min_open=True), default=ab.DEFAULT_THRESHOLD,
              show_default=True, help="A case fails when its whole interval of head/base lies above 1 + threshold.")
@click.option("--rounds", type=click.IntRange(ab.MIN_ROUNDS, 1000), default=ab.DEFAULT_ROUNDS, show_default=True,
              help="Interleaved rounds per case (each side once per round).")
@click.option("--round-ms", type=click.FloatRange(1.0, 60_000.0), default=ab.DEFAULT_ROUND_MS, show_default=True,
              help="Timing budget per process per round, in ms.")
@click.option("--processes", type=click.IntRange(1, 16), default=ab.PROCESSES_PER_SIDE, show_default=True,
              help="Worker processes per side.")
@click.option("--allow-dirty", is_flag=True, help="Measure a working tree with uncommitted changes as it is.")
@click.option("--signal", "signal_names", multiple=True, type=click.Choice(SIGNALS),
              help="Compare by this signal only (repeatable; default: counts, instructions and wall).")
@click.option("--laws/--no-laws", default=True, show_default=True, help="Check the scaling laws.")
@click.option("--law-slack", type=click.FloatRange(1.0, 100.0), default=1.0, show_default=True,
              help="Loosen each law's bound by this factor (CI uses 1.5 on shared machines).")
@click.option("--baseline/--no-baseline", "show_baseline", default=True, show_default=True,
              help="Print this machine's ratios next to its own baseline, if it has one (never a failure).")
def run_command(rev, repo, case_names, threshold, rounds, round_ms, processes, allow_dirty, signal_names, laws,
                law_slack, show_baseline):
    """Fail on a real slowdown: A/B against a base revision on this machine, and the scaling laws.

    Exits with status 1 naming each failed case (its ratio and interval) or broken law.
    """
    started = time.monotonic()
    failures = []
    if rev is not None:
        cases = tuple(case for case in CASES if not case_names or case.name in case_names)
        signals = ab.Signals(names=tuple(signal_names) or SIGNALS, rounds=rounds, round_ms=round_ms,
                             processes=processes, threshold=threshold)
        failures += _run_ab(repo, rev, cases, signals, allow_dirty)
    if laws:
        failures += _run_laws(law_slack)
    if show_baseline:
        _show_baseline()
    elapsed = time.monotonic() - started
    if failures:
        raise click.ClickException(f"performance gate failed after {elapsed:.0f} s:\n  " + "\n  ".join(failures))
    parts = (("the A/B comparison", rev is not None), ("the scaling laws", laws))
    checked = " and ".join(part for part, on in parts if on)
    click.echo(f"\nperformance gate passed: {checked or 'nothing checked'} ({elapsed:.0f} s)")


@gate_command.command("baseline")
def baseline_command():
    """Measure the gate cases' time ratios and store them as this machine's baseline (information only).

    Refresh it only when a change is meant to change speed or this machine's setup changed, and say why
    in the commit.
    """
    measured = baseline.measure_ratios()
    try:
        path = baseline.write_baseline(measured)
    except ValueError as exc:  # the file there is not a baseline file: it is kept as it is
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote this machine's entry ({baseline.fingerprint()}) to {path}:\n"
               + pd.Series(measured, name="ratio").to_string())


def counts_table(measured: dict) -> pd.DataFrame:
    """One row per case: ops dispatched, MFLOP, MB allocated, peak MB."""
    return pd.DataFrame([{"case": case, "ops": sum(c["ops"].values()), "MFLOP": c["flops"] / 1e6,
                          "MB allocated": c["bytes"] / 1e6, "peak MB": c["peak_bytes"] / 1e6}
                         for case, c in measured.items()])


@gate_command.command("counts")
@click.option("--write", is_flag=True,
              help=f"Store the counts as the expected ones ({expected_counts.EXPECTED_PATH.name}); review its diff "
                   "and say why in the commit.")
def counts_command(write):
    """Count each gate case's work (ATen ops, FLOPs, bytes allocated, peak) and check it against the committed
    expected counts; exits with status 1 naming each case, op and total that moved by more than 1%.

    Counts are the same on every machine with the same torch."""
    measured = expected_counts.measure()
    click.echo(_format(counts_table(measured)))
    if write:
        path = expected_counts.write(measured)
        click.echo(f"wrote {path}")
        return
    try:
        expected = expected_counts.load()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    differences = expected_counts.check(expected, measured)
    if differences:
        raise click.ClickException("work counts differ from the expected ones:\n  " + "\n  ".join(differences)
                                   + f"\nIf the change is meant, refresh them with {expected_counts.REFRESH}.")
    click.echo(f"work counts match {expected_counts.EXPECTED_PATH.name}")
