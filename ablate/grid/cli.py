"""`ablate grid`: run a grid of training cells into RUN_DIR, resumably; list the bundled grids."""

import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import click
import pandas as pd

from ablate.grid.execute import train_cell
from ablate.grid.executors import EXECUTORS, make_executor
from ablate.grid.preview import dry_run_lines, listing_lines
from ablate.grid.runner import GridOutcome, check_runnable_here, describe_cell, last_error_line, run_grid, varying_keys
from ablate.grid.spec import ALL_PRODUCTS, MAX_CELLS, SET_SCOPES, expand, load_spec, parse_set_option
from ablate.limits import check_process_count
from ablate.messages import say
from ablate.metrics import GRID_SUMMARY, get_metric, shown_in
from ablate.runs.folder import check_can_write
from ablate.runs.schema import PRUNED, STATUSES, setting_columns
from ablate.runs.summary import mean_ci_text


def set_options(ctx, param, values) -> dict:
    overrides = {}
    for text in values:
        try:
            key, parsed = parse_set_option(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if key in overrides:
            raise click.BadParameter(f"{key} is set twice; give all its values in one --set {key}=V1,V2,...")
        overrides[key] = parsed
    return overrides


def _summary_text(outcome: GridOutcome, run_dir: Path) -> str:
    """Mean ± 95% CI over seeds of the main metrics, one row per configuration of the varying settings."""
    path = run_dir / "summary.parquet"
    summary = pd.read_parquet(path) if path.exists() else pd.DataFrame()
    if summary.empty:
        return ""
    keys = setting_columns(varying_keys([c for _, c in outcome.plan.cells]))
    table = summary[[*keys, "n_seeds", "n_diverged", "n_failed"]].copy()
    for metric in shown_in(GRID_SUMMARY):
        if f"{metric}_mean" in summary:
            table[metric] = [mean_ci_text(m, c, get_metric(metric), n) for m, c, n in
                             zip(summary[f"{metric}_mean"], summary[f"{metric}_ci95"], summary["n_seeds"])]
    return ("mean ± 95% CI half-width over seeds (ok cells; none for a configuration with a diverged seed)\n"
            + table.to_string(index=False))


def _report(outcome: GridOutcome, run_dir: Path, quiet: bool) -> None:
    counts = outcome.status_counts()
    shown = [s for s in STATUSES if s != PRUNED or counts[s]]  # only a tune's trials are pruned
    say(f"{len(outcome.plan.cells)} cells: " + ", ".join(f"{counts[s]} {s}" for s in shown)
               + f" ({outcome.ran} run now); tables in {run_dir}/results.parquet, summary.parquet")
    if not quiet and (text := _summary_text(outcome, run_dir)):
        say(text, max_lines=None)
    keys = varying_keys([c for _, c in outcome.plan.cells])
    for problem in outcome.plan.invalid:
        say(f"set aside (not a valid record; its cell, if in the grid, ran again): {problem}", err=True)
    for cell_id, record in outcome.failed().items():
        say(f"failed {cell_id} {describe_cell(record, keys)}: {last_error_line(record)}", err=True)


def check_executor_options(executor: str, workers: int, address: str | None) -> None:
    """--address only with Ray, --workers only with local processes (click.UsageError otherwise)."""
    if executor != "ray" and address is not None:
        raise click.UsageError("--address applies to --executor ray")
    if executor == "ray" and workers != 1:
        raise click.UsageError("--workers applies to --executor local; Ray places tasks by its cluster's resources")


def check_workers(configs: list, workers: int) -> None:
    """Refuse more local workers than cores (or $ABLATE_MAX_PROCESSES), or than the host's memory holds with
    each running the grid's largest cell."""
    if workers == 1:
        return
    from ablate.train.memory import largest_host_memory

    check_process_count("--workers", workers, largest_host_memory(configs))


@click.command("grid")
@click.argument("grid", required=False, default="default")
@click.option("--set", "overrides", multiple=True, callback=set_options, metavar="KEY=V1,V2,...",
              help="Set an axis (any cell option, e.g. lambda=0,0.01 or epochs=2): in [axes] and, unless --set-scope "
                   "main, in every [[also]] table too (replacing its values where it names the key); --dry-run "
                   "says where each lands.")
@click.option("--set-scope", type=click.Choice(SET_SCOPES), default=ALL_PRODUCTS, show_default=True,
              help="Where each --set lands: every product of the grid, or its [axes] alone (each [[also]] table "
                   "keeps its own values).")
@click.option("--out", "run_dir", type=click.Path(file_okay=False), help="Run folder; rerun it to resume.")
@click.option("--dry-run", is_flag=True, help="Say what the grid would run (its products, where each --set lands, "
                                             "the cells per value, the trainings, an estimated time) and exit.")
@click.option("--list", "list_grids", is_flag=True,
              help="List the bundled grids with their cells and estimated times (with --workers), and exit.")
@click.option("--retry-failed", is_flag=True, help="Rerun the cells that failed in an earlier run.")
@click.option("--force", is_flag=True, help="Rerun every cell, finished or not.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local worker processes (torch threads divided among them); at most the cores (or "
                   "$ABLATE_MAX_PROCESSES) and what memory holds.")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="local processes, or tasks on a Ray cluster.")
