"""The findings across objectives as HTML (ablate.analysis.objective_findings computes them): every objective
ranked and tested against the best, with its failure rates (the run's confirmatory table); every objective against
the reference objective and center loss added to each objective against it alone (exploratory); and one figure
placing every objective on accuracy against compactness.

    objective_blocks(run)     the report's opening tables and the figure, for a run whose head or pair loss varies
"""

import numpy as np

from ablate.analysis.family import report_family_size
from ablate.analysis.findings import Findings
from ablate.analysis.objective_findings import (
    MORE_FAILURES,
    OBJECTIVE,
    Ranking,
    by_setting,
    center_findings,
    objective_findings,
    objective_summary,
    ranking,
    ranking_frame,
    reference_objective,
    setting_keys,
    varies_objective,
)
from ablate.analysis.outcomes import DID_NOT_LEARN_KAPPA, RATE_LEVEL, learning_threshold
from ablate.analysis.stats import SIGNIFICANCE
from ablate.metrics import get_metric
from ablate.objectives import HEADS
from ablate.report.blocks import Figure, Note, Table
from ablate.report.figures import panel_grid, report_style, series_colors, to_data_uri
from ablate.report.findings import coloured, family_blocks, findings_table, method_caption
from ablate.runs.configs import format_label
from ablate.runs.loading import GridRun

# The figure: test accuracy against compactness on unit features (the angle-based heads normalize the features, so
# raw distances would compare scales, not compactness).
ACCURACY, COMPACTNESS = "test_accuracy", "unit_intra_class_distance"
HEAD_MARKERS = dict(zip(HEADS, "osD^vP*X"))  # one marker per head, in registry order


def _table(run: GridRun, findings: Findings, title: str, what: str, rows_are: str) -> Table:
    if findings.unmatched:
        what += f" {findings.unmatched} objectives have no counterpart in their setting and are not compared."
    return Table(title, findings_table(findings), caption=method_caption(run, findings, what, rows_are=rows_are))


def ranking_caption(table: Ranking) -> str:
    """What the ranking table shows and how its numbers were obtained."""
    label = table.metric.label
    return (f"Per setting, every objective ranked by its mean {label} over its trained seeds (the ranking metric, "
            "declared once in ablate.analysis.objective_findings), and tested directly against the best: the change "
            "on the seeds both trained (paired t), its simultaneous interval and p-value, Bonferroni-adjusted over "
            f"the report's confirmatory family of {table.family_size} tests (level 1 - {SIGNIFICANCE:g}/"
            f"{table.family_size} each); 'worse' exactly when the interval excludes no change; otherwise "
            "'equivalent' when it lies within the effect of interest, 'underpowered' when the MDE (the smallest "
            "change detected with 80% power) exceeds it, else 'no detectable difference' with its MDE. Failures are "
            "outcomes, counted over the finished cells: diverged, and did not learn (test accuracy at most chance "
            f"+ {DID_NOT_LEARN_KAPPA:g} x (1 - chance), {learning_threshold(0.1):.0%} at 10 classes), each with its "
            f"exact (Clopper-Pearson) {RATE_LEVEL:.0%} interval; the share that did not train (either) is compared "
            "with the best's by Boschloo's exact test, a member of the same family. A seed that did not train on "
            "either side is dropped from the comparison of the metric (the seeds column says how many), never "
            "averaged in. Red: worse than the best, or failing more often.")


def ranking_blocks(run: GridRun) -> list:
    """The confirmatory table of a run whose objectives vary: every objective ranked and tested against the best."""
    table = ranking(run).as_confirmatory(report_family_size(run))
    frame = ranking_frame(table)
    verdicts = []
    for s in table.standings:
        difference = table.difference(s)
        verdicts.append({"against the best": difference.verdict if difference is not None else "",
                         "failures against the best": "worse" if table.failures_verdict(s) == MORE_FAILURES else ""})
    return [Table(f"Findings: every objective against the best, ranked by {table.metric.label}",
                  coloured(frame, verdicts), caption=ranking_caption(table))]


