"""A grid's run folder logged to MLflow: one experiment per grid, one MLflow run per cell, nested under one run of
the grid itself. Needs the `mlflow` extra (`pip install -e '.[mlflow]'`); mlflow is imported only here, when a
grid is logged.

    tracker = MlflowTracker.open(tracking_uri, experiment_name, run_dir)   the store and the experiment (made if new)
    tracker.log(run_dir, report=path) -> Logged                            every cell, the grid's run, the report

Each cell's MLflow run, named by its cell id and the settings that vary in the grid, holds: its config as parameters
(every key, the value as text; None as "None"), its metrics (every metric of the registry the record holds as a
finite number, on test under its own name and on validation as val_<metric>) and the per-epoch curves as step metrics
(step = epoch, 1-based), the grid's provenance and the
cell's own as tags (ablate.<key>; the commit also as mlflow.source.git.commit), its status (ok and diverged:
FINISHED, pruned: KILLED, failed: FAILED; the cell's own in ablate.status).
The grid's run ("grid", tag ablate.kind = grid) holds the resolved grid.toml and the HTML report as artifacts and the
provenance as tags; the cells' runs are its children (mlflow.parentRunId), so the UI lists them under it.

Logging the same run folder again updates, never duplicates: each MLflow run carries its cell id (tag ablate.cell_id)
and is found by it; a cell whose record did not change since it was logged (tag ablate.finished_at) is left as it is,
one that was trained again (`ablate grid --force`) gets its new values logged into the same MLflow run.

The tracking URI: any MLflow accepts (http(s)://HOST for a tracking server, sqlite:///path.db, a folder); None is
MLflow's own default, which in MLflow 3 is sqlite:///mlflow.db in the current folder (./mlruns when that folder
already holds runs). A local SQLite store keeps its artifacts in mlartifacts/ beside the database file, as `mlflow
server` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ablate.metrics import METRICS
from ablate.runs.manifest import read_manifest
from ablate.runs.readers import read_provenance, read_records
from ablate.runs.record import CURVES_OF_EPOCHS, validation_key
from ablate.runs.schema import FAILED, GRID_SPEC, PRUNED, RunFolderError

CELL_TAG, FINISHED_TAG, KIND_TAG = "ablate.cell_id", "ablate.finished_at", "ablate.kind"
PARAMS_PER_CALL, METRICS_PER_CALL, TAGS_PER_CALL = 100, 1000, 100  # MLflow's log_batch limits
MAX_TAG_CHARS = 5000  # MLflow keeps a tag value of up to 5,000 characters (8,000 on some stores)
# a pruned cell (a tuning trial stopped for falling behind) was ended early: MLflow's KILLED
MLFLOW_STATUS = {"ok": "FINISHED", "diverged": "FINISHED", PRUNED: "KILLED", FAILED: "FAILED"}
RECORD_TAGS = ("status", "objective", "resolved_device", "host", "git_commit", "git_dirty", "finished_at", "error",
               "held_out_classes", "scored_on_test", "validation_metric", "torch_threads", "world_size",
               "diverged_epoch")


@dataclass
class Logged:
    """What one logging did: the experiment, and the cells' MLflow runs created, updated (trained again since) and
    left as they were."""

    experiment_id: str
    experiment_name: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def _mlflow():
    try:
        import mlflow
    except ImportError as exc:
        raise ValueError(f"MLflow tracking needs the mlflow package ({exc}): pip install -e '.[mlflow]'") from None
    return mlflow


def _artifact_location(tracking_uri: str | None) -> str | None:
    """mlartifacts/ beside a local SQLite database (None: the store's own default)."""
    if tracking_uri and tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return None


def _tag_text(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_TAG_CHARS else text[:MAX_TAG_CHARS - 1] + "…"


def _milliseconds(iso_time: object) -> int:
    """An ISO 8601 time (a record's finished_at) in milliseconds since the epoch; 0 for none."""
    try:
        return int(datetime.fromisoformat(str(iso_time)).timestamp() * 1000)
    except ValueError:
        return 0


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class MlflowTracker:
    """An MLflow store (`client`, an MlflowClient) and the experiment of one grid."""

    def __init__(self, client, experiment_id: str, experiment_name: str):
        self.client, self.experiment_id, self.experiment_name = client, experiment_id, experiment_name

    @classmethod
    def open(cls, tracking_uri: str | None, experiment_name: str | None, run_dir: str | Path) -> MlflowTracker:
        """The store at tracking_uri (None: MLflow's default) and the grid's experiment, `experiment_name` or
        "ablate <the run folder's absolute path>", made there if new. A store that cannot be reached or used is a
        ValueError naming the URI."""
        mlflow = _mlflow()
        name = experiment_name or f"ablate {Path(run_dir).resolve()}"
        try:
            client = mlflow.MlflowClient(tracking_uri=tracking_uri)
            experiment = client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment is not None else client.create_experiment(
                name, artifact_location=_artifact_location(tracking_uri),
                tags={"ablate.run_dir": str(Path(run_dir).resolve())})
        except Exception as exc:  # MLflow's own errors, and what its stores raise (OSError, SQLAlchemy's, HTTP)
            message = (exc.message if isinstance(exc, mlflow.exceptions.MlflowException)
                       else f"{type(exc).__name__}: {exc}")
            raise ValueError(f"MLflow store {tracking_uri or mlflow.get_tracking_uri()}: {message}") from None
        return cls(client, experiment_id, name)

    def _find(self, key: str, value: str):
        """The experiment's one run whose tag `key` is `value`, or None."""
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{key}` = '{value}'",
                                       max_results=2)
        return runs[0] if runs else None

    def log(self, run_dir: str | Path, report: Path | None = None) -> Logged:
        """Log the grid run in `run_dir` (its valid cell records, read and checked by ablate.runs) and `report`, the
        HTML report of it; see the module docstring."""
        run_dir = Path(run_dir)
        manifest = read_manifest(run_dir)
        if manifest is None or manifest["kind"] != "grid" or not manifest.get("config_columns"):
            raise RunFolderError(f"{run_dir}: expected a grid run folder (from `ablate grid`) to log")
        columns = manifest["config_columns"]
        records, _ = read_records(run_dir, columns)
        provenance = read_provenance(run_dir)
        parent = self._grid_run(run_dir, provenance, report)
        logged = Logged(self.experiment_id, self.experiment_name)
        varying = [key for key in columns if len({repr(r.get(key)) for r in records.values()}) > 1]
        for cell_id, record in sorted(records.items()):
            existing = self._find(CELL_TAG, cell_id)
            if existing is not None and existing.data.tags.get(FINISHED_TAG) == str(record.get("finished_at")):
                logged.unchanged += 1
                continue
            name = " ".join([cell_id, *(f"{key}={record.get(key)}" for key in varying)])
            self._log_cell(existing.info.run_id if existing else None, name, record, columns, provenance, parent)
            if existing is None:
                logged.created += 1
            else:
                logged.updated += 1
        return logged

    def _grid_run(self, run_dir: Path, provenance: dict, report: Path | None) -> str:
        """The id of the grid's own run (made if new), its provenance tags and artifacts (grid.toml, the report)."""
        found = self._find(KIND_TAG, "grid")
        run_id = found.info.run_id if found else self.client.create_run(
            self.experiment_id, run_name="grid", tags={KIND_TAG: "grid"}).info.run_id
        self._tags(run_id, {f"ablate.{key}": value for key, value in provenance.items()})
        for artifact in (run_dir / GRID_SPEC, report):
            if artifact is not None and artifact.is_file():
                self.client.log_artifact(run_id, str(artifact))
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def _tags(self, run_id: str, tags: dict) -> None:
        from mlflow.entities import RunTag

        pairs = [RunTag(key, _tag_text(value)) for key, value in tags.items() if value is not None]
        for start in range(0, len(pairs), TAGS_PER_CALL):
            self.client.log_batch(run_id, tags=pairs[start:start + TAGS_PER_CALL])

    def _log_cell(self, run_id: str | None, name: str, record: dict, columns: list, provenance: dict,
                  parent: str) -> None:
        """Log one cell's record into the MLflow run `run_id` (None: a new run named `name`, the grid run's child)."""
        from mlflow.entities import Metric, Param

        cell_id = record["cell_id"]
        if run_id is None:
            run_id = self.client.create_run(self.experiment_id, run_name=name,
                                            tags={CELL_TAG: cell_id, "mlflow.parentRunId": parent}).info.run_id
        params = [Param(key, str(record.get(key))) for key in columns]
        for start in range(0, len(params), PARAMS_PER_CALL):
            self.client.log_batch(run_id, params=params[start:start + PARAMS_PER_CALL])
        # MLflow's latest value of a metric is that of the highest step, then the latest time: a cell trained again
        # finished later, so its values supersede those of its first training
        timestamp = _milliseconds(record.get("finished_at"))
        metrics = [Metric(key, float(record[key]), timestamp, 0) for name in METRICS.names()
                   for key in (name, validation_key(name)) if _finite(record.get(key))]
        for curve in CURVES_OF_EPOCHS:
            values = record.get(curve.key) or []
            metrics += [Metric(curve.name, float(value), timestamp, epoch)
                        for epoch, value in enumerate(values, start=1) if _finite(value)]
        for start in range(0, len(metrics), METRICS_PER_CALL):
            self.client.log_batch(run_id, metrics=metrics[start:start + METRICS_PER_CALL])
        commit = record.get("git_commit") or provenance.get("git_commit")
        self._tags(run_id, {**{f"ablate.{key}": value for key, value in provenance.items()},
                            **{f"ablate.{key}": record.get(key) for key in RECORD_TAGS},
                            **({"mlflow.source.git.commit": commit} if commit else {}),
                            FINISHED_TAG: record.get("finished_at")})
        self.client.set_terminated(run_id, MLFLOW_STATUS[record["status"]])