@click.option("--address", default=None, help="Ray cluster address (with --executor ray; default: a local Ray).")
@click.option("--quiet", is_flag=True, help="No progress bar or per-cell lines; only the final summary.")
@click.option("--max-cells", type=click.IntRange(min=1), default=MAX_CELLS, show_default=True,
              help="Refuse a grid of more cells than this (counted from its axes, before anything runs).")
@click.option("--save-weights", is_flag=True,
              help="Keep each finished cell's model, head and centers in RUN_DIR/cells/<id>.safetensors (as the "
                   "grid's `save_weights = true`); kept weights are never rewritten but by --force.")
@click.option("--loader-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="DataLoader worker processes of each cell whose dataset streams (a factory's torch Datasets).")
def grid_command(grid, overrides, set_scope, run_dir, dry_run, list_grids, retry_failed, force, workers, executor,
                 address, quiet, max_cells, save_weights, loader_workers):
    """Train every cell of GRID (a bundled grid name or a .toml file; default: default) into RUN_DIR.

    The cells are the cartesian product of the grid's axes. Finished cells are kept as they end;
    rerunning the same command resumes. Exits 1 if any cell failed.
    """
    if list_grids:
        try:
            say("\n".join(listing_lines(workers)), max_lines=None)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        return
    if dry_run:
        try:
            base = load_spec(grid)
            say("\n".join(dry_run_lines(base.with_overrides(overrides, set_scope), base, overrides, set_scope,
                                        workers, max_cells)), max_lines=None)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        return
    if run_dir is None:
        raise click.UsageError("--out RUN_DIR is required")
    check_executor_options(executor, workers, address)
    try:
        check_can_write(run_dir, "grid")
        spec = load_spec(grid).with_overrides(overrides, set_scope)
        if save_weights:
            spec = replace(spec, save_weights=True)
        if executor == "local":
            configs = expand(spec, max_cells)
            check_runnable_here(configs)
            check_workers(configs, workers)
        # the plain trainer unless a cell keeps its weights or streams: only it shares trainings (ablate.grid.sharing)
        cell_fn = (partial(train_cell, save_weights=spec.save_weights, loader_workers=loader_workers)
                   if spec.save_weights or loader_workers else train_cell)
        outcome = run_grid(spec, run_dir, make_executor(executor, workers, address, cell_fn),
                           retry_failed=retry_failed, force=force, quiet=quiet, max_cells=max_cells)
    except (ValueError, RuntimeError, OSError) as exc:  # OSError: a write refused for permission or space
        raise click.ClickException(str(exc)) from None
    _report(outcome, Path(run_dir), quiet)
    if outcome.interrupted:
        say(f"interrupted: rerun the same command to resume; finished cells are kept in {run_dir}/cells", err=True)
        sys.exit(outcome.exit_status)
    if outcome.failed():
        sys.exit(1)
