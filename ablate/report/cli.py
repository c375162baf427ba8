"""`ablate report`: one self-contained HTML page from one or more run folders."""

import hashlib
import re
from pathlib import Path

import click

from ablate.analysis.findings import parse_reference
from ablate.io import check_writable
from ablate.messages import say
from ablate.report.build import load_runs, write_report

REPORTS = Path("reports")
MAX_NAME = 80  # characters of a default report name before its ".html"


def default_report_path(run_dirs) -> Path:
    """reports/<run folder name>.html; for several runs their names joined by "+" (reports/ablation+bench.html),
    cut to MAX_NAME characters with a short hash of the whole so that distinct runs keep distinct names. Characters
    other than letters, digits, ".", "_" and "-" become "-"."""
    names = [re.sub(r"[^A-Za-z0-9._-]+", "-", Path(d).resolve().name).strip(".-") or "run" for d in run_dirs]
    name = "+".join(names)
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
        name = f"{name[:MAX_NAME - 9]}-{digest}"
    return REPORTS / f"{name}.html"


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The HTML file to write [default: reports/<run folder name>.html; for several runs their names "
                   "joined by '+', at most 80 characters].")
@click.option("--title", default=None, help="Page title (default: the run folder names).")
@click.option("--reference", default="lambda=0", show_default=True, metavar="KEY=VALUE",
              help="The setting a grid's findings compare every other against.")
def report_command(run_dirs, out, title, reference):
    """Write an HTML report of RUN_DIRS (grid runs from `ablate grid`, bench runs from `ablate bench`, distributed
    bench runs from `ablate bench world`).

    The file is self-contained: figures are embedded PNGs, styles inline, no scripts, no network. Without --out it
    is named after the run folders (reports/ablation.html for runs/ablation), so a report of another run does not
    overwrite it.
    """
    out = default_report_path(run_dirs) if out is None else out
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
