"""The grid report's figures: heatmaps over lambda x alpha, metrics against lambda with 95% CI bands,
2-D feature scatter per lambda with the learned centers, training curves."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ablate.analysis.findings import marked_settings, setting_of
from ablate.metrics import AGAINST_LAMBDA, HEATMAP, get_metric, label, shown_in
from ablate.report.blocks import Block, Figure, Note
from ablate.report.configs import reference_values, select, series_labels
from ablate.report.figures import (
    legend_below,
    panel_grid,
    plot_band,
    report_style,
    series_colors,
    shared_legend,
    spread_subset,
    to_data_uri,
)
from ablate.runs.configs import describe, format_label, varying
from ablate.runs.loading import GridRun
from ablate.runs.record import PLOTTED_CURVES
from ablate.runs.schema import RunFolderError, is_cell_id

MAX_HEATMAP_PANELS = 12
MAX_ALPHA_COLUMNS = 4
MAX_LAMBDA_PANELS = 8  # feature scatter panels and curve lines
MAX_SCATTER_POINTS = 3000  # per panel, drawn at random: enough to show each class's shape, small as a PNG


def set_lambda_scale(ax, lambdas) -> None:
    """An x scale that shows lambda = 0 and spreads the small values: symlog when 0 is among many decades."""
    positive = [v for v in lambdas if v > 0]
    if positive and max(positive) / min(positive) > 20:
        if min(lambdas) == 0:
            ax.set_xscale("symlog", linthresh=min(positive), linscale=0.5)
        else:
            ax.set_xscale("log")
    ax.set_xticks(lambdas, [format_label(v) for v in lambdas], rotation=45 if len(lambdas) > 4 else 0)
    ax.minorticks_off()


def heatmap_blocks(run: GridRun) -> list[Block]:
    """The mean of each heatmap metric of the registry over lambda (columns) x alpha (rows), one panel per rule
    (per combination of the other keys that vary)."""
    summary = run.summary
    if summary.empty:  # summary_blocks says so
        return []
    n_lambda, n_alpha = summary["lambda"].nunique(), summary["alpha"].nunique()
    if n_lambda < 2 or n_alpha < 2:
        return [Note(f"Heatmaps over lambda x alpha left out: they need two values of each; the run has "
                     f"{n_lambda} lambda and {n_alpha} alpha.")]
    panel_keys = [k for k in varying(summary, run.config_columns) if k not in ("lambda", "alpha")]
    groups = list(summary.groupby(panel_keys)) if panel_keys else [((), summary)]
    panels = [(key, frame) for key, frame in groups if frame["lambda"].nunique() >= 2 and frame["alpha"].nunique() >= 2]
    if not panels:
        return [Note(f"Heatmaps over lambda x alpha left out: no combination of {', '.join(panel_keys)} spans two "
                     "lambda and two alpha values.")]
    blocks: list[Block] = []
    if len(panels) < len(groups):
        blocks.append(Note(f"Heatmaps show the {len(panels)} combinations of {', '.join(panel_keys)} that span two "
                           f"lambda and two alpha values; the other {len(groups) - len(panels)} are in the summary."))
    if len(panels) > MAX_HEATMAP_PANELS:
        blocks.append(Note(f"Heatmaps show the first {MAX_HEATMAP_PANELS} of {len(panels)} combinations of "
                           f"{', '.join(panel_keys)}; the summary table has them all."))
        panels = panels[:MAX_HEATMAP_PANELS]
    reference = describe(dict([run.reference]))
    for metric in shown_in(HEATMAP):
        column = f"{metric}_mean"
        if column not in summary:
            blocks.append(Note(f"Heatmap of {label(metric)} left out: the summary has no {column}."))
            continue
        marked = marked_settings(run, metric)
        with report_style():
            fig, axes = panel_grid(len(panels), columns=3, panel=(4.6, 3.4))
            for ax, (key, frame) in zip(axes, panels):
                grid = frame.pivot(index="alpha", columns="lambda", values=column).sort_index(ascending=False)
                differs = frame.assign(mark=[setting_of(run, row) in marked for _, row in frame.iterrows()])
                differs = differs.pivot(index="alpha", columns="lambda", values="mark").reindex_like(grid)
                annot = grid.map(lambda v: f"{v:.3g}") + np.where(differs.fillna(False).to_numpy(bool), "*", "")
                sns.heatmap(grid, ax=ax, annot=annot.to_numpy(), fmt="", cmap="viridis", vmin=summary[column].min(),
                            vmax=summary[column].max(), annot_kws={"size": 7}, cbar_kws={"shrink": 0.85})
                ax.set_xticklabels([format_label(v) for v in grid.columns], rotation=45 if n_lambda > 5 else 0)
                ax.set_yticklabels([format_label(v) for v in grid.index], rotation=0)
                ax.set(xlabel="lambda", ylabel="alpha", title=describe(dict(zip(panel_keys, key))))
            uri = to_data_uri(fig)
        blocks.append(Figure(f"{label(metric)} over lambda x alpha", uri,
                             caption=f"Mean over seeds; one colour scale for all panels. Panels: "
                                     f"{', '.join(panel_keys) or 'one'}. *: differs from {reference} in the findings "
                                     "(its simultaneous interval excludes no change); blank: a seed diverged or no "
                                     "seed finished ok."))
    return blocks


def band_within_range(metric: str, mean: pd.Series, ci: pd.Series) -> tuple:
    """(low, high, omitted): the 95% band mean ± ci of a metric, NaN (no band) at each point where it would leave the
    metric's range (Metric.value_range: an accuracy above 1, a distance below 0), which too few seeds give;
    omitted: whether any point lost its band so."""
    low, high = (mean - ci).to_numpy(float), (mean + ci).to_numpy(float)
    bottom, top = get_metric(metric).value_range
    outside = np.isfinite(low) & ((low < bottom) | (high > top))
    return np.where(outside, np.nan, low), np.where(outside, np.nan, high), bool(outside.any())


def _lambda_axes(metrics, alphas):
    """Axes for metric x alpha: a grid (rows: metrics, columns: alpha), or one row of metrics for one alpha.

    Returns (figure, {(metric, alpha): axes}, axes on the bottom row).
    """
    if len(alphas) == 1:
        fig, axes = panel_grid(len(metrics), columns=len(metrics), panel=(3.6, 3.0))
        return fig, {(m, alphas[0]): ax for m, ax in zip(metrics, axes)}, axes
    fig = MplFigure(figsize=(3.6 * len(alphas), 2.5 * len(metrics)), layout="constrained")
    grid = fig.subplots(len(metrics), len(alphas), squeeze=False, sharex=True)
    for col, alpha in enumerate(alphas):
        grid[0, col].set_title(f"alpha = {alpha:g}")
    return fig, {(m, a): grid[r, c] for r, m in enumerate(metrics) for c, a in enumerate(alphas)}, list(grid[-1])


def lambda_line_blocks(run: GridRun) -> list:
    """The registry's against-lambda metrics against lambda; mean with its 95% CI band over seeds.

    Panels: metric x alpha (at most MAX_ALPHA_COLUMNS alphas); hue: the other keys that vary (rule, variant...).
    """
    summary = run.summary
    if summary.empty:  # summary_blocks says so
        return []
    lambdas = sorted(summary["lambda"].unique())
    if len(lambdas) < 2:
        return [Note(f"Metrics against lambda left out: the run has one lambda ({lambdas[0]:g}).")]
    all_alphas = sorted(summary["alpha"].unique())
    alphas = spread_subset(all_alphas, MAX_ALPHA_COLUMNS)
    series_keys = [k for k in varying(summary, run.config_columns) if k not in ("lambda", "alpha")]
    only_variant = None
    if "variant" in series_keys and len(series_keys) > 1:  # variants are compared in their own table
        only_variant = reference_values(summary, ["variant"], free_keys=("lambda", "alpha"))["variant"]
        summary = summary[summary["variant"] == only_variant]
        series_keys.remove("variant")
    data = summary.assign(series=series_labels(summary, series_keys))
    names = sorted(data["series"].unique())
    colors = series_colors(names)
    metrics = [m for m in shown_in(AGAINST_LAMBDA) if f"{m}_mean" in summary]
    too_few = set()  # the metrics with a band left out: too few seeds for an interval within their range
    with report_style():
        fig, axes, bottom_row = _lambda_axes(metrics, alphas)
        for (metric, alpha), ax in axes.items():
            for name in names:
                s = data[(data["alpha"] == alpha) & (data["series"] == name)].sort_values("lambda")
                low, high, omitted = band_within_range(metric, s[f"{metric}_mean"], s[f"{metric}_ci95"])
                if omitted:
                    too_few.add(label(metric))
                plot_band(ax, s["lambda"], s[f"{metric}_mean"], low, high, colors[name], name)
            set_lambda_scale(ax, lambdas)
            ax.set_ylabel(label(metric))
            if len(alphas) == 1:
                ax.set_title(label(metric))
        for ax in bottom_row:
            ax.set_xlabel("lambda")
        if len(names) > 1:
            shared_legend(fig, list(axes.values()), title=", ".join(series_keys))
        uri = to_data_uri(fig)
    caption = ("Mean over seeds; band: 95% t-interval over seeds. The x axis includes lambda = 0 (softmax alone); each "
               "y axis spans its data, not from 0 (read its scale: a change of accuracy is its size in points).")
    if too_few:
        caption += (f" No band where the interval would leave the metric's range (too few seeds): "
                    f"{', '.join(sorted(too_few))}.")
    if only_variant is not None:
        caption += f" Variant {only_variant}; the others are compared under Variant agreement."
    if len(alphas) == 1:
        caption += f" alpha = {alphas[0]:g}."
    elif len(alphas) < len(all_alphas):
        caption += f" Columns show alpha in {{{', '.join(map(format_label, alphas))}}} of {len(all_alphas)} values."
    return [Figure("Metrics against lambda", uri, caption=caption)]


def _reference_cells(run: GridRun, cells: pd.DataFrame, free_keys) -> tuple:
    """Of `cells` (rows of run.results: those that hold what a figure draws), the reference slice: the cells of one
    configuration of every varying key but `free_keys`, chosen among `cells` themselves (the one spanning the most
    values of the free keys, ablate.report.configs.reference_values), so that it names a mix the run holds; and the
    values it fixes."""
    keys = [k for k in varying(run.results, run.config_columns + ["seed"]) if k not in free_keys]
    fixed = reference_values(cells, keys, free_keys, preferred=dict([run.reference]))
    return select(cells, fixed), fixed


def _to_2d(features, centers) -> tuple:
    """Features (N, 2) and centers (C, 2): as they are when D = 2, else projected by a PCA of the features;
    with the share of variance kept (1.0 when D = 2)."""
    if features.shape[1] <= 2:
        return features, centers, 1.0
    from sklearn.decomposition import PCA  # here: a report without feature scatters never loads scikit-learn

    pca = PCA(n_components=2).fit(features)
    return pca.transform(features), pca.transform(centers), float(pca.explained_variance_ratio_.sum())


@dataclass
class ScatterPanel:
    """One cell's test features for a scatter panel: features (N, D), labels (N,), centers (C, D)."""

    lam: float
    cell: pd.Series
    features: np.ndarray
    labels: np.ndarray
    centers: np.ndarray


