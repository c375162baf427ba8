"""Figures for the report: one style, one palette per variant, PNG data URIs.

Figures are built on matplotlib.figure.Figure directly (no pyplot): nothing global to close and no
display backend needed, so the report renders the same on a headless machine.
"""

import base64
import contextlib
import io

import matplotlib as mpl
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

from ablate.loss.registry import variant_names

DPI = 110
PANEL_INCHES = (3.6, 2.9)  # (width, height) of one small-multiple panel
MAX_COLUMNS = 4


@contextlib.contextmanager
def report_style():
    """seaborn's whitegrid style at notebook scale, undone on exit; text drawn as written, never parsed as
    mathtext (labels carry values from run folders: a "$" there must not break a figure)."""
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85), \
            mpl.rc_context({"text.parse_math": False}):
        yield


def panel_grid(n_panels: int, columns: int = MAX_COLUMNS, panel=PANEL_INCHES):
    """A figure with n_panels axes wrapped into at most `columns` columns; unused axes are removed.

    Returns (figure, list of n_panels axes).
    """
    columns = max(1, min(columns, n_panels))
    rows = -(-n_panels // columns)
    fig = Figure(figsize=(panel[0] * columns, panel[1] * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.remove()
    return fig, list(axes[:n_panels])


def to_data_uri(fig: Figure) -> str:
    """The figure as a base64 PNG data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _distinct_colorblind() -> list:
    """seaborn's colorblind palette without its vermillion, which is hard to tell from its orange in thin lines."""
    return [c for i, c in enumerate(sns.color_palette("colorblind", 10)) if i != 3]


def variant_colors() -> dict:
    """One fixed colour per registered variant, the same in every figure."""
    return dict(zip(variant_names(), _distinct_colorblind()))


def series_colors(names) -> dict:
    """Distinct colours for `names`; variant names keep their fixed colour."""
    fixed = variant_colors()
    if all(n in fixed for n in names):
        return {n: fixed[n] for n in names}
    palette = _distinct_colorblind() if len(names) <= 9 else sns.color_palette("husl", len(names))
    return dict(zip(names, palette))


def spread_subset(values, limit: int) -> list:
    """At most `limit` of the sorted `values`, evenly spaced, the first and last included."""
    values = list(values)
    if len(values) <= limit:
        return values
    return [values[i] for i in sorted(set(np.linspace(0, len(values) - 1, limit).round().astype(int)))]


def plot_band(ax, x, center, low, high, color, label):
    """A line with markers through `center` and a shaded band from `low` to `high` (skipped where NaN)."""
    ax.plot(x, center, marker="o", markersize=3.5, color=color, label=label)
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if np.isfinite(low).any():
        ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)


def shared_legend(fig: Figure, axes, title: str | None = None) -> None:
    """One legend for all panels, below them, from the first labelled axes; as many columns as fit the
    figure's width (an entry is about 0.6 em per character plus its line sample), so long labels never clip."""
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            em = FontProperties(size=mpl.rcParams["legend.fontsize"]).get_size_in_points()
            entry_points = 0.6 * em * max(map(len, labels)) + 4 * em
            fits = int(fig.get_figwidth() * 72 // entry_points)
            fig.legend(handles, labels, title=title, loc="outside lower center", ncols=max(1, min(len(labels), fits)),
                       frameon=False)
            return
