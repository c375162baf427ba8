"""The run folder's tables, built from cell records:

    results   one row per cell: cell_id, the config columns (grid keys), then metrics, status, timings
    curves    long format: cell_id, epoch (1-based), metric (softmax_loss | center_loss | train_accuracy), value
    summary   one row per configuration with a finished cell (config columns but seed): n_seeds (its
              "ok" cells), n_diverged, n_failed, and for each metric <m>_mean and <m>_ci95 (half-width of the 95% t-interval over
              the ok seeds); NaN for a configuration with a diverged seed, never a mean of the survivors
"""

from pathlib import Path

import pandas as pd
from scipy import stats

from ablate.grid.ids import cell_id
from ablate.grid.spec import expand, load_spec
from ablate.grid.store import CellStore
from ablate.io import atomic_write_table, atomic_write_with
from ablate.metrics import summarized_metrics
from ablate.train import CellConfig

CURVE_PREFIX = "curve_"


def config_columns() -> list:
    """The grid keys, in CellConfig's field order ("lambda", not "lambda_")."""
    return list(CellConfig().to_dict())


def results_table(records: list) -> pd.DataFrame:
    """records (one flat dict per cell) -> one row per cell, curve lists left out."""
    config = config_columns()
    others = []
    for record in records:
        others += [k for k in record if k not in others and k not in config and k != "cell_id"
                   and not k.startswith(CURVE_PREFIX)]
    return pd.DataFrame.from_records(records, columns=["cell_id", *config, *others])


def curves_table(records: list) -> pd.DataFrame:
    """The per-epoch curves of every record, long format: cell_id, epoch, metric, value."""
    rows = [(record["cell_id"], epoch, key.removeprefix(CURVE_PREFIX), float(value))
            for record in records for key, values in record.items() if key.startswith(CURVE_PREFIX)
            for epoch, value in enumerate(values, start=1)]
    return pd.DataFrame(rows, columns=["cell_id", "epoch", "metric", "value"])


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per configuration with a finished cell (every config column but seed; failures are the status table's):
    n_seeds (cells with status "ok"), n_diverged, n_failed, and
    <m>_mean, <m>_ci95 over the ok cells for each summarized metric of the registry that the results hold as numbers.

    A configuration with a diverged seed has NaN means: its survivors are a biased sample of its runs.
    """
    config = config_columns()
    keys = [c for c in config if c != "seed"]
    numeric = set(results.select_dtypes("number").columns)
    metrics = [m.name for m in summarized_metrics() if m.name in numeric]
    status = results["status"]
    any_diverged = (status == "diverged").groupby([results[k] for k in keys], dropna=False).transform("any")
    counted = results[metrics].where((status == "ok") & ~any_diverged)
    groups = counted.groupby([results[k] for k in keys], dropna=False, sort=False)
    by_status = status.groupby([results[k] for k in keys], dropna=False, sort=False)
    columns = {"n_seeds": by_status.agg(lambda s: int((s == "ok").sum())),
               "n_diverged": by_status.agg(lambda s: int((s == "diverged").sum())),
               "n_failed": by_status.agg(lambda s: int((s == "failed").sum()))}
    for metric in metrics:
        values = groups[metric]
        columns[f"{metric}_mean"] = values.mean()
        # t quantile with n - 1 degrees of freedom; NaN for a single seed (no interval).
        columns[f"{metric}_ci95"] = values.sem() * stats.t.ppf(0.975, values.count() - 1)
    summary = pd.DataFrame(columns).reset_index()
    return summary[(summary["n_seeds"] + summary["n_diverged"]) > 0].reset_index(drop=True)


def mean_ci_text(mean: float, ci: float) -> str:
    """'0.9574 ± 0.011' for a summary cell; the mean alone without an interval, '' without a mean."""
    if pd.isna(mean):
        return ""
    return f"{mean:.4g} ± {ci:.2g}" if pd.notna(ci) else f"{mean:.4g}"


def write_tables(run_dir, records: list) -> pd.DataFrame:
    """Write results, curves and summary (.parquet, and .csv but for curves) atomically; returns results."""
    run_dir = Path(run_dir)
    results = results_table(records)
    atomic_write_table(results, run_dir / "results")
    atomic_write_with(run_dir / "curves.parquet", lambda p: curves_table(records).to_parquet(p, index=False))
    atomic_write_table(summary_table(results), run_dir / "summary")
    return results


def load_results(run_dir) -> pd.DataFrame:
    """RUN_DIR/results.parquet; rebuilt from the cell records when it is missing or older than one of them."""
    run_dir = Path(run_dir)
    store = CellStore(run_dir)
    path = run_dir / "results.parquet"
    newest_record = max((p.stat().st_mtime_ns for p in store.cells_dir.glob("*.json")), default=0)
    if path.exists() and path.stat().st_mtime_ns >= newest_record:
        return pd.read_parquet(path)
    records = grid_records(run_dir)
    if not records:
        raise ValueError(f"{run_dir} holds no grid results: expected results.parquet or records in cells/")
    return results_table(records)


def grid_records(run_dir) -> list:
    """The records in cells/ of the cells of RUN_DIR/grid.toml, in grid order (all records if it is absent)."""
    run_dir = Path(run_dir)
    records = CellStore(run_dir).records()
    spec_path = run_dir / "grid.toml"
    if not spec_path.exists():
        return list(records.values())
    ids = [cell_id(config) for config in expand(load_spec(spec_path))]
    return [records[i] for i in ids if i in records]
