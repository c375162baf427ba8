"""Summary statistics over seeds: each configuration's mean and the half-width of its 95% t-interval.

    summary_table(results, config_columns)   one row per configuration: n_seeds, n_diverged, n_failed,
                                             <m>_mean and <m>_ci95 per summarized metric m of the registry
    mean_ci_text(mean, ci)                   '0.9574 ± 0.011'
"""

import pandas as pd
from scipy import stats

from ablate.metrics import summarized_metrics
from ablate.runs.schema import setting_columns


def summary_table(results: pd.DataFrame, config_columns: list | tuple) -> pd.DataFrame:
    """Per configuration with a finished cell (every config column but the seeds; failures are the status table's):
    n_seeds (cells with status "ok"), n_diverged, n_failed, and <m>_mean, <m>_ci95 (half-width of the 95%
    t-interval over the ok seeds) for each summarized metric m of the registry that the results hold as numbers.

    A configuration with a diverged seed has NaN means: its survivors are a biased sample of its runs.
    """
    config = list(config_columns)
    keys = setting_columns(config)
    numeric = set(results.select_dtypes("number").columns)
    metrics = [m.name for m in summarized_metrics() if m.name in numeric]
    status = results["status"]
    by_config = [results[k] for k in keys]
    any_diverged = (status == "diverged").groupby(by_config, dropna=False).transform("any")
    groups = results[metrics].where((status == "ok") & ~any_diverged).groupby(by_config, dropna=False, sort=False)
    by_status = status.groupby(by_config, dropna=False, sort=False)
    columns = {f"n_{name}": by_status.agg(lambda s, value=value: int((s == value).sum()))
               for name, value in (("seeds", "ok"), ("diverged", "diverged"), ("failed", "failed"))}
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