def feature_scatter_blocks(run: GridRun) -> list:
    """Test features of one cell per lambda, coloured by class, with the learned centers as crosses."""
    ok = run.results[run.results["status"] == "ok"]
    if ok.empty:  # summary_blocks says so
        return []
    saved = ok[[is_cell_id(c) and run.features_path(c).exists() for c in ok["cell_id"]]]
    if saved.empty:
        return [Note(f"Feature scatter left out: none of the {len(ok)} cells that finished ok saved its features "
                     "(cells/<id>.npz).")]
    cells, fixed = _scatter_cells(run, saved)
    panels, unreadable = _read_panels(run, cells)
    if not panels:
        return [*unreadable, Note(f"Feature scatter left out: no cell at {describe(fixed) or 'the run'} saved "
                                  "readable features.")]
    uri, kept = _plot_scatter(panels)
    return [*unreadable, Figure("Features per lambda", uri, caption=_scatter_caption(fixed, panels, kept))]


def _scatter_cells(run: GridRun, saved: pd.DataFrame) -> tuple[list, dict]:
    """One cell per lambda of the reference slice among the `saved` cells (finished ok, with an .npz), at most
    MAX_LAMBDA_PANELS lambdas spread over the range, in lambda order; and the values the slice fixes."""
    cells, fixed = _reference_cells(run, saved, free_keys=("lambda",))
    cells = cells.sort_values("lambda")
    lambdas = spread_subset(cells["lambda"].unique(), MAX_LAMBDA_PANELS)
    return [cells[cells["lambda"] == lam].iloc[0] for lam in lambdas], fixed


