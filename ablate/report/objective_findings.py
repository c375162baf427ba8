"""Findings across objectives (ablate.objectives): every objective against a reference objective, and center loss
added to each objective against that objective alone, each compared over seeds by the lambda findings' own
comparison (ablate.report.findings); and one figure placing every objective on accuracy against compactness.

    objective_findings(run)   each objective against the reference objective (the head of `--reference head=NAME`
                              alone, softmax alone by default), per setting of the other keys
    center_findings(run)      each objective with lambda > 0 against the same objective with lambda = 0
    objective_blocks(run)     the report's opening tables and the figure, for a run whose head or pair loss varies
"""

import numpy as np
import pandas as pd

from ablate.metrics import get_metric
from ablate.objectives import DEFAULT_HEAD, HEADS, NO_PAIR_LOSS, OBJECTIVE_KEYS, describe_objective
from ablate.report.blocks import Figure, Note, Table
from ablate.report.configs import varying
from ablate.report.figures import panel_grid, report_style, series_colors, to_data_uri
from ablate.report.findings import Findings, Row, _adjusted, _compare_cells, _seed_text, findings_table, method_caption
from ablate.report.runs import GridRun
from ablate.report.styling import format_label

OBJECTIVE = "objective"
# The keys that name an objective with the head's and pair loss's (describe_objective): center loss's own.
CENTER_KEYS = ("convention", "rule", "alpha")
# The figure: test accuracy against compactness on unit features (the angle-based heads normalize the features, so
# raw distances would compare scales, not compactness).
ACCURACY, COMPACTNESS = "test_accuracy", "unit_intra_class_distance"
HEAD_MARKERS = dict(zip(HEADS, "osD^vP*X"))  # one marker per head, in registry order


def varies_objective(run: GridRun) -> bool:
    """Whether the run compares objectives: its head or pair loss takes more than one value."""
    return bool(set(varying(run.results, run.config_columns)) & {"head", "pair_loss"})


def reference_objective(run: GridRun) -> str:
    """The name of the reference objective: the head of the run's reference setting (head=NAME) alone, at its
    paper's parameters; softmax alone when the reference is set on another key."""
    key, value = run.reference
    head = value if key == "head" and value in HEADS else DEFAULT_HEAD
    return describe_objective({"head": head, **{p.key: p.default for p in HEADS[head].parameters},
                               "pair_loss": NO_PAIR_LOSS, "lambda": 0.0})


def _named(run: GridRun) -> pd.DataFrame:
    """The run's results with an objective column (recomputed from the config keys, also for an older run) and
    the same objective at lambda = 0 (its center-free counterpart); kept on the run."""
    if "objective results" not in run.cache:
        results = run.results.copy()
        results[OBJECTIVE] = [describe_objective(row) for row in results.to_dict("records")]
        results["without center"] = [describe_objective({**row, "lambda": 0.0}) for row in results.to_dict("records")]
        run.cache["objective results"] = results
    return run.cache["objective results"]


def _setting_keys(run: GridRun) -> list:
    """The keys that vary but name no objective (dataset, feat_dim, ...): an objective is compared within each."""
    return [k for k in varying(run.results, run.config_columns) if k not in (*OBJECTIVE_KEYS, *CENTER_KEYS)]


def _by_setting(results: pd.DataFrame, keys: list) -> list:
    """[(setting dict, its cells)] over the values of `keys`."""
    if not keys:
        return [({}, results)]
    return [(dict(zip(keys, values if isinstance(values, tuple) else (values,))), cells)
            for values, cells in results.groupby(keys, sort=True, dropna=False)]


def _findings(run: GridRun, cache_key: str, counterpart) -> Findings:
    """Each objective against the objective counterpart(cells of the objective) names, within each setting; the
    comparison and the family's adjustment are the lambda findings' (ablate.report.findings). Kept on the run."""
    if cache_key in run.cache:
        return run.cache[cache_key]
    rows, unmatched = [], 0
    for setting, cells in _by_setting(_named(run), _setting_keys(run)):
        objectives = dict(list(cells.groupby(OBJECTIVE, sort=False)))
        for name, own in objectives.items():
            against = counterpart(own)
            if against is None or against == name:
                continue
            if against in objectives:
                rows.append(_compare_cells(objectives[against], own, Row({OBJECTIVE: name, **setting}, against,
                                                                         _seed_text(own))))
            else:
                unmatched += 1
    findings = Findings(_adjusted(rows), unmatched)
    run.cache[cache_key] = findings
    return findings


def objective_findings(run: GridRun) -> Findings:
    """Each objective against the reference objective (reference_objective), paired over seeds, per setting."""
    reference = reference_objective(run)
    return _findings(run, "objective findings", lambda own: reference)


def center_findings(run: GridRun) -> Findings:
    """Each objective with center loss (lambda > 0) against the same objective without it, per setting."""
    return _findings(run, "center findings", lambda own: own["without center"].iloc[0])


def _table(findings: Findings, title: str, what: str, rows_are: str) -> Table:
    if findings.unmatched:
        what += f" {findings.unmatched} objectives have no counterpart in their setting and are not compared."
    return Table(title, findings_table(findings), caption=method_caption(findings, what, rows_are=rows_are))


def objective_blocks(run: GridRun) -> list:
    """The opening of a report on objectives: every objective against the reference objective, center loss added
    to each objective against it alone, and every objective on accuracy against compactness. Nothing for a run
    whose head and pair loss are fixed."""
    if "head" not in run.results or not varies_objective(run):
        return []
    reference = reference_objective(run)
    findings = objective_findings(run)
    if not findings.rows:
        return [Note(f"Objective findings left out: no objective has the reference objective {reference} in its "
                     "setting (`ablate report --reference head=NAME` takes NAME alone as the reference).")]
    blocks = [_table(findings, f"Findings: every objective against {reference}",
                     f"Each objective against {reference} in the same setting of the other keys, over the same seeds "
                     "(the objective names its head with its margin m and scale s, its pair loss and its center "
                     "loss).", "the objectives of this table")]
    center = center_findings(run)
    if center.rows:
        blocks.append(_table(center, "Findings: center loss added to each objective against that objective alone",
                             "Each objective with center loss (lambda > 0) against the same objective without it, "
                             "in the same setting, over the same seeds.", "the objectives of this table"))
    return blocks + accuracy_compactness_blocks(run)


def _objective_summary(run: GridRun) -> pd.DataFrame:
    """Per setting and objective: seeds ok, and mean and 95% t-interval half-width of accuracy and compactness
    (NaN for an objective with a diverged seed, as in the summary table)."""
    summary = run.summary.copy()
    summary[OBJECTIVE] = [describe_objective(row) for row in summary.to_dict("records")]
    return summary


def accuracy_compactness_blocks(run: GridRun) -> list:
    """One panel per setting: every objective at its mean test accuracy against its mean intra-class distance on
    unit features, with 95% t-intervals over seeds on both axes; a marker per head, a colour per objective."""
    summary = _objective_summary(run)
    columns = [f"{m}_{part}" for m in (ACCURACY, COMPACTNESS) for part in ("mean", "ci95")]
    if any(c not in summary for c in columns):
        return [Note(f"Accuracy against compactness left out: the run has no {ACCURACY} and {COMPACTNESS}.")]
    summary = summary[np.isfinite(summary[[f"{ACCURACY}_mean", f"{COMPACTNESS}_mean"]]).all(axis=1)]
    if summary.empty:
        return [Note("Accuracy against compactness left out: no objective finished every seed.")]
    settings = _by_setting(summary, _setting_keys(run))
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
