"""The opening of a grid run's section, its first screen: what was studied, then the answer of the run's
confirmatory table (one line per primary metric; one line per setting for a run that ranks objectives), then the
declaration of the report's family. Every number in it is read off the same findings as the table below it.

    lead_blocks(run)     [Lead(study, lines), Note(the family)]
    study_text(run)      'digits (1,149 train / 288 validation / 360 test samples), model mlp, 2-D features, 15 epochs,
                          10 seeds (0-9); varied: ...; 384 cells: 380 ok, 4 diverged'

A tune run (ablate tune) answers the same way from its final seeds, the only cells scored on test: its study says that
each objective was tuned on validation, and a last line gives each objective's selected setting.
"""

import math

import pandas as pd

from ablate.analysis.family import family_statement, report_family_size
from ablate.analysis.findings import Findings, axis_findings
from ablate.analysis.objective_findings import MORE_FAILURES, Ranking, ranking, varies_objective
from ablate.analysis.stats import (
    DEGENERATE,
    DIFFERENT,
    EQUIVALENT,
    IDENTICAL,
    NO_DIFFERENCE,
    TOO_FEW,
    UNDERPOWERED,
    UNTESTABLE,
    Difference,
    effect_text,
    from_change_scale,
)
from ablate.metrics import POINTS, Metric, primary_metrics
from ablate.objectives import OBJECTIVE_KEYS
from ablate.report.blocks import Lead, Note
from ablate.report.grid_tables import cells_text
from ablate.report.tune_blocks import setting_text, tuned_metric_label
from ablate.runs.configs import describe, format_label, seeds_draw_splits, varying
from ablate.runs.loading import GridRun, TuneRun
from ablate.runs.record import SAMPLE_COUNTS

# Said in the study line itself, so not again among the keys that vary.
STUDY_KEYS = ("dataset", "model", "feat_dim", "epochs")
# How the lead says a comparison that found no difference, by its verdict.
QUIET = {NO_DIFFERENCE: "no change detected", UNDERPOWERED: "no change detected, underpowered",
         EQUIVALENT: "equivalent", IDENTICAL: "identical", UNTESTABLE: "untestable with one seed",
         DEGENERATE: "untestable: no spread over seeds"}


def _values(results: pd.DataFrame, key: str) -> list:
    return sorted(results[key].dropna().unique()) if key in results else []


def _range_text(values) -> str:
    """'1,437' for one value, '1,400-1,437' for several."""
    values = sorted({int(v) for v in values})
    return f"{values[0]:,}" if len(values) == 1 else f"{values[0]:,}-{values[-1]:,}"


def _sizes_text(cells: pd.DataFrame) -> str:
    """'1,437 train / 360 test samples' from the records' sizes; '' when the records hold none."""
    parts = [f"{_range_text(cells[column].dropna())} {name}" for column, name in SAMPLE_COUNTS.items()
             if column in cells and cells[column].notna().any()]
    return " / ".join(parts) + " samples" if parts else ""


def _seeds_text(seeds: list) -> str:
    """'10 seeds (0-9)', '3 seeds (0, 4, 7)', '1 seed (0)'."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        return "no seed"
    listed = f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2 else \
        ", ".join(map(str, seeds))
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({listed})"


def study_text(run: GridRun) -> str:
    """What the run studied: each dataset with its sample counts per split (as the records hold them,
    ablate.runs.record.SAMPLE_COUNTS; said so when they hold none), the model, the feature sizes, the epochs and the
    seeds; then the keys that vary and the cells by status."""
    results = run.results
    if isinstance(run, TuneRun) and results.empty:
        return "a tune whose search has not ended: no final seeds yet, so nothing was scored on test"
    finished = results[results["status"] != "failed"]
    datasets = []
    for dataset in _values(results, "dataset"):
        sizes = _sizes_text(finished[finished["dataset"] == dataset])
        datasets.append(f"{dataset} ({sizes or 'sizes not recorded'})")
    parts = [", ".join(datasets) or "dataset not recorded"]
    models = _values(results, "model")
    if models:
        parts.append(f"model {', '.join(map(str, models))}")
    dims = _values(results, "feat_dim")
    if dims:
        parts.append(" and ".join(f"{int(d)}-D" for d in dims) + " features")
    epochs = _values(results, "epochs")
    if epochs:
        parts.append(f"{' and '.join(str(int(e)) for e in epochs)} epoch{'' if list(epochs) == [1] else 's'}")
    parts.append(_seeds_text(_values(results, "seed")))
    text = ", ".join(parts)
    if isinstance(run, TuneRun):
        shared = "" if seeds_draw_splits(results) else ", which share one split"
        text += (f" (final seeds{shared}: each objective's setting selected on validation, then scored on test once; "
                 "the selected settings below)")
    keys = [k for k in varying(results, run.config_columns) if k not in STUDY_KEYS]
    if varies_objective(run) and "objective" in results:  # the objective's own keys are said by its name
        keys = [k for k in keys if k not in OBJECTIVE_KEYS or k == "lambda"]
        text += (f"; {results['objective'].nunique()} objectives (head {', '.join(_values(results, 'head'))}"
                 + (f"; pair_loss {', '.join(_values(results, 'pair_loss'))}" if "pair_loss" in results else "") + ")")
    if keys:
        text += "; varied: " + "; ".join(f"{k} {', '.join(format_label(v) for v in _values(results, k))}"
                                         for k in keys)
    return f"{text}; {cells_text(results)}"


def value_text(metric: Metric, value: float) -> str:
    """A value of a metric on its own scale, as the lead prints it: a share as a percentage ('94.3%'), anything else
    to 3 significant digits."""
    if not math.isfinite(value):
        return "—"
    return f"{100 * value:.1f}%" if metric.change == POINTS else f"{value:.3g}"


def metric_name(metric: Metric) -> str:
    """The metric's label with the geometry it measures when the label does not say it: 'separation ratio
    (Euclidean)', 'MAP@R (cosine)', 'test accuracy'."""
    if metric.geometry is None or metric.geometry in metric.label:
        return metric.label
    return f"{metric.label} ({metric.geometry})"


