"""`ablate export RUN`: a grid run's kept weights written where the user asks (--cell ID --out DIR), and the run
logged to MLflow (--mlflow [URI]); and `ablate grid ... --track mlflow[:URI]`, which logs the grid the same way when
it ends.

Tracking is a layer over the grid command, not inside it: ablate.grid trains and writes run folders, this package
reads them (through ablate.runs) and logs them with their report (ablate.report), so the `grid` subcommand is
ablate.grid.cli's with --track added here (`with_tracking`).
"""

import shutil
import sys
import tempfile
from pathlib import Path

import click

from ablate.grid.cli import grid_command as untracked_grid_command
from ablate.io import atomic_write_json, atomic_write_with, check_writable
from ablate.messages import say
from ablate.runs.weights import kept_weights

SIGNALLED = 128  # above it: the exit status of a grid a signal ended (ablate.signals.interrupt_status), not logged


def export_weights(run_dir: Path, cell_id: str, out_dir: Path) -> list[Path]:
    """Copy the kept weights of cell `cell_id` of the grid run `run_dir` to out_dir/<id>.safetensors, with its
    record as out_dir/<id>.json (the config that rebuilds its model: ablate.train.cell.restore_cell); both checked
    first (ablate.runs.weights.kept_weights), each written atomically, never into the run folder."""
    source, record = kept_weights(run_dir, cell_id)
    if out_dir.resolve() == run_dir.resolve() or run_dir.resolve() in out_dir.resolve().parents:
        raise ValueError(f"--out {out_dir} lies inside the run folder {run_dir}; export the weights elsewhere")
    weights = atomic_write_with(out_dir / source.name, lambda tmp: shutil.copyfile(source, tmp))
    return [weights, atomic_write_json(out_dir / f"{cell_id}.json", record)]


def log_to_mlflow(run_dir: Path, tracking_uri: str | None, experiment: str | None = None) -> str:
    """Log the grid run `run_dir` and its HTML report to MLflow (ablate.export.mlflow); returns a line saying what
    was done."""
    from ablate.export.mlflow import MlflowTracker
    from ablate.report.build import build_report

    tracker = MlflowTracker.open(tracking_uri, experiment, run_dir)
    with tempfile.TemporaryDirectory(prefix="ablate-report-") as tmp:
        report = build_report([run_dir], Path(tmp) / "report.html", progress=False)
        logged = tracker.log(run_dir, report=report)
    where = tracking_uri or "MLflow's default store"
    return (f"MLflow ({where}): experiment {logged.experiment_name!r} (id {logged.experiment_id}): "
            f"{logged.created} cell run(s) created, {logged.updated} updated, {logged.unchanged} unchanged")


@click.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--cell", "cell_ids", multiple=True, metavar="ID",
              help="A cell whose kept weights to export (repeatable).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="The folder the weights go to (with --cell).")
@click.option("--mlflow", "tracking_uri", is_flag=False, flag_value="", default=None, metavar="[URI]",
              help="Log the run to MLflow: every cell an MLflow run in one experiment, the report an artifact. URI: "
                   "a tracking server or store; alone, MLflow's default (sqlite:///mlflow.db here).")
@click.option("--experiment", default=None, help="The MLflow experiment (default: 'ablate <RUN_DIR's path>').")
def export_command(run_dir, cell_ids, out_dir, tracking_uri, experiment):
    """Export RUN_DIR, a grid run: kept weights, MLflow runs.

    --cell ID --out DIR writes a cell's kept weights (<ID>.safetensors) and its record (<ID>.json) to DIR; --mlflow
    [URI] logs every cell as an MLflow run in one experiment, with the report as an artifact. Logging again updates
    the same MLflow runs, never adds."""
    if not cell_ids and tracking_uri is None:
        raise click.UsageError("nothing to export: give --cell ID --out DIR, --mlflow [URI], or both")
    if cell_ids and out_dir is None:
        raise click.UsageError("--cell needs --out DIR, the folder the weights go to")
    if out_dir is not None and not cell_ids:
        raise click.UsageError("--out applies to --cell")
    if out_dir is not None:
        try:
            check_writable(out_dir, folder=True)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--out") from None
    try:
        for cell_id in cell_ids:
            for path in export_weights(run_dir, cell_id, out_dir):
                say(f"wrote {path}")
        if tracking_uri is not None:
            say(log_to_mlflow(run_dir, tracking_uri or None, experiment))
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def _parse_track(value: str | None) -> tuple[str, str | None] | None:
    """--track mlflow or mlflow:URI -> ("mlflow", URI or None)."""
    if value is None:
        return None
    tracker, _, uri = value.partition(":")
    if tracker != "mlflow":
        raise click.BadParameter(f"expected mlflow or mlflow:URI, got {value!r}", param_hint="--track")
    return tracker, uri or None


def with_tracking(grid: click.Command) -> click.Command:
    """`grid` with --track mlflow[:URI]: the store and experiment opened before any cell trains (a store that cannot
    be used is refused first), the run logged when the grid ends (failed cells included; not when interrupted)."""

    def callback(track, experiment, **options):
        parsed = _parse_track(track)
        run_dir = options["run_dir"]
        if parsed is not None and run_dir is not None and not options["list_grids"]:
            from ablate.export.mlflow import MlflowTracker

            try:
                MlflowTracker.open(parsed[1], experiment, run_dir)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--track") from None
        status = 0
        assert grid.callback is not None  # a click.command always has its function
        try:
            grid.callback(**options)
        except SystemExit as exit_:
            status = exit_.code if isinstance(exit_.code, int) else 1
        if parsed is not None and run_dir is not None and not options["list_grids"] and status <= SIGNALLED:
            try:
                say(log_to_mlflow(Path(run_dir), parsed[1], experiment))
            except (ValueError, OSError) as exc:
                raise click.ClickException(f"the grid ran, but logging it failed: {exc}; log it again with `ablate "
                                           f"export {run_dir} --mlflow`") from None
        if status:
            sys.exit(status)

    params = [*grid.params,
              click.Option(["--track"], default=None, metavar="mlflow[:URI]",
                           help="Log the grid to MLflow when it ends: each cell an MLflow run in one experiment, the "
                                "report an artifact (URI: a tracking server or store; default MLflow's own)."),
              click.Option(["--experiment"], default=None,
                           help="The MLflow experiment, with --track (default: 'ablate <RUN_DIR's path>').")]
    return click.Command(grid.name, callback=callback, params=params, help=grid.help, short_help=grid.short_help,
                         epilog=grid.epilog)


grid_command = with_tracking(untracked_grid_command)
