"""Whether a difference is real: one metric's per-seed values on two sides, compared over seeds.

    compare_sides(metric, a, b, paired=..., family_size=m) -> Difference   the one comparison every finding uses
    seeds_needed(sd, effect, family_size)                                  seeds to detect `effect` at 80% power

A side is one configuration's values of one metric over its seeds, a: (n_a,) and b: (n_b,). Every seed draws its
own train/test split (ablate.data), so the spread over seeds already holds the test set's sampling noise as well as
the training's: a t-test over seeds is the whole inference, with nothing added for the test set.

    paired (the same seeds on both sides)   d_s = b_s - a_s; estimate mean(d), variance var(d) / n, df n - 1
    unpaired (other seeds)                  estimate mean(b) - mean(a); Welch's variance and degrees of freedom
    one seed on a side                      untestable: the estimate alone (no seed spread, so no interval, no p)

A family of m comparisons (the primary metrics x the settings of one table, say) is adjusted by Bonferroni: the
interval shown is the simultaneous one, at level 1 - SIGNIFICANCE / m, the p-value is min(1, m p), and the verdict
is read off the interval (a difference iff it excludes no change), so no verdict can contradict its interval.
(Holm's step-down rejects a little more, but has no intervals that agree with its verdicts.)

A metric is compared on the scale its registry entry names (Metric.change): shares in percentage points, ratios on
the log scale (said as a factor), anything else as is.
"""

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.optimize import brentq

from ablate.metrics import DIFFERENCE, POINTS, RATIO, Metric

SIGNIFICANCE = 0.05  # family-wise error rate of one findings table's family
POWER = 0.8  # the power at which the minimum detectable effect is given
UNTESTABLE = "untestable with one seed"
NO_DIFFERENCE = "no detectable difference"
DIFFERENT = ("better", "worse")