def _kind(verdict: str) -> str:
    """The verdict without its detail: 'underpowered (MDE 3 pts)' -> 'underpowered'."""
    for kind in (TOO_FEW, UNDERPOWERED, EQUIVALENT):
        if verdict.startswith(kind):
            return kind
    return verdict


def _quiet_detail(kind: str, differences: list) -> str:
    """What a group of comparisons without a difference can say: the range of their MDEs (against the effect of
    interest when underpowered), their margin, their seeds, or their changes."""
    d = differences[0]
    if kind in (NO_DIFFERENCE, UNDERPOWERED):
        low, high = (f(x.minimum_detectable for x in differences) for f in (min, max))
        spread = _mde_text(d, high)
        if low != high:  # '4.7 to 4.9 pts'
            spread = f"{_mde_text(d, low).removesuffix(' pts')} to {spread}"
        if kind == UNDERPOWERED and math.isfinite(d.effect):
            return f"MDE {spread}, above the effect of interest of {effect_text(d.metric, d.effect)}"
        return f"MDE {spread}"
    if kind == EQUIVALENT:
        return d.margin_text()
    return "change " + ", ".join(x.estimate_text() for x in differences)


def _past_range(differences: list) -> str:
    """Why the seeds are too few, in words: 'its interval would pass 100%', 'its MDE exceeds the range'."""
    d = differences[0]
    if not any(x.interval_leaves_range for x in differences):
        return "the smallest change it could detect exceeds the metric's range"
    low, high = d.metric.value_range
    passes_high = any(from_change_scale(x.metric, x.baseline, x.interval[1]) > high
                      for x in differences if x.interval_leaves_range)
    bound = high if passes_high else low
    bound_text = f"{100 * bound:g}%" if d.metric.change == POINTS else f"{bound:g}"
    return f"its interval would {'pass' if passes_high else 'fall below'} {bound_text}"


def _mde_text(difference: Difference, value: float) -> str:
    return "∞" if math.isinf(value) else effect_text(difference.metric, value)


def metric_line(metric: Metric, findings: Findings, key: str, reference: str) -> list:
    """One primary metric's answer, as (text, mark) parts: its value at the reference, each value of `key` that
    differs with its new value, change and simultaneous interval (marked better or worse), then the values without
    a difference grouped by what their comparison can say."""
    rows = [(format_label(r.setting[key]), r.differences.get(metric.name), r.flag) for r in findings.rows]
    if all(d is None and not flag for _, d, flag in rows):
        return [(f"{metric_name(metric)}: not recorded by this run's cells.", "")]
    baselines = {d.baseline for _, d, _ in rows if d is not None and math.isfinite(d.baseline)}
    shared = len({round(b, 12) for b in baselines}) == 1
    parts = [(f"{metric_name(metric)}", "")]
    parts.append((f", {value_text(metric, next(iter(baselines)))} at {reference}: " if shared else
                  f" against {reference}: ", ""))
    said = []
    for value, d, _ in rows:
        if d is None or d.verdict not in DIFFERENT:
            continue
        direction = "raises" if d.estimate > 0 else "lowers"
        start = "" if shared else f" from {value_text(metric, d.baseline)}"
        new = from_change_scale(metric, d.baseline, d.estimate)
        said.append([(f"{key} {value} {direction} it{start} to {value_text(metric, new)} ({d.change_text()}) ", ""),
                     (d.verdict, d.verdict)])
    groups: dict = {}
    for value, d, flag in rows:
        if d is not None and d.verdict in DIFFERENT:
            continue
        kind = "not compared" if d is None else _kind(d.verdict)
        groups.setdefault(kind, []).append((value, d, flag))
    for kind, members in groups.items():
        values = ", ".join(v for v, _, _ in members)
        label = f"{key} {values}"
        if kind == "not compared":
            flags = sorted({f for _, _, f in members if f}) or ["not compared"]
            said.append([(f"{label}: {'; '.join(flags)}", "")])
            continue
        differences = [d for _, d, _ in members]
        if kind == TOO_FEW:
            changes = ", ".join(d.estimate_text() for d in differences)
            said.append([(f"{label}: {differences[0].verdict}, {_past_range(differences)} (change {changes})", "")])
        elif kind in QUIET:
            detail = _quiet_detail(kind, differences)
            said.append([(f"{label}: {QUIET[kind]}" + (f" ({detail})" if detail else ""), "")])
        else:  # not comparable: the metric's own words
            said.append([(f"{label}: {kind}", "")])
    for i, sentence in enumerate(said):
        if i:
            parts.append(("; ", ""))
        parts += sentence
    if not said:
        parts.append(("no comparison", ""))
    parts.append((".", ""))
    return parts


