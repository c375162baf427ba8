"""Findings: every setting of a grid against its reference setting (or every configuration two runs share), each
headline metric compared over seeds (ablate.analysis.stats.compare_sides), adjusted over its family, said in words.

    compare_cells(reference, other, setting, against)   one configuration's cells against another's: a Row
    adjusted_findings(rows, unmatched)                   the rows, each family adjusted (Bonferroni): Findings
    axis_findings(run)            each lambda against the reference (lambda=0), pooled over the other settings
    grid_findings(run)            each configuration against the same configuration at the reference
    run_findings(run_a, run_b)    each configuration both runs hold, B against A (`ablate compare`)
    declared_effects(run)         the effect of interest per metric, as the run's grid declares it
    method_text(findings, ...), power_sentence(findings)  how the numbers were obtained, and what they can detect
    split_noise_text(results)     what the spread over seeds holds: the test set's noise too, or the training's alone

Seeds. A comparison uses the seeds that trained on both sides (ablate.analysis.outcomes): when the sides ran seeds in
common it pairs on the common seeds that trained on both, whatever else either side ran (a seed on both sides is the
same split and initialization, never two independent draws); when they ran none in common it compares the sides'
trained seeds unpaired. A seed that diverged, did not learn or failed is dropped, and the row says how many and why.

The families: in each table, the primary metrics (Metric.primary) over every row form one family, the secondary
headline metrics over every row another; each family's intervals are simultaneous (Bonferroni) over its tested
comparisons (identical sides and untestable ones are no members), and a verdict is read off its interval. A report
declares one family confirmatory (ablate.analysis.family) and adjusts it over the whole report; every other table is
exploratory.
"""

import math
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from ablate.analysis.outcomes import DID_NOT_LEARN_KAPPA, TRAINED, outcomes
from ablate.analysis.stats import (
    BALANCE,
    DIFFERENT,
    EFFECT_OF_INTEREST,
    EQUIVALENT,
    IDENTICAL,
    NO_DIFFERENCE,
    POWER,
    SIGNIFICANCE,
    UNDERPOWERED,
    UNTESTED,
    Difference,
    compare_sides,
    effect_text,
    effects_of_interest,
    seeds_needed,
)
from ablate.io import UnreadableFile, parse_toml_text
from ablate.metrics import POINTS, RATIO, Metric, headline_metrics, primary_metrics, secondary_metrics
from ablate.runs.configs import describe, format_label, group_key, seeds_draw_splits, setting_key, varying
from ablate.runs.loading import GridRun

SECONDARY = "secondary"
CONFIRMATORY, EXPLORATORY = "confirmatory", "exploratory"
# The last sentence of every findings table's method: which seeds a comparison uses.
DROPPED_TEXT = ("A comparison uses the seeds that trained on both sides: a seed that diverged, did not learn (test "
                f"accuracy at most chance + {DID_NOT_LEARN_KAPPA:g} x (1 - chance)) or failed on either side is "
                "dropped, and the seeds column says how many and why; those cells are outcomes, counted apart, never "
                "results.")
