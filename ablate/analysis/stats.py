"""Whether a difference is real: one metric's per-seed values on two sides, compared over seeds.

    compare_sides(metric, a, b, paired=..., family_size=m) -> Difference   the one comparison every finding uses
    seeds_needed(sd, effect, family_size, paired=..., other=...)            seeds to detect `effect` at 80% power
    effects_of_interest(declared)                                           the grid's effect of interest per metric

A side is one configuration's values of one metric over its seeds, a: (n_a,) and b: (n_b,). In a grid every seed
draws its own train/test split (ablate.data), so the spread over seeds already holds the test set's sampling noise as
well as the training's: a test over seeds is the whole inference, with nothing added for the test set. A tune's final
seeds share the split their setting was selected on: there the test speaks for that test set (the training's noise
alone), and the captions say so (ablate.analysis.findings.split_noise_text).

    paired (the same seeds on both sides)   d_s = b_s - a_s; estimate mean(d), variance var(d) / n, df n - 1
    unpaired, sizes within BALANCE          estimate mean(b) - mean(a); Welch's variance and degrees of freedom
    unpaired, sizes further apart           the same estimate; a permutation test of Welch's t (below)
    one seed on a side                      untestable: the estimate alone (no seed spread, so no interval, no p)
    no spread (or rounding's) on the sides  untestable: a constant difference has no noise to test it against
    the same values on both sides           identical: no test, and no member of the family

Unequal sides. Welch's t with 3 seeds against 117 rejects 7% of A/A comparisons of this suite's cells at nominal 5%
(the per-seed values are skewed: three typical seeds sit off the mean of all, with a small spread), and about 15% on
exponentially skewed values. Up to BALANCE (the larger side at most twice the smaller) Welch's t stays at or below
its level on such values (tests/analysis/test_statistics.py), and at small equal sides it is conservative: 3 vs 3
rejects 3.4% of normal A/A draws and 2.3% of skewed ones, 5 vs 5 4.5% and 2.5% (20,000 draws each), and 2.1-2.9% and
3.0-5.1% of this suite's cells (tests/analysis/test_null_experiment.py); beyond it the p-value is a permutation test
of Welch's t (scipy.stats.permutation_test): exact when the seeds are exchangeable, as in an A/A comparison, and
asymptotically valid when the spreads differ (the studentized statistic; Janssen 1997). Its interval is the set of
shifts of b that the same test does not reject (found by bisection), so the verdict and the interval agree by
construction. With few seeds the permutations are too few to reach a small level (2 vs 5 seeds: 21 splits): then
nothing is detectable and the minimum detectable effect is infinite.

A family of m comparisons (the primary metrics x the settings of one table, say) is adjusted by Bonferroni: the
interval shown is the simultaneous one, at level 1 - SIGNIFICANCE / m, the p-value is min(1, m p), and the verdict
is read off the interval (a difference iff it excludes no change), so no verdict can contradict its interval.
(Holm's step-down rejects a little more, but has no intervals that agree with its verdicts.)

Too few seeds. A metric has a range (Metric.value_range: a share in [0, 1], a norm at least 0). An interval whose
other side's values would leave it (a change of accuracy of -6.9 points [-211, +197]), or a minimum detectable effect
wider than the range itself, says nothing but that the seeds are too few: the comparison says "too few seeds (n)"
instead of the number, and its verdict is that unless the test found a difference.

The effect of interest (a grid's `effect_of_interest`, default 1 point for every metric said in points) is the
smallest change that matters. A comparison that finds no difference says which of three things it is: equivalent
(its simultaneous interval lies within +-effect: the two one-sided tests of statsmodels' TOST at half the family's
level, which is what that interval is), underpowered (its minimum detectable effect exceeds the effect, so "no
difference" would read as a null result it cannot support), or no detectable difference, always with its MDE.

A metric is compared on the scale its registry entry names (Metric.change): shares in percentage points, ratios on
the log scale (said as a factor), anything else as is.
"""

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.optimize import brentq

from ablate.metrics import DIFFERENCE, POINTS, RATIO, Metric, headline_metrics, too_few_seeds

