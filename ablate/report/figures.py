"""Figures for the report: one style, one palette per variant, PNG data URIs.

Figures are built on matplotlib.figure.Figure directly (no pyplot): nothing global to close and no
display backend needed, so the report renders the same on a headless machine. Text is drawn as written (never
parsed as mathtext), so the tick labels of log axes, which matplotlib writes in mathtext, are rewritten in plain
text (10², 2×10⁻¹) before a figure is saved; and a figure is saved around everything it draws (legends and labels
outside the axes included), so that nothing is clipped at its edges.
"""

import base64
import contextlib
import io
import re

import matplotlib as mpl
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import Formatter, LogFormatterMathtext

from ablate.loss.registry import variant_names

DPI = 110
PANEL_INCHES = (3.6, 2.9)  # (width, height) of one small-multiple panel
MAX_COLUMNS = 4
PAD_INCHES = 0.1  # the blank margin around everything a figure draws
SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


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


class PlainLogFormatter(Formatter):
    """A log axis's formatter (which ticks it labels, where the decades are: `inner`, matplotlib's) writing its
    labels in plain text instead of mathtext: '10²', '2×10⁻¹', '0.5'. The report draws text unparsed, where
    '$\\mathdefault{10^{2}}$' would show as written."""

    def __init__(self, inner: Formatter):
        self.inner = inner

    def set_axis(self, axis) -> None:
        super().set_axis(axis)
        self.inner.set_axis(axis)

    def set_locs(self, locs) -> None:
        super().set_locs(locs)
        self.inner.set_locs(locs)

    def __call__(self, x, pos=None) -> str:
        return plain_text(self.inner(x, pos))


def plain_text(mathtext: str) -> str:
    """A log formatter's mathtext ('$\\mathdefault{2\\times10^{-1}}$') as plain text ('2×10⁻¹'); other text as is."""
    match = re.fullmatch(r"\$\\mathdefault\{(.*)\}\$", mathtext)
    if match is None:
        return mathtext
    text = match.group(1).replace("\\times", "×")
    return re.sub(r"\^\{([-0-9]+)\}", lambda m: m.group(1).translate(SUPERSCRIPTS), text)


def plain_log_labels(fig: Figure) -> None:
    """Every log or symlog axis of `fig` labelled in plain text (its mathtext formatter wrapped in
    PlainLogFormatter)."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for get, set_ in ((axis.get_major_formatter, axis.set_major_formatter),
                              (axis.get_minor_formatter, axis.set_minor_formatter)):
                formatter = get()
                if isinstance(formatter, LogFormatterMathtext):
                    set_(PlainLogFormatter(formatter))


def to_data_uri(fig: Figure) -> str:
    """The figure as a base64 PNG data URI: log axes labelled in plain text, the image cut around everything drawn
    (bbox_inches="tight") with a blank margin of PAD_INCHES on every side."""
    plain_log_labels(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=PAD_INCHES)
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


def fitting_columns(fig: Figure, labels, fontsize=None) -> int:
    """How many legend columns of `labels` fit the figure's width: an entry is about 0.6 em per character plus its
    marker, so a legend below the panels never reaches past the figure's edges."""
    labels = list(labels)
    em = FontProperties(size=fontsize or mpl.rcParams["legend.fontsize"]).get_size_in_points()
    entry_points = 0.6 * em * max(map(len, labels), default=1) + 4 * em
    return max(1, min(len(labels), int(fig.get_figwidth() * 72 // entry_points)))


def legend_below(fig: Figure, handles: list, labels: list, title: str | None = None, fontsize=None) -> None:
    """A legend below the panels in as many columns as fit the figure's width, the figure made taller by the
    legend's rows (about 1.5 em each) so that the panels keep their size."""
    columns = fitting_columns(fig, labels, fontsize)
    em = FontProperties(size=fontsize or mpl.rcParams["legend.fontsize"]).get_size_in_points()
    rows = -(-len(labels) // columns) + (title is not None)
    fig.set_figheight(fig.get_figheight() + rows * 1.5 * em / 72)
    fig.legend(handles, labels, title=title, loc="outside lower center", ncols=columns, frameon=False,
               fontsize=fontsize)


def shared_legend(fig: Figure, axes, title: str | None = None, fontsize=None) -> None:
    """One legend for all panels, below them: every labelled entry of `axes` once, in the order first drawn."""
    entries: dict = {}
    for ax in axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(text, handle)
    if entries:
        legend_below(fig, list(entries.values()), list(entries), title, fontsize)