DEFAULT_SIDES = ("at the reference", "at this setting")


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
        """The row in plain words: the changes found, then what was equivalent, underpowered, without a
        detectable difference (with its MDE), identical, untestable, and not comparable."""
        if self.flag:
            return self.flag
        differences = list(self.differences.values())
        missing = [d.sentence() for d in differences if not d.comparable]  # 'not resolvable ...'
        compared = [d for d in differences if d.comparable]
        if compared and all(d.verdict == IDENTICAL for d in compared):
            return "; ".join([f"identical in every {'other ' if missing else ''}headline metric", *missing])
        found = [d.sentence() + ("" if d.metric.primary else f" ({SECONDARY})") for d in compared
                 if d.verdict in DIFFERENT]
        grouped = {
            EQUIVALENT: [f"{d.metric.label} ({d.margin_text()})" for d in compared if d.verdict.startswith(EQUIVALENT)],
            UNDERPOWERED: [f"{d.metric.label} ({d.minimum_detectable_text()})" for d in compared
                           if d.verdict.startswith(UNDERPOWERED)],
            NO_DIFFERENCE: [f"{d.metric.label} ({d.minimum_detectable_text()})" for d in compared
                            if d.verdict == NO_DIFFERENCE],
            IDENTICAL: [d.metric.label for d in compared if d.verdict == IDENTICAL],
        }
        lead = {EQUIVALENT: "equivalent in", UNDERPOWERED: "underpowered for", NO_DIFFERENCE: f"{NO_DIFFERENCE} in",
                IDENTICAL: "identical in"}
        found += [f"{lead[kind]} {', '.join(names)}" for kind, names in grouped.items() if names]
        found += [d.sentence() for d in compared if d.verdict in UNTESTED]
        return "; ".join(found + missing)


@dataclass
class Findings:
    """The rows of one findings table and what was left out (configurations without a counterpart).

    family: {'primary': m, 'secondary': m}, the sizes each family's Differences are adjusted over (the primary
    one may be a whole report's); role: CONFIRMATORY or EXPLORATORY."""

    rows: list
    unmatched: int
    changed: dict = field(default_factory=dict)  # key -> (value in A, value in B): what two compared runs changed
    family: dict = field(default_factory=dict)
    role: str = EXPLORATORY

    def differing(self, metric: str) -> set:
        """The settings (tuples of (key, value) pairs, sorted) whose `metric` differs from what they were compared
        with."""
        return {setting_key(r.setting) for r in self.rows if r.verdicts.get(metric) in DIFFERENT}

    def tested(self) -> dict:
        """{'primary': n, 'secondary': n}: the tested comparisons of each family in this table."""
        return {name: _tested(self.rows, family)
                for name, family in (("primary", primary_metrics()), (SECONDARY, secondary_metrics()))}

    def family_sizes(self) -> dict:
        """{'primary': m, 'secondary': m}: what each family's adjustment is over (0: no tested comparison)."""
        tested = self.tested()
        return {name: max(tested[name], self.family.get(name, 0)) if tested[name] else 0 for name in tested}

    def as_confirmatory(self, family_size: int) -> "Findings":
        """These findings as a report's confirmatory table: the primary family adjusted over `family_size` tested
        comparisons (the report's; at least this table's), the secondary family as it was."""
        rows = [replace(r, differences=dict(r.differences)) for r in self.rows]
        return adjusted_findings(rows, self.unmatched, changed=self.changed, primary_family=family_size,
                                 effects={n: d.effect for r in self.rows for n, d in r.differences.items()},
                                 role=CONFIRMATORY)

    def frame(self) -> pd.DataFrame:
        """One row per comparison: setting, against, seeds, one column per headline metric (change, simultaneous
        interval, adjusted p, and what a finding of no difference is, with its MDE), in words."""
        records = []
        for r in self.rows:
            record = {"setting": describe(r.setting) or "all", "against": r.against, "seeds": r.seeds}
            for m in headline_metrics():
                d = r.differences.get(m.name)
                record[column_label(m)] = "" if d is None else cell_text(d)
            record["in words"] = r.words()
            records.append(record)
        return pd.DataFrame.from_records(records)


def cell_text(difference: Difference) -> str:
    """'+2.1 pts [+1.0, +3.2] p=0.001; MDE 0.8 pts', '+0.8 pts [-0.4, +2.0] p=0.3; underpowered (MDE 1.5 pts)',
    '+0.1 pts [-0.3, +0.5] p=1; no detectable difference (MDE 0.6 pts)', or the change with its verdict when there
    is no test."""
    verdict = difference.verdict
    if not difference.comparable:
        return difference.change_text()  # the metric's `missing` text
    if not difference.testable:
        return f"{difference.change_text()} {verdict}"
    if verdict in DIFFERENT:
        what = difference.minimum_detectable_text()
    elif verdict == NO_DIFFERENCE:
        what = f"{verdict} ({difference.minimum_detectable_text()})"
    else:  # 'equivalent (within ...)', 'underpowered (MDE ...)'
        what = verdict
    return f"{difference.change_text()} {difference.p_text()}; {what}"