SIGNIFICANCE = 0.05  # family-wise error rate of one family
POWER = 0.8  # the power at which the minimum detectable effect is given
# Unpaired sides whose sizes differ by more than this factor are compared by the permutation test: Welch's t holds
# its level up to it (at or below 5% on skewed values, 3 vs 3 to 5 vs 10) and loses it beyond (3 vs 30: ~14%).
BALANCE = 2.0
PERMUTATIONS = 9999  # random splits of the permutation test (exact enumeration when there are fewer)
PERMUTATION_SEED = 0  # the splits are drawn the same way each time, so a comparison's p-value is reproducible
# A spread at most this share of the values' magnitude (for a ratio: of 1 on its log scale) is rounding, not seed
# noise: metrics are computed from float32 features (eps 1.2e-7), so a few roundings reach 1e-6; the smallest real
# spread, one test sample of digits' 360 in accuracy, is 2.8e-3 of it.
ROUNDING = 1e-6
EFFECT_OF_INTEREST = "effect_of_interest"  # the grid key that declares it (ablate.grid.spec)
DEFAULT_EFFECT_POINTS = 1.0  # the effect of interest of every metric said in points, unless a grid declares one

# The verdicts of a comparison.
BETTER, WORSE = "better", "worse"
DIFFERENT = (BETTER, WORSE)
NO_DIFFERENCE = "no detectable difference"
UNDERPOWERED = "underpowered"  # said with its MDE: "underpowered (MDE 2.9 pts)"
EQUIVALENT = "equivalent"  # said with its margin: "equivalent (within ±1 pts)"
TOO_FEW = "too few seeds"  # said with the seeds: "too few seeds (3)" (ablate.metrics.too_few_seeds)
IDENTICAL = "identical"
UNTESTABLE = "untestable with one seed"
DEGENERATE = "untestable: no spread over seeds"
UNTESTED = (UNTESTABLE, DEGENERATE)

# The tests.
PAIRED_T = "paired t"
WELCH_T = "Welch's t"
PERMUTATION = "permutation test of Welch's t"


