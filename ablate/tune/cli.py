"""`ablate tune`: every objective of a grid tuned on validation data with the same budget, then its selected setting
scored on fresh seeds' test splits, resumably."""

import sys
from pathlib import Path

import click

from ablate.grid.cli import check_executor_options, check_workers, set_options
from ablate.grid.executors import EXECUTORS, make_executor
from ablate.grid.runner import check_runnable_here
from ablate.grid.spec import load_spec
from ablate.metrics import label
from ablate.runs.configs import describe, varying
from ablate.runs.folder import check_can_write
from ablate.runs.record import validation_label
from ablate.runs.summary import mean_ci_text, summary_table
from ablate.runs.tables import results_table
from ablate.train.config import config_columns
from ablate.tune.search import TuneOutcome, run_tune, trial_config
from ablate.tune.settings import settings_from_table
from ablate.tune.space import plan_objectives


def _search_lines(outcome: TuneOutcome, metric: str) -> list:
    """Per objective: its trials by state and its selected setting with its validation value."""
    lines = []
    for search in outcome.searches:
        states = [t.state.name for t in search.trials()]
        counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAIL") if s in states)
        lines.append(f"{search.objective.label}: {search.counted()} trials ({counts})")
        finished = [t for t in search.trials() if t.state.name == "COMPLETE"]
        if not finished:
            lines.append("  no trial finished: no setting selected (every trial was pruned, diverged or failed)")
            continue
        best = search.study.best_trial
        setting = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
        lines.append(f"  selected trial {best.number}: {setting}; {validation_label(label(metric))} {best.value:.4f}")
    return lines


def _final_lines(outcome: TuneOutcome, metric: str) -> list:
    """Per selected setting: the mean and 95% CI over its final seeds of the metric on test."""
    if not outcome.finals:
        return []
    columns = config_columns()
    summary = summary_table(results_table(list(outcome.finals.values()), columns), columns)
    keys = varying(summary, [c for c in columns if c != "seed"])
    lines = [f"final seeds, {label(metric)} on the test split (mean ± 95% CI over seeds):"]
    for _, row in summary.iterrows():
        text = mean_ci_text(row.get(f"{metric}_mean"), row.get(f"{metric}_ci95"))
        lines.append(f"  {describe({k: row[k] for k in keys}) or 'the grid'}: {text or 'no mean'} "
                     f"({row['n_seeds']} ok, {row['n_diverged']} diverged, {row['n_failed']} failed)")
    return lines


@click.command("tune")
@click.argument("grid")
@click.option("--set", "overrides", multiple=True, callback=set_options, metavar="KEY=V1,V2,...",
              help="Set an axis of the grid (any cell option), as `ablate grid --set` does.")
@click.option("--out", "run_dir", type=click.Path(file_okay=False), required=True,
              help="Run folder; rerun the same command to resume.")
@click.option("--budget", type=click.IntRange(min=1), default=None,
              help="Trials per objective (default: the grid's [tune] budget, else 20).")
@click.option("--metric", default=None, help="The validation metric to optimize, a metric of the registry with a "
                                             "direction (default: the grid's [tune] metric, else cosine MAP@R where "
                                             "registered, else map_at_r).")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Fresh seeds each selected setting is scored on (default: the grid's [tune] seeds, else 10).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local worker processes (torch threads divided among them).")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="local processes, or tasks on a Ray cluster.")
@click.option("--address", default=None, help="Ray cluster address (with --executor ray; default: a local Ray).")
@click.option("--quiet", is_flag=True, help="No progress bars; only the final lines.")
def tune_command(grid, overrides, run_dir, budget, metric, seeds, workers, executor, address, quiet):
    """Tune every objective of GRID (a bundled grid name or a .toml file) on validation data, then score each
    objective's selected setting on fresh seeds' test splits, into RUN_DIR.

    An objective is a row of the grid's varied keys other than the searched ones (lr, lambda, alpha and each head's
    and pair loss's parameters, from their registries; a grid's [tune] table narrows them). Each gets the same
    budget of trials (Optuna's TPE, seeded; trials falling behind the others at the same epoch pruned), trained on
    the train split and scored on the validation split only; the test split is read by the final seeds alone.
    Rerunning the same command resumes. Exits 1 if an objective has no selected setting or a final cell failed.
    """
    check_executor_options(executor, workers, address)
    try:
        check_can_write(run_dir, "tune")
        spec = load_spec(grid).with_overrides(overrides)
        settings = settings_from_table(spec.tune, spec.source).with_overrides(
            "--budget/--metric/--seeds", budget=budget, metric=metric, seeds=seeds)
        objectives = plan_objectives(spec, settings)
        if executor == "local":
            configs = [trial_config(o, {}, settings) for o in objectives]
            check_runnable_here(configs)
            check_workers(configs, workers)
        outcome = run_tune(spec, objectives, settings, run_dir, make_executor(executor, workers, address),
                           quiet=quiet)
    except (ValueError, RuntimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in [*_search_lines(outcome, settings.metric), *_final_lines(outcome, settings.metric)]:
        click.echo(line)
    epochs = outcome.trained_epochs
    click.echo(f"trained {epochs['trials']} epochs in trials and {epochs['final seeds']} in final seeds now, in "
               f"{outcome.wall_time_s:.1f} s; tables in {Path(run_dir)}/trials.parquet, results.parquet")
    if outcome.interrupted:
        click.echo(f"interrupted: rerun the same command to resume; the study and finished cells are kept in "
                   f"{run_dir}", err=True)
        sys.exit(outcome.exit_status)
    unselected = [s for s in outcome.searches if not any(t.state.name == "COMPLETE" for t in s.trials())]
    if unselected or any(r["status"] == "failed" for r in outcome.finals.values()):
        sys.exit(1)
