"""Findings: every setting of a grid against its reference setting (or every configuration two runs share), each
headline metric compared over seeds (ablate.analysis.stats.compare_sides), adjusted over its family, said in words.

    compare_cells(reference, other, setting, against)   one configuration's cells against another's: a Row
    adjusted_findings(rows, unmatched)                   the rows, each family adjusted (Bonferroni): Findings
    axis_findings(run)            each lambda against the reference (lambda=0), pooled over the other settings
    grid_findings(run)            each configuration against the same configuration at the reference
    run_findings(run_a, run_b)    each configuration both runs hold, B against A (`ablate compare`)
    method_text(findings), power_sentence(findings)      how the numbers were obtained, and what they can detect

The families: in each table, the primary metrics (Metric.primary) over every row form one family, the secondary
headline metrics over every row another; each family's intervals are simultaneous (Bonferroni) over its testable
comparisons, and a verdict is read off its interval.
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from ablate.analysis.stats import (
    DIFFERENT,
    NO_DIFFERENCE,
    POWER,
    SIGNIFICANCE,
    UNTESTABLE,
    Difference,
    compare_sides,
    seeds_needed,
)
from ablate.metrics import POINTS, RATIO, Metric, headline_metrics, label, primary_metrics, secondary_metrics
from ablate.runs.configs import describe, format_label, group_key, setting_key, varying
from ablate.runs.loading import GridRun

SECONDARY = "secondary"
# The last sentence of every findings table's method: why a setting is left uncompared.
DIVERGED_TEXT = ("A setting with a diverged seed on either side is not compared (its survivors would be a biased "
                 "sample).")


def column_label(metric: Metric) -> str:
    """A metric's findings column: its label, with '(secondary)' outside the primary family."""
    return metric.label if metric.primary else f"{metric.label} ({SECONDARY})"


@dataclass
class Row:
    """One comparison: the setting, what it is compared with, the seeds, a flag (why it was not compared, or ''),
    and per headline metric its Difference (ablate.analysis.stats), adjusted over its family."""

    setting: dict
    against: str
    seeds: str
    flag: str = ""
    differences: dict = field(default_factory=dict)  # metric name -> Difference

    @property
    def verdicts(self) -> dict:
        """metric name -> verdict ('better', 'worse', 'no detectable difference', 'identical', ...)."""
        return {name: d.verdict for name, d in self.differences.items()}

    def words(self) -> str:
        """The row in plain words: the changes found, the metrics without a detectable one, the untestable ones."""
        if self.flag:
            return self.flag
        verdicts = self.verdicts
        missing = [d.sentence() for d in self.differences.values() if not d.comparable]  # 'not resolvable ...'
        compared = {v for name, v in verdicts.items() if self.differences[name].comparable}
        if compared == {"identical"}:
            return "; ".join([f"identical in every {'other ' if missing else ''}headline metric", *missing])
        found = [d.sentence() + ("" if d.metric.primary else f" ({SECONDARY})") for d in self.differences.values()
                 if d.verdict in DIFFERENT]
        untestable = [d.sentence() for d in self.differences.values() if d.verdict == UNTESTABLE]
        if untestable:
            return "; ".join(untestable + missing)
        same = [label(name) for name, v in verdicts.items() if v in (NO_DIFFERENCE, "identical")]
        if same:
            found.append("no detectable difference in " + ", ".join(same))
        return "; ".join(found + missing)


@dataclass
class Findings:
    """The rows of one findings table and what was left out (configurations without a counterpart)."""

    rows: list
    unmatched: int
    changed: dict = field(default_factory=dict)  # key -> (value in A, value in B): what two compared runs changed

    def differing(self, metric: str) -> set:
        """The settings (tuples of (key, value) pairs, sorted) whose `metric` differs from what they were compared
        with."""
        return {setting_key(r.setting) for r in self.rows if r.verdicts.get(metric) in DIFFERENT}

    def family_sizes(self) -> dict:
        """{'primary': m, 'secondary': m}: the testable comparisons each family's adjustment is over."""
        return {name: _family_size(self.rows, family)
                for name, family in (("primary", primary_metrics()), (SECONDARY, secondary_metrics()))}

    def frame(self) -> pd.DataFrame:
        """One row per comparison: setting, against, seeds, one column per headline metric (change, simultaneous
        interval, adjusted p, minimum detectable effect), in words."""
        records = []
        for r in self.rows:
            record = {"setting": describe(r.setting) or "all", "against": r.against, "seeds": r.seeds}
            for m in headline_metrics():
                d = r.differences.get(m.name)
                record[column_label(m)] = "" if d is None else _cell_text(d)
            record["in words"] = r.words()
            records.append(record)
        return pd.DataFrame.from_records(records)