def _objective_line(table: Ranking, setting: dict, standings: list) -> list:
    """One setting's answer in a run that ranks objectives: the best by the ranking metric with its mean, each
    objective worse (or better) than it with its change (marked), how many others could not be told apart from it
    and why, and those that fail more often."""
    metric = table.metric
    best = next((s for s in standings if s.rank == 1 and math.isfinite(s.mean)), None)
    where = describe(setting) or "all cells"
    if best is None:
        return [(f"{where}: no objective trained a seed.", "")]
    parts = [(f"{where}: best by {metric_name(metric)}: {best.objective} ({value_text(metric, best.mean)})", "")]
    few: dict[str, int] = {}  # a "too few seeds" verdict -> how many objectives have it
    quiet, failing, unranked = [], [], 0
    for s in standings:
        if s is best:
            continue
        if not math.isfinite(s.mean):
            unranked += 1
            continue
        d = table.difference(s)
        if d is not None and d.verdict in DIFFERENT:
            parts += [("; ", ""), (f"{s.objective} ({value_text(metric, s.mean)}, {d.change_text()}) ", ""),
                      (d.verdict, d.verdict)]
        elif d is not None and d.verdict.startswith(TOO_FEW):
            few[d.verdict] = few.get(d.verdict, 0) + 1
        elif d is not None:
            quiet.append(d)
        if table.failures_verdict(s) == MORE_FAILURES:
            failing.append(f"{s.objective} ({s.not_trained.k}/{s.not_trained.n} did not train)")
    if quiet:
        mdes = _quiet_detail(NO_DIFFERENCE, quiet)
        parts.append((f"; {_count(len(quiet), 'other')} not told apart from it ({mdes})", ""))
    for verdict, count in few.items():
        parts.append((f"; {verdict} to tell {_count(count, 'other')} from it", ""))
    if failing:
        parts += [("; ", ""), ("fails more often than the best", "worse"), (f": {', '.join(failing)}", "")]
    if unranked:
        parts.append((f"; {_count(unranked, 'other')} trained no seed", ""))
    return parts + [(".", "")]


def _count(n: int, noun: str) -> str:
    """'1 other', '14 others'."""
    return f"{n} {noun}{'s' if n != 1 else ''}"


def answer_lines(run: GridRun) -> list:
    """The answer of the run's confirmatory table: per setting, the objectives against the best (a run whose
    objectives vary); else per primary metric, each value of the reference key against the reference."""
    if "head" in run.results and varies_objective(run):
        table = ranking(run).as_confirmatory(report_family_size(run))
        settings: dict = {}
        for s in table.standings:
            settings.setdefault(tuple(sorted(s.setting.items())), []).append(s)
        return [_objective_line(table, dict(setting), standings) for setting, standings in settings.items()]
    key, value = run.reference
    if key not in run.results or not (run.results[key] == value).any():
        return []
    findings = axis_findings(run)
    if not findings.rows:
        return []
    findings = findings.as_confirmatory(report_family_size(run))
    reference = f"{key}={format_label(value)}"
    return [metric_line(m, findings, key, reference) for m in primary_metrics()]


def selected_line(run: TuneRun) -> list:
    """A tune's selected setting of each objective, with the metric and the trials it was selected by, as one line
    of (text, mark) parts; [] before any trial finished."""
    selected = run.selected
    if selected.empty:
        return []
    counted = run.trials[run.trials["counted"]].groupby("study").size()
    trials = sorted({int(counted.get(study, 0)) for study in selected["study"]})
    budget = f"{trials[0]}" if len(trials) == 1 else f"{trials[0]}-{trials[-1]}"
    settings = "; ".join(f"{setting_text(row.params)} (objective {row.objective or row.study})"
                         for row in selected.itertuples())
    return [(f"Selected by {tuned_metric_label(run)} after {budget} trials per objective: {settings}.", "")]


def lead_blocks(run: GridRun) -> list:
    """The first screen of a grid run: the study and its answer (and a tune's selected settings), then the
    declaration of the report's family."""
    lines = answer_lines(run) if len(run.results) else []
    tuned = selected_line(run) if isinstance(run, TuneRun) else []
    blocks: list = [Lead(study_text(run), lines + ([tuned] if tuned else []))]
    if lines:
        blocks.append(Note(family_statement(run)))
    return blocks
