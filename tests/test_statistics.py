"""The null experiment: is the findings' test calibrated on real cells, and what power does it have?

Many seeds of one cheap configuration (digits, each seed with its own split) are trained once; random disjoint
3-vs-3 draws of them are A/A comparisons (no true difference), compared as the findings compare two runs with
other seeds (ablate.analysis.stats.compare_sides, Welch). The share of A/A comparisons called a difference must be near
the nominal 5%; shifting one side by k standard deviations of the per-seed values gives the power at k SD.
"""

import numpy as np
import pytest
import torch

from ablate.analysis.stats import DIFFERENT, compare_sides, on_change_scale
from ablate.metrics import METRICS, primary_metrics
from ablate.train import CellConfig, run_cell

SEEDS = 60
PER_SIDE = 3
COMPARISONS = 2000  # random disjoint draws; they share seeds, so the rate's spread is wider than binomial
CELL = dict(dataset="digits", lambda_=0.1, epochs=5, device="cpu")


@pytest.fixture(scope="module")
def per_seed_values() -> dict:
    """{metric name: (SEEDS,) values} of the primary metrics, one trained cell per seed (computed once), each in one
    thread (small cells run several times faster so on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        records = [run_cell(CellConfig(seed=seed, **CELL)) for seed in range(SEEDS)]
    finally:
        torch.set_num_threads(threads)
    assert all(r["status"] == "ok" for r in records)
    return {m.name: np.array([r[m.name] for r in records]) for m in primary_metrics()}


def _draws(rng) -> np.ndarray:
    """(COMPARISONS, 2 * PER_SIDE) seed indices: the first PER_SIDE one side, the rest the other, disjoint."""
    return np.array([rng.choice(SEEDS, size=2 * PER_SIDE, replace=False) for _ in range(COMPARISONS)])


def rejection_rate(values: np.ndarray, metric, shift_sd: float, draws: np.ndarray) -> float:
    """The share of draws whose comparison says 'better' or 'worse', side b moved by shift_sd standard deviations
    of the per-seed values on the metric's change scale (a factor for a ratio)."""
    scaled = on_change_scale(metric, values)
    shift = shift_sd * scaled.std(ddof=1)
    if metric.change == "ratio":
        moved = lambda v: v * np.exp(shift)  # noqa: E731
    elif metric.change == "points":
        moved = lambda v: v + shift / 100  # noqa: E731
    else:
        moved = lambda v: v + shift  # noqa: E731
    verdicts = [compare_sides(metric, values[d[:PER_SIDE]], moved(values[d[PER_SIDE:]]), paired=False).verdict
                for d in draws]
    return float(np.mean([v in DIFFERENT for v in verdicts]))


@pytest.mark.slow  # trains 60 digits cells of 5 epochs (a second or two each)
def test_a_a_comparisons_reject_at_about_the_nominal_rate_and_power_grows_with_the_effect(per_seed_values):
    draws = _draws(np.random.default_rng(0))
    table = {}
    for name, values in per_seed_values.items():
        metric = METRICS.get(name)
        assert np.unique(values).size > SEEDS // 2, name  # seeds (and splits) really vary the cell
        table[name] = [rejection_rate(values, metric, k, draws) for k in (0, 1, 2, 3)]
    print("\nrejections of 3-vs-3 comparisons (Welch, 5% level), by true shift in SDs of one seed:")
    print(f"{'metric':<20}" + "".join(f"{k} SD".rjust(8) for k in range(4)))
    for name, rates in table.items():
        print(f"{name:<20}" + "".join(f"{r:8.3f}" for r in rates))
    for name, (null, one, two, three) in table.items():
        # Welch with 3 seeds a side is slightly conservative (about 3% on normal values, 2.5-4.6% here over draws
        # seeded 0-2); 2000 draws of 60 seeds: 0.5 points binomially, more for the seeds they share
        assert 0.02 <= null <= 0.08, (name, null)
        assert null < one < two < three, (name, table[name])
        assert three > 0.5, (name, three)  # about 0.7 for normal values