def _cell_text(difference: Difference) -> str:
    """'+0.8 pts [-0.4, +2.0] p=0.3; MDE 1.5 pts', or the change with its verdict when there is no test."""
    if difference.verdict in ("identical", UNTESTABLE):
        return f"{difference.change_text()} {difference.verdict}"
    parts = [f"{difference.change_text()} {difference.p_text()}".strip(), difference.minimum_detectable_text()]
    return "; ".join(p for p in parts if p)


def _family_size(rows: list, family: list | tuple) -> int:
    return sum(r.differences[m.name].testable for r in rows for m in family if m.name in r.differences)


def _adjusted(rows: list) -> list:
    """The rows with each Difference adjusted over its family: the primary metrics over every row, the secondary
    ones over every row (Bonferroni over the testable comparisons of the family)."""
    for family in (primary_metrics(), secondary_metrics()):
        size = max(1, _family_size(rows, family))
        for r in rows:
            for m in family:
                if m.name in r.differences:
                    r.differences[m.name] = replace(r.differences[m.name], family_size=size)
    return rows


def adjusted_findings(rows: list, unmatched: int, *, changed: dict | None = None) -> Findings:
    """The findings of these rows (from compare_cells, or filled as it fills them), each Difference adjusted over
    its family; unmatched: the configurations without a counterpart; changed: what two compared runs changed."""
    return Findings(_adjusted(rows), unmatched, changed=changed or {})


def ok_seeds(cells: pd.DataFrame) -> set:
    """The seeds of the cells that finished ok."""
    return set(cells.loc[cells["status"] == "ok", "seed"])


def seed_text(cells: pd.DataFrame) -> str:
    """'3 ok, 1 diverged': the cells of one configuration by status."""
    counts = cells["status"].value_counts()
    return ", ".join(f"{counts[s]} {s}" for s in ("ok", "diverged", "failed") if s in counts)


def compare_cells(reference: pd.DataFrame, other: pd.DataFrame, setting: dict, against: str,
                  seeds: str | None = None) -> Row:
    """The Row of `setting`: each headline metric of `other` against `reference` (the cells, one row each, of one
    configuration each: status, seed and the metrics), unadjusted (adjusted_findings adjusts a table's rows);
    flagged instead when a seed diverged on either side or a side has no ok cell. against: what the row says it is
    compared with; seeds: its seeds column (default: other's cells by status)."""
    row = Row(setting, against, seed_text(other) if seeds is None else seeds)
    diverged = [(name, int((cells["status"] == "diverged").sum()), len(cells))
                for name, cells in (("this setting", other), ("the reference", reference))]
    if any(k for _, k, _ in diverged):
        row.flag = "not compared: diverged in " + " and ".join(f"{k} of {n} seeds at {name}"
                                                               for name, k, n in diverged if k)
        return row
    a, b = (cells[cells["status"] == "ok"].sort_values("seed") for cells in (reference, other))
    if a.empty or b.empty:
        row.flag = "not compared: no cell finished ok on one side"
        return row
    paired = list(a["seed"]) == list(b["seed"])
    for m in headline_metrics():
        if m.name in a and m.name in b:
            row.differences[m.name] = compare_sides(m, a[m.name].to_numpy(float), b[m.name].to_numpy(float),
                                                    paired=paired)
    return row


