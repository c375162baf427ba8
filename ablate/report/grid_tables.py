"""The grid report's tables: run status, summary (mean +/- 95% CI, best highlighted), variant agreement."""

import numpy as np
import pandas as pd

from ablate.analysis.findings import split_noise_text
from ablate.metrics import AGREEMENT, METRICS, label, shown_in
from ablate.report.blocks import Note, Table
from ablate.report.styling import BEST_CSS, plain_table, render
from ablate.runs.configs import describe, varying
from ablate.runs.loading import GridRun
from ablate.runs.schema import STATUSES
from ablate.runs.summary import mean_ci_text


def status_blocks(run: GridRun) -> list:
    """How many cells finished, diverged or failed; the cells that did not finish ok, with why."""
    results = run.results
    counts = results["status"].value_counts()
    order = [s for s in STATUSES if s in counts] + [s for s in counts.index if s not in STATUSES]
    blocks = [Note(f"{len(results)} cells: " + ", ".join(f"{counts[s]} {s}" for s in order) + ".")]
    unfinished = results[results["status"] != "ok"]
    if not unfinished.empty:
        columns = ["cell_id", "status", *varying(results, run.config_columns + ["seed"]), "diverged_epoch", "error"]
        shown = unfinished[[c for c in columns if c in unfinished]]
        blocks.append(Table("Failed and diverged cells", plain_table(shown),
                            caption="These cells are left out of the summary, heatmaps and bands (ok cells only).",
                            collapsed=True))
    return blocks


def summary_frames(run: GridRun) -> tuple:
    """(text, means, fixed): per configuration (index: the keys that vary), "mean ± ci95" per metric label
    ("diverged" for a configuration with a diverged seed) after a seeds column (and diverged and failed counts
    when any); the means alone, same index and labels; the config values every cell shares."""
    summary = run.summary
    keys = varying(summary, run.config_columns)
    fixed = {k: summary[k].iloc[0] for k in run.config_columns if k not in keys}
    metrics = [m.name for m in METRICS if f"{m.name}_mean" in summary]
    ordered = summary.sort_values(keys) if keys else summary
    index = pd.MultiIndex.from_frame(ordered[keys]) if keys else pd.Index(["all"], name="configuration")
    means = pd.DataFrame({label(m): ordered[f"{m}_mean"].to_numpy() for m in metrics}, index=index)
    text = pd.DataFrame({label(m): [mean_ci_text(a, b) for a, b in zip(ordered[f"{m}_mean"], ordered[f"{m}_ci95"])]
                         for m in metrics}, index=index)
    diverged = ordered["n_diverged"].to_numpy() > 0
    text.loc[diverged] = "diverged"  # no mean of the survivors
    text.insert(0, "seeds", ordered["n_seeds"].to_numpy())
    if diverged.any() or (ordered["n_failed"] > 0).any():
        text.insert(1, "diverged", ordered["n_diverged"].to_numpy())
        text.insert(2, "failed", ordered["n_failed"].to_numpy())
    return text, means, fixed


def best_cells(means: pd.DataFrame, seeds) -> pd.DataFrame:
    """True at the best mean of each ranked metric (ties all marked), among the configurations
    with the most seeds (one lucky seed does not outrank three); nothing with one row."""
    best = pd.DataFrame(False, index=means.index, columns=means.columns)
    if len(means) < 2:
        return best
    candidates = means[np.asarray(seeds) == np.max(seeds)]
    higher_is_better = {m.label: m.higher_is_better for m in METRICS}
    for column in means.columns:
        higher, values = higher_is_better.get(column), candidates[column]
        if higher is not None and values.notna().any():
            target = values.max() if higher else values.min()
            best[column] = (means[column] == target) & (np.asarray(seeds) == np.max(seeds))
    return best


def summary_blocks(run: GridRun) -> list:
    """Per configuration: seeds and mean ± 95% CI half-width of each metric; the best mean in bold."""
    if run.summary.empty:
        return [Note("Summary, heatmaps and metrics against lambda left out: no cell finished with status ok.")]
    text, means, fixed = summary_frames(run)
    best = best_cells(means, text["seeds"])
    css = pd.DataFrame("", index=text.index, columns=text.columns)
    css[best.columns] = np.where(best, BEST_CSS, "")
    html = render(text.style.apply(lambda _: css, axis=None))
    caption = (f"Mean ± half-width of the 95% t-interval over seeds ({split_noise_text(run.results)}); seeds: cells "
               "that finished ok; a configuration with a diverged seed shows 'diverged', not a mean of its survivors. "
               "Bold: the best mean of each metric among the configurations with the most seeds (lower is better for "
               "times; raw distances, which shrink with the whole feature scale, are never ranked).")
    if fixed:
        caption += f" Fixed in every cell: {describe(fixed)}."
    blocks = [Table("Summary over seeds", html, caption=caption)]
    if run.summary["n_seeds"].max() < 2:
        blocks.append(Note("One seed per configuration: no 95% confidence intervals or bands."))
    return blocks


def variant_agreement(run: GridRun) -> tuple:
    """For the ok cells that differ only in variant, where two or more variants finished: (per metric: cells
    compared, max and mean difference and where it is largest; per cell: each metric per variant and its
    max - min over the variants that ran). None if the run has one variant."""
    results = run.results
    if "variant" not in results or results["variant"].nunique() < 2:
        return None
    ok = results[results["status"] == "ok"]
    cell_keys = [k for k in varying(results, run.config_columns + ["seed"]) if k != "variant"] or ["seed"]
    metrics = [m for m in shown_in(AGREEMENT) if m in ok]
    if ok["variant"].nunique() < 2 or not metrics:
        return pd.DataFrame(), pd.DataFrame()  # no cell finished under two variants
    wide = ok.pivot(index=cell_keys, columns="variant", values=metrics)
    wide = wide[wide[metrics[0]].notna().sum(axis=1) >= 2]
    rows, detail = [], {}
    for m in metrics:
        per_variant = wide[m]
        spread = per_variant.max(axis=1) - per_variant.min(axis=1)
        rows.append({"metric": label(m), "cells compared": len(spread), "max difference": spread.max(),
                     "mean difference": spread.mean(),
                     "where largest": _cell_name(spread.idxmax(), cell_keys) if len(spread) else ""})
        for variant in per_variant.columns:
            detail[(label(m), variant)] = per_variant[variant]
        detail[(label(m), "max diff")] = spread
    return pd.DataFrame(rows), pd.DataFrame(detail)


def variant_agreement_blocks(run: GridRun) -> list:
    agreement = variant_agreement(run)
    if agreement is None:
        only = run.results["variant"].iloc[0] if len(run.results) else "none"
        return [Note(f"Variant agreement left out: the run has one variant ({only}).")]
    per_metric, per_cell = agreement
    if per_cell.empty:
        return [Note("Variant agreement left out: no cell finished under two variants.")]
    caption = ("Cells with the same settings and seed, trained with each variant of the loss. The variants compute "
               "the same loss, so differences come from floating-point rounding, which training amplifies over "
               "its epochs, and from naive's clamp.")
    return [Table("Variant agreement", plain_table(per_metric), caption=caption),
            Table("Variant agreement per cell", render(per_cell.style.format("{:.4g}", na_rep="")), collapsed=True)]


def _cell_name(index_value, keys) -> str:
    values = index_value if isinstance(index_value, tuple) else (index_value,)
    return describe(dict(zip(keys, values)))