def welch_t(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Welch's t of b against a along `axis` (vectorized for scipy.stats.permutation_test); 0 where both sides
    have no spread."""
    se = np.sqrt(np.var(a, axis=axis, ddof=1) / a.shape[axis] + np.var(b, axis=axis, ddof=1) / b.shape[axis])
    difference = np.mean(b, axis=axis) - np.mean(a, axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, difference / se, 0.0)


def effect_text(metric: Metric, value: float) -> str:
    """A change of `metric` on its change scale as words: '1 pts', 'x1.1', '0.02'."""
    if metric.change == RATIO:
        return f"x{math.exp(value):.3g}"
    return f"{value:.2g} pts" if metric.change == POINTS else f"{value:.2g}"


@dataclass(frozen=True)
class Difference:
    """One metric compared between a reference side a and another side b, on the metric's change scale.

    estimate: mean change (percentage points, a log factor, or a plain difference); se, df: its standard error over
    seeds and the t reference's degrees of freedom (NaN when untestable); sd: the spread of one seed's change (the
    paired differences' std, or the pooled std of the two sides), which sets the minimum detectable effect;
    n_a, n_b: seeds per side; paired; family_size: comparisons adjusted together; identical: every value equal on
    both sides; degenerate: no spread beyond rounding where the test needs one; test: PAIRED_T, WELCH_T or
    PERMUTATION ('' when untestable); effect: the effect of interest on the change scale (NaN: none declared);
    sides: (a, b) on the change scale, kept for the permutation test; baseline: the reference side's mean on the
    metric's own scale (a ratio's geometric mean), the value a change starts from (NaN: not finite).
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
    degenerate: bool = False
    test: str = ""
    effect: float = math.nan
    sides: tuple = field(default=(), repr=False, compare=False)
    baseline: float = math.nan

    @property
    def comparable(self) -> bool:
        return math.isfinite(self.estimate)

    @property
    def testable(self) -> bool:
        """A test was made: both sides have a seed spread (two seeds or more; paired: two pairs or more) beyond
        rounding, finite values, and they are not identical. Only these are members of a family."""
        return self.comparable and math.isfinite(self.se) and not (self.identical or self.degenerate)

    @property
    def alpha(self) -> float:
        """The level of one comparison of the family (Bonferroni)."""
        return SIGNIFICANCE / self.family_size

    @property
    def level(self) -> float:
        """The confidence of the interval shown: simultaneous over the family (Bonferroni)."""
        return 1.0 - self.alpha

    @cached_property
    def _permutation_ps(self) -> dict:
        return {}  # shift -> raw p-value, filled by _permutation_p

    def _permutation_p(self, shift: float) -> float:
        """The raw two-sided p-value of the permutation test of Welch's t for b moved by -shift against a."""
        if shift not in self._permutation_ps:
            a, b = self.sides
            result = stats.permutation_test((a, b - shift), welch_t, permutation_type="independent", vectorized=True,
                                            n_resamples=PERMUTATIONS, alternative="two-sided",
                                            rng=np.random.default_rng(PERMUTATION_SEED))
            self._permutation_ps[shift] = float(result.pvalue)
        return self._permutation_ps[shift]

    def _rejects(self, shift: float) -> bool:
        """The permutation test rejects a true change of `shift` at the family's level."""
        return self._permutation_p(shift) <= self.alpha

    @cached_property
    def _raw_p(self) -> float:
        if self.test == PERMUTATION:
            return self._permutation_p(0.0)
        return float(2 * stats.t.sf(abs(self.estimate) / self.se, self.df))

    @cached_property
    def _smallest_p(self) -> float:
        """The smallest two-sided p-value the test can give (the permutation test's splits are finite)."""
        if self.test != PERMUTATION:
            return 0.0
        splits = math.comb(self.n_a + self.n_b, self.n_a)
        return min(1.0, 2 / min(splits, PERMUTATIONS + 1))

    def _permutation_bound(self, direction: int) -> float:
        """The end of the permutation test's interval on the side `direction` (-1 low, +1 high): the shift where the
        test starts to reject at the family's level, by bisection between a shift it accepts and one it rejects.
        No change and the effect of interest, where they lie on this side, are tried first, so that the interval
        excludes either exactly when the test rejects it (the verdicts and the interval agree by construction)."""
        if self._smallest_p > self.alpha:
            return direction * math.inf
        marks = sorted((m for m in (0.0, self.effect, -self.effect)
                        if math.isfinite(m) and direction * (m - self.estimate) > 0),
                       key=lambda m: abs(m - self.estimate))
        inside, outside = self.estimate, math.nan
        for mark in marks:
            if self._rejects(mark):
                outside = mark
                break
            inside = mark
        step = max(self.se, abs(self.estimate), 1e-12)
        while math.isnan(outside):
            if self._rejects(inside + direction * step):
                outside = inside + direction * step
            elif step > 1e6 * max(self.se, abs(self.estimate)):
                return direction * math.inf
            step *= 2
        while abs(outside - inside) > 1e-3 * self.se:
            middle = (inside + outside) / 2
            inside, outside = (inside, middle) if self._rejects(middle) else (middle, outside)
        return (inside + outside) / 2

    @cached_property
    def interval(self) -> tuple:
        """(low, high) at `level`; (NaN, NaN) without a test."""
        if not self.testable:
            return math.nan, math.nan
        if self.test == PERMUTATION:
            return self._permutation_bound(-1), self._permutation_bound(+1)
        half = stats.t.ppf(0.5 + self.level / 2, self.df) * self.se
        return self.estimate - half, self.estimate + half

    @property
    def p(self) -> float:
        """The two-sided p-value adjusted over the family (min(1, m p)); NaN without a test."""
        if not self.testable:
            return math.nan
        return float(min(1.0, self.family_size * self._raw_p))

    @property
    def differs(self) -> bool:
        """The test rejects no change at the family's level (the interval excludes it)."""
        return self.testable and self.p <= SIGNIFICANCE

    @property
    def equivalent(self) -> bool:
        """The simultaneous interval lies within +-effect: TOST at level alpha / 2 (each one-sided test's level).
        For the permutation test: it rejects both +-effect (its interval is bounded by them, so they agree)."""
        if not (self.testable and math.isfinite(self.effect) and abs(self.estimate) < self.effect):
            return False
        if self.test == PERMUTATION:
            return self._smallest_p <= self.alpha and self._rejects(self.effect) and self._rejects(-self.effect)
        low, high = self.interval
        return -self.effect < low and high < self.effect

    @property
    def seeds_text(self) -> str:
        """The seeds compared: '3' (paired, or as many on each side), '3 vs 5'."""
        return f"{self.n_a}" if self.paired or self.n_a == self.n_b else f"{self.n_a} vs {self.n_b}"

    @property
    def interval_leaves_range(self) -> bool:
        """The interval, moved to the other side's values (baseline + change), leaves the metric's range: a share
        beyond [0, 1], a norm below 0."""
        if not (self.testable and math.isfinite(self.baseline)):
            return False
        low, high = (from_change_scale(self.metric, self.baseline, v) for v in self.interval)
        return not self.metric.holds(low, high)

    @property
    def mde_exceeds_range(self) -> bool:
        """The minimum detectable effect is wider than every change the metric's range allows (more than 100
        points of a share)."""
        if not self.testable or self.metric.change == RATIO:  # a ratio's log scale spans every real
            return False
        low, high = on_change_scale(self.metric, self.metric.value_range)
        return self.minimum_detectable > high - low

    @property
    def too_few_seeds(self) -> bool:
        """Its interval leaves the metric's range or its MDE exceeds the range: the seeds are too few for the
        numbers to say anything."""
        return self.interval_leaves_range or self.mde_exceeds_range

    @property
    def verdict(self) -> str:
        """'better' or 'worse' iff the interval shown excludes no change; else 'too few seeds (n)' when the seeds
        are too few for an interval in the metric's range, 'equivalent (within ±x)', 'underpowered (MDE x)' or 'no
        detectable difference'; 'identical', 'untestable with one seed', 'untestable: no spread over seeds', or the
        metric's `missing` text (not comparable)."""
        if not self.comparable:
            return self.metric.missing
        if self.identical:
            return IDENTICAL
        if not math.isfinite(self.se):
            return UNTESTABLE
        if self.degenerate:
            return DEGENERATE
        if self.differs:
            return BETTER if (self.estimate > 0) == self.metric.higher_is_better else WORSE
        if self.too_few_seeds:
            return too_few_seeds(self.seeds_text)
        if self.equivalent:
            return f"{EQUIVALENT} ({self.margin_text()})"
        if math.isfinite(self.effect) and self.minimum_detectable > self.effect:
            return f"{UNDERPOWERED} ({self.minimum_detectable_text()})"
        return NO_DIFFERENCE

    @cached_property
    def minimum_detectable(self) -> float:
        """The smallest true change (on the change scale, > 0) this comparison detects with probability POWER at
        its family's level, given the observed spread of one seed (inf where the test cannot reach the level);
        NaN without a test."""
        if not self.testable:
            return math.nan
        if self._smallest_p > self.alpha:
            return math.inf
        return detectable_effect_size(self.n_a, self.n_b, self.paired, self.family_size) * self.sd

    @property
    def design(self) -> str:
        """'5 paired seeds', '3 vs 3 seeds', '5 vs 120 seeds'."""
        return f"{self.n_a} paired seeds" if self.paired else f"{self.n_a} vs {self.n_b} seeds"

    def _number(self, value: float) -> str:
        """A value on the change scale as printed: 'x2.2' for a ratio ('2.2' bare), '+0.8' otherwise, with as many
        digits as it takes to stay on its side of no change."""
        if self.metric.change == RATIO:
            return _shown(math.exp(value), 1.0, "{:.%dg}", 3)
        pattern, digits = ("{:+.%dg}", 2) if self.metric.change == DIFFERENCE else ("{:+.%df}", 1)
        return _shown(value, 0.0, pattern, digits)

    def estimate_text(self) -> str:
        """The change alone: 'x2.2', '+0.8 pts', '+0.013'; the metric's `missing` text when not comparable."""
        if not self.comparable:
            return self.metric.missing
        if self.metric.change == RATIO:
            return f"x{self._number(self.estimate)}"
        return self._number(self.estimate) + (" pts" if self.metric.change == POINTS else "")

    def change_text(self) -> str:
        """'x2.2 [1.8, 2.6]', '+0.8 pts [-0.4, +2.0]', '+0.013 [+0.002, +0.024]'; '-6.9 pts [too few seeds (3)]'
        when the interval leaves the metric's range; the estimate alone without a test; the metric's `missing`
        text when not comparable. A bound is printed with as many digits as it takes to stay on its side of no
        change."""
        if not self.testable:
            return self.estimate_text()
        if self.interval_leaves_range:
            return f"{self.estimate_text()} [{too_few_seeds(self.seeds_text)}]"
        low, high = self.interval
        return f"{self.estimate_text()} [{self._number(low)}, {self._number(high)}]"

    def minimum_detectable_text(self) -> str:
        """'MDE 1.5 pts', 'MDE x1.4' (a factor either way), 'MDE 0.02', 'MDE ∞'; 'too few seeds (3)' when it exceeds
        the metric's range; '' without a test."""
        mde = self.minimum_detectable
        if math.isnan(mde):
            return ""
        if self.mde_exceeds_range:
            return too_few_seeds(self.seeds_text)
        return "MDE ∞" if math.isinf(mde) else f"MDE {effect_text(self.metric, mde)}"

    def margin_text(self) -> str:
        """The equivalence margin in words: 'within ±1 pts', 'within a factor 1.1', 'within ±0.02'."""
        if self.metric.change == RATIO:
            return f"within a factor {math.exp(self.effect):.3g}"
        return f"within ±{effect_text(self.metric, self.effect)}"

    def p_text(self) -> str:
        """'p_adj = 0.003' (adjusted over the family), or '' when there is none."""
        return f"p_adj = {self.p:.2g}" if self.testable else ""

    def sentence(self) -> str:
        """'separation ratio x2.2 [1.8, 2.6], better (p_adj = 0.003)' in plain words; 'test accuracy -6.9 pts, too
        few seeds (3)' when the seeds are too few for the numbers."""
        if not self.comparable:
            return f"{self.metric.label} {self.metric.missing}"
        if self.verdict.startswith(TOO_FEW):
            return f"{self.metric.label} {self.estimate_text()}, {self.verdict}"
        p_text = f" ({self.p_text()})" if self.testable else ""
        return f"{self.metric.label} {self.change_text()}, {self.verdict}{p_text}"


def _shown(value: float, no_change: float, pattern: str, digits: int) -> str:
    """`value` formatted with `pattern` % digits, with more digits while the printed number falls on no change or
    on its other side (an interval that excludes no change must not look as if it held it)."""
    if not math.isfinite(value):
        return "∞" if value > 0 else "-∞" if value < 0 else str(value)
    side = np.sign(value - no_change)
    for extra in range(8):
        text = (pattern % (digits + extra)).format(value)
        if np.sign(float(text) - no_change) == side:
            break
    return text


def from_change_scale(metric: Metric, baseline: float, change: float) -> float:
    """The value `change` (on the metric's change scale) away from `baseline` (on its own scale): baseline + points
    / 100, baseline x e^change for a ratio, baseline + change otherwise."""
    if metric.change == POINTS:
        return baseline + change / 100.0
    if metric.change == RATIO:
        return baseline * math.exp(change) if change < 700 else math.inf
    return baseline + change


def baseline_of(metric: Metric, values: npt.ArrayLike) -> float:
    """The mean of a side's values on the metric's own scale: the geometric mean for a ratio (the change is compared
    on the log scale, so baseline x factor is the other side's geometric mean); NaN when a value is not finite."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0 or not np.isfinite(values).all():
        return math.nan
    if metric.change == RATIO:
        return float(np.exp(np.mean(np.log(values)))) if (values > 0).all() else math.nan
    return float(values.mean())


def on_change_scale(metric: Metric, values: npt.ArrayLike) -> np.ndarray:
    """Values as compared: x100 for shares (points), log for ratios (non-positive ones become NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if metric.change == POINTS:
        return 100.0 * values
    if metric.change == RATIO:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(values > 0, np.log(values), np.nan)
    return values


def rounding_spread(metric: Metric, a: np.ndarray, b: np.ndarray) -> float:
    """The largest spread (on the change scale) that rounding alone gives values of this size: ROUNDING of their
    magnitude, of 1 for a ratio's log (a relative rounding of the ratio)."""
    magnitude = max(float(np.max(np.abs(np.concatenate([a, b])))), 1.0 if metric.change == RATIO else 0.0)
    return ROUNDING * magnitude


def default_effect(metric: Metric) -> float:
    """The effect of interest of `metric` when none is declared: DEFAULT_EFFECT_POINTS for a metric said in points,
    none (NaN) otherwise."""
    return DEFAULT_EFFECT_POINTS if metric.change == POINTS else math.nan


def _without_test(metric: Metric, estimate: float, n_a: int, n_b: int, paired: bool, family_size: int,
                  baseline: float = math.nan, **flags) -> Difference:
    """A Difference without a test (a side with one seed, a non-finite value, no spread, identical sides)."""
    se = 0.0 if flags.get("identical") or flags.get("degenerate") else math.nan
    return Difference(metric, estimate, se, math.nan, math.nan, n_a, n_b, paired, family_size,
                      effect=default_effect(metric), baseline=baseline, **flags)


def compare_sides(metric: Metric, a: npt.ArrayLike, b: npt.ArrayLike, *, paired: bool,
                  family_size: int = 1) -> Difference:
    """b against a for one metric: a (n_a,) and b (n_b,) its values over seeds, paired when both sides ran the same
    seeds (given in the same order). family_size: the number of tested comparisons adjusted together (Bonferroni).

    The result gives the estimate, the simultaneous interval (Difference.interval), the adjusted p-value, the
    verdict (read off the interval), the minimum detectable effect at POWER, and says 'untestable with one seed'
    when a side has a single seed (paired: a single pair), 'untestable: no spread over seeds' when the spread the
    test needs is zero or rounding's (a constant difference), 'identical' when every value is the same on both
    sides. A side with a non-finite value (an inf ratio, a NaN) is not compared: its verdict is the metric's
    `missing` text ('not comparable', or 'not resolvable at this size' for a TAR the pairs do not resolve). Raises
    ValueError when paired sides differ in length or family_size < 1.
    """
    if family_size < 1:
        raise ValueError(f"family_size must be >= 1, got {family_size}")
    baseline = baseline_of(metric, a)
    a, b = on_change_scale(metric, a), on_change_scale(metric, b)
    if paired and len(a) != len(b):
        raise ValueError(f"paired sides need one value per seed on each side, got {len(a)} and {len(b)}")
    n_a, n_b = len(a), len(b)
    if min(n_a, n_b) == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return _without_test(metric, math.nan, n_a, n_b, paired, family_size)
    tolerance = rounding_spread(metric, a, b)
    identical = np.array_equal(a, b) if paired else bool(np.ptp(np.concatenate([a, b])) == 0)
    if paired:
        d = b - a
        if identical:
            return _without_test(metric, 0.0, n_a, n_b, True, family_size, baseline, identical=True)
        if n_a < 2:
            return _without_test(metric, float(d.mean()), n_a, n_b, True, family_size, baseline)
        sd = float(d.std(ddof=1))
        if sd <= tolerance:
            return _without_test(metric, float(d.mean()), n_a, n_b, True, family_size, baseline, degenerate=True)
        return Difference(metric, float(d.mean()), sd / math.sqrt(n_a), n_a - 1, sd, n_a, n_b, True, family_size,
                          test=PAIRED_T, effect=default_effect(metric), baseline=baseline)
    estimate = float(b.mean() - a.mean())
    if identical:
        return _without_test(metric, 0.0, n_a, n_b, False, family_size, baseline, identical=True)
    if min(n_a, n_b) < 2:
        return _without_test(metric, estimate, n_a, n_b, False, family_size, baseline)
    var_a, var_b = a.var(ddof=1), b.var(ddof=1)
    if math.sqrt(max(var_a, var_b)) <= tolerance:
        return _without_test(metric, estimate, n_a, n_b, False, family_size, baseline, degenerate=True)
    parts = (var_a / n_a, var_b / n_b)
    se2 = sum(parts)
    df = se2 ** 2 / (parts[0] ** 2 / (n_a - 1) + parts[1] ** 2 / (n_b - 1))
    pooled_sd = math.sqrt(((n_a - 1) * var_a + (n_b - 1) * var_b) / (n_a + n_b - 2))
    test = WELCH_T if max(n_a, n_b) <= BALANCE * min(n_a, n_b) else PERMUTATION
    return Difference(metric, estimate, math.sqrt(se2), float(df), pooled_sd, n_a, n_b, False, family_size,
                      test=test, effect=default_effect(metric), sides=(a, b) if test == PERMUTATION else (),
                      baseline=baseline)


def effects_of_interest(declared: float | dict | None = None, source: str = "the grid") -> dict:
    """{metric name: effect of interest on its change scale} for every headline metric that has one: the default
    (DEFAULT_EFFECT_POINTS for those said in points), replaced by what a grid declares under EFFECT_OF_INTEREST: a
    number (points, for every headline metric said in points) or a table {metric name: value} in the metric's unit
    (points for a share, a factor above 1 for a ratio, the plain difference otherwise). Raises ValueError naming
    `source`, the key and what was expected for anything else."""
    effects = {m.name: default_effect(m) for m in headline_metrics() if math.isfinite(default_effect(m))}
    if declared is None:
        return effects
    expected = (f"{source}: {EFFECT_OF_INTEREST} must be a positive number (points, for every metric said in points) "
                "or a table of headline metric = value (points for a share, a factor above 1 for a ratio)")
    if isinstance(declared, dict):
        named = {m.name: m for m in headline_metrics()}
        for name, value in declared.items():
            if name not in named:
                raise ValueError(f"{expected}; {name!r} is not a headline metric (expected one of "
                                 f"{', '.join(named)})")
            effects[name] = _effect_value(named[name], value, expected)
        return effects
    points = [m for m in headline_metrics() if m.change == POINTS]
    return {**effects, **{m.name: _effect_value(m, declared, expected) for m in points}}


def _effect_value(metric: Metric, value: object, expected: str) -> float:
    """A declared effect of interest of `metric` on its change scale (a factor's log for a ratio)."""
    lowest = 1.0 if metric.change == RATIO else 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= lowest:
        raise ValueError(f"{expected}; got {value!r} for {metric.name}")
    return math.log(value) if metric.change == RATIO else float(value)


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


MOST_SEEDS = 10 ** 6  # seeds_needed's search stops here: more is "not reachable"


def seeds_needed(sd: float, effect: float, family_size: int = 1, *, paired: bool = True,
                 other: int | None = None) -> float:
    """The fewest seeds for which a true change `effect` is detected with probability POWER at SIGNIFICANCE /
    family_size, when one seed's change scatters with std `sd` (same units as `effect`), in the design run:
    paired (pairs), unpaired with as many seeds on each side (other None: seeds per side), or unpaired against a
    side held at `other` seeds (seeds on this side; inf when no number of them reaches POWER)."""
    alpha = SIGNIFICANCE / family_size
    effect_size = abs(effect) / sd if sd > 0 else math.inf

    def power(n: float) -> float:
        return _power(effect_size, n, n if other is None else other, paired, alpha)

    if not sd > 0 or power(2) >= POWER:
        return 2
    if power(MOST_SEEDS) < POWER:
        return math.inf
    high = 4.0
    while power(high) < POWER:
        high *= 2
    root = brentq(lambda n: power(n) - POWER, high / 2, high)
    return math.ceil(root - 1e-6)  # the root to brentq's precision: n = 5.0000000001 is 5 seeds
