"""The findings as HTML: the report's opening tables (ablate.analysis.findings computes them), each better and
worse cell coloured, with the method in the caption; the declaration of the report's family; and the open-set
summary.

    family_blocks(run)       the paragraph that declares the report's confirmatory family (ablate.analysis.family)
    findings_blocks(run)     each lambda against the reference (pooled), then each setting against it (collapsed)
    open_set_blocks(run)     the open-set metrics of the cells that held classes out of training
"""

import pandas as pd

from ablate.analysis.family import family_statement, report_family_size
from ablate.analysis.findings import (
    CONFIRMATORY,
    DROPPED_TEXT,
    Findings,
    axis_findings,
    column_label,
    grid_findings,
    method_text,
    power_sentence,
    split_noise_text,
)
from ablate.analysis.objective_findings import varies_objective
from ablate.analysis.stats import DIFFERENT, EQUIVALENT, SIGNIFICANCE, UNDERPOWERED, UNTESTED
from ablate.metrics import METRICS, SEEN, headline_metrics, primary_metrics
from ablate.report.blocks import Note, Table
from ablate.report.styling import render
from ablate.runs.configs import format_label, varying
from ablate.runs.loading import GridRun
from ablate.runs.summary import mean_ci_text

BETTER_CSS = "background-color: #cfe8d5;"
WORSE_CSS = "background-color: #f6d5d5;"
COLOURS_TEXT = "Green: better, red: worse."


def method_caption(run: GridRun, findings: Findings, what: str, rows_are: str = "the rows of this table") -> str:
    """A findings table's caption: what it compares, how its numbers were obtained (on the run's splits), what its
    colours say."""
    method = method_text(findings, rows_are, split_noise=split_noise_text(run.results))
    return f"{what} {method} {COLOURS_TEXT} {DROPPED_TEXT}"


def coloured(frame: pd.DataFrame, verdicts: list) -> str:
    """`frame` as an HTML table (every value escaped by render), each cell whose verdict ({column: verdict} per
    row, in `verdicts`) is better or worse coloured."""
    css = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for i, row in enumerate(verdicts):
        for column, verdict in row.items():
            if verdict in DIFFERENT:
                css.loc[i, column] = BETTER_CSS if verdict == "better" else WORSE_CSS
    return render(frame.style.apply(lambda _: css, axis=None).hide(axis="index"))


def findings_table(findings: Findings) -> str:
    """The findings as an HTML table, better and worse cells coloured."""
    verdicts = [{column_label(m): r.verdicts.get(m.name) for m in headline_metrics()} for r in findings.rows]
    return coloured(findings.frame(), verdicts)


def family_blocks(run: GridRun) -> list:
    """The declaration of the report's family, at the top of the run's findings."""
    return [Note(family_statement(run))]


def _opening(run: GridRun, pooled: Findings, findings: Findings) -> str:
    """The first sentence of the lambda findings: how many values of the key differ, are equivalent, underpowered,
    untestable or not compared."""
    key, value = run.reference
    reference = f"{key}={format_label(value)}"
    primary = primary_metrics()
    verdicts = [[r.verdicts.get(m.name, "") for m in primary] for r in pooled.rows]
    differing = [format_label(r.setting[key]) for r, v in zip(pooled.rows, verdicts) if set(v) & set(DIFFERENT)]
    count = lambda test: sum(any(test(v) for v in row) for row in verdicts)  # noqa: E731
    equivalent, underpowered = count(lambda v: v.startswith(EQUIVALENT)), count(lambda v: v.startswith(UNDERPOWERED))
    untested = count(lambda v: v in UNTESTED)
    not_compared = sum(bool(r.flag) for r in findings.rows)
    size = pooled.family_sizes()["primary"]
    return (f"{len(differing)} of {len(pooled.rows)} values of {key} differ from {reference} in at least one "
            f"primary metric ({', '.join(m.label for m in primary)}; {size} comparisons, simultaneous "
            f"{1 - SIGNIFICANCE:.0%})"
            + (f": {key} = {', '.join(differing)}" if differing else "")
            + (f"; {equivalent} equivalent within the effect of interest in a metric" if equivalent else "")
            + (f"; {underpowered} underpowered in a metric (its MDE exceeds the effect of interest)"
               if underpowered else "")
            + (f"; {untested} untestable in a metric (one seed, or no spread over seeds)" if untested else "")
            + (f"; {not_compared} settings not compared (no seed trained on both sides)" if not_compared else "")
            + ".")


