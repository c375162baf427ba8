"""A tune's part of the report: the selected setting of each objective and the search's trace; the final seeds that
follow are an ordinary grid section (its findings, tables and figures)."""

import json

import pandas as pd

from ablate.metrics import METRICS, label
from ablate.report.blocks import Figure, Note, Table
from ablate.report.figures import panel_grid, report_style, series_colors, shared_legend, to_data_uri
from ablate.report.styling import plain_table
from ablate.runs.loading import TuneRun
from ablate.runs.record import validation_label

TRACE_PANEL = (6.0, 3.2)  # one panel 660 px wide at the report's DPI


def _metric_label(run: TuneRun) -> str:
    """The tuned metric's label on validation, from the trials table's study directions and tune.toml's metric."""
    metric = run.provenance.get("metric")
    return validation_label(label(metric) if isinstance(metric, str) and metric in METRICS else "metric")


def selected_blocks(run: TuneRun) -> list:
    """One row per objective: its trials by state, the selected trial, its validation value and its setting."""
    trials = run.trials
    if trials.empty:
        return [Note("No trial has run yet.")]
    rows = []
    for study, group in trials.groupby("study", sort=False):
        counted = group[group["counted"]]
        chosen = run.selected[run.selected["study"] == study]
        row = {"objective": group["objective"].iloc[0], "trials": len(counted),
               **{state.lower(): int((counted["state"] == state).sum()) for state in ("COMPLETE", "PRUNED", "FAIL")},
               "diverged": int((counted["status"] == "diverged").sum())}
        if chosen.empty:
            row.update({"selected trial": "none finished", "validation": float("nan"), "setting": "—"})
        else:
            best = chosen.iloc[0]
            params = json.loads(best["params"])
            setting = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
            row.update({"selected trial": str(best["trial"]), "validation": best["value"], "setting": setting or "—"})
        rows.append(row)
    table = pd.DataFrame(rows).rename(columns={"complete": "finished", "fail": "failed",
                                               "validation": _metric_label(run)})
    caption = ("Each objective searched with the same budget of trials (Optuna's TPE), scored on the validation "
               "split only; pruned trials stopped early for falling behind the finished ones at the same epoch, and "
               "diverged trials are counted as pruned: neither is ever a result. The selected setting is the best "
               "finished trial; the sections below score it on fresh seeds' test splits, the only cells that read "
               "the test set.")
    return [Table("Selected settings", plain_table(table), caption=caption)]


def trace_blocks(run: TuneRun) -> list:
    """The best validation value so far against the trial number, one line per objective, each trial a dot."""
    trials = run.trials[run.trials["counted"]]
    if trials.empty:
        return []
    studies = list(dict.fromkeys(trials["study"]))
    names = {study: trials.loc[trials["study"] == study, "objective"].iloc[0] or study for study in studies}
    colors = series_colors([names[s] for s in studies])
    with report_style():
        fig, (ax,) = panel_grid(1, panel=TRACE_PANEL)
        for study in studies:
            group = trials[trials["study"] == study]
            color = colors[names[study]]
            ax.plot(group["trial"], group["best_so_far"], drawstyle="steps-post", color=color, label=names[study])
            ax.scatter(group["trial"], group["value"], s=12, color=color, alpha=0.6)
        ax.set_xlabel("trial")
        ax.set_ylabel(_metric_label(run))
        shared_legend(fig, [ax])
        image = to_data_uri(fig)
    caption = ("Line: the best validation value of the objective's finished trials so far; dots: each finished "
               "trial's value (pruned, diverged and failed trials have none).")
    return [Figure("Search trace", image, caption)]