@dataclass(frozen=True)
class Difference:
    """One metric compared between a reference side a and another side b, on the metric's change scale.

    estimate: mean change (percentage points, a log factor, or a plain difference); se, df: its standard error over
    seeds and the t reference's degrees of freedom (NaN when untestable); sd: the spread of one seed's change (the
    paired differences' std, or the pooled std of the two sides), which sets the minimum detectable effect;
    n_a, n_b: seeds per side; paired; family_size: comparisons adjusted together; identical: every value equal
    on both sides (paired).
    """

    metric: Metric
    estimate: float
    se: float
    df: float
    sd: float
    n_a: int
    n_b: int
    paired: bool
    family_size: int = 1
    identical: bool = False

    @property
    def comparable(self) -> bool:
        return math.isfinite(self.estimate)

    @property
    def testable(self) -> bool:
        """Both sides have a seed spread (two seeds or more; paired: two pairs or more) and finite values."""
        return self.comparable and math.isfinite(self.se)

    @property
    def level(self) -> float:
        """The confidence of the interval shown: simultaneous over the family (Bonferroni)."""
        return 1.0 - SIGNIFICANCE / self.family_size

    @property
    def interval(self) -> tuple:
        """(low, high) at `level`; (NaN, NaN) when untestable."""
        if not self.testable:
            return math.nan, math.nan
        half = stats.t.ppf(0.5 + self.level / 2, self.df) * self.se if self.se > 0 else 0.0
        return self.estimate - half, self.estimate + half

    @property
    def p(self) -> float:
        """The two-sided p-value adjusted over the family (min(1, m p)); NaN when untestable."""
        if not self.testable:
            return math.nan
        if self.se == 0:
            raw = 1.0 if self.estimate == 0 else 0.0
        else:
            raw = 2 * stats.t.sf(abs(self.estimate) / self.se, self.df)
        return float(min(1.0, self.family_size * raw))

    @property
    def verdict(self) -> str:
        """'better' or 'worse' iff the interval shown excludes no change; else 'no detectable difference',
        'identical', 'untestable with one seed' or the metric's `missing` text (not comparable)."""
        if not self.comparable:
            return self.metric.missing
        if self.identical:
            return "identical"
        if not self.testable:
            return UNTESTABLE
        low, high = self.interval
        if low <= 0 <= high:
            return NO_DIFFERENCE
        return "better" if (self.estimate > 0) == self.metric.higher_is_better else "worse"

    @property
    def minimum_detectable(self) -> float:
        """The smallest true change (on the change scale, > 0) this comparison detects with probability POWER at
        its family's level, given the observed spread of one seed; NaN when untestable."""
        if not self.testable:
            return math.nan
        if self.sd == 0:
            return 0.0
        return detectable_effect_size(self.n_a, self.n_b, self.paired, self.family_size) * self.sd

    def change_text(self) -> str:
        """'x2.2 [1.8, 2.6]', '+0.8 pts [-0.4, +2.0]', '+0.013 [+0.002, +0.024]'; the estimate alone when
        untestable; the metric's `missing` text when not comparable. A bound is printed with as many digits as it
        takes to stay on its side of no change."""
        if not self.comparable:
            return self.metric.missing
        low, high = self.interval
        if self.metric.change == RATIO:
            shown = [_shown(math.exp(v), 1.0, "{:.%dg}", 3) for v in (self.estimate, low, high)]
            text, bounds, unit = f"x{shown[0]}", shown[1:], ""
        else:
            unit = " pts" if self.metric.change == POINTS else ""
            pattern, digits = ("{:+.%dg}", 2) if self.metric.change == DIFFERENCE else ("{:+.%df}", 1)
            shown = [_shown(v, 0.0, pattern, digits) for v in (self.estimate, low, high)]
            text, bounds = f"{shown[0]}{unit}", shown[1:]
        return text if not self.testable else f"{text} [{bounds[0]}, {bounds[1]}]"

    def minimum_detectable_text(self) -> str:
        """'MDE 1.5 pts', 'MDE x1.4' (a factor either way), 'MDE 0.02'; '' when untestable."""
        mde = self.minimum_detectable
        if not math.isfinite(mde):
            return ""
        if self.metric.change == RATIO:
            return f"MDE x{math.exp(mde):.3g}"
        return f"MDE {mde:.2g} pts" if self.metric.change == POINTS else f"MDE {mde:.2g}"

    def p_text(self) -> str:
        """'p=0.003' (adjusted), or '' when there is none."""
        return f"p={self.p:.2g}" if self.testable and not self.identical else ""

    def sentence(self) -> str:
        """'separation ratio x2.2 [1.8, 2.6], better (p = 0.003)' in plain words."""
        if not self.comparable:
            return f"{self.metric.label} {self.metric.missing}"
        p_text = f" (p = {self.p:.2g})" if self.p_text() else ""
        return f"{self.metric.label} {self.change_text()}, {self.verdict}{p_text}"


def _shown(value: float, no_change: float, pattern: str, digits: int) -> str:
    """`value` formatted with `pattern` % digits, with more digits while the printed number falls on no change or
    on its other side (an interval that excludes no change must not look as if it held it)."""
    if not math.isfinite(value):
        return str(value)
    side = np.sign(value - no_change)
    for extra in range(8):
        text = (pattern % (digits + extra)).format(value)
        if np.sign(float(text) - no_change) == side:
            break
    return text