def findings_blocks(run: GridRun) -> list:
    """The report's lambda tables: each value of the reference key against the reference (pooled over the other
    settings; the run's confirmatory table unless its objectives vary, preceded then by the family's declaration),
    then each setting against it (exploratory, collapsed), in numbers and in words."""
    key, value = run.reference
    reference = f"{key}={format_label(value)}"
    if key not in run.results:
        return [Note(f"Findings left out: the run has no key {key!r} to take a reference setting from.")]
    if not (run.results[key] == value).any():
        return [Note(f"Findings left out: no cell at the reference setting {reference} "
                     f"(`ablate report --reference KEY=VALUE` sets another).")]
    findings = grid_findings(run)
    if not findings.rows:
        return [Note(f"Findings left out: no configuration has a counterpart at {reference}.")]
    is_confirmatory = "head" not in run.results or not varies_objective(run)
    pooled = axis_findings(run)
    if is_confirmatory:
        pooled = pooled.as_confirmatory(report_family_size(run))
    blocks = (family_blocks(run) if is_confirmatory else []) + [Note(_opening(run, pooled, findings))]
    power = power_sentence(pooled)
    if power:
        blocks.append(Note(power))
    open_set = ""
    if "holdout_classes" in run.results and (run.results["holdout_classes"] > 0).any():
        open_set = (" In open-set settings (holdout_classes > 0) test accuracy is measured on the trained classes and "
                    "the other metrics on the held-out classes (see Open-set).")
    what = (f"Each value of {key} against {reference}: for each seed, its value pooled over the settings of the "
            "other keys that have a counterpart at the reference (geometric mean of ratios, mean of shares); the "
            f"seeds column says how many.{open_set}")
    role = "" if pooled.role == CONFIRMATORY else " (exploratory)"
    blocks.append(Table(f"Findings: each {key} against {reference}{role}", findings_table(pooled),
                        caption=method_caption(run, pooled, what, rows_are=f"the values of {key}")))
    what = f"Each setting against the same setting at {reference}."
    if findings.unmatched:
        what += f" {findings.unmatched} settings have no counterpart there and are not compared."
    blocks.append(Table(f"Findings per setting: against {reference} (exploratory)", findings_table(findings),
                        caption=method_caption(run, findings, what + open_set, rows_are="the settings"),
                        collapsed=True))
    return blocks


def open_set_blocks(run: GridRun) -> list:
    """The summary of the open-set cells (classes held out of training) under its own heading."""
    summary = run.summary
    if "holdout_classes" not in summary or not (summary["holdout_classes"] > 0).any():
        return []
    open_set = summary[summary["holdout_classes"] > 0]
    keys = varying(summary, run.config_columns) or ["holdout_classes"]
    frame = open_set[keys].map(format_label).reset_index(drop=True)
    frame.insert(len(keys), "seeds", open_set["n_seeds"].to_numpy())
    for m in METRICS:
        name = m.name
        if m.compute is not None and m.summarized and f"{name}_mean" in open_set:
            where = "seen" if m.open_set == SEEN else "held out"
            frame[f"{m.label} ({where})"] = [mean_ci_text(a, b) for a, b in
                                             zip(open_set[f"{name}_mean"], open_set[f"{name}_ci95"])]
    caption = ("Open-set cells: holdout_classes classes, drawn per seed, were held out of training. Retrieval, "
                "verification and compactness are measured on the held-out classes' test samples only (identities the "
                "model never saw, as in the paper's LFW and MegaFace protocols); accuracy, nearest-center accuracy "
                "and the center distance on the trained classes' test samples. Mean ± 95% t-interval over seeds.")
    return [Table("Open-set: metrics on classes held out of training",
                  render(frame.style.hide(axis="index")), caption=caption)]
