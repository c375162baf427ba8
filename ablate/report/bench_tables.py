"""The bench report's tables: numerical error against the float64 reference, training steps, raw timings."""

import numpy as np

from ablate.analysis.numerics import FLOAT32_TOLERANCE
from ablate.report.blocks import Block, Note, Table
from ablate.report.styling import BEST_CSS, plain_table, render
from ablate.runs.loading import BenchRun

ERROR_LABELS = {"loss_rel_error": "loss", "grad_features_rel_error": "grad features",
                "grad_centers_rel_error": "grad centers"}


def numerics_blocks(run: BenchRun) -> list[Block]:
    """Relative errors per dtype, convention and feature norm (rows) x error and variant (columns)."""
    numerics = run.numerics
    if numerics is None or numerics.empty:
        return [Note("Numerics table left out: the run has no numerics.parquet.")]
    errors = [c for c in ERROR_LABELS if c in numerics]
    table = numerics.pivot_table(index=["dtype", "convention", "feature_norm"], columns="variant", values=errors,
                                 dropna=False)[errors].rename(columns=ERROR_LABELS, level=0)
    log_error = np.log10(table.clip(lower=1e-17))  # colour by order of magnitude; exact zeros at the bottom
    styler = (table.style.format("{:.1e}", na_rep="did not run")
              .background_gradient(cmap="Purples", gmap=log_error, axis=None, vmin=-8, vmax=0)
              .highlight_null(props="background-color: #eaeef2; color: #57606a;"))
    caption = ("Relative error against the float64 reference (|L - L_ref| / |L_ref|, Frobenius norm for gradients); "
               f"darker purple: a larger error; float32 must stay under {FLOAT32_TOLERANCE:g}. Features sit at 0.1 x "
               "norm from their "
               "center, so larger norms mean more cancellation in ||x||^2 + ||c||^2 - 2 x.c.")
    blocks: list[Block] = [Table("Numerical error", render(styler), caption=caption)]
    if "note" in numerics:
        failed = numerics[numerics["note"].fillna("") != ""]
        for (variant, dtype), group in failed.groupby(["variant", "dtype"]):
            blocks.append(Note(f"{variant} in {dtype} did not run ({len(group)} cases): {group['note'].iloc[0]}"))
    return blocks


def train_step_blocks(run: BenchRun) -> list:
    """Training-step throughput (samples/s) per workload and size (rows) x variant (columns), and why a
    workload was not timed."""
    steps = run.train_step
    if steps is None or steps.empty:
        return [Note("Training-step table left out: the run has no train_step.parquet.")]
    failed = steps[steps["note"].fillna("") != ""] if "note" in steps else steps.iloc[:0]
    notes = [Note(f"{workload} training step not timed: {group['note'].iloc[0]}")
             for workload, group in failed.groupby("workload")]
    if not np.isfinite(steps["samples_per_s"]).any():
        return [Note("Training-step table left out: no training step was timed."), *notes]
    table = steps.pivot_table(index=["workload", "batch", "classes", "dim"], columns="variant",
                              values="samples_per_s")
    styler = table.style.format("{:,.0f}", na_rep="n/a").highlight_max(axis=1, props=BEST_CSS)
    return [Table("Training step throughput", render(styler),
                  caption="Samples per second of a whole step (forward, backward, optimizer, center update); "
                          "bold: the fastest variant of each row."), *notes]


def raw_blocks(run: BenchRun) -> list:
    bench = run.bench
    return [Table(f"All bench rows ({len(bench)})", plain_table(bench),
                  caption="As in bench.csv; rows with empty timings say why in note.", collapsed=True)]


def skipped_blocks(run: BenchRun) -> list:
    """One note per variant for the rows that were not timed: how many, and the first reason."""
    if "note" not in run.bench:
        return []
    skipped = run.bench[run.bench["note"].fillna("") != ""]
    return [Note(f"{variant}: {len(group)} point{'s' if len(group) > 1 else ''} not timed, e.g. "
                 f"{group['note'].iloc[0]}") for variant, group in skipped.groupby("variant")]
