"""Findings across objectives (ablate.objectives): every objective ranked and tested directly against the best one,
with its failures counted; every objective against a reference objective, and center loss added to each objective
against that objective alone, each compared over seeds by the lambda findings' own comparison
(ablate.analysis.findings: compare_cells, adjusted_findings).

    ranking(run)              per setting of the other keys: the objectives ranked by RANKING_METRIC, each tested
                              against the best (simultaneous intervals), and each one's rates of diverged cells and
                              of cells that did not learn, compared with the best's by an exact test
    objective_findings(run)   each objective against the reference objective (the head of `--reference head=NAME`
                              alone, softmax alone by default), per setting of the other keys
    center_findings(run)      each objective with lambda > 0 against the same objective with lambda = 0 (in a tune:
                              the same head and pair loss as the tune fixed them, each at its own selected setting)
    objective_summary(run)    the summary table with each configuration's objective named

Against the best. The best objective of a setting is the one with the best mean of RANKING_METRIC over its trained
seeds; every other is compared with it on the seeds both trained (paired: each seed is one split and
initialization for every objective), its interval simultaneous over the family (Bonferroni over the table's tests).
scipy.stats.dunnett is the library's many-to-one procedure, but for independent groups with one common variance:
objectives that share seeds are not independent (the shared split moves every objective together, which pairing
removes, and which Dunnett would count as noise), nor of one variance (a head that is sometimes unstable scatters
more). Bonferroni over paired t-intervals holds under any correlation and costs little at this size: for 7
comparisons at 5% its critical value is 2.69 standard errors against Dunnett's 2.61 for a correlation of 0.5 (as
between comparisons that share the best; normal reference), 3% wider. The best being chosen from the same data
does not void the intervals' claim that another objective is worse: such a claim is wrong only if that objective is
truly the best, and then its comparison with the chosen one is one of the family's tests (Hsu's multiple comparisons
with the best).

Failures. Per objective: the share of its finished cells that diverged and the share that did not learn
(ablate.analysis.outcomes), each with its Clopper-Pearson interval; the share that did not train (either) compared
with the best's by Boschloo's exact test, a member of the same family. Two sides without a failure are no test.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pandas as pd

from ablate.analysis.findings import (
    CONFIRMATORY,
    EXPLORATORY,
    Findings,
    Row,
    adjusted_findings,
    cell_text,
    compare_cells,
    declared_effects,
)
from ablate.analysis.outcomes import DID_NOT_LEARN, DIVERGED, FAILED, TRAINED, Rate, outcomes, rates_differ_p
from ablate.analysis.stats import SIGNIFICANCE, Difference
from ablate.metrics import Metric, get_metric
from ablate.objectives import DEFAULT_HEAD, HEADS, NO_PAIR_LOSS, OBJECTIVE_KEYS, describe_objective
from ablate.runs.configs import describe, varying
from ablate.runs.loading import GridRun

OBJECTIVE = "objective"
CENTER_FREE = "without center, as compared"  # the objective without center loss, named by the compared keys only
# The keys that name an objective with the head's and pair loss's (describe_objective): center loss's own.
CENTER_KEYS = ("convention", "rule", "alpha")
# The metric objectives are ranked and tested on, read from the metric registry: retrieval, where a contest of
# feature-learning objectives is decided, on L2-normalized features (Musgrave et al. 2020). Switching it (to
# Euclidean MAP@R, say) is this line.
RANKING_METRIC = "cosine_map_at_r"
MORE_FAILURES, FEWER_FAILURES = "fails more often than the best", "fails less often than the best"


def varies_objective(run: GridRun) -> bool:
    """Whether the run compares objectives: its head or pair loss takes more than one value."""
    return bool(set(varying(run.results, run.config_columns)) & {"head", "pair_loss"})


def reference_objective(run: GridRun) -> str:
    """The name of the reference objective: the head of the run's reference setting (head=NAME) alone, softmax alone
    when the reference is set on another key. Its cells trained it by its recipe (a scale from the class count, an
    embedding norm) or at other values: the run's own cells of that head alone name it, those at the paper's
    parameters first where the run has several; the paper's parameters where it has none."""
    key, value = run.reference
    head = value if key == "head" and value in HEADS else DEFAULT_HEAD
    at_paper = describe_objective({"head": head, **{p.key: p.default for p in HEADS[head].parameters},
                                   "pair_loss": NO_PAIR_LOSS, "lambda": 0.0})
    named = _named(run)
    alone = named[(named[OBJECTIVE] == named["without center"])]
    found = sorted({row[OBJECTIVE] for row in alone.to_dict("records")
                    if row.get("head", DEFAULT_HEAD) == head and row.get("pair_loss", NO_PAIR_LOSS) == NO_PAIR_LOSS})
    return at_paper if at_paper in found or not found else found[0]


