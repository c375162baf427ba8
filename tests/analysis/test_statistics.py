"""The comparison over seeds (ablate.analysis.stats) in the cases that are not usual: no spread, identical sides,
unequal sides, power below the effect of interest, equivalence; each reproduced on constructed values. (The null
experiment on real cells is tests/analysis/test_null_experiment.py, in the slow lane.)"""

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import TTestIndPower, TTestPower
from statsmodels.stats.weightstats import ttost_paired

from ablate.analysis.findings import Row, adjusted_findings
from ablate.analysis.stats import (
    DEGENERATE,
    DIFFERENT,
    PAIRED_T,
    PERMUTATION,
    WELCH_T,
    compare_sides,
    effects_of_interest,
    seeds_needed,
)
from ablate.metrics import METRICS

ACCURACY, RATIO, MAP = (METRICS.get(name) for name in ("test_accuracy", "separation_ratio", "map_at_r"))


# --- no spread, identical sides ---------------------------------------------------------------------------

def test_a_constant_paired_difference_is_untestable_not_better_with_p_0():
    """Before: '+1.0 pts [1.0, 1.0], better, p = 0, MDE 0'. A constant difference has no noise to test against."""
    a = np.array([0.90, 0.91, 0.92])
    d = compare_sides(ACCURACY, a, a + 0.01, paired=True)
    assert d.verdict == DEGENERATE == "untestable: no spread over seeds"
    assert d.estimate == pytest.approx(1.0) and not d.testable
    assert math.isnan(d.p) and d.p_text() == "" and d.change_text() == "+1.0 pts"  # no interval
    assert math.isnan(d.minimum_detectable) and d.minimum_detectable_text() == ""
    assert "better" not in d.sentence() and d.sentence() == "test accuracy +1.0 pts, untestable: no spread over seeds"


def test_a_ratio_constant_up_to_rounding_is_untestable_and_a_real_spread_is_tested():
    """Before: a ratio doubled up to float32 rounding gave p = 7.7e-32."""
    a = np.array([2.0, 2.2, 1.9, 2.05])
    rounding = 1 + np.array([1, -2, 3, -1]) * np.finfo(np.float32).eps  # a float32 rounding of each value
    d = compare_sides(RATIO, a, 2 * a * rounding, paired=True)
    assert d.verdict == DEGENERATE and d.change_text() == "x2" and math.isnan(d.p)
    noisy = compare_sides(RATIO, a, 2 * a * (1 + np.array([1, -2, 3, -1]) * 1e-3), paired=True)
    assert noisy.testable and noisy.test == PAIRED_T and noisy.verdict == "better" and noisy.p < 1e-4


def test_unpaired_sides_without_spread_are_untestable_and_equal_ones_identical():
    d = compare_sides(ACCURACY, [0.9, 0.9, 0.9], [0.91, 0.91, 0.91, 0.91], paired=False)
    assert d.verdict == DEGENERATE and math.isnan(d.p)
    same = compare_sides(ACCURACY, [0.9, 0.9, 0.9], [0.9, 0.9], paired=False)
    assert same.verdict == "identical" and not same.testable
    one_side_spread = compare_sides(ACCURACY, [0.9, 0.9, 0.9], [0.91, 0.92, 0.90], paired=False)
    assert one_side_spread.testable and one_side_spread.test == WELCH_T


def test_identical_and_untestable_comparisons_are_no_members_of_the_family():
    """Before: 'identical, p = 1' comparisons (alpha at lambda = 0 changes nothing) enlarged the Bonferroni family."""
    a = np.array([0.90, 0.91, 0.92])
    tested = Row({"lambda": 0.1}, "lambda=0", "3 paired",
                 differences={"test_accuracy": compare_sides(ACCURACY, a, a + [0.05, 0.06, 0.04], paired=True)})
    same = [Row({"alpha": alpha}, "lambda=0", "3 paired",
                differences={"test_accuracy": compare_sides(ACCURACY, a, a.copy(), paired=True)})
            for alpha in (0.1, 0.5, 0.9)]
    constant = Row({"lambda": 1.0}, "lambda=0", "3 paired",
                   differences={"test_accuracy": compare_sides(ACCURACY, a, a + 0.01, paired=True)})
    findings = adjusted_findings([tested, *same, constant], unmatched=0)
    assert findings.family_sizes()["primary"] == 1
    difference = findings.rows[0].differences["test_accuracy"]
    assert difference.family_size == 1 and difference.p == pytest.approx(stats.ttest_rel(a + [.05, .06, .04], a)
                                                                           .pvalue, rel=1e-6)
    assert [r.verdicts["test_accuracy"] for r in findings.rows[1:]] == ["identical"] * 3 + [DEGENERATE]


