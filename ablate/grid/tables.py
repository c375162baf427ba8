"""The grid's tables, written through the run-folder schema (ablate.analysis.schema):

    results   one row per cell: cell_id, the config columns (grid keys), then metrics, status, timings
    curves    long format: cell_id, epoch (1-based), metric (softmax_loss | center_loss | train_accuracy, and
              pair_loss in a cell with a pair loss), value
    summary   one row per configuration with a finished cell (config columns but seed): n_seeds (its
              "ok" cells), n_diverged, n_failed, and for each metric <m>_mean and <m>_ci95 (half-width of the
              95% t-interval over the ok seeds); NaN for a configuration with a diverged seed, never a mean
              of the survivors

The tables are built by ablate.analysis (tables, summary); the grid keys are CellConfig's, declared here.
"""

from pathlib import Path

import pandas as pd

from ablate.analysis import tables
from ablate.analysis.schema import CURVES, RESULTS, SUMMARY, table_path
from ablate.analysis.summary import summary_table
from ablate.io import atomic_write_table, atomic_write_with
from ablate.train import CellConfig


def config_columns() -> list:
    """The grid keys, in CellConfig's field order ("lambda", not "lambda_")."""
    return list(CellConfig().to_dict())


def write_tables(run_dir, records: list) -> pd.DataFrame:
    """Write results, curves and summary (.parquet, and .csv but for curves) atomically; returns results."""
    run_dir = Path(run_dir)
    columns = config_columns()
    results = tables.results_table(records, columns)
    atomic_write_table(results, run_dir / RESULTS)
    atomic_write_with(table_path(run_dir, CURVES), lambda p: tables.curves_table(records).to_parquet(p, index=False))
    atomic_write_table(summary_table(results, columns), run_dir / SUMMARY)
    return results


def load_results(run_dir) -> pd.DataFrame:
    """RUN_DIR/results.parquet, or rebuilt from the cell records when it is missing or older than one of them
    (see ablate.analysis.tables.load_results)."""
    return tables.load_results(run_dir, config_columns())[0]
