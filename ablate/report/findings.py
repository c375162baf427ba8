"""Findings: every setting of a grid against its reference setting (or every configuration two runs share), each
headline metric compared over seeds with the test-set bootstrap (ablate.stats), Holm-corrected, said in words.

    axis_findings(run)            each lambda against the reference (lambda=0), pooled over the other settings
    grid_findings(run)            each configuration against the same configuration at the reference
    run_findings(run_a, run_b)    each configuration both runs hold, B against A (`ablate compare`)
    findings_blocks(run)          the report's opening table; open_set_blocks(run) the open-set metrics
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from tqdm import tqdm

from ablate.metrics import METRICS, RATIO, SEEN, headline_metrics, label
from ablate.report.blocks import Note, Table
from ablate.report.configs import describe, varying
from ablate.report.runs import GridRun
from ablate.report.styling import format_label, render
from ablate.runfolder import RunFolderError, holdout_of, mean_ci_text
from ablate.stats import BOOTSTRAP_SAMPLES, LEVEL, SIGNIFICANCE, bootstrap_cell, compare, holm

BETTER_CSS = "background-color: #cfe8d5;"
WORSE_CSS = "background-color: #f6d5d5;"
DIFFERENT = ("better", "worse")


@dataclass
class Row:
    """One comparison: the setting, what it is compared with, the seeds, a flag (why it was not compared, or ''),
    and per headline metric its Difference, corrected p-value and verdict."""

    setting: dict
    against: str
    seeds: str
    flag: str = ""
    differences: dict = field(default_factory=dict)  # metric name -> Difference
    corrected: dict = field(default_factory=dict)  # metric name -> Holm-corrected p
    verdicts: dict = field(default_factory=dict)  # metric name -> verdict

    def words(self) -> str:
        """The row in plain words: the changes found, then the metrics without a detectable one."""
        if self.flag:
            return self.flag
        if self.verdicts and set(self.verdicts.values()) == {"identical"}:
            return "identical in every headline metric"
        found = [d.sentence(self.corrected[name]) for name, d in self.differences.items()
                 if self.verdicts[name] in DIFFERENT]
        same = [label(name) for name, v in self.verdicts.items() if v not in DIFFERENT]
        if same:
            found.append("no detectable difference in " + ", ".join(same))
        return "; ".join(found)


@dataclass
class Findings:
    """The rows of one findings table and what was left out (configurations without a counterpart)."""

    rows: list
    unmatched: int
    bootstrap: bool  # every compared cell had its test features saved
    changed: dict = field(default_factory=dict)  # key -> (value in A, value in B): what two compared runs changed

    def differing(self, metric: str) -> set:
        """The settings (tuples of (key, value) pairs, sorted) whose `metric` differs from what they were compared
        with."""
        return {_setting_key(r.setting) for r in self.rows if r.verdicts.get(metric) in DIFFERENT}

    def frame(self) -> pd.DataFrame:
        """One row per comparison: setting, against, seeds, one column per headline metric, in words."""
        records = []
        for r in self.rows:
            record = {"setting": describe(r.setting) or "all", "against": r.against, "seeds": r.seeds}
            for m in headline_metrics():
                d = r.differences.get(m.name)
                record[m.label] = "" if d is None else f"{d.change_text()} {_p_text(d, r.corrected[m.name])}".strip()
            record["in words"] = r.words()
            records.append(record)
        return pd.DataFrame.from_records(records)


def _group_key(value) -> tuple:
    """A groupby key as a tuple, an unset (NaN) value as None, so that equal settings compare equal."""
    values = value if isinstance(value, tuple) else (value,)
    return tuple(None if pd.isna(v) else v for v in values)


def _setting_key(setting: dict) -> tuple:
    return tuple(sorted(setting.items()))


def _p_text(difference, corrected: float) -> str:
    if difference.identical:
        return "identical"
    return "" if np.isnan(corrected) else f"p={corrected:.2g}"


def cell_bootstraps(run: GridRun, cell_ids, progress: bool = False) -> dict:
    """cell id -> {metric: (R,) values} for the cells of `cell_ids` that saved usable test features (cells/<id>.npz),
    None for the others; computed once per run and kept on it. A features file that cannot be used is named, with
    why, in unreadable_features(run)."""
    cache = run.cache.setdefault("bootstrap", {})
    unreadable = unreadable_features(run)
    rows = run.results.drop_duplicates("cell_id").set_index("cell_id")
    todo = [c for c in dict.fromkeys(cell_ids) if c not in cache]
    for cell in tqdm(todo, desc=f"bootstrap {run.path.name}", unit="cell", disable=not progress):
        cache[cell] = None
        try:
            path = run.features_path(cell)
            if path.exists():
                cache[cell] = bootstrap_cell(path, holdout_of(rows.loc[cell]))
        except RunFolderError as exc:
            unreadable.append(str(exc))
    return {c: cache[c] for c in cell_ids}


def unreadable_features(run: GridRun) -> list:
    """One line per cell features file the findings could not bootstrap, and why (kept on the run)."""
    return run.cache.setdefault("unreadable features", [])


def _ok_ids(cells: pd.DataFrame) -> list:
    """The ids of the cells that finished ok: the only ones whose saved features are bootstrapped."""
    return list(cells.loc[cells["status"] == "ok", "cell_id"])


def _ok_seeds(cells: pd.DataFrame) -> set:
    return set(cells.loc[cells["status"] == "ok", "seed"])


def _seed_text(cells: pd.DataFrame) -> str:
    counts = cells["status"].value_counts()
    return ", ".join(f"{counts[s]} {s}" for s in ("ok", "diverged", "failed") if s in counts)


def _compare_cells(reference: pd.DataFrame, other: pd.DataFrame, reference_boots: dict, other_boots: dict,
                   row: Row) -> Row:
    """Fill `row` with each headline metric of `other` against `reference` (the cells of one configuration each;
    their bootstraps by cell id); flag it instead when a seed diverged on either side or a side has no ok cell."""
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
    use_boot = (all(reference_boots.get(c) is not None for c in a["cell_id"])
                and all(other_boots.get(c) is not None for c in b["cell_id"]))
    for m in headline_metrics():
        if m.name not in a or m.name not in b:
            continue
        a_boot = np.column_stack([reference_boots[c][m.name] for c in a["cell_id"]]) if use_boot else None
        b_boot = np.column_stack([other_boots[c][m.name] for c in b["cell_id"]]) if use_boot else None
        row.differences[m.name] = compare(m, a[m.name].to_numpy(float), b[m.name].to_numpy(float), a_boot, b_boot,
                                          paired=paired)
    return row


def _corrected(rows: list) -> None:
    """Holm over the p-values of each metric (one family: every setting of the table compared on that metric),
    written back into each row with its verdict."""
    for m in headline_metrics():
        compared = [r for r in rows if m.name in r.differences]
        for r, p in zip(compared, holm([r.differences[m.name].p for r in compared])):
            r.corrected[m.name] = p
            r.verdicts[m.name] = r.differences[m.name].verdict(p)


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
    references = {_group_key(k): cells for k, cells in group(results[results[key] == value])}
    pairs, unmatched = [], 0
    for setting_values, cells in group(results[results[key] != value]):
        setting_values = _group_key(setting_values)
        for key_value, own in cells.groupby(key, sort=True):
            reference = references.get(setting_values)
            if reference is None:
                unmatched += 1
            else:
                pairs.append(({key: key_value, **dict(zip(keys, setting_values))}, reference, own))
    return pairs, unmatched


def _with_bootstraps(run: GridRun, pairs: list, progress: bool) -> dict:
    return cell_bootstraps(run, [c for _, ref, own in pairs for c in _ok_ids(ref) + _ok_ids(own)], progress)


def grid_findings(run: GridRun, progress: bool = False) -> Findings:
    """Each configuration of the run against the same configuration at the run's reference setting (run.reference,
    lambda=0 unless set), kept on the run. Configurations without a reference counterpart are counted, not compared.
    """
    if "findings" in run.cache:
        return run.cache["findings"]
    pairs, unmatched = _reference_pairs(run)
    boots = _with_bootstraps(run, pairs, progress)
    against = "{}={}".format(run.reference[0], format_label(run.reference[1]))
    findings = Findings([_compare_cells(ref, own, boots, boots, Row(setting, against, _seed_text(own)))
                         for setting, ref, own in pairs], unmatched,
                        bootstrap=all(b is not None for b in boots.values()))
    _corrected(findings.rows)
    run.cache["findings"] = findings
    return findings


def _pooled(metric, values: np.ndarray) -> np.ndarray:
    """Values of several settings (axis 0) pooled into one: ratios by their geometric mean (the mean on the log
    scale they are compared on), anything else by the mean."""
    return stats.gmean(values, axis=0) if metric.change == RATIO else values.mean(axis=0)


def axis_findings(run: GridRun, progress: bool = False) -> Findings:
    """Each value of the reference key (each lambda) against the reference value, pooled over the other settings:
    for every seed, its change pooled over the settings that have a counterpart; then compared over seeds as a
    setting is (the test-set bootstrap pooled the same way), Holm over the values. Kept on the run."""
    if "axis findings" in run.cache:
        return run.cache["axis findings"]
    key, value = run.reference
    pairs, unmatched = _reference_pairs(run)
    boots = _with_bootstraps(run, pairs, progress)
    use_boot = all(b is not None for b in boots.values())
    against = f"{key}={format_label(value)}"
    rows = []
    for key_value in sorted({setting[key] for setting, _, _ in pairs}):
        chosen = [(ref, own) for setting, ref, own in pairs if setting[key] == key_value]
        cells = pd.concat([frame for pair in chosen for frame in pair])
        row = Row({key: key_value}, against, f"{len(chosen)} settings")
        diverged = int((cells["status"] == "diverged").sum())
        seeds = set.intersection(*(_ok_seeds(ref) & _ok_seeds(own) for ref, own in chosen))
        if diverged or not seeds:
            row.flag = (f"not compared: {diverged} diverged cells among its settings and their references" if diverged
                        else "not compared: no seed finished ok in every setting and its reference")
            rows.append(row)
            continue
        seeds = sorted(seeds)
        row.seeds = f"{len(seeds)} seeds x {len(chosen)} settings"
        by_seed = [[frame.set_index("seed").loc[seeds] for frame in pair] for pair in chosen]
        for m in headline_metrics():
            if m.name not in cells:
                continue
            a, b = (_pooled(m, np.array([pair[side][m.name].to_numpy(float) for pair in by_seed])) for side in (0, 1))
            a_boot = b_boot = None
            if use_boot:
                a_boot, b_boot = (_pooled(m, np.array([np.column_stack([boots[c][m.name]
                                                                         for c in pair[side]["cell_id"]])
                                                       for pair in by_seed])) for side in (0, 1))
            row.differences[m.name] = compare(m, a, b, a_boot, b_boot, paired=True)
        rows.append(row)
    findings = Findings(rows, unmatched, bootstrap=use_boot)
    _corrected(findings.rows)
    run.cache["axis findings"] = findings
    return findings


def run_findings(run_a: GridRun, run_b: GridRun, progress: bool = False) -> Findings:
    """Each configuration that both runs hold, B against A; paired when both ran the same seeds. Configurations are
    matched on every config key but seed, except the keys each run holds at one value of its own (lambda 0 in A,
    0.1 in B): those are what the runs changed (Findings.changed)."""
    def constant(run, key):
        values = run.results[key].dropna().unique()
        return values[0] if len(values) == 1 and run.results[key].notna().all() else None

    changed = {k: (constant(run_a, k), constant(run_b, k)) for k in run_a.config_columns if k in run_b.results}
    changed = {k: (a, b) for k, (a, b) in changed.items() if a is not None and b is not None and a != b}
    keys = [k for k in run_a.config_columns if k in run_b.results and k not in changed]
    by_config = lambda run: {_group_key(k): cells  # noqa: E731
                             for k, cells in run.results.groupby(keys, dropna=False, sort=True)}
    a_cells, b_cells = by_config(run_a), by_config(run_b)
    shared = [k for k in a_cells if k in b_cells]
    varying_keys = [k for i, k in enumerate(keys) if len({config[i] for config in shared}) > 1]
    boots_a = cell_bootstraps(run_a, [c for k in shared for c in _ok_ids(a_cells[k])], progress)
    boots_b = cell_bootstraps(run_b, [c for k in shared for c in _ok_ids(b_cells[k])], progress)
    rows = []
    for k in shared:
        setting = {key: v for key, v in zip(keys, k) if key in varying_keys}
        row = Row(setting, f"{run_a.path.name}", f"{_seed_text(a_cells[k])} | {_seed_text(b_cells[k])}")
        rows.append(_compare_cells(a_cells[k], b_cells[k], boots_a, boots_b, row))
    unmatched = len(set(a_cells) ^ set(b_cells))
    findings = Findings(rows, unmatched, bootstrap=all(b is not None for b in (*boots_a.values(), *boots_b.values())),
                        changed=changed)
    _corrected(findings.rows)
    return findings


def method_caption(findings: Findings, what: str, family: str = "the settings of this table") -> str:
    """How the table's numbers were obtained, for its caption; `family`: what the p-values are corrected over."""
    uncertainty = (f"the spread over seeds and a bootstrap over the test samples ({BOOTSTRAP_SAMPLES} resamples of "
                   "each cell's saved test features, the same resamples for both sides)" if findings.bootstrap else
                   "the spread over seeds only (some cells saved no test features, so test-set variation is left out)")
    if any(d.n == 1 for r in findings.rows for d in r.differences.values()):
        what += " With one seed on a side there is no seed spread: its interval holds the test-set variation only."
    return (f"{what} Each headline metric: the change (paired over seeds when both sides ran the same seeds), its "
            f"{LEVEL:.0%} confidence interval from {uncertainty}, and its two-sided p-value, Holm-corrected over "
            f"{family} compared on that metric; a difference is detectable at corrected p < {SIGNIFICANCE:g}. Ratios "
            "are given as factors (x2 = twice the reference), shares in percentage points. Green: better, red: worse. "
            "A setting with a diverged seed on either side is not compared (its survivors would be a biased sample).")


