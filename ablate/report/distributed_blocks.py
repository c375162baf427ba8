"""The report's part for a distributed bench run (`ablate bench world`): time and bytes per step against
world size, memory per rank of the sharded and replicated centers, the raw rows."""

import numpy as np
import pandas as pd

from ablate.report.blocks import Figure, Note, Table
from ablate.report.figures import panel_grid, plot_band, report_style, series_colors, shared_legend, to_data_uri
from ablate.report.styling import plain_table, render
from ablate.runs.loading import DistributedRun

MB = 1e6


def _measured(run: DistributedRun) -> pd.DataFrame:
    rows = run.distributed
    return rows[np.isfinite(rows["time_ms_p50"])]


def _world_figure(rows: pd.DataFrame, y: str, ylabel: str, band=None) -> str:
    panels = list(rows.groupby(["mode", "classes", "batch", "dim", "dtype"]))
    panels.sort(key=lambda panel: -panel[1]["form"].nunique())  # the panel with the most forms first
    colors = series_colors(sorted(set(rows["form"])))
    with report_style():
        fig, axes = panel_grid(len(panels), panel=(3.5, 2.9))
        for ax, ((mode, classes, batch, dim, dtype), frame) in zip(axes, panels):
            for form, line in frame.groupby("form"):
                line = line.sort_values("world")
                low, high = (line[band[0]], line[band[1]]) if band else (np.nan * line[y], np.nan * line[y])
                plot_band(ax, line["world"], line[y], low, high, colors[form], form)
            ax.set_yscale("symlog" if (frame[y] <= 0).any() else "log")
            ax.set_xticks(sorted(set(frame["world"])))
            ax.set(title=f"{mode}, C={classes:,}\nB={batch}, D={dim}, {dtype}", xlabel="world size (ranks)",
                   ylabel=ylabel)
            ax.title.set_fontsize(9)
        shared_legend(fig, axes, title="form")
        return to_data_uri(fig)


def world_blocks(run: DistributedRun) -> list:
    """Time and bytes per step against world size, one panel per mode and class count, one line per form."""
    rows = _measured(run)
    if rows["world"].nunique() < 2:
        return [Note("Figures against world size left out: the run measured one world size "
                     f"({', '.join(map(str, sorted(set(run.distributed['world']))))}).")]
    return [Figure("Time per step against world size",
                   _world_figure(rows, "time_ms_p50", "time per step (ms)", band=("time_ms_p20", "time_ms_p80")),
                   caption="Median over steps of the slowest rank's time; band: 20th to 80th percentile."),
            Figure("Bytes communicated per step against world size", _world_figure(rows, "bytes_per_step", "bytes"),
                   caption="Received per rank by the step's collectives, from their sizes (ring algorithms); "
                           "replicated and sharded updates gather the same batch (their lines overlap).")]


def memory_blocks(run: DistributedRun) -> list:
    """Per world and class count: the centers each rank holds and its peak memory, by form, in MB."""
    rows = _measured(run)
    if rows.empty:
        return [Note("Memory table left out: no point was measured (see the notes in the raw rows).")]
    table = rows.pivot_table(index=["world", "classes", "mode"], columns="form",
                             values=["centers_bytes_per_rank", "peak_mem_bytes"]) / MB
    table = table.rename(columns={"centers_bytes_per_rank": "centers per rank (MB)",
                                  "peak_mem_bytes": "peak memory per rank (MB)"}, level=0)
    styler = table.style.format("{:,.1f}", na_rep="n/a")
    return [Table("Memory per rank", render(styler),
                  caption="Centers held per rank (sharded: its rows only, C*D/W) and the largest rank's peak memory "
                          "during the point beyond what it held before (CUDA: allocated; CPU: peak resident set).")]


def time_bytes_blocks(run: DistributedRun) -> list:
    """Median time and bytes per step per point (rows) and form (columns)."""
    rows = _measured(run)
    if rows.empty:
        return []
    table = rows.pivot_table(index=["mode", "classes", "world"], columns="form",
                             values=["time_ms_p50", "bytes_per_step"])
    table = table.rename(columns={"time_ms_p50": "time per step (ms)", "bytes_per_step": "bytes per step"}, level=0)
    return [Table("Time and bytes per step", render(table.style.format("{:,.4g}", na_rep="n/a")),
                  caption="dense: the replicated update by an all-reduce of a (C, D) delta, O(C*D) bytes; replicated "
                          "and sharded gather the batch, O(B*D) bytes whatever C.")]


def raw_distributed_blocks(run: DistributedRun) -> list:
    rows = run.distributed
    notes = [Note(f"{r.form} {r.mode} at C={r.classes}, world {r.world} not measured: {r.note}")
             for r in rows[rows["note"].fillna("") != ""].itertuples()]
    return [*notes, Table(f"All distributed rows ({len(rows)})", plain_table(rows), caption="As in distributed.csv.",
                          collapsed=True)]