def _named(run: GridRun) -> pd.DataFrame:
    """The run's results with an objective column (recomputed from the config keys, also for an older run), the
    same objective at lambda = 0 (its center-free counterpart), and that counterpart named by the run's config keys
    alone (CENTER_FREE): in a tune the searched parameters (a scale, a margin) are each objective's selected setting,
    not part of what the tune compares, so CenterLoss's counterpart is the objective the tune ran without center
    loss, at its own selected setting. Kept on the run."""
    if "objective results" not in run.cache:
        results = run.results.copy()
        records = results.to_dict("records")
        searched = dict.fromkeys(k for k in OBJECTIVE_KEYS if k not in run.config_columns)
        results[OBJECTIVE] = [describe_objective(row) for row in records]
        results["without center"] = [describe_objective({**row, "lambda": 0.0}) for row in records]
        results[CENTER_FREE] = [describe_objective({**row, **searched, "lambda": 0.0}) for row in records]
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


@dataclass
class Standing:
    """One objective in one setting: its rank by the ranking metric's mean over its trained seeds (NaN: none
    trained), its finished cells' rates of divergence and of not learning, its crashed cells (no outcome), and,
    unless it is the best, its comparison with the best (a Row of the ranking metric alone) and the raw p-value of
    the exact test of its share of cells that did not train against the best's (NaN: no test)."""

    setting: dict
    objective: str
    rank: int
    mean: float
    diverged: Rate
    did_not_learn: Rate
    failed: int
    row: Row | None = None
    failures_p: float = math.nan

    @property
    def not_trained(self) -> Rate:
        return Rate(self.diverged.k + self.did_not_learn.k, self.diverged.n)


@dataclass
class Ranking:
    """Every setting's objectives ranked by `metric`, each tested against its setting's best; family_size: the
    tests the intervals and p-values are adjusted over (the table's, or a whole report's); role: CONFIRMATORY or
    EXPLORATORY."""

    metric: Metric
    standings: list
    family_size: int
    role: str = EXPLORATORY
    effects: dict = field(default_factory=dict)

    def tests(self) -> int:
        """The table's own tests: the ranking metric's tested comparisons and the failure comparisons."""
        compared = sum(s.row.differences[self.metric.name].testable for s in self.standings
                       if s.row is not None and self.metric.name in s.row.differences)
        return compared + sum(math.isfinite(s.failures_p) for s in self.standings)

    def difference(self, standing: Standing) -> Difference | None:
        """The ranking metric's Difference of `standing` against the best, adjusted over the family."""
        if standing.row is None or self.metric.name not in standing.row.differences:
            return None
        return standing.row.differences[self.metric.name]

    def failures_p(self, standing: Standing) -> float:
        """The exact test's p-value adjusted over the family (Bonferroni); NaN without a test."""
        return min(1.0, self.family_size * standing.failures_p) if math.isfinite(standing.failures_p) else math.nan

    def failures_verdict(self, standing: Standing) -> str:
        """Whether `standing` fails more or less often than the best, at the family's level; '' without a test."""
        p = self.failures_p(standing)
        if not math.isfinite(p):
            return ""
        if p > SIGNIFICANCE:
            return "no detectable difference"
        best = next(s for s in self.standings if s.setting == standing.setting and s.rank == 1)
        more = standing.not_trained.k / standing.not_trained.n > best.not_trained.k / best.not_trained.n
        return MORE_FAILURES if more else FEWER_FAILURES

    def as_confirmatory(self, family_size: int) -> "Ranking":
        """This ranking as a report's confirmatory table, adjusted over `family_size` tests (at least its own)."""
        return _adjusted(self.metric, self.standings, self.effects, max(family_size, self.tests()), CONFIRMATORY)


