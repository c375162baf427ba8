"""Whether a difference is real: comparisons of the headline metrics between two groups of cells.

A comparison takes one metric's values over seeds on each side, a: (n_a,) and b: (n_b,), and optionally each
cell's values over bootstrap resamples of its test samples, (R, n_a) and (R, n_b), drawn with the same resamples
for every cell (`bootstrap_weights`), so that the test set's own noise is shared as it is between real cells.

    paired (the same seeds on both sides)   d_s = b_s - a_s, estimate mean(d), seed variance var(d) / n, df n - 1
    unpaired (different seeds)              estimate mean(b) - mean(a), Welch's variance and degrees of freedom
    test-set variance                       the variance over resamples r of the same estimate on resample r
    95% CI and p-value                      t distribution on estimate / sqrt(seed variance + test-set variance)

Seeds share one test split (ablate.data), so their spread leaves out the test set's sampling noise; the bootstrap
adds it. A metric is compared on the scale its registry entry names (Metric.change): shares in percentage points,
ratios on the log scale (a factor), anything else as is. The p-values of one metric over the settings of one
table are corrected together (Holm).
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ablate import runfolder
from ablate.metrics import DIFFERENCE, POINTS, RATIO, Metric, headline_metrics

LEVEL = 0.95  # confidence of the intervals
SIGNIFICANCE = 0.05  # a Holm-corrected p-value below this is a detectable difference
BOOTSTRAP_SAMPLES = 100  # resamples of the test samples per cell: the test-set variance to about +/- 15%
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Difference:
    """One metric compared between a reference and another setting, on the metric's change scale.

    estimate, low, high: the change and its 95% CI (percentage points, a log factor, or a plain difference);
    p: the uncorrected two-sided p-value; n: seeds (pairs, or the smaller side); paired; bootstrap: whether the
    test-set variance is in; identical: every value and resample equal on both sides.
    """

    metric: Metric
    estimate: float
    low: float
    high: float
    p: float
    n: int
    paired: bool
    bootstrap: bool
    identical: bool

    def verdict(self, p_corrected: float) -> str:
        """'identical', 'better', 'worse' or 'no detectable difference' at the corrected p-value."""
        if self.identical:
            return "identical"
        if not p_corrected < SIGNIFICANCE:
            return "no detectable difference"
        return "better" if (self.estimate > 0) == self.metric.higher_is_better else "worse"

    def change_text(self) -> str:
        """'x2.2 [1.8, 2.6]', '+0.8 pts [-0.4, 2.0]' or '+0.013 [0.002, 0.024]'."""
        if not math.isfinite(self.estimate):
            return "not comparable"
        if self.metric.change == RATIO:
            return f"x{math.exp(self.estimate):.3g} [{math.exp(self.low):.3g}, {math.exp(self.high):.3g}]"
        unit = " pts" if self.metric.change == POINTS else ""
        digits = ".2g" if self.metric.change == DIFFERENCE else ".1f"
        return f"{self.estimate:+{digits}}{unit} [{self.low:+{digits}}, {self.high:+{digits}}]"

    def sentence(self, p_corrected: float) -> str:
        """'separation ratio x2.2 [1.8, 2.6], better (p = 0.003)' in plain words."""
        verdict = self.verdict(p_corrected)
        p_text = "" if self.identical or math.isnan(p_corrected) else f" (p = {p_corrected:.2g})"
        return f"{self.metric.label} {self.change_text()}, {verdict}{p_text}"


def on_change_scale(metric: Metric, values) -> np.ndarray:
    """Values as compared: x100 for shares (points), log for ratios (non-positive ones become NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if metric.change == POINTS:
        return 100.0 * values
    if metric.change == RATIO:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(values > 0, np.log(values), np.nan)
    return values


def compare(metric: Metric, a, b, a_boot=None, b_boot=None, paired: bool = False) -> Difference:
    """b against a for one metric: a (n_a,), b (n_b,) over seeds (paired: the same seeds, in the same order);
    a_boot (R, n_a), b_boot (R, n_b) the same cells on bootstrap resamples of the test samples, or None.

    A side with a non-finite value (an inf ratio, a NaN) is not comparable: the result says so, with NaNs.
    """
    a, b = on_change_scale(metric, a), on_change_scale(metric, b)
    boot = a_boot is not None and b_boot is not None
    n = min(len(a), len(b))
    values = [a, b] + ([on_change_scale(metric, a_boot), on_change_scale(metric, b_boot)] if boot else [])
    if n == 0 or not all(np.isfinite(v).all() for v in values):
        return Difference(metric, math.nan, math.nan, math.nan, math.nan, n, paired, boot, False)
    if paired:
        d = b - a
        estimate = d.mean()
        seed_var, df = (d.var(ddof=1) / n, n - 1) if n > 1 else (0.0, math.inf)
    else:
        estimate = b.mean() - a.mean()
        parts = [v.var(ddof=1) / len(v) if len(v) > 1 else 0.0 for v in (a, b)]
        seed_var = sum(parts)
        dfs = [len(v) - 1 for v in (a, b)]
        df = (seed_var ** 2 / sum(p ** 2 / k for p, k in zip(parts, dfs) if k > 0)
              if seed_var > 0 and min(dfs) > 0 else math.inf)
    test_var = 0.0
    identical = bool(np.array_equal(a, b)) if paired else False
    if boot:
        a_r, b_r = values[2], values[3]
        per_resample = (b_r - a_r).mean(axis=1) if paired else b_r.mean(axis=1) - a_r.mean(axis=1)  # (R,)
        test_var = per_resample.var(ddof=1)
        identical = identical and bool(np.array_equal(a_r, b_r))
    se = math.sqrt(seed_var + test_var)
    if se == 0:
        p = 1.0 if estimate == 0 else 0.0
        return Difference(metric, estimate, estimate, estimate, p, n, paired, boot, identical)
    half = stats.t.ppf(0.5 + LEVEL / 2, df) * se
    p = float(2 * stats.t.sf(abs(estimate) / se, df))
    return Difference(metric, float(estimate), float(estimate - half), float(estimate + half), p, n, paired, boot,
                      identical)


def holm(p_values) -> np.ndarray:
    """Holm's step-down correction of p-values (any shape; NaN left out of the count and kept NaN).

    scipy.stats has only false-discovery-rate corrections; this is the family-wise one the findings promise.
    """
    p = np.asarray(p_values, dtype=np.float64)
    flat = p.ravel()
    known = np.flatnonzero(~np.isnan(flat))
    order = known[np.argsort(flat[known], kind="stable")]
    m = len(order)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * flat[order]))
    out = np.full_like(flat, np.nan)
    out[order] = adjusted
    return out.reshape(p.shape)