# --- unequal sides ----------------------------------------------------------------------------------------

def _skewed(rng, n: int) -> np.ndarray:
    """Accuracies (shares) with a long tail of bad seeds, as this suite's per-seed values have: 0.9 - Exp(2 pts)."""
    return 0.9 - rng.exponential(0.02, n)


@pytest.mark.slow  # 10 s of simulated comparisons; the null experiment in the slow lane measures the level too
def test_unequal_sides_take_the_permutation_test_which_holds_its_level_where_welch_does_not():
    """Before: Welch's t for 3 seeds against 117 rejected 7% of real A/A comparisons at nominal 5%. On skewed values
    the gap is wider: Welch rejects about 14% of 3-vs-30 A/A comparisons, the permutation test of Welch's t 5%."""
    rng = np.random.default_rng(0)
    draws = [(_skewed(rng, 3), _skewed(rng, 30)) for _ in range(200)]
    differences = [compare_sides(ACCURACY, a, b, paired=False) for a, b in draws]
    assert {d.test for d in differences} == {PERMUTATION}
    permutation = sum(d.differs for d in differences)
    welch = sum(stats.ttest_ind(b, a, equal_var=False).pvalue <= 0.05 for a, b in draws)
    welch_low = stats.binomtest(welch, len(draws)).proportion_ci(method="exact").low
    low, high = stats.binomtest(permutation, len(draws)).proportion_ci(method="exact")
    assert welch_low > 0.05, welch  # Welch's t here is anti-conservative beyond doubt
    assert low <= 0.05 <= high, permutation  # the permutation test is consistent with its level


def test_welch_holds_its_level_on_skewed_values_up_to_the_balance_of_sizes():
    rng = np.random.default_rng(1)
    for n_a, n_b in ((3, 3), (3, 6), (5, 10)):
        differences = [compare_sides(ACCURACY, _skewed(rng, n_a), _skewed(rng, n_b), paired=False)
                       for _ in range(2000)]
        assert {d.test for d in differences} == {WELCH_T}
        rejected = sum(d.differs for d in differences)
        # at most nominal: the exact interval of 2000 draws reaches 5% (2.3% at 3 vs 3: conservative, as documented)
        assert stats.binomtest(rejected, 2000).proportion_ci(method="exact").low <= 0.05, (n_a, n_b, rejected)


def test_the_permutation_interval_is_the_shifts_its_test_accepts_so_it_agrees_with_the_verdict():
    rng = np.random.default_rng(2)
    a = _skewed(rng, 3)
    for shift in (0.0, 0.01, 0.03):
        d = compare_sides(ACCURACY, a, _skewed(rng, 20) + shift, paired=False, family_size=2)
        low, high = d.interval
        assert low < d.estimate < high
        assert (d.verdict in DIFFERENT) == (low > 0 or high < 0) == (d.p <= 0.05), (shift, d.interval, d.p)
        for bound, outward in ((low, -1), (high, +1)):  # the test accepts just inside a bound, rejects just outside
            width = 0.01 * (high - low)
            assert d._permutation_p(bound - outward * width) > d.alpha >= d._permutation_p(bound + outward * width)


def test_too_few_seeds_for_the_permutation_test_to_reach_its_level_say_so_instead_of_an_infinite_mde():
    d = compare_sides(ACCURACY, [0.90, 0.91], [0.95, 0.96, 0.94, 0.95, 0.96], paired=False)
    assert d.test == PERMUTATION and math.comb(7, 2) == 21  # 21 splits: no two-sided p below 2/21 = 0.095
    assert d.p > 0.05 and d.interval == (-math.inf, math.inf)
    assert d.minimum_detectable == math.inf and d.mde_exceeds_range and d.interval_leaves_range
    assert d.verdict == "too few seeds (2 vs 5)" and d.change_text() == "+4.7 pts [too few seeds (2 vs 5)]"
    assert d.minimum_detectable_text() == "too few seeds (2 vs 5)"


# --- power said plainly -------------------------------------------------------------------------------------

def test_a_minimum_detectable_effect_above_the_effect_of_interest_is_underpowered():
    """Before: 5 seeds with accuracy scattering by 2.7 points (center loss's real effect: +2.2) read 'no detectable
    difference', a null result they cannot support."""
    rng = np.random.default_rng(3)
    a = rng.normal(0.90, 0.027 / math.sqrt(2), 5)
    b = a + rng.normal(0.0, 0.027, 5)
    d = compare_sides(ACCURACY, a, b, paired=True)
    assert d.verdict not in DIFFERENT and d.effect == 1.0  # 1 point by default
    assert d.minimum_detectable > 1.0 and d.verdict == f"underpowered (MDE {d.minimum_detectable:.2g} pts)"