def parse_reference(text: str) -> tuple:
    """'lambda=0' -> ("lambda", 0.0); a number is read as a float, anything else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ValueError(f"expected KEY=VALUE for the reference setting (e.g. lambda=0), got {text!r}")
    try:
        return key.strip(), float(value)
    except ValueError:
        return key.strip(), value.strip()


def _reference_pairs(run: GridRun) -> tuple:
    """([(setting, reference cells, own cells)], unmatched): each configuration off the run's reference setting with
    the cells of the same configuration at it; unmatched counts the configurations without such a counterpart."""
    key, value = run.reference
    results = run.results
    keys = [k for k in varying(results, run.config_columns) if k != key]
    group = lambda df: list(df.groupby(keys, dropna=False, sort=True)) if keys else [((), df)]  # noqa: E731
    references = {group_key(k): cells for k, cells in group(results[results[key] == value])}
    pairs, unmatched = [], 0
    for setting_values, cells in group(results[results[key] != value]):
        setting_values = group_key(setting_values)
        for key_value, own in cells.groupby(key, sort=True):
            reference = references.get(setting_values)
            if reference is None:
                unmatched += 1
            else:
                pairs.append(({key: key_value, **dict(zip(keys, setting_values))}, reference, own))
    return pairs, unmatched


def grid_findings(run: GridRun) -> Findings:
    """Each configuration of the run against the same configuration at the run's reference setting (run.reference,
    lambda=0 unless set), kept on the run. Configurations without a reference counterpart are counted, not compared.
    """
    if "findings" in run.cache:
        return run.cache["findings"]
    pairs, unmatched = _reference_pairs(run)
    against = "{}={}".format(run.reference[0], format_label(run.reference[1]))
    rows = [compare_cells(ref, own, setting, against) for setting, ref, own in pairs]
    findings = adjusted_findings(rows, unmatched)
    run.cache["findings"] = findings
    return findings


def _pooled(metric: Metric, values: np.ndarray) -> np.ndarray:
    """Values of several settings (axis 0) pooled into one: ratios by their geometric mean (the mean on the log
    scale they are compared on), anything else by the mean."""
    return stats.gmean(values, axis=0) if metric.change == RATIO else values.mean(axis=0)


def axis_findings(run: GridRun) -> Findings:
    """Each value of the reference key (each lambda) against the reference value, pooled over the other settings:
    for every seed, its value pooled over the settings that have a counterpart, on each side; then compared over
    seeds (paired) as a setting is, adjusted over the table's families. Kept on the run."""
    if "axis findings" in run.cache:
        return run.cache["axis findings"]
    key, value = run.reference
    pairs, unmatched = _reference_pairs(run)
    against = f"{key}={format_label(value)}"
    rows = []
    for key_value in sorted({setting[key] for setting, _, _ in pairs}):
        chosen = [(ref, own) for setting, ref, own in pairs if setting[key] == key_value]
        cells = pd.concat([frame for pair in chosen for frame in pair])
        row = Row({key: key_value}, against, f"{len(chosen)} settings")
        diverged = int((cells["status"] == "diverged").sum())
        seeds = set.intersection(*(ok_seeds(ref) & ok_seeds(own) for ref, own in chosen))
        if diverged or not seeds:
            row.flag = (f"not compared: {diverged} diverged cells among its settings and their references" if diverged
                        else "not compared: no seed finished ok in every setting and its reference")
            rows.append(row)
            continue
        shared = sorted(seeds)
        row.seeds = f"{len(shared)} seeds x {len(chosen)} settings"
        by_seed = [[frame.set_index("seed").loc[shared] for frame in pair] for pair in chosen]
        for m in headline_metrics():
            if m.name in cells:
                a, b = (_pooled(m, np.array([pair[side][m.name].to_numpy(float) for pair in by_seed]))
                        for side in (0, 1))
                row.differences[m.name] = compare_sides(m, a, b, paired=True)
        rows.append(row)
    findings = adjusted_findings(rows, unmatched)
    run.cache["axis findings"] = findings
    return findings