def _adjusted(metric: Metric, standings: list, effects: dict, family_size: int, role: str) -> Ranking:
    """The ranking with each comparison's Difference adjusted over family_size tests, with its effect of interest."""
    adjusted = []
    for s in standings:
        if s.row is not None and metric.name in s.row.differences:
            difference = replace(s.row.differences[metric.name], family_size=max(1, family_size),
                                 effect=effects.get(metric.name, math.nan))
            s = replace(s, row=replace(s.row, differences={metric.name: difference}))
        adjusted.append(s)
    return Ranking(metric, adjusted, max(1, family_size), role, effects)


def _setting_standings(setting: dict, cells: pd.DataFrame, metric: Metric) -> list:
    """The standings of one setting's objectives, best first (objectives with no trained seed last)."""
    groups = dict(list(cells.groupby(OBJECTIVE, sort=False)))
    outcome = {name: outcomes(group) for name, group in groups.items()}
    means = {name: float(pd.to_numeric(group.loc[outcome[name] == TRAINED, metric.name], errors="coerce").mean())
             if metric.name in group else math.nan for name, group in groups.items()}
    sign = 1 if metric.higher_is_better else -1
    order = sorted(groups, key=lambda name: (not math.isfinite(means[name]), -sign * means[name]
                                             if math.isfinite(means[name]) else 0.0))
    best = order[0] if math.isfinite(means[order[0]]) else None
    standings = []
    for rank, name in enumerate(order, 1):
        finished = int((outcome[name] != FAILED).sum())
        standing = Standing(setting, name, rank, means[name], Rate(int((outcome[name] == DIVERGED).sum()), finished),
                            Rate(int((outcome[name] == DID_NOT_LEARN).sum()), finished),
                            int((outcome[name] == FAILED).sum()))
        if best is not None and name != best:
            standing.row = compare_cells(groups[best], groups[name], {OBJECTIVE: name, **setting}, best,
                                         sides=("for the best", "for this objective"), metrics=[metric])
        standings.append(standing)
    for standing in standings[1:] if best is not None else []:
        mine, theirs = standing.not_trained, standings[0].not_trained
        if mine.k + theirs.k > 0:
            standing.failures_p = rates_differ_p(mine, theirs)
    return standings


def ranking(run: GridRun) -> Ranking:
    """Per setting of the keys that name no objective: every objective ranked by RANKING_METRIC (the registry's
    entry) over its trained seeds and tested against the best, with its failure rates; adjusted over the table's own
    tests (Ranking.as_confirmatory adjusts it over a report's family). Kept on the run."""
    if "ranking" in run.cache:
        return run.cache["ranking"]
    metric = get_metric(RANKING_METRIC)
    standings = [s for setting, cells in by_setting(_named(run), setting_keys(run))
                 for s in _setting_standings(setting, cells, metric)]
    draft = Ranking(metric, standings, 1)
    result = _adjusted(metric, standings, declared_effects(run), draft.tests(), EXPLORATORY)
    run.cache["ranking"] = result
    return result


def _findings(run: GridRun, cache_key: str,
              counterpart: Callable[[pd.DataFrame, pd.DataFrame], str | None]) -> Findings:
    """Each objective against the objective counterpart(cells of the objective, cells of its setting) names, within
    each setting; the comparison and the family's adjustment are the lambda findings' (ablate.analysis.findings).
    Kept on the run."""
    if cache_key in run.cache:
        return run.cache[cache_key]
    rows, unmatched = [], 0
    for setting, cells in by_setting(_named(run), setting_keys(run)):
        objectives = dict(list(cells.groupby(OBJECTIVE, sort=False)))
        for name, own in objectives.items():
            against = counterpart(own, cells)
            if against is None or against == name:
                continue
            if against in objectives:
                rows.append(compare_cells(objectives[against], own, {OBJECTIVE: name, **setting}, against))
            else:
                unmatched += 1
    findings = adjusted_findings(rows, unmatched, effects=declared_effects(run))
    run.cache[cache_key] = findings
    return findings


