"""The bench report's figures: time against classes, batch and dim (log-log, p20-p80 bands) per variant
and mode, speedup against the registry's baseline variant (naive, the popular form), and roof fraction on CUDA."""

import numpy as np
import pandas as pd
from matplotlib.ticker import NullLocator

from ablate.loss.registry import baseline_variant
from ablate.report.blocks import Figure, Note
from ablate.report.figures import panel_grid, plot_band, report_style, series_colors, shared_legend, to_data_uri
from ablate.runs.loading import BenchRun

SIZE_AXES = {"classes": "classes C", "batch": "batch B", "dim": "feature dim D"}
POINT_KEYS = ["mode", "rule", "dtype", "batch", "classes", "dim"]


def timed_rows(bench: pd.DataFrame) -> pd.DataFrame:
    """The rows with a measured median time (skipped or failed rows keep NaN timings); rule "" when unset."""
    return bench[np.isfinite(bench["time_ms_p50"])].assign(rule=lambda df: df["rule"].fillna(""))


def sweep_panels(rows: pd.DataFrame, x: str) -> list:
    """Panels of lines along size axis `x`: one per mode, rule and dtype that has two or more x values.

    The other two size axes are fixed at the combination with the most x values (ties: the largest
    sizes, where the variants differ most). Returns [(title, rows of that panel)].
    """
    others = [a for a in SIZE_AXES if a != x]
    panels = []
    for (mode, rule, dtype), group in rows.groupby(["mode", "rule", "dtype"], sort=False):
        counts = group.groupby(others)[x].nunique()
        counts = counts[counts >= 2]
        if counts.empty:
            continue
        fixed = max(counts.index, key=lambda k: (counts[k], k))
        frame = group[(group[others] == list(fixed)).all(axis=1)]
        sizes = ", ".join(f"{SIZE_AXES[a].split()[-1]}={v}" for a, v in zip(others, fixed))
        panels.append((f"{mode}{f' ({rule})' if rule else ''}, {dtype}\n{sizes}", frame))
    return panels


def _drop_minor_ticks_over_decades(ax) -> None:
    """On a log axis spanning a decade or more, the labelled decades suffice; its minor ticks only slow the
    layout down. An axis within one decade keeps them: they carry its only labels."""
    for axis, (low, high) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() == "log" and low > 0 and high / low >= 10:
            axis.set_minor_locator(NullLocator())


def _sweep_figure(panels, x, y, *, band=None, ylabel, log_y=True, reference_line=None) -> str:
    """Lines of `y` against `x` per variant in each panel, log-log; `band` = (low, high) columns."""
    colors = series_colors(sorted({v for _, frame in panels for v in frame["variant"]}))
    with report_style():
        fig, axes = panel_grid(len(panels), columns=4, panel=(3.5, 2.9))
        for ax, (title, frame) in zip(axes, panels):
            for variant, line in frame.groupby("variant"):
                line = line.sort_values(x)
                low, high = (line[band[0]], line[band[1]]) if band else (np.nan * line[y], np.nan * line[y])
                plot_band(ax, line[x], line[y], low, high, colors[variant], variant)
            if reference_line is not None:
                ax.axhline(reference_line[0], color="0.4", linestyle="--", linewidth=1, label=reference_line[1])
            ax.set_xscale("log")
            if log_y:
                ax.set_yscale("log")
            else:
                ax.set_ylim(bottom=0)
            ax.set(title=title, xlabel=SIZE_AXES[x], ylabel=ylabel)
            ax.title.set_fontsize(9)
            _drop_minor_ticks_over_decades(ax)
        shared_legend(fig, axes, title="variant")
        return to_data_uri(fig)


def _sweep_blocks(rows: pd.DataFrame, column: str, title: str, caption: str, what: str, **figure_options) -> list:
    """One figure of `column` per size axis swept over two or more values; a note when none is."""
    blocks = []
    for x in SIZE_AXES:
        panels = sweep_panels(rows, x)
        if panels:
            uri = _sweep_figure(panels, x, column, **figure_options)
            blocks.append(Figure(f"{title} {SIZE_AXES[x]}", uri, caption=caption))
    return blocks or [Note(f"{what} figures left out: no size axis was swept over two or more values.")]


def time_blocks(run: BenchRun) -> list:
    """Median time against classes, batch and dim; band from the 20th to the 80th percentile."""
    rows = timed_rows(run.bench)
    if rows.empty:
        return [Note("Timing figures left out: no bench row was timed (see the notes in the raw table).")]
    return _sweep_blocks(rows, "time_ms_p50", "Time against",
                         "Median time per call, log-log; band: 20th to 80th percentile of the timed rounds.",
                         "Timing", band=("time_ms_p20", "time_ms_p80"), ylabel="time (ms)")


def speedup_table(bench: pd.DataFrame) -> pd.DataFrame:
    """Timed rows of the other variants with `speedup` = the baseline variant's median time / the variant's, at the
    same point."""
    rows, baseline = timed_rows(bench), baseline_variant()
    reference = rows[rows["variant"] == baseline][POINT_KEYS + ["time_ms_p50"]].rename(
        columns={"time_ms_p50": "baseline_ms"})
    others = rows[rows["variant"] != baseline].merge(reference, on=POINT_KEYS)
    return others.assign(speedup=others["baseline_ms"] / others["time_ms_p50"])


def speedup_blocks(run: BenchRun) -> list:
    speedups, baseline = speedup_table(run.bench), baseline_variant()
    if speedups.empty:
        return [Note(f"Speedup against {baseline} left out: {baseline} was not timed at the same points as another "
                     "variant.")]
    return _sweep_blocks(speedups, "speedup", f"Speedup against {baseline} over",
                         f"{baseline}'s median time divided by each variant's at the same point; "
                         f"above the dashed line is faster than {baseline}.",
                         "Speedup", ylabel=f"speedup over {baseline}", reference_line=(1.0, baseline))


def roof_blocks(run: BenchRun) -> list:
    """Achieved bandwidth as a fraction of the device's measured copy bandwidth (CUDA only)."""
    rows = timed_rows(run.bench)
    rows = rows[np.isfinite(rows["roof_fraction"])]
    if rows.empty:
        device = ", ".join(sorted(set(run.bench["device"]))) or "unknown"
        return [Note(f"Roof fraction left out: it is measured on CUDA only; this run's device is {device}.")]
    return _sweep_blocks(rows, "roof_fraction", "Roof fraction over",
                         "Bytes each call must move (the cost model) over its median time, divided by the GB/s of "
                         "a plain device copy timed in the same run.",
                         "Roof fraction", ylabel="fraction of copy bandwidth", log_y=False,
                         reference_line=(1.0, "copy bandwidth"))
