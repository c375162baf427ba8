"""The findings as HTML: the report's opening tables (ablate.analysis.findings computes them), each better and
worse cell coloured, with the method in the caption; and the open-set summary.

    findings_blocks(run)     each lambda against the reference (pooled), then each setting against it (collapsed)
    open_set_blocks(run)     the open-set metrics of the cells that held classes out of training
"""

import pandas as pd

from ablate.analysis.findings import (
    DIVERGED_TEXT,
    Findings,
    axis_findings,
    column_label,
    grid_findings,
    method_text,
    power_sentence,
)
from ablate.analysis.stats import DIFFERENT, SIGNIFICANCE, UNTESTABLE
from ablate.metrics import METRICS, SEEN, headline_metrics, primary_metrics
from ablate.report.blocks import Note, Table
from ablate.report.styling import render
from ablate.runs.configs import format_label, varying
from ablate.runs.loading import GridRun
from ablate.runs.summary import mean_ci_text

BETTER_CSS = "background-color: #cfe8d5;"
WORSE_CSS = "background-color: #f6d5d5;"
COLOURS_TEXT = "Green: better, red: worse."


def method_caption(findings: Findings, what: str, rows_are: str = "the rows of this table") -> str:
    """A findings table's caption: what it compares, how its numbers were obtained, what its colours say."""
    return f"{what} {method_text(findings, rows_are)} {COLOURS_TEXT} {DIVERGED_TEXT}"


def findings_table(findings: Findings) -> str:
    """The findings as an HTML table (every value escaped by render), better and worse cells coloured."""
    frame = findings.frame()
    css = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for i, r in enumerate(findings.rows):
        for m in headline_metrics():
            verdict = r.verdicts.get(m.name)
            if verdict in DIFFERENT:
                css.loc[i, column_label(m)] = BETTER_CSS if verdict == "better" else WORSE_CSS
    return render(frame.style.apply(lambda _: css, axis=None).hide(axis="index"))


def findings_blocks(run: GridRun) -> list:
    """The report's opening tables: each value of the reference key against the reference (pooled over the other
    settings), then each setting against it (collapsed), in numbers and in words."""
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
    pooled = axis_findings(run)
    primary = primary_metrics()
    differing = [format_label(r.setting[key]) for r in pooled.rows
                 if any(r.verdicts.get(m.name) in DIFFERENT for m in primary)]
    untestable = sum(any(r.verdicts.get(m.name) == UNTESTABLE for m in primary) for r in pooled.rows)
    diverged = sum(r.flag.startswith("not compared: diverged") for r in findings.rows if r.flag)
    unfinished = sum(bool(r.flag) for r in findings.rows) - diverged
    opening = (f"{len(differing)} of {len(pooled.rows)} values of {key} differ from {reference} in at least one "
               f"primary metric ({', '.join(m.label for m in primary)}; "
               f"{pooled.family_sizes()['primary']} comparisons, simultaneous {1 - SIGNIFICANCE:.0%})"
               + (f": {key} = {', '.join(differing)}" if differing else "")
               + (f"; {untestable} untestable with one seed" if untestable else "")
               + "".join(f"; {n} settings not compared because {why}" for n, why in (
                   (diverged, "a seed diverged"), (unfinished, "no cell finished ok on one side (failed)")) if n)
               + ".")
    blocks = [Note(opening)]
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
    blocks.append(Table(f"Findings: each {key} against {reference}", findings_table(pooled),
                        caption=method_caption(pooled, what, rows_are=f"the values of {key}")))
    what = f"Each setting against the same setting at {reference}."
    if findings.unmatched:
        what += f" {findings.unmatched} settings have no counterpart there and are not compared."
    blocks.append(Table(f"Findings per setting: against {reference}", findings_table(findings),
                        caption=method_caption(findings, what + open_set, rows_are="the settings"),
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