def _exact(mean: float, sd: float, n: int) -> np.ndarray:
    """n values with exactly this mean and sample standard deviation."""
    z = np.random.default_rng(n).standard_normal(n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


def test_a_precise_null_result_is_equivalent_and_an_imprecise_one_no_detectable_difference_with_its_mde():
    a = np.random.default_rng(4).normal(0.90, 0.003, 10)
    precise = compare_sides(ACCURACY, a, a + _exact(0.0, 0.002, 10), paired=True)  # se 0.06 points
    assert precise.verdict == "equivalent (within ±1 pts)" and precise.interval[1] < 1.0
    # +0.5 points, se 0.3: the interval [-0.2, +1.2] holds no change and 1 point; the MDE is below 1 point
    imprecise = compare_sides(ACCURACY, a, a + _exact(0.005, 0.0095, 10), paired=True)
    low, high = imprecise.interval
    mde = TTestPower().solve_power(nobs=10, alpha=0.05, power=0.8) * 0.95
    assert imprecise.minimum_detectable == pytest.approx(mde, rel=1e-3) and low < 0 < 1.0 < high and mde < 1.0
    assert imprecise.verdict == "no detectable difference"
    assert imprecise.minimum_detectable_text() == f"MDE {mde:.2g} pts"


@pytest.mark.parametrize("shift", [0.0, 0.002, 0.005, 0.008])
def test_equivalence_is_statsmodels_tost_at_the_level_of_each_side_of_the_simultaneous_interval(shift):
    rng = np.random.default_rng(5)
    a = rng.normal(0.90, 0.004, 12)
    b = a + shift + rng.normal(0.0, 0.004, 12)
    family = 3
    d = compare_sides(ACCURACY, a, b, paired=True, family_size=family)
    tost_p, _, _ = ttost_paired(100 * b, 100 * a, -1.0, 1.0)
    # the simultaneous interval at 1 - alpha/m lies within +-1 point iff both one-sided tests reject at alpha/(2m)
    assert d.equivalent == (tost_p <= 0.05 / family / 2), (d.interval, tost_p)
    # the verdict says so unless the interval also excludes no change (then the difference, within the margin, is
    # the finding)
    assert d.verdict.startswith("equivalent") == (d.equivalent and d.verdict not in DIFFERENT)


def test_seeds_needed_use_the_design_that_ran():
    """Before: a 5-vs-120 comparison's seeds-needed figure used the paired formula."""
    sd, effect = 2.7, 1.0
    paired = seeds_needed(sd, effect)
    unpaired = seeds_needed(sd, effect, paired=False)
    against_120 = seeds_needed(sd, effect, paired=False, other=120)
    assert TTestPower().power(effect / sd, paired, 0.05) >= 0.8 > TTestPower().power(effect / sd, paired - 1, 0.05)
    assert TTestIndPower().power(effect / sd, unpaired, 0.05) >= 0.8 > TTestIndPower().power(effect / sd,
                                                                                             unpaired - 1, 0.05)
    power = lambda n: TTestIndPower().power(effect / sd, n, 0.05, ratio=120 / n)  # noqa: E731
    assert power(against_120) >= 0.8 > power(against_120 - 1)
    assert paired < unpaired  # pairing removes the split's variance
    assert seeds_needed(sd, effect, paired=False, other=20) == math.inf  # out of reach against 20 seeds


# --- the effect of interest ---------------------------------------------------------------------------------

def test_the_effect_of_interest_defaults_to_1_point_and_a_grid_may_declare_it():
    default = effects_of_interest()
    assert default["test_accuracy"] == default["map_at_r"] == 1.0 and "separation_ratio" not in default
    assert effects_of_interest(2)["map_at_r"] == 2.0
    declared = effects_of_interest({"map_at_r": 0.5, "separation_ratio": 1.1})
    assert declared["map_at_r"] == 0.5 and declared["separation_ratio"] == pytest.approx(math.log(1.1))
    assert declared["test_accuracy"] == 1.0
    for bad, said in ((0, "got 0"), ("1", "got '1'"), ({"map_at_r": -1}, "got -1"), ({"separation_ratio": 0.9},
                                                                                      "got 0.9"),
                      ({"nope": 1}, "'nope' is not a headline metric")):
        with pytest.raises(ValueError, match="effect_of_interest must be a positive number") as info:
            effects_of_interest(bad, "grid g.toml")
        assert said in str(info.value) and str(info.value).startswith("grid g.toml: ")