def _read_panels(run: GridRun, cells: list) -> tuple[list, list]:
    """(a ScatterPanel per cell that saved finite features, a Note per cell whose file could not be used or holds
    non-finite values)."""
    panels, unreadable = [], []
    for cell in cells:
        try:
            arrays = run.read_features(cell)
        except RunFolderError as exc:
            unreadable.append(Note(f"Feature scatter of lambda = {cell['lambda']:g} left out: {exc}"))
            continue
        if arrays is None:
            continue
        features, labels, centers = arrays["features"], arrays["labels"], arrays["centers"]
        if np.isfinite(features).all() and np.isfinite(centers).all():
            panels.append(ScatterPanel(cell["lambda"], cell, features, labels, centers))
        else:
            unreadable.append(Note(f"Feature scatter of lambda = {cell['lambda']:g} left out: "
                                   f"{run.features_path(cell['cell_id']).name} holds non-finite features or centers."))
    return panels, unreadable


def scatter_columns(n_panels: int) -> int:
    """Columns for n scatter panels: at most 4 (a 3.3-inch panel is then about 300 px on a 1366 px page), in rows
    as even as they come (5 and 6 panels: 3 and 3)."""
    return n_panels if n_panels <= 4 else -(-n_panels // 2) if n_panels <= 6 else 4


def _plot_scatter(panels: list) -> tuple[str, list]:
    """The panels drawn side by side, classes coloured alike in every panel; (the PNG's data URI, per panel the
    share of the variance its 2-D projection keeps)."""
    # open set: the held-out classes' labels lie beyond the centers
    num_classes = max(max(p.centers.shape[0], int(p.labels.max(initial=-1)) + 1) for p in panels)
    palette = sns.color_palette("tab10" if num_classes <= 10 else "husl", num_classes)
    rng = np.random.default_rng(0)
    kept = []
    with report_style():
        fig, axes = panel_grid(len(panels), columns=scatter_columns(len(panels)), panel=(3.3, 3.3))
        for ax, panel in zip(axes, panels):
            xy, centers_xy, share = _to_2d(panel.features, panel.centers)
            kept.append(share)
            shown = rng.choice(len(xy), size=min(len(xy), MAX_SCATTER_POINTS), replace=False)
            ax.scatter(xy[shown, 0], xy[shown, 1], c=[palette[c] for c in panel.labels[shown]], s=4, alpha=0.6,
                       linewidths=0)
            ax.scatter(centers_xy[:, 0], centers_xy[:, 1], c=palette[:len(centers_xy)], marker="X", s=80,
                       edgecolors="black", linewidths=0.9)
            ax.set_aspect("equal", adjustable="datalim")
            accuracy = panel.cell.get("test_accuracy", np.nan)
            ax.set_title(f"lambda = {panel.lam:g}, test acc {accuracy:.3f}")
            ax.tick_params(labelsize=7)
        if num_classes <= 10:
            handles = [Line2D([], [], marker="o", linestyle="", color=palette[c], label=str(c))
                       for c in range(num_classes)]
            handles.append(Line2D([], [], marker="X", linestyle="", color="white", markeredgecolor="black",
                                  markersize=9, label="center"))
            legend_below(fig, handles, [h.get_label() for h in handles], title="class")
        return to_data_uri(fig), kept


def _scatter_caption(fixed: dict, panels: list, kept: list) -> str:
    caption = (f"Test features of one cell per lambda ({describe(fixed) or 'the only configuration'}); crosses: "
               "the learned centers. Axes are each panel's own.")
    if min(kept) < 1.0:
        caption += (f" feat_dim {panels[0].features.shape[1]} > 2: PCA to 2-D, keeping {min(kept):.0%} to "
                    f"{max(kept):.0%} of the variance.")
    return caption


def curve_blocks(run: GridRun) -> list:
    """Softmax loss, center loss and train accuracy per epoch for each lambda (the reference slice)."""
    curves = run.curves
    finished = run.results[run.results["status"] != "failed"]
    recorded = finished[finished["cell_id"].isin(set(curves["cell_id"]))]
    if recorded.empty:
        return [Note("Training curves left out: no finished cell recorded per-epoch curves.")]
    if curves["epoch"].nunique() < 2:
        return [Note("Training curves left out: the cells trained for one epoch.")]
    cells, fixed = _reference_cells(run, recorded, free_keys=("lambda", "seed"))
    lambdas = spread_subset(sorted(cells["lambda"].unique()), MAX_LAMBDA_PANELS)
    cells = cells[cells["lambda"].isin(lambdas)]
    data = curves.merge(cells[["cell_id", "lambda", "seed"]], on="cell_id")
    data["lambda_label"] = data["lambda"].map(format_label)
    hue_order = [format_label(v) for v in lambdas]
    metrics = [m for m in PLOTTED_CURVES if m in set(data["metric"])]
    several_seeds = data["seed"].nunique() > 1
    with report_style():
        fig, axes = panel_grid(len(metrics), columns=3, panel=(4.2, 3.0))
        for i, (ax, metric) in enumerate(zip(axes, metrics)):
            values = data[data["metric"] == metric]
            sns.lineplot(values, x="epoch", y="value", hue="lambda_label", hue_order=hue_order, palette="viridis",
                         errorbar=("pi", 100) if several_seeds else None, ax=ax, legend=i == 0)
            if metric == "center_loss" and (values["value"] > 0).all():
                ax.set_yscale("log")
            ax.set(title=PLOTTED_CURVES[metric], ylabel=PLOTTED_CURVES[metric])
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if axes[0].get_legend() is not None:
            axes[0].get_legend().set_title("lambda")
        uri = to_data_uri(fig)
    caption = f"{describe(fixed) or 'All cells'}; lines: mean over seeds"
    caption += "; band: range over seeds." if several_seeds else "."
    return [Figure("Training curves", uri, caption=caption)]