def objective_findings(run: GridRun) -> Findings:
    """Each objective against the reference objective (reference_objective), paired over seeds, per setting."""
    reference = reference_objective(run)
    return _findings(run, "objective findings", lambda own, setting: reference)


def _without_center(own: pd.DataFrame, setting: pd.DataFrame) -> str:
    """The objective of `setting` (its cells) that is `own`'s objective without center loss: the one of its objectives
    at lambda 0 named as own's counterpart by the compared keys (CENTER_FREE), where exactly one is; else own's
    objective at lambda 0 by name (unmatched when the setting has none)."""
    alone = setting[setting[OBJECTIVE] == setting["without center"]]
    found = alone.loc[alone[CENTER_FREE] == own[CENTER_FREE].iloc[0], OBJECTIVE].unique()
    return found[0] if len(found) == 1 else own["without center"].iloc[0]


def center_findings(run: GridRun) -> Findings:
    """Each objective with center loss (lambda > 0) against the same objective without it, per setting."""
    return _findings(run, "center findings", _without_center)


def objective_summary(run: GridRun) -> pd.DataFrame:
    """The run's summary table (per configuration: seeds ok, mean and 95% t-interval half-width of each metric, NaN
    for a configuration with a diverged seed) with an objective column naming each configuration's objective."""
    summary = run.summary.copy()
    summary[OBJECTIVE] = [describe_objective(row) for row in summary.to_dict("records")]
    return summary



def _failures_text(ranking: Ranking, standing: Standing) -> str:
    """'p_adj = 0.02, fails more often than the best'; '—' for the best; 'none on either side' without a test."""
    if standing.rank == 1 or standing.row is None:
        return "—"
    p = ranking.failures_p(standing)
    return f"p_adj = {p:.2g}, {ranking.failures_verdict(standing)}" if math.isfinite(p) else "none on either side"


def _words(ranking: Ranking, standing: Standing) -> str:
    """The comparison with the best in words, and the failures' when they differ."""
    if standing.row is None:
        return "the best" if math.isfinite(standing.mean) else "not ranked: no seed trained"
    failures = ranking.failures_verdict(standing)
    if failures not in (MORE_FAILURES, FEWER_FAILURES):
        return standing.row.words()
    not_trained = standing.not_trained
    return (f"{standing.row.words()}; {failures} (did not train: {not_trained.k}/{not_trained.n}, "
            f"p_adj = {ranking.failures_p(standing):.2g})")


def ranking_frame(ranking: Ranking) -> pd.DataFrame:
    """One row per objective and setting, best first within each setting: rank, objective, finished cells, the
    rates of divergence and of not learning with their exact intervals, failures against the best, the ranking
    metric's mean over trained seeds, the comparison with the best (change, simultaneous interval, adjusted p,
    verdict with its MDE), the seeds it used, in words."""
    label = ranking.metric.label
    records = []
    for s in ranking.standings:
        difference = ranking.difference(s)
        record = {"setting": describe(s.setting) or "all", "rank": s.rank, OBJECTIVE: s.objective,
                  "cells": f"{s.diverged.n}" + (f" (+{s.failed} failed: the run's error)" if s.failed else ""),
                  "diverged": s.diverged.text(), "did not learn": s.did_not_learn.text(),
                  "failures against the best": _failures_text(ranking, s),
                  f"{label} (mean of trained seeds)": f"{s.mean:.4g}" if math.isfinite(s.mean) else "—",
                  "against the best": "best" if s.row is None and math.isfinite(s.mean) else (
                      cell_text(difference) if difference is not None else "—"),
                  "seeds": s.row.seeds if s.row is not None else "",
                  "in words": _words(ranking, s)}
        records.append(record)
    return pd.DataFrame.from_records(records)