def _tested(rows: list, family: list | tuple) -> int:
    return sum(r.differences[m.name].testable for r in rows for m in family if m.name in r.differences)


def adjusted_findings(rows: list, unmatched: int, *, changed: dict | None = None, effects: dict | None = None,
                      primary_family: int = 0, role: str = EXPLORATORY) -> Findings:
    """The findings of these rows (from compare_cells, or filled as it fills them), each Difference adjusted over
    its family: the primary metrics over every row (over primary_family comparisons when that is more: a report's
    confirmatory family), the secondary ones over every row (Bonferroni over the tested comparisons). unmatched: the
    configurations without a counterpart; changed: what two compared runs changed; effects: {metric name: effect of
    interest on its change scale} (declared_effects; default: ablate.analysis.stats.effects_of_interest())."""
    effects = effects_of_interest() if effects is None else effects
    family = {}
    for name, members in (("primary", primary_metrics()), (SECONDARY, secondary_metrics())):
        size = max(1, _tested(rows, members), primary_family if name == "primary" else 0)
        family[name] = size
        for r in rows:
            for m in members:
                if m.name in r.differences:
                    r.differences[m.name] = replace(r.differences[m.name], family_size=size,
                                                    effect=effects.get(m.name, math.nan))
    return Findings(rows, unmatched, changed=changed or {}, family=family, role=role)


def declared_effects(run: GridRun) -> dict:
    """{metric name: effect of interest on its change scale}: the defaults (ablate.analysis.stats.
    effects_of_interest) with what the run's grid.toml declares under `effect_of_interest`. A grid.toml that cannot
    be read, or declares something else, leaves the defaults, and run.cache["effect note"] says why."""
    if "effects" in run.cache:
        return run.cache["effects"]
    effects = effects_of_interest()
    if run.grid_spec is not None:
        where = f"{run.path / 'grid.toml'}"
        try:
            effects = effects_of_interest(parse_toml_text(run.grid_spec, where).get(EFFECT_OF_INTEREST), where)
        except (UnreadableFile, ValueError) as exc:
            run.cache["effect note"] = f"Effect of interest left at its default: {exc}"
    run.cache["effects"] = effects
    return effects


def effects_sentence(effects: dict) -> str:
    """'test accuracy 1 pts, MAP@R 1 pts' for the effects of interest of the primary metrics."""
    return ", ".join(f"{m.label} {effect_text(m, effects[m.name])}" for m in primary_metrics()
                     if math.isfinite(effects.get(m.name, math.nan)))


def _dropped_text(sides: list, used: list, paired: bool) -> str:
    """'dropped: 1 diverged at this setting, 115 run only in b' for the seeds of `sides` ([(name, cells,
    outcomes)]) left out of a comparison that uses the seeds used[i] of side i; '' when none was."""
    reasons: Counter = Counter()
    ran = [set(cells["seed"]) for _, cells, _ in sides]
    for i, (name, cells, outcome) in enumerate(sides):
        for seed, what in zip(cells["seed"], outcome):
            if seed in used[i]:
                continue
            if what != TRAINED:
                reasons[f"{what} {name}"] += 1
            elif paired and seed not in ran[1 - i]:
                reasons[f"run only {name}"] += 1
    return ("dropped: " + ", ".join(f"{n} {why}" for why, n in reasons.items())) if reasons else ""


