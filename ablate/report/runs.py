"""Read a run folder: a grid run (cells/ or results.parquet) or a bench run (bench.parquet).

Layouts (written by `ablate grid` and `ablate bench`):
    grid:  grid.toml, provenance.json, cells/<id>.json|.npz, results, curves, summary (.parquet)
    bench: bench, numerics, train_step (.parquet), provenance.json
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


# The setting every other is compared with in a grid's findings (ablate.report.findings): softmax alone.
DEFAULT_REFERENCE = ("lambda", 0.0)


@dataclass
class GridRun:
    """A grid run. results: one row per cell; summary: one row per configuration (over its "ok" cells);
    curves: long format cell_id, epoch, metric, value; config_columns: the grid keys but seed; reference: the
    (key, value) the findings compare against; cache: results derived once per report (findings, bootstraps)."""

    path: Path
    provenance: dict
    results: pd.DataFrame
    summary: pd.DataFrame
    curves: pd.DataFrame
    config_columns: list
    grid_spec: str | None
    reference: tuple = DEFAULT_REFERENCE
    cache: dict = field(default_factory=dict, repr=False)

    def features_path(self, cell_id: str) -> Path:
        """Where the grid stored the cell's test features, labels and centers (.npz)."""
        from ablate.grid.store import CellStore

        return CellStore(self.path).features_path(cell_id)


@dataclass
class BenchRun:
    """A bench run: the timing table, and the numerics and training-step tables when measured."""

    path: Path
    provenance: dict
    bench: pd.DataFrame
    numerics: pd.DataFrame | None
    train_step: pd.DataFrame | None


def _table(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.exists() else None


def _provenance(run_dir: Path) -> dict:
    path = run_dir / "provenance.json"
    return json.loads(path.read_text()) if path.exists() else {}


def is_grid_run(run_dir: Path) -> bool:
    return (run_dir / "cells").is_dir() or (run_dir / "results.parquet").exists()


def is_bench_run(run_dir: Path) -> bool:
    return (run_dir / "bench.parquet").exists()


def _curves(run_dir: Path, results: pd.DataFrame) -> pd.DataFrame:
    """curves.parquet when it covers every finished cell of `results`, else rebuilt from the cell records."""
    from ablate.grid.tables import curves_table, grid_records

    curves = _table(run_dir / "curves.parquet")
    finished = set(results.loc[results["status"] != "failed", "cell_id"])
    if curves is not None and finished <= set(curves["cell_id"]):
        return curves
    return curves_table(grid_records(run_dir))


def load_grid_run(run_dir: Path) -> GridRun:
    """The run's tables as the grid writes them; results and summary rebuilt from cells/ for a run that
    was interrupted before writing them (or wrote them before its last cells).

    The grid package (and the training stack it imports) is loaded only here: a bench report needs neither.
    """
    from ablate.grid import load_results  # rebuilds results from cells/ when results.parquet is stale or missing
    from ablate.grid.tables import config_columns, summary_table

    results = load_results(run_dir)
    spec = run_dir / "grid.toml"
    return GridRun(path=run_dir, provenance=_provenance(run_dir), results=results, summary=summary_table(results),
                   curves=_curves(run_dir, results), config_columns=[c for c in config_columns() if c != "seed"],
                   grid_spec=spec.read_text() if spec.exists() else None)


def load_bench_run(run_dir: Path) -> BenchRun:
    return BenchRun(path=run_dir, provenance=_provenance(run_dir), bench=pd.read_parquet(run_dir / "bench.parquet"),
                    numerics=_table(run_dir / "numerics.parquet"), train_step=_table(run_dir / "train_step.parquet"))


def load_run(run_dir) -> GridRun | BenchRun:
    """The run in `run_dir`; a ValueError says what a run folder must hold otherwise."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run folder {run_dir} does not exist")
    if is_grid_run(run_dir):
        return load_grid_run(run_dir)
    if is_bench_run(run_dir):
        return load_bench_run(run_dir)
    raise ValueError(f"{run_dir} is not a run folder: expected cells/ or results.parquet (a grid run, "
                     "from `ablate grid`) or bench.parquet (a bench run, from `ablate bench`)")
