"""The null experiment: does the findings' test hold its level on real cells, and what power does it have?

Many seeds of one cheap configuration (digits, each seed with its own split) are trained once, through the grid. Split
at random into disjoint groups, each group is one A/A comparison (no true difference) of n_a seeds against n_b, made
as the findings compare two runs with other seeds (ablate.analysis.stats.compare_sides, unpaired: Welch's t for sides
within BALANCE of each other, the permutation test of Welch's t beyond). Only disjoint seed sets are independent
tests, so a design of n_a + n_b seeds holds SEEDS // (n_a + n_b) of them, and its rejection rate gets an exact
(Clopper-Pearson) interval on that count. Each rate's interval must reach into [2%, 8%] around the nominal 5%, or lie
below it only where the test is documented as conservative (Welch's t at small equal sides). Shifting one side by k
standard deviations of the per-seed values gives the power at k SD.

    ABLATE_NULL_SEEDS=N   seeds to train (default SEEDS; more seeds, more independent tests, narrower intervals)
    ABLATE_NULL_RUN=DIR   keep the cells in DIR (resumed when rerun), else in a temp folder
    ABLATE_NULL_WORKERS=W local worker processes training them (default: 2, or the cores if fewer)
"""

import os
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from ablate.analysis.stats import BALANCE, PERMUTATION, SIGNIFICANCE, WELCH_T, compare_sides, on_change_scale
from ablate.metrics import POINTS, RATIO, primary_metrics
from ablate.runs.loading import load_run

SEEDS = int(os.environ.get("ABLATE_NULL_SEEDS", 1980))  # 1980 = 6 x 330: 330 tests of 3 vs 3, 36 of 5 vs 50
CELL = {"dataset": "digits", "lambda": 0.1, "epochs": 5, "device": "cpu"}
# (n_a, n_b): balanced, at the edge of Welch's range (BALANCE), and unbalanced (the permutation test).
DESIGNS = ((3, 3), (5, 5), (3, 6), (3, 30), (5, 50))
# Welch's t with 3 or 5 seeds a side estimates its degrees of freedom from two small variances: conservative
# (ablate.analysis.stats: 3.4-4.5% on normal values, 2.3-2.5% on skewed ones); its rate may lie below 2%.
CONSERVATIVE = ((3, 3), (5, 5))
SHIFTS = (0, 1, 2)  # true shifts of side b, in standard deviations of one seed's value on the change scale
LEVEL = 0.95  # of the Clopper-Pearson intervals


@pytest.fixture(scope="module")
def per_seed_values(tmp_path_factory) -> dict:
    """{metric name: (SEEDS,) values} of the primary metrics, one trained cell per seed, through `ablate grid`'s
    runner (resumable when ABLATE_NULL_RUN names a folder)."""
    from ablate.grid.executors import make_executor
    from ablate.grid.runner import run_grid
    from ablate.grid.spec import GridSpec

    run_dir = os.environ.get("ABLATE_NULL_RUN") or tmp_path_factory.mktemp("null") / "run"
    workers = int(os.environ.get("ABLATE_NULL_WORKERS", min(2, os.cpu_count() or 1)))
    spec = GridSpec(axes={**{k: [v] for k, v in CELL.items()}, "seed": list(range(SEEDS))}, source="null experiment")
    outcome = run_grid(spec, run_dir, make_executor("local", workers, None), quiet=True)
    assert not outcome.interrupted and set(outcome.status_counts()) == {"ok"}, outcome.status_counts()
    results = load_run(run_dir).results.sort_values("seed")
    assert list(results["seed"]) == list(range(SEEDS))
    return {m.name: results[m.name].to_numpy(float) for m in primary_metrics()}


def _moved(metric, values: np.ndarray, shift: float) -> np.ndarray:
    """`values` moved by `shift` on the metric's change scale."""
    if metric.change == RATIO:
        return values * np.exp(shift)
    return values + shift / 100 if metric.change == POINTS else values + shift


def _design_rates(values: dict, n_a: int, n_b: int, shift_sd: float) -> dict:
    """{metric name or 'any (family of 3)': (rejections, tests)} over the disjoint groups of one random partition
    of the seeds, side b moved by shift_sd standard deviations."""
    metrics = primary_metrics()
    order = np.random.default_rng(n_a * 1000 + n_b).permutation(SEEDS)
    groups = order[: SEEDS // (n_a + n_b) * (n_a + n_b)].reshape(-1, n_a + n_b)
    counts = {m.name: 0 for m in metrics} | {"any": 0}
    for group in groups:
        rejected_in_family = False
        for m in metrics:
            v = values[m.name]
            shift = shift_sd * on_change_scale(m, v).std(ddof=1)
            difference = compare_sides(m, v[group[:n_a]], _moved(m, v[group[n_a:]], shift), paired=False)
            counts[m.name] += difference.differs
            rejected_in_family |= replace(difference, family_size=len(metrics)).differs
        counts["any"] += rejected_in_family
    return {name: (k, len(groups)) for name, k in counts.items()}


def _interval(k: int, n: int) -> tuple:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=LEVEL, method="exact")
    return ci.low, ci.high


@pytest.mark.slow  # trains SEEDS digits cells of 5 epochs (about a second each on one core), then ~2 min of tests
def test_independent_a_a_comparisons_reject_at_about_the_nominal_rate(per_seed_values):
    for m in primary_metrics():
        assert np.unique(per_seed_values[m.name]).size >= 10, m.name  # seeds (and splits) really vary the cell
    table = {design: {shift: _design_rates(per_seed_values, *design, shift) for shift in SHIFTS} for design in DESIGNS}
    names = [m.name for m in primary_metrics()] + ["any"]
    print(f"\nnull experiment on {SEEDS} digits seeds ({CELL}); rejections at nominal {SIGNIFICANCE:.0%} per metric, "
          f"'any': any of the {len(names) - 1} primary metrics with Bonferroni over them (family-wise); "
          f"Clopper-Pearson {LEVEL:.0%} intervals; power: rejection rate at a true shift of 1 and 2 SD of one seed")
    print(f"{'design':<9}{'test':<32}{'tests':>6}  {'metric':<17}{'rejected':>9}{'rate':>7}  {'interval':<16}"
          f"{'1 SD':>6}{'2 SD':>6}")
    for (n_a, n_b), by_shift in table.items():
        test = WELCH_T if max(n_a, n_b) <= BALANCE * min(n_a, n_b) else PERMUTATION
        for name in names:
            k, n = by_shift[0][name]
            low, high = _interval(k, n)
            power = "".join(f"{by_shift[s][name][0] / n:6.2f}" for s in SHIFTS[1:])
            print(f"{f'{n_a} vs {n_b}':<9}{test:<32}{n:>6}  {name:<17}{k:>9}{k / n:7.3f}  "
                  f"[{low:.3f}, {high:.3f}]  {power}")
    for design, by_shift in table.items():
        for name in names:
            k, n = by_shift[0][name]
            low, high = _interval(k, n)
            assert low <= 0.08, (design, name, k, n)  # never anti-conservative beyond 8%
            assert high >= 0.02 or design in CONSERVATIVE, (design, name, k, n)  # below 2% only where documented
            # power grows with the shift
            assert by_shift[2][name][0] > k, (design, name, by_shift)