def findings_table(findings: Findings) -> str:
    """The findings as an HTML table (every value escaped by render), better and worse cells coloured."""
    frame = findings.frame()
    css = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for i, r in enumerate(findings.rows):
        for m in headline_metrics():
            verdict = r.verdicts.get(m.name)
            if verdict in DIFFERENT:
                css.loc[i, m.label] = BETTER_CSS if verdict == "better" else WORSE_CSS
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
    findings = grid_findings(run, progress=True)
    if not findings.rows:
        return [Note(f"Findings left out: no configuration has a counterpart at {reference}.")]
    pooled = axis_findings(run)
    left_out = [Note(f"Test-set bootstrap left out for a cell: {problem}") for problem in unreadable_features(run)]
    differing = [format_label(r.setting[key]) for r in pooled.rows if any(v in DIFFERENT for v in r.verdicts.values())]
    diverged = sum(r.flag.startswith("not compared: diverged") for r in findings.rows if r.flag)
    unfinished = sum(bool(r.flag) for r in findings.rows) - diverged
    blocks = [*left_out, Note(f"{len(differing)} of {len(pooled.rows)} values of {key} differ from {reference} in at "
                              f"least one headline metric ({', '.join(m.label for m in headline_metrics())})"
                              + (f": {key} = {', '.join(differing)}" if differing else "")
                              + "".join(f"; {n} settings not compared because {why}" for n, why in (
                                  (diverged, "a seed diverged"), (unfinished, "no cell finished ok on one side (failed)"))
                                  if n) + ".")]
    open_set = ""
    if "holdout_classes" in run.results and (run.results["holdout_classes"] > 0).any():
        open_set = (" In open-set settings (holdout_classes > 0) test accuracy is measured on the trained classes and "
                    "the other metrics on the held-out classes (see Open-set).")
    what = (f"Each value of {key} against {reference}: for each seed, the change pooled over the settings of the "
            "other keys that have a counterpart at the reference (geometric mean of ratios, mean of shares); the "
            f"seeds column says how many.{open_set}")
    blocks.append(Table(f"Findings: each {key} against {reference}", findings_table(pooled),
                        caption=method_caption(pooled, what, family=f"the values of {key}")))
    what = f"Each setting against the same setting at {reference}."
    if findings.unmatched:
        what += f" {findings.unmatched} settings have no counterpart there and are not compared."
    blocks.append(Table(f"Findings per setting: against {reference}", findings_table(findings),
                        caption=method_caption(findings, what + open_set), collapsed=True))
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
    for name, m in METRICS.items():
        if m.compute is not None and m.summarized and f"{name}_mean" in open_set:
            where = "seen" if m.open_set == SEEN else "held out"
            frame[f"{m.label} ({where})"] = [mean_ci_text(a, b) for a, b in
                                             zip(open_set[f"{name}_mean"], open_set[f"{name}_ci95"])]
    caption = ("Open-set cells: the last holdout_classes classes were held out of training. Retrieval, verification "
               "and compactness are measured on the held-out classes' test samples only (identities the model never "
               "saw, as in the paper's LFW and MegaFace protocols); accuracy, nearest-center accuracy and the "
               "center distance on the trained classes' test samples. Mean ± 95% t-interval over seeds.")
    return [Table("Open-set: metrics on classes held out of training",
                  render(frame.style.hide(axis="index")), caption=caption)]


def marked_settings(run: GridRun, metric: str) -> set:
    """The settings whose `metric` differs from the reference setting in the run's findings (empty when the run
    has no cell at its reference setting); match them with setting_of."""
    key, value = run.reference
    if key not in run.results or not (run.results[key] == value).any():
        return set()
    return grid_findings(run).differing(metric)


def setting_of(run: GridRun, row) -> tuple:
    """The setting of a summary or results row, in the form Findings.differing gives."""
    return _setting_key({k: row[k] for k in varying(run.results, run.config_columns)})