def on_change_scale(metric: Metric, values: npt.ArrayLike) -> np.ndarray:
    """Values as compared: x100 for shares (points), log for ratios (non-positive ones become NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if metric.change == POINTS:
        return 100.0 * values
    if metric.change == RATIO:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(values > 0, np.log(values), np.nan)
    return values


def _untestable(metric: Metric, estimate: float, n_a: int, n_b: int, paired: bool, family_size: int,
                identical: bool = False) -> Difference:
    """A Difference without a seed spread (a side with one seed, or a non-finite value): no se, df or sd."""
    return Difference(metric, estimate, math.nan, math.nan, math.nan, n_a, n_b, paired, family_size, identical)


def compare_sides(metric: Metric, a: npt.ArrayLike, b: npt.ArrayLike, *, paired: bool,
                  family_size: int = 1) -> Difference:
    """b against a for one metric: a (n_a,) and b (n_b,) its values over seeds, paired when both sides ran the same
    seeds (given in the same order). family_size: the number of testable comparisons adjusted together (Bonferroni).

    The result gives the estimate, the simultaneous interval (Difference.interval), the adjusted p-value, the
    verdict (read off the interval), the minimum detectable effect at POWER, and says 'untestable with one seed'
    when a side has a single seed (paired: a single pair): the estimate is shown, with no interval, p or verdict.
    A side with a non-finite value (an inf ratio, a NaN) is not compared: its verdict is the metric's `missing`
    text ('not comparable', or 'not resolvable at this size' for a TAR the pairs do not resolve). Raises ValueError
    when paired sides differ in length or family_size < 1.
    """
    if family_size < 1:
        raise ValueError(f"family_size must be >= 1, got {family_size}")
    a, b = on_change_scale(metric, a), on_change_scale(metric, b)
    if paired and len(a) != len(b):
        raise ValueError(f"paired sides need one value per seed on each side, got {len(a)} and {len(b)}")
    n_a, n_b = len(a), len(b)
    if min(n_a, n_b) == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return _untestable(metric, math.nan, n_a, n_b, paired, family_size)
    if paired:
        d = b - a
        identical = bool(np.array_equal(a, b))
        if n_a < 2:
            return _untestable(metric, float(d.mean()), n_a, n_b, True, family_size, identical)
        sd = float(d.std(ddof=1))
        return Difference(metric, float(d.mean()), sd / math.sqrt(n_a), n_a - 1, sd, n_a, n_b, True, family_size,
                          identical)
    estimate = float(b.mean() - a.mean())
    if min(n_a, n_b) < 2:
        return _untestable(metric, estimate, n_a, n_b, False, family_size)
    var_a, var_b = a.var(ddof=1), b.var(ddof=1)
    parts = (var_a / n_a, var_b / n_b)
    se2 = sum(parts)
    df = se2 ** 2 / (parts[0] ** 2 / (n_a - 1) + parts[1] ** 2 / (n_b - 1)) if se2 > 0 else float(n_a + n_b - 2)
    pooled_sd = math.sqrt(((n_a - 1) * var_a + (n_b - 1) * var_b) / (n_a + n_b - 2))
    return Difference(metric, estimate, math.sqrt(se2), float(df), pooled_sd, n_a, n_b, False, family_size)


def _power(effect_size: float, n_a: float, n_b: float, paired: bool, alpha: float) -> float:
    """Power of the two-sided t-test at `alpha` for a true change of effect_size SDs (the far tail left out: it is
    below alpha / 2 and statsmodels' noncentral t gives NaN there at large effects)."""
    from statsmodels.stats.power import TTestIndPower, TTestPower  # loaded when a power is asked for

    if paired:
        return TTestPower().power(effect_size=effect_size, nobs=n_a, alpha=alpha / 2, alternative="larger")
    return TTestIndPower().power(effect_size=effect_size, nobs1=n_a, ratio=n_b / n_a, alpha=alpha / 2,
                                 alternative="larger")


def detectable_effect_size(n_a: int, n_b: int, paired: bool, family_size: int = 1) -> float:
    """The effect size (change / sd of one seed) detected with probability POWER by the two-sided t-test at
    SIGNIFICANCE / family_size, with n_a and n_b seeds (paired: n_a pairs); a pooled-variance t for unpaired sides."""
    alpha = SIGNIFICANCE / family_size
    normal = (stats.norm.isf(alpha / 2) + stats.norm.ppf(POWER)) * math.sqrt(1 / n_a + (0 if paired else 1 / n_b))
    high = normal
    while _power(high, n_a, n_b, paired, alpha) < POWER:  # the t-test needs more than the normal test
        high *= 2
    return brentq(lambda d: _power(d, n_a, n_b, paired, alpha) - POWER, high / 2 if high > normal else 1e-9, high)


def seeds_needed(sd: float, effect: float, family_size: int = 1) -> int:
    """The fewest seeds (paired) for which a true change `effect` is detected with probability POWER at
    SIGNIFICANCE / family_size, when one seed's change scatters with std `sd` (same units as `effect`)."""
    alpha = SIGNIFICANCE / family_size
    if not sd > 0 or _power(abs(effect) / sd, 2, 2, True, alpha) >= POWER:
        return 2
    effect_size = abs(effect) / sd
    high = 4.0
    while _power(effect_size, high, high, True, alpha) < POWER:
        high *= 2
    root = brentq(lambda n: _power(effect_size, n, n, True, alpha) - POWER, high / 2, high)
    return math.ceil(root - 1e-6)  # the root to brentq's precision: n = 5.0000000001 is 5 seeds