def compare_cells(reference: pd.DataFrame, other: pd.DataFrame, setting: dict, against: str,
                  sides: tuple = DEFAULT_SIDES, metrics: list | None = None) -> Row:
    """The Row of `setting`: each of `metrics` (default: the headline metrics) of `other` against `reference` (the
    cells, one row each, of one configuration each: status, seed, the metrics, and what sets the chance level),
    unadjusted (adjusted_findings adjusts a table's rows), on the seeds that trained on both sides: paired on the
    seeds both ran when they ran any in common, else unpaired. sides: how the seeds column names each side
    ('at the reference', 'at this setting'). Flagged, with no differences, when no seed trained on a side (or,
    paired, on both)."""
    out = [outcomes(cells).to_numpy() for cells in (reference, other)]
    trained = [set(cells.loc[o == TRAINED, "seed"]) for cells, o in zip((reference, other), out)]
    paired = bool(set(reference["seed"]) & set(other["seed"]))
    used = [trained[0] & trained[1]] * 2 if paired else trained
    row = Row(setting, against, "")
    dropped = _dropped_text([(sides[0], reference, out[0]), (sides[1], other, out[1])], used, paired)
    if not used[0] or not used[1]:
        row.flag = "not compared: " + (("no seed trained on both sides" if paired else "no seed trained on one side")
                                        + (f" ({dropped})" if dropped else ""))
        row.seeds = "0"
        return row
    a, b = (cells[cells["seed"].isin(seeds) & (o == TRAINED)].sort_values("seed")
            for cells, seeds, o in zip((reference, other), used, out))
    row.seeds = (f"{len(a)} paired" if paired else f"{len(a)} vs {len(b)}") + (f"; {dropped}" if dropped else "")
    for m in headline_metrics() if metrics is None else metrics:
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
    findings = adjusted_findings(rows, unmatched, effects=declared_effects(run))
    run.cache["findings"] = findings
    return findings


def _pooled(metric: Metric, values: np.ndarray) -> np.ndarray:
    """Values of several settings (axis 0) pooled into one: ratios by their geometric mean (the mean on the log
    scale they are compared on), anything else by the mean."""
    return stats.gmean(values, axis=0) if metric.change == RATIO else values.mean(axis=0)


def axis_findings(run: GridRun) -> Findings:
    """Each value of the reference key (each lambda) against the reference value, pooled over the other settings:
    for every seed that trained in each of those settings and its reference, its value pooled over them, on each
    side; then compared over those seeds (paired) as a setting is, adjusted over the table's families. Kept on the
    run."""
    if "axis findings" in run.cache:
        return run.cache["axis findings"]
    key, value = run.reference
    pairs, unmatched = _reference_pairs(run)
    against = f"{key}={format_label(value)}"
    rows = []
    for key_value in sorted({setting[key] for setting, _, _ in pairs}):
        chosen = [(ref, own) for setting, ref, own in pairs if setting[key] == key_value]
        frames = [frame for pair in chosen for frame in pair]
        row = Row({key: key_value}, against, f"{len(chosen)} settings")
        seeds = set.intersection(*(set(frame.loc[outcomes(frame) == TRAINED, "seed"]) for frame in frames))
        ran = set().union(*(set(frame["seed"]) for frame in frames))
        dropped = (f"; dropped {len(ran - seeds)} seeds that did not train (diverged, did not learn or failed) or "
                   "did not run in every one of them" if ran - seeds else "")
        if not seeds:
            row.flag = "not compared: no seed trained in every setting and its reference"
            rows.append(row)
            continue
        shared = sorted(seeds)
        row.seeds = f"{len(shared)} seeds x {len(chosen)} settings{dropped}"
        by_seed = [[frame.drop_duplicates("seed").set_index("seed").loc[shared] for frame in pair] for pair in chosen]
        for m in headline_metrics():
            if all(m.name in frame for frame in frames):
                a, b = (_pooled(m, np.array([pair[side][m.name].to_numpy(float) for pair in by_seed]))
                        for side in (0, 1))
                row.differences[m.name] = compare_sides(m, a, b, paired=True)
        rows.append(row)
    findings = adjusted_findings(rows, unmatched, effects=declared_effects(run))
    run.cache["axis findings"] = findings
    return findings


