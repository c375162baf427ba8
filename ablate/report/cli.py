"""`ablate report`: one self-contained HTML page from one or more run folders."""

from pathlib import Path

import click

from ablate.analysis.findings import parse_reference
from ablate.io import check_writable
from ablate.messages import say
from ablate.report.build import load_runs, write_report


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("reports/report.html"),
              show_default=True, help="The HTML file to write.")
@click.option("--title", default=None, help="Page title (default: the run folder names).")
@click.option("--reference", default="lambda=0", show_default=True, metavar="KEY=VALUE",
              help="The setting a grid's findings compare every other against.")
def report_command(run_dirs, out, title, reference):
    """Write an HTML report of RUN_DIRS (grid runs from `ablate grid`, bench runs from `ablate bench`, distributed
    bench runs from `ablate bench world`).

    The file is self-contained: figures are embedded PNGs, styles inline, no scripts, no network.
    """
    if out.suffix.lower() not in (".html", ".htm"):
        raise click.BadParameter(f"expected a file name ending in .html, got {out}", param_hint="--out")
    try:
        check_writable(out)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from None
    try:
        reference = parse_reference(reference)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--reference") from None
    try:
        runs = load_runs(run_dirs, reference)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    path = write_report(runs, out, title=title)
    say(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
