"""`ablate compare RUN_A RUN_B`: did a change move the results? The findings table between two grid runs."""

from pathlib import Path

import click


@click.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
def compare_command(run_a, run_b):
    """Compare every configuration RUN_A and RUN_B both hold (every cell option but seed, and but the options each run
    holds at one value of its own, such as lambda 0 in one and 0.1 in the other), B against A: each headline
    metric's change with its simultaneous interval and adjusted p-value over seeds (ablate.analysis.stats), in
    numbers and in words. Seeds both runs ran are paired on (the others left out, and said so), never taken as
    independent draws; runs with no seed in common are compared unpaired. A side with one seed is untestable (the
    change alone)."""
    from ablate.analysis.findings import (
        DROPPED_TEXT,
        method_text,
        pairing_sentence,
        power_sentence,
        run_findings,
        split_noise_text,
    )
    from ablate.runs.configs import format_label
    from ablate.runs.loading import GridRun, load_run

    runs = []
    for path in (run_a, run_b):
        try:
            run = load_run(path)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        if not isinstance(run, GridRun):
            raise click.UsageError(f"{path} is a bench run, not a grid run; `ablate compare` takes two grid runs "
                                   "(from `ablate grid`)")
        runs.append(run)
    findings = run_findings(*runs)
    if not findings.rows:
        raise click.ClickException(f"{run_a} and {run_b} share no configuration (every cell option but seed)")
    frame = findings.frame()
    click.echo(frame.drop(columns="in words").to_string(index=False))
    click.echo("")
    for setting, words in zip(frame["setting"], frame["in words"]):
        click.echo(f"{setting}: {words}")
    click.echo("")
    count = len(findings.rows)
    what = f"{run_b.name} against {run_a.name} on the {count} configuration{'s' if count != 1 else ''} both hold"
    if findings.changed:
        what += " (the runs differ in " + ", ".join(f"{k}: {format_label(a)} -> {format_label(b)}"
                                                     for k, (a, b) in findings.changed.items()) + ")"
    what += f" ({findings.unmatched} held by one run only)." if findings.unmatched else "."
    method = method_text(findings, split_noise=split_noise_text(*(run.results for run in runs)))
    click.echo(f"{what} {pairing_sentence(findings)} {method} {DROPPED_TEXT}")
    power = power_sentence(findings)
    if power:
        click.echo(power)