def run_findings(run_a: GridRun, run_b: GridRun) -> Findings:
    """Each configuration that both runs hold, B against A; paired when both ran the same seeds. Configurations are
    matched on every config key but seed, except the keys each run holds at one value of its own (lambda 0 in A,
    0.1 in B): those are what the runs changed (Findings.changed)."""
    def constant(run: GridRun, key: str) -> object:
        values = run.results[key].dropna().unique()
        return values[0] if len(values) == 1 and run.results[key].notna().all() else None

    changed = {k: (constant(run_a, k), constant(run_b, k)) for k in run_a.config_columns if k in run_b.results}
    changed = {k: (a, b) for k, (a, b) in changed.items() if a is not None and b is not None and a != b}
    keys = [k for k in run_a.config_columns if k in run_b.results and k not in changed]
    by_config = lambda run: {group_key(k): cells  # noqa: E731
                             for k, cells in run.results.groupby(keys, dropna=False, sort=True)}
    a_cells, b_cells = by_config(run_a), by_config(run_b)
    shared = [k for k in a_cells if k in b_cells]
    varying_keys = [k for i, k in enumerate(keys) if len({config[i] for config in shared}) > 1]
    rows = []
    for k in shared:
        setting = {key: v for key, v in zip(keys, k) if key in varying_keys}
        rows.append(compare_cells(a_cells[k], b_cells[k], setting, f"{run_a.path.name}",
                                  f"{seed_text(a_cells[k])} | {seed_text(b_cells[k])}"))
    return adjusted_findings(rows, len(set(a_cells) ^ set(b_cells)), changed=changed)


def method_text(findings: Findings, rows_are: str = "the rows of this table") -> str:
    """How a findings table's numbers were obtained, for its caption (before DIVERGED_TEXT); `rows_are`: what the
    family's rows are."""
    sizes = findings.family_sizes()
    primary = ", ".join(m.label for m in primary_metrics())
    family = (f"the primary metrics ({primary}) over {rows_are}: {sizes['primary']} comparisons, so each interval "
              f"is at level 1 - {SIGNIFICANCE:g}/{sizes['primary']}" if sizes["primary"] else
              f"the primary metrics ({primary}) over {rows_are}: no testable comparison")
    if sizes[SECONDARY]:
        family += (f"; the secondary metrics ({', '.join(m.label for m in secondary_metrics())}) are a family of their "
                   f"own ({sizes[SECONDARY]} comparisons)")
    untestable = ""
    if any(d.verdict == UNTESTABLE for r in findings.rows for d in r.differences.values()):
        untestable = (" A side with one seed has no spread over seeds: its change is shown alone, 'untestable with "
                      "one seed' (no interval, no p-value, no verdict).")
    return ("Each headline metric: the change (paired over seeds when both sides ran the same seeds, Welch's "
            "t otherwise; every seed draws its own train/test split, so the spread over seeds holds the test set's "
            f"noise too), its simultaneous interval and p-value, Bonferroni-adjusted over its family ({family}); a "
            "verdict 'better' or 'worse' is given exactly when the interval excludes no change. MDE: the smallest "
            f"true change detected with {POWER:.0%} power at the family's level with these seeds, given the observed "
            f"spread of one seed's change.{untestable} Ratios are given as factors (x2 = twice the reference), shares "
            "in percentage points.")


def power_sentence(findings: Findings) -> str:
    """For each primary metric said in points: the smallest change the table detects with POWER at its level, and
    the seeds a user would need to detect 1 point; '' when no row is testable."""
    size = max(1, findings.family_sizes()["primary"])
    parts = []
    for m in primary_metrics():
        tested = [r.differences[m.name] for r in findings.rows
                  if m.name in r.differences and r.differences[m.name].testable]
        if m.change != POINTS or not tested:
            continue
        sd = math.sqrt(np.mean([d.sd ** 2 for d in tested]))  # one seed's change, pooled over the rows
        mde = np.median([d.minimum_detectable for d in tested])
        seeds = sorted({d.n_a for d in tested})
        parts.append(f"with {'/'.join(map(str, seeds))} seeds, the smallest change of {m.label} detected with "
                     f"{POWER:.0%} power is {mde:.2g} points; detecting 1 point would take "
                     f"{seeds_needed(sd, 1.0, size)} seeds (one seed's change scatters by {sd:.2g} points)")
    return ("Power: " + "; ".join(parts) + ".") if parts else ""


def marked_settings(run: GridRun, metric: str) -> set:
    """The settings whose `metric` differs from the reference setting in the run's findings (empty when the run
    has no cell at its reference setting); match them with setting_of."""
    key, value = run.reference
    if key not in run.results or not (run.results[key] == value).any():
        return set()
    return grid_findings(run).differing(metric)


def setting_of(run: GridRun, row: pd.Series | dict) -> tuple:
    """The setting of a summary or results row, in the form Findings.differing gives."""
    return setting_key({k: row[k] for k in varying(run.results, run.config_columns)})