def bootstrap_weights(n: int, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(samples, n) counts of each test sample in each resample (drawn with replacement, n draws). Fixed seed: every
    cell with n test samples gets the same resamples, so paired cells share their test-set noise."""
    return np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=samples).astype(np.float64)


def read_cell_features(path, holdout_classes: int = 0) -> dict:
    """The arrays of a cell's .npz (ablate.runfolder.read_features) with its predictions, finite and N >= 2; a
    ValueError (RunFolderError) names the file and what was expected."""
    arrays = runfolder.read_features(path, holdout_classes)
    if arrays[runfolder.PREDICTIONS] is None:
        raise runfolder.RunFolderError(f"{path}: no {runfolder.PREDICTIONS} (written by an older ablate?); the "
                                       "test-set bootstrap needs them")
    if len(arrays["labels"]) < 2:
        raise runfolder.RunFolderError(f"{path}: expected at least 2 test samples, got {len(arrays['labels'])}")
    if not (np.isfinite(arrays["features"]).all() and np.isfinite(arrays["centers"]).all()):
        raise runfolder.RunFolderError(f"{path}: features and centers must be finite (a cell that finished ok)")
    return arrays


def bootstrap_cell(path, holdout_classes: int = 0, samples: int = BOOTSTRAP_SAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> dict:
    """{metric name: (samples,) values} of every headline metric on resamples of the cell's saved test samples
    (cells/<id>.npz; the model is not run again). In an open-set cell the seen and held-out samples are resampled
    together, each metric measured on its own part (ablate.metrics.features.split_evaluations)."""
    from ablate.metrics.features import split_evaluations, split_masks  # scikit-learn: loaded when asked for

    arrays = read_cell_features(path, holdout_classes)
    labels = arrays["labels"]
    evaluations = split_evaluations(arrays["features"], labels, arrays["predictions"], arrays["centers"])
    masks = split_masks(labels, len(arrays["centers"]))
    metrics = headline_metrics()
    values = {m.name: np.empty(samples) for m in metrics}
    for r, weights in enumerate(bootstrap_weights(len(labels), samples, seed)):
        resampled = {split: e.reweighted(weights[masks[split]]) for split, e in evaluations.items()}
        for m in metrics:
            values[m.name][r] = m.compute(resampled[m.open_set])
    return values
