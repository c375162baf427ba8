"""`ablate bench gate` (A/B against a base revision, scaling laws, this machine's baseline) and
`ablate bench baseline`."""

import time
from pathlib import Path

import click
import pandas as pd

from ablate.bench import ab, gate, scaling


def _format(table: pd.DataFrame) -> str:
    return table.to_string(index=False, float_format=lambda v: f"{v:.4g}")


def _ab_failures(table: pd.DataFrame, threshold: float) -> list:
    failed = table[table["verdict"] == "fail"]
    return [f"{row.case} x{row.ratio:.3f} (95% CI [{row.ci_low:.3f}, {row.ci_high:.3f}], all above "
            f"{1 + threshold:g})" for row in failed.itertuples()]


def _run_ab(repo: Path, rev: str, cases: tuple, threshold: float, rounds: int, round_ms: float, processes: int,
            allow_dirty: bool) -> list:
    click.echo(f"A/B: {processes} processes per side, {rounds} interleaved rounds of {round_ms:g} ms per process "
               f"per case; a case fails when its whole 95% interval of head/base lies above {1 + threshold:g}")
    try:
        table, sides = ab.compare(repo, rev, cases, rounds=rounds, round_ms=round_ms, processes=processes,
                                  threshold=threshold, allow_dirty=allow_dirty,
                                  progress=lambda line: click.echo(f"  {line}", err=True))
    except ab.GateError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(sides)
    shown = table.rename(columns={"base_ms": "base ms", "head_ms": "head ms", "ci_low": "95% CI low",
                                  "ci_high": "95% CI high"})
    click.echo(_format(shown.drop(columns="note" if not table["note"].any() else [])))
    return _ab_failures(table, threshold)


def _run_laws(slack: float) -> list:
    table = scaling.check_laws(slack=slack)
    click.echo("\nscaling laws (time at the larger class count over the smaller, same process):")
    click.echo(_format(table.drop(columns="why")))
    return [f"{row.law}: growth {row.growth:.3g}, expected {row.bound} ({row.why})"
            for row in table[~table["holds"]].itertuples()]


def _show_baseline() -> None:
    try:
        baselines = gate.load_baselines()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    machine = gate.fingerprint()
    if machine not in baselines:
        kept = "; ".join(baselines) or "none"
        click.echo(f"\nno baseline for this machine ({machine}); kept for: {kept}. Baselines inform, never fail: "
                   "`ablate bench baseline` records one for this machine.")
        return
    table = gate.compare_with_baseline(gate.measure_ratios(), baselines, machine)
    click.echo(f"\ntime ratios against this machine's baseline ({machine}; information, not a verdict):")
    click.echo(_format(table))


@click.command("gate")
@click.option("--against", "rev", default=None,
              help="Base revision to compare the working tree with (e.g. origin/main, HEAD~1). Without it, only "
                   "the scaling laws run.")
@click.option("--repo", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".",
              show_default=True, help="The git checkout whose working tree is the head side.")
@click.option("--case", "case_names", multiple=True, type=click.Choice([case.name for case in gate.CASES]),
              help="Compare only this case (repeatable; default: every gate case).")
@click.option("--threshold", type=click.FloatRange(0.0, 10.0, min_open=True), default=ab.DEFAULT_THRESHOLD,
              show_default=True, help="A case fails when its whole interval of head/base lies above 1 + threshold.")
@click.option("--rounds", type=click.IntRange(5, 1000), default=ab.DEFAULT_ROUNDS, show_default=True,
              help="Interleaved rounds per case (each side once per round).")
@click.option("--round-ms", type=click.FloatRange(1.0, 60_000.0), default=ab.DEFAULT_ROUND_MS, show_default=True,
              help="Timing budget per process per round, in ms.")
@click.option("--processes", type=click.IntRange(1, 16), default=ab.PROCESSES_PER_SIDE, show_default=True,
              help="Worker processes per side.")
@click.option("--allow-dirty", is_flag=True, help="Measure a working tree with uncommitted changes as it is.")
@click.option("--laws/--no-laws", default=True, show_default=True, help="Check the scaling laws.")
@click.option("--law-slack", type=click.FloatRange(1.0, 100.0), default=1.0, show_default=True,
              help="Loosen each law's bound by this factor (CI uses 1.5 on shared machines).")
@click.option("--baseline/--no-baseline", "show_baseline", default=True, show_default=True,
              help="Print this machine's ratios next to its own baseline, if it has one (never a failure).")
def gate_command(rev, repo, case_names, threshold, rounds, round_ms, processes, allow_dirty, laws, law_slack,
                 show_baseline):
    """Fail on a real slowdown: A/B against a base revision on this machine, and the scaling laws.

    Exits with status 1 naming each failed case (its ratio and interval) or broken law.
    """
    started = time.monotonic()
    failures = []
    if rev is not None:
        cases = tuple(case for case in gate.CASES if not case_names or case.name in case_names)
        failures += _run_ab(repo, rev, cases, threshold, rounds, round_ms, processes, allow_dirty)
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


@click.command("baseline")
def baseline_command():
    """Measure the gate cases' time ratios and store them as this machine's baseline (information only).

    Refresh it only when a change is meant to change speed or this machine's setup changed, and say why
    in the commit.
    """
    measured = gate.measure_ratios()
    path = gate.write_baseline(measured)
    click.echo(f"wrote this machine's entry ({gate.fingerprint()}) to {path}:\n"
               + pd.Series(measured, name="ratio").to_string())