def objective_blocks(run: GridRun) -> list:
    """The opening of a report on objectives: the report's family, every objective ranked and tested against the
    best, every objective against the reference objective, center loss added to each objective against it alone
    (both exploratory), and every objective on accuracy against compactness. Nothing for a run whose head and pair
    loss are fixed."""
    if "head" not in run.results or not varies_objective(run):
        return []
    blocks = family_blocks(run) + ranking_blocks(run)
    reference = reference_objective(run)
    findings = objective_findings(run)
    if not findings.rows:
        blocks.append(Note(f"Objective findings against {reference} left out: no objective has the reference "
                           "objective in its setting (`ablate report --reference head=NAME` takes NAME alone as the "
                           "reference)."))
    else:
        blocks.append(_table(run, findings, f"Findings: every objective against {reference} (exploratory)",
                             f"Each objective against {reference} in the same setting of the other keys, over the same "
                             "seeds (the objective names its head with its margin m and scale s, its pair loss and its "
                             "center loss).", "the objectives of this table"))
    center = center_findings(run)
    if center.rows:
        blocks.append(_table(run, center, "Findings: center loss added to each objective against that objective alone "
                                     "(exploratory)",
                             "Each objective with center loss (lambda > 0) against the same objective without it, "
                             "in the same setting, over the same seeds.", "the objectives of this table"))
    return blocks + accuracy_compactness_blocks(run)


def accuracy_compactness_blocks(run: GridRun) -> list:
    """One panel per setting: every objective at its mean test accuracy against its mean intra-class distance on
    unit features, with 95% t-intervals over seeds on both axes; a marker per head, a colour per objective."""
    summary = objective_summary(run)
    columns = [f"{m}_{part}" for m in (ACCURACY, COMPACTNESS) for part in ("mean", "ci95")]
    if any(c not in summary for c in columns):
        return [Note(f"Accuracy against compactness left out: the run has no {ACCURACY} and {COMPACTNESS}.")]
    summary = summary[np.isfinite(summary[[f"{ACCURACY}_mean", f"{COMPACTNESS}_mean"]]).all(axis=1)]
    if summary.empty:
        return [Note("Accuracy against compactness left out: no objective finished every seed.")]
    settings = by_setting(summary, setting_keys(run))
    names = list(dict.fromkeys(summary[OBJECTIVE]))
    colors = series_colors(names)
    x_label, y_label = get_metric(COMPACTNESS).label, get_metric(ACCURACY).label
    with report_style():
        fig, axes = panel_grid(len(settings), columns=2, panel=(5.5, 4.2))
        for ax, (setting, cells) in zip(axes, settings):
            for row in cells.itertuples(index=False):
                row = row._asdict()
                ax.errorbar(row[f"{COMPACTNESS}_mean"], row[f"{ACCURACY}_mean"], xerr=row[f"{COMPACTNESS}_ci95"],
                            yerr=row[f"{ACCURACY}_ci95"], fmt=HEAD_MARKERS.get(row["head"], "o"), markersize=5,
                            capsize=2,
                            color=colors[row[OBJECTIVE]], label=row[OBJECTIVE])
            ax.set_title(", ".join(f"{k}={format_label(v)}" for k, v in setting.items()) or "all cells")
            ax.set_xlabel(x_label + " (lower: more compact)")
            ax.set_ylabel(y_label)
        handles = {}  # every objective once, from whichever panel holds it
        for ax in axes:
            for handle, text in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(text, handle)
        fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=2, frameon=False,
                   fontsize="small")
        uri = to_data_uri(fig)
    caption = (f"Each objective at its mean {y_label} against its mean {x_label} over the seeds that finished ok, "
               "with 95% t-intervals over seeds on both axes; an objective with a diverged seed is left out (its "
               "survivors would be a biased sample). One marker per head. The distance is measured on features scaled "
               "to unit length, so heads that normalize the features and heads that do not are compared on the same "
               "scale.")
    return [Figure("Every objective: accuracy against compactness", uri, caption=caption)]
