"""Build a report: load the runs, build each section step by step (with progress), write the page atomically."""

from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from ablate.analysis.family import declare_report_family
from ablate.io import atomic_write_text
from ablate.provenance import now
from ablate.report.html import render_page
from ablate.report.sections import empty_section, section_steps
from ablate.runs.loading import DEFAULT_REFERENCE, GridRun, load_run


def load_runs(run_dirs, reference: tuple = DEFAULT_REFERENCE) -> list:
    """Every run folder, read before any figure is drawn so that a bad one fails fast (ValueError); grid runs
    compare their settings against `reference` (key, value) in their findings."""
    runs = [load_run(d) for d in run_dirs]
    return [replace(run, reference=reference) if isinstance(run, GridRun) else run for run in runs]


def write_report(runs, out, *, title: str | None = None, progress: bool = True) -> Path:
    """Write one HTML page of `runs` (from load_runs) to `out`, whole or not at all; returns its path. The
    confirmatory tables of its grid runs form one family, adjusted over the whole page (ablate.analysis.family)."""
    declare_report_family(runs)
    sections = []
    for i, run in enumerate(runs):
        section = empty_section(run, anchor=f"run{i + 1}")
        for step in tqdm(section_steps(run), desc=f"report {run.path.name}", unit="part", disable=not progress):
            section.blocks += step(run)
        sections.append(section)
    title = title or "ablate report: " + ", ".join(run.path.name for run in runs)
    return atomic_write_text(out, render_page(title, now(), sections))


def build_report(run_dirs, out, *, title: str | None = None, progress: bool = True,
                 reference: tuple = DEFAULT_REFERENCE) -> Path:
    """The HTML report of `run_dirs` (grid, bench or distributed bench run folders) written to `out`."""
    return write_report(load_runs(run_dirs, reference), out, title=title, progress=progress)
