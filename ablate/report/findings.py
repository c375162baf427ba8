"""The findings as HTML: the report's opening tables (ablate.analysis.findings computes them), the verdict in words
first, each better and worse cell marked with the page's colours (styling.MARKS), the method in the caption; and
the open-set summary. The run's answer and the declaration of its family open the section (ablate.report.lead).

    findings_blocks(run)     each lambda against the reference (pooled), then each setting against it (collapsed)
    findings_table(findings) a findings table as HTML, verdict first, better and worse cells marked
    open_set_blocks(run)     the open-set metrics of the cells that held classes out of training
"""

import pandas as pd

from ablate.analysis.family import report_family_size
from ablate.analysis.findings import (
    CONFIRMATORY,
    DROPPED_TEXT,
    Findings,
    axis_findings,
    column_label,
    grid_findings,
    method_text,
    power_sentence,
)
from ablate.analysis.objective_findings import varies_objective
from ablate.metrics import METRICS, SEEN, get_metric, headline_metrics
from ablate.report.blocks import Block, Note, Table
from ablate.report.styling import FINDINGS_CLASS, MARKS, render
from ablate.runs.configs import format_label, split_noise, varying
from ablate.runs.loading import GridRun
from ablate.runs.summary import mean_ci_text

WORDS = "in words"  # the findings frames' plain-language column, shown first
NAMING = ("setting", "rank", "objective")  # the columns that name a row, before it
WORDS_CLASS = "words"  # its cells' class: the widest column of a findings table


def method_caption(findings: Findings, run: GridRun, what: str, rows_are: str = "the rows of this table") -> str:
    """A findings table's caption of `run`: what it compares and how its numbers were obtained (the page's legend
    says what its colours mean)."""
    return f"{what} {method_text(findings, split_noise(run.results), rows_are)} {DROPPED_TEXT}"


def verdict_first(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its plain-language column right after the columns that name a row."""
    if WORDS not in frame:
        return frame
    naming = [c for c in frame.columns if c in NAMING]
    rest = [c for c in frame.columns if c not in naming and c != WORDS]
    return frame[[*naming, WORDS, *rest]]


def coloured(frame: pd.DataFrame, verdicts: list) -> str:
    """`frame` as a findings table (every value escaped by render), its verdict in words first, each cell whose
    verdict ({column: verdict} per row, in `verdicts`) is better or worse marked with that class (styling.MARKS)."""
    frame = verdict_first(frame)
    classes = pd.DataFrame("", index=frame.index, columns=frame.columns)
    if WORDS in frame:
        classes[WORDS] = WORDS_CLASS
    for i, row in enumerate(verdicts):
        for column, verdict in row.items():
            if verdict in MARKS:
                classes.loc[i, column] = verdict
    return render(frame.style.set_td_classes(classes).hide(axis="index"), FINDINGS_CLASS)


def findings_table(findings: Findings) -> str:
    """The findings as an HTML table, verdict first, better and worse cells marked; the 'against' column left out
    when every row is compared with the same setting (the table's title names it)."""
    verdicts = [{column_label(m): r.verdicts.get(m.name) for m in headline_metrics()} for r in findings.rows]
    frame = findings.frame()
    if frame["against"].nunique() == 1:
        frame = frame.drop(columns="against")
    return coloured(frame, verdicts)


def findings_blocks(run: GridRun) -> list[Block]:
    """The report's lambda tables: each value of the reference key against the reference (pooled over the other
    settings: the run's confirmatory table, whose answer opens the section), then each setting against it
    (exploratory, collapsed), in words and in numbers. A run whose objectives vary has neither: pooling center
    loss's effect over heads that normalize the features and heads that do not mixes unlike things, and each
    objective against itself without center loss is its own table (ablate.report.objective_findings)."""
    key, value = run.reference
    reference = f"{key}={format_label(value)}"
    if "head" in run.results and varies_objective(run):
        return []
    if key not in run.results:
        return [Note(f"Findings left out: the run has no key {key!r} to take a reference setting from.")]
    if not (run.results[key] == value).any():
        return [Note(f"Findings left out: no cell at the reference setting {reference} "
                     f"(`ablate report --reference KEY=VALUE` sets another).")]
    findings = grid_findings(run)
    if not findings.rows:
        return [Note(f"Findings left out: no configuration has a counterpart at {reference}.")]
    pooled = axis_findings(run).as_confirmatory(report_family_size(run))
    power = power_sentence(pooled)
    blocks: list[Block] = [Note(power)] if power else []
    open_set = ""
    if "holdout_classes" in run.results and (run.results["holdout_classes"] > 0).any():
        open_set = (" In open-set settings (holdout_classes > 0) test accuracy is measured on the trained classes and "
                    "the other metrics on the held-out classes (see Open-set).")
    what = (f"Each value of {key} against {reference}: for each seed, its value pooled over the settings of the "
            "other keys that have a counterpart at the reference (geometric mean of ratios, mean of shares); the "
            f"seeds column says how many.{open_set}")
    role = "" if pooled.role == CONFIRMATORY else " (exploratory)"
    blocks.append(Table(f"Findings: each {key} against {reference}{role}", findings_table(pooled),
                        caption=method_caption(pooled, run, what, rows_are=f"the values of {key}")))
    what = f"Each setting against the same setting at {reference}."
    if findings.unmatched:
        what += f" {findings.unmatched} settings have no counterpart there and are not compared."
    blocks.append(Table(f"Findings per setting: against {reference} (exploratory)", findings_table(findings),
                        caption=method_caption(findings, run, what + open_set, rows_are="the settings"),
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
            frame[f"{m.label} ({where})"] = [mean_ci_text(a, b, get_metric(name), n) for a, b, n in
                                             zip(open_set[f"{name}_mean"], open_set[f"{name}_ci95"],
                                                 open_set["n_seeds"])]
    caption = ("Open-set cells: holdout_classes classes, drawn per seed, were held out of training. Retrieval, "
                "verification and compactness are measured on the held-out classes' test samples only (identities the "
                "model never saw, as in the paper's LFW and MegaFace protocols); accuracy, nearest-center accuracy "
                "and the center distance on the trained classes' test samples. Mean ± 95% t-interval over seeds.")
    return [Table("Open-set: metrics on classes held out of training",
                  render(frame.style.hide(axis="index")), caption=caption)]