def run_findings(run_a: GridRun, run_b: GridRun) -> Findings:
    """Each configuration that both runs hold, B against A: paired on the seeds both runs ran (and that trained in
    both), unpaired when they share none. Configurations are matched on every config key but seed, except the keys
    each run holds at one value of its own (lambda 0 in A, 0.1 in B): those are what the runs changed
    (Findings.changed). The effect of interest of a metric is the smaller of the two runs' declarations."""
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
    sides = (f"in {run_a.path.name}", f"in {run_b.path.name}")
    rows = []
    for k in shared:
        setting = {key: v for key, v in zip(keys, k) if key in varying_keys}
        rows.append(compare_cells(a_cells[k], b_cells[k], setting, f"{run_a.path.name}", sides))
    effects_a, effects_b = declared_effects(run_a), declared_effects(run_b)
    effects = {name: min(effects_a.get(name, math.inf), effects_b.get(name, math.inf))
               for name in {*effects_a, *effects_b}}
    return adjusted_findings(rows, len(set(a_cells) ^ set(b_cells)), changed=changed, effects=effects,
                             role=CONFIRMATORY)


def pairing_sentence(findings: Findings) -> str:
    """How the rows' seeds were used: 'Paired on the seeds both runs ran in 2 configurations (a seed in both is the
    same split and initialization, never an independent draw); unpaired in 1 (no seed in common).'"""
    compared = [r for r in findings.rows if r.differences]
    paired = sum(next(iter(r.differences.values())).paired for r in compared)
    parts = []
    if paired:
        parts.append(f"paired on the seeds both runs ran in {paired} configuration{'s' if paired != 1 else ''} (a "
                     "seed in both runs is the same split and initialization, never an independent draw; the seeds "
                     "column says which others were left out)")
    if len(compared) - paired:
        parts.append(f"unpaired in {len(compared) - paired} (no seed in common)")
    return ("Seeds: " + "; ".join(parts) + ".") if parts else ""


def family_text(findings: Findings, rows_are: str) -> str:
    """What a table's families are and how they are adjusted, for its caption."""
    sizes, tested = findings.family_sizes(), findings.tested()
    primary = ", ".join(m.label for m in primary_metrics())
    if not sizes["primary"]:
        text = f"the primary metrics ({primary}) over {rows_are}: no tested comparison"
    elif findings.role == CONFIRMATORY and sizes["primary"] > tested["primary"]:
        text = (f"the primary metrics ({primary}) over {rows_are}: {tested['primary']} comparisons, adjusted over the "
                f"report's confirmatory family of {sizes['primary']}, so each interval is at level 1 - "
                f"{SIGNIFICANCE:g}/{sizes['primary']}")
    else:
        text = (f"the primary metrics ({primary}) over {rows_are}: {sizes['primary']} comparisons, so each interval "
                f"is at level 1 - {SIGNIFICANCE:g}/{sizes['primary']}")
    text += (" (confirmatory)" if findings.role == CONFIRMATORY else
             " (exploratory: adjusted within this table only, so its verdicts are leads, not findings)")
    if sizes[SECONDARY]:
        text += (f"; the secondary metrics ({', '.join(m.label for m in secondary_metrics())}) are an exploratory "
                 f"family of their own ({sizes[SECONDARY]} comparisons)")
    return text


def split_noise_text(*results: pd.DataFrame) -> str:
    """What the spread over the seeds of `results` (the tables compared) holds, for a caption: with every seed on its
    own train/validation/test split (a grid), the test set's sampling noise as well as the training's; with seeds
    sharing one split (a tune's final seeds, on the split their setting was selected on), the training's alone."""
    if all(seeds_draw_splits(table) for table in results):
        return "every seed draws its own train/test split, so the spread over seeds holds the test set's noise too"
    return ("the seeds share one train/validation/test split (a tune's final seeds: the split their setting was "
            "selected on), so the spread over seeds holds the training's noise, not the test set's: an interval "
            "speaks for this test set")


