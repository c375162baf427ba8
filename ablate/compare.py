"""`ablate compare RUN_A RUN_B`: did a change move the results? The findings between two grid runs, one block per
configuration both hold: each headline metric on its own line, then the finding in words, wrapped to the terminal."""

import shutil
import textwrap
from pathlib import Path

import click

from ablate.messages import say

ONE_CONFIGURATION = "the configuration both runs hold"  # the label of a comparison when no option varies
MAX_WIDTH = 120


def _wrapped(text: str, width: int, indent: str = "") -> str:
    """`text` filled to `width` after `indent`; its next lines indented by four (below an item's two)."""
    return textwrap.fill(text, width=width, initial_indent=indent, subsequent_indent="    ")


def row_lines(row, against: str, width: int) -> list:
    """A comparison as a block: 'lambda=0.1 (against RUN_A; seeds: 3 paired)', a line per headline metric with its
    change, interval, p-value and verdict, then the row in words."""
    from ablate.analysis.findings import cell_text, column_label
    from ablate.metrics import headline_metrics
    from ablate.runs.configs import describe

    lines = [_wrapped(f"{describe(row.setting) or ONE_CONFIGURATION} (against {against}; seeds: {row.seeds})",
                      width)]
    differences = [(m, row.differences.get(m.name)) for m in headline_metrics()]
    label_width = max((len(column_label(m)) for m, d in differences if d is not None), default=0)
    lines += [_wrapped(f"{column_label(m):<{label_width}}  {cell_text(d)}", width, "  ")
              for m, d in differences if d is not None]
    lines.append(_wrapped(f"in words: {row.words()}", width, "  "))
    return lines


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
    from ablate.analysis.findings import DROPPED_TEXT, method_text, pairing_sentence, power_sentence, run_findings
    from ablate.runs.configs import format_label, split_noise
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
    width = min(shutil.get_terminal_size((MAX_WIDTH, 24)).columns, MAX_WIDTH)
    for row in findings.rows:
        say("\n".join(row_lines(row, run_a.name, width)), max_lines=None)
        click.echo("")
    count = len(findings.rows)
    what = f"{run_b.name} against {run_a.name} on the {count} configuration{'s' if count != 1 else ''} both hold"
    if findings.changed:
        what += " (the runs differ in " + ", ".join(f"{k}: {format_label(a)} -> {format_label(b)}"
                                                     for k, (a, b) in findings.changed.items()) + ")"
    what += f" ({findings.unmatched} held by one run only)." if findings.unmatched else "."
    noise = split_noise(*(run.results for run in runs))
    caption = f"{what} {pairing_sentence(findings)} {method_text(findings, noise)} {DROPPED_TEXT}"
    say(_wrapped(caption, width), max_lines=None)
    power = power_sentence(findings)
    if power:
        click.echo("\n" + _wrapped(power, width))
