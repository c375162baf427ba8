"""One declared family per report: which comparisons are confirmatory, and how many they are across the report.

    declare_report_family(runs)    the confirmatory tests of every grid run of a report, added up, kept on each run
    report_family_size(run)        what the run's confirmatory table is adjusted over (its as_confirmatory takes it)
    family_statement(run)          the paragraph that declares the family, for the top of the run's findings

A report holds several findings tables; each adjusted over its own rows would hold its own 5% family-wise error,
and the report as a whole far more. So one table of each grid run is confirmatory: the objectives ranked and tested
against the best (a run whose head or pair loss varies: ablate.analysis.objective_findings.ranking), else each value
of the reference key against the reference, pooled over the other settings (ablate.analysis.findings.axis_findings).
The confirmatory tests of every grid run in the report form one family, adjusted together (Bonferroni), so that the
chance of any false verdict among them is at most SIGNIFICANCE. Every other table is exploratory: adjusted within
itself only, its verdicts are leads, and the report says so.
"""

from ablate.analysis.findings import Findings, axis_findings, declared_effects, effects_sentence
from ablate.analysis.objective_findings import Ranking, ranking, varies_objective
from ablate.analysis.stats import EFFECT_OF_INTEREST, SIGNIFICANCE
from ablate.metrics import primary_metrics
from ablate.runs.configs import format_label
from ablate.runs.loading import GridRun

REPORT_FAMILY = "report family"  # run.cache key: (tests in the report's family, grid runs it spans)


def _own(run: GridRun) -> Findings | Ranking | None:
    """The run's confirmatory table adjusted over its own tests; None when it has none."""
    if "head" in run.results and varies_objective(run):
        return ranking(run)
    key, value = run.reference
    if key not in run.results or not (run.results[key] == value).any():
        return None
    findings = axis_findings(run)
    return findings if findings.rows else None


def _tests(table: Findings | Ranking | None) -> int:
    if table is None:
        return 0
    return table.tests() if isinstance(table, Ranking) else table.tested()["primary"]


def declare_report_family(runs: list) -> int:
    """The tests of the confirmatory tables of every grid run in `runs`, added up and kept on each of them
    (run.cache[REPORT_FAMILY]) so that each run's confirmatory table is adjusted over all of them."""
    grid_runs = [run for run in runs if isinstance(run, GridRun)]
    total = sum(_tests(_own(run)) for run in grid_runs)
    for run in grid_runs:
        run.cache[REPORT_FAMILY] = (total, len(grid_runs))
    return total


def _family(run: GridRun) -> tuple:
    """(tests in the report's family, grid runs it spans): the run's own when no report declared one."""
    return run.cache.get(REPORT_FAMILY) or (_tests(_own(run)), 1)


def report_family_size(run: GridRun) -> int:
    """The tests the run's confirmatory table is adjusted over: the report's family (the run's own tests when no
    report declared one)."""
    return _family(run)[0]


def family_statement(run: GridRun) -> str:
    """The paragraph that declares the report's family: which comparisons are confirmatory, how many, at what
    family-wise level; that every other table is exploratory; and the effect of interest."""
    table = _own(run)
    total, runs = _family(run)
    if table is None:
        what = "This run has no confirmatory table (no reference setting to compare against)."
    elif isinstance(table, Ranking):
        what = (f"This run's confirmatory comparisons are each objective against the best of its setting on "
                f"{table.metric.label}, and its share of cells that did not train against the best's: "
                f"{_tests(table)} tests.")
    else:
        key, value = run.reference
        labels = ", ".join(m.label for m in primary_metrics())
        what = (f"This run's confirmatory comparisons are each value of {key} against {key}={format_label(value)} on "
                f"the primary metrics ({labels}), pooled over the other settings: {_tests(table)} tests.")
    scope = f"the {runs} grid runs of this report" if runs > 1 else "this report"
    effects = effects_sentence(declared_effects(run))
    note = run.cache.get("effect note", "")
    return (f"One family: {what} The confirmatory family of {scope} holds {total} tests, adjusted together "
            f"(Bonferroni) so that the chance of any false verdict among them is at most {SIGNIFICANCE:.0%}. Every "
            "other findings table is exploratory: adjusted within itself only, its verdicts are leads to confirm, not "
            f"findings. The effect of interest (the smallest change that matters, grid key {EFFECT_OF_INTEREST}): "
            f"{effects or 'none declared'}; a comparison whose minimum detectable effect exceeds it is said to be "
            "underpowered, one whose interval lies within it equivalent." + (f" {note}" if note else ""))