def method_text(findings: Findings, rows_are: str = "the rows of this table", *, split_noise: str) -> str:
    """How a findings table's numbers were obtained, for its caption (before DROPPED_TEXT); `rows_are`: what the
    family's rows are; split_noise: what the spread over seeds holds (split_noise_text of the compared tables)."""
    untested = ""
    if any(d.verdict in UNTESTED for r in findings.rows for d in r.differences.values()):
        untested = (" A side with one seed, or a difference with no spread over seeds beyond rounding (a constant "
                    "change), has no noise to test against: its change is shown alone, 'untestable' (no interval, no "
                    "p-value, no verdict).")
    effects = effects_sentence({n: d.effect for r in findings.rows for n, d in r.differences.items()})
    return ("Each headline metric: the change (paired t over seeds when both sides ran the same seeds; unpaired, "
            f"Welch's t when one side has at most {BALANCE:g} times the other's seeds, a permutation test of Welch's "
            f"t when the sides are further apart; {split_noise}), its simultaneous interval and p-value, "
            f"Bonferroni-adjusted over its family ({family_text(findings, rows_are)}); identical sides are no test "
            "and no member of a family. A verdict 'better' or 'worse' is given exactly when the interval excludes no "
            "change; otherwise 'equivalent' when the interval lies within the effect of interest"
            + (f" ({effects})" if effects else "")
            + f", 'underpowered' when the MDE exceeds it, else 'no detectable difference'. MDE: the smallest true "
            f"change detected with {POWER:.0%} power at the family's level with these seeds, given the observed "
            f"spread of one seed's change.{untested} Ratios are given as factors (x2 = twice the reference), shares "
            "in percentage points.")


def power_sentence(findings: Findings) -> str:
    """For each primary metric said in points and each design its rows ran (paired seeds, or unpaired sizes): the
    smallest change the table detects with POWER at its level, and the seeds that design would need to detect the
    effect of interest; '' when no row is tested."""
    size = max(1, findings.family_sizes()["primary"])
    parts = []
    for m in primary_metrics():
        tested = [r.differences[m.name] for r in findings.rows
                  if m.name in r.differences and r.differences[m.name].testable]
        if m.change != POINTS or not tested:
            continue
        for design in dict.fromkeys(d.design for d in tested):
            same = [d for d in tested if d.design == design]
            sd = math.sqrt(np.mean([d.sd ** 2 for d in same]))  # one seed's change, pooled over the rows
            mde = float(np.median([d.minimum_detectable for d in same]))
            parts.append(f"with {design}, the smallest change of {m.label} detected with {POWER:.0%} power is "
                         f"{mde:.2g} points (one seed's change scatters by {sd:.2g} points)"
                         + _needed_text(same[0], sd, size))
    return ("Power: " + "; ".join(parts) + ".") if parts else ""


def _needed_text(difference: Difference, sd: float, family_size: int) -> str:
    """'; detecting the effect of interest (1 point) would take 57 paired seeds' in the design of `difference`."""
    effect = difference.effect
    if not math.isfinite(effect):
        return ""
    start = f"; detecting the effect of interest ({effect:g} point{'s' if effect != 1 else ''}) would take "
    if difference.paired:
        return start + f"{seeds_needed(sd, effect, family_size)} paired seeds"
    small, large = sorted((difference.n_a, difference.n_b))
    if large <= BALANCE * small:
        return start + f"{seeds_needed(sd, effect, family_size, paired=False)} seeds on each side"
    needed = seeds_needed(sd, effect, family_size, paired=False, other=large)
    if math.isinf(needed):
        return f"; the effect of interest ({effect:g} points) is out of reach with the other side at {large} seeds"
    return start + f"{needed} seeds on the smaller side, with the other at {large}"


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

