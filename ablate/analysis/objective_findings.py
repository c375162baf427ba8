"""Findings across objectives (ablate.objectives): every objective against a reference objective, and center loss
added to each objective against that objective alone, each compared over seeds by the lambda findings' own
comparison (ablate.analysis.findings: compare_cells, adjusted_findings).

    objective_findings(run)   each objective against the reference objective (the head of `--reference head=NAME`
                              alone, softmax alone by default), per setting of the other keys
    center_findings(run)      each objective with lambda > 0 against the same objective with lambda = 0
    objective_summary(run)    the summary table with each configuration's objective named
"""

from collections.abc import Callable

import pandas as pd

from ablate.analysis.findings import Findings, adjusted_findings, compare_cells
from ablate.objectives import DEFAULT_HEAD, HEADS, NO_PAIR_LOSS, OBJECTIVE_KEYS, describe_objective
from ablate.runs.configs import varying
from ablate.runs.loading import GridRun

OBJECTIVE = "objective"
# The keys that name an objective with the head's and pair loss's (describe_objective): center loss's own.
CENTER_KEYS = ("convention", "rule", "alpha")


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


def setting_keys(run: GridRun) -> list:
    """The keys that vary but name no objective (dataset, feat_dim, ...): an objective is compared within each."""
    return [k for k in varying(run.results, run.config_columns) if k not in (*OBJECTIVE_KEYS, *CENTER_KEYS)]


def by_setting(results: pd.DataFrame, keys: list) -> list:
    """[(setting dict, its cells)] over the values of `keys`."""
    if not keys:
        return [({}, results)]
    return [(dict(zip(keys, values if isinstance(values, tuple) else (values,))), cells)
            for values, cells in results.groupby(keys, sort=True, dropna=False)]


def _findings(run: GridRun, cache_key: str, counterpart: Callable[[pd.DataFrame], str | None]) -> Findings:
    """Each objective against the objective counterpart(cells of the objective) names, within each setting; the
    comparison and the family's adjustment are the lambda findings' (ablate.analysis.findings). Kept on the run."""
    if cache_key in run.cache:
        return run.cache[cache_key]
    rows, unmatched = [], 0
    for setting, cells in by_setting(_named(run), setting_keys(run)):
        objectives = dict(list(cells.groupby(OBJECTIVE, sort=False)))
        for name, own in objectives.items():
            against = counterpart(own)
            if against is None or against == name:
                continue
            if against in objectives:
                rows.append(compare_cells(objectives[against], own, {OBJECTIVE: name, **setting}, against))
            else:
                unmatched += 1
    findings = adjusted_findings(rows, unmatched)
    run.cache[cache_key] = findings
    return findings


def objective_findings(run: GridRun) -> Findings:
    """Each objective against the reference objective (reference_objective), paired over seeds, per setting."""
    reference = reference_objective(run)
    return _findings(run, "objective findings", lambda own: reference)


def center_findings(run: GridRun) -> Findings:
    """Each objective with center loss (lambda > 0) against the same objective without it, per setting."""
    return _findings(run, "center findings", lambda own: own["without center"].iloc[0])


def objective_summary(run: GridRun) -> pd.DataFrame:
    """The run's summary table (per configuration: seeds ok, mean and 95% t-interval half-width of each metric, NaN
    for a configuration with a diverged seed) with an objective column naming each configuration's objective."""
    summary = run.summary.copy()
    summary[OBJECTIVE] = [describe_objective(row) for row in summary.to_dict("records")]
    return summary
