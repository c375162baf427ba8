"""Whether a cell trained: every finished cell is trained, diverged, or did not learn; failures counted as outcomes.

    outcomes(cells)              per cell: TRAINED, DIVERGED, DID_NOT_LEARN or FAILED (the run's own error)
    trained_seeds(cells)         the seeds whose cell trained: the only ones a comparison of metrics uses
    Rate(k, n)                   a share of cells with its exact (Clopper-Pearson) interval
    rates_differ_p(k, n, k2, n2) two shares compared by Boschloo's exact test

Did not learn: a cell that finished without diverging but whose test accuracy is not above chance (1 / the classes
it trained on) by more than DID_NOT_LEARN_KAPPA of the way from chance to perfect, i.e. whose accuracy corrected for
chance, kappa = (accuracy - 1/C) / (1 - 1/C) (Cohen's kappa against a uniform guess, Bennett's S), is at most 0.2:
at most "slight" agreement beyond chance on Landis and Koch's scale (1977). It is the same demand at any class count
(28% at 10 classes, 60% at 2), and it falls in the wide gap this suite's cells leave: a collapsed head stays at or
below chance (SphereFace without its annealing: 7.8% at 10 classes; ArcFace and CosFace on 2-D features: 18-28%,
some seeds below chance), while every recipe that trains reaches 85% or more on digits and Fashion-MNIST. Such a
cell is an outcome of its objective (counted, with its rate), never a result: its metrics describe a model that did
not learn, and averaging them in would mix two kinds of run.

A cell that failed (an exception: a bug, memory) is the run's error, not an outcome of what it trained: it is
counted apart and is in no rate's denominator.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ablate.data import DATASETS

DID_NOT_LEARN_KAPPA = 0.2
TRAINED, DIVERGED, DID_NOT_LEARN, FAILED = "trained", "diverged", "did not learn", "failed"
RATE_LEVEL = 0.95  # the confidence of a rate's exact interval
ACCURACY = "test_accuracy"  # the record key did-not-learn is judged on (the head's own predictions)


def chance_accuracy(cells: pd.DataFrame) -> pd.Series:
    """Per cell: 1 / the classes it trained on (its dataset's classes, or num_classes for a dataset that takes it,
    less its held-out classes); NaN where the record does not say (no dataset column, a dataset not registered
    here)."""
    def chance(row: dict) -> float:
        name = row.get("dataset")
        if not isinstance(name, str) or name not in DATASETS:
            return math.nan
        classes = DATASETS.get(name).class_count(_count(row.get("num_classes"), 10))
        classes -= _count(row.get("holdout_classes"), 0)
        return 1.0 / classes if classes > 0 else math.nan

    return pd.Series([chance(row) for row in cells.to_dict("records")], index=cells.index, dtype=float)


def _count(value: object, default: int) -> int:
    """A record's count (num_classes, holdout_classes) as an int; `default` where it is unset or not a number."""
    if isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(float(value)):
        return int(value)
    return default


def learning_threshold(chance: pd.Series | float) -> pd.Series | float:
    """The test accuracy a cell must exceed to have learned: chance + DID_NOT_LEARN_KAPPA * (1 - chance)."""
    return chance + DID_NOT_LEARN_KAPPA * (1 - chance)


def outcomes(cells: pd.DataFrame) -> pd.Series:
    """Per cell (rows of a results table: status, and test_accuracy with what sets chance): TRAINED, DIVERGED,
    DID_NOT_LEARN or FAILED. A finished cell whose chance level or accuracy is unknown counts as trained."""
    status = cells["status"]
    accuracy = pd.to_numeric(cells[ACCURACY], errors="coerce") if ACCURACY in cells else pd.Series(np.nan,
                                                                                                   cells.index)
    below = (accuracy <= learning_threshold(chance_accuracy(cells))).fillna(False).astype(bool)
    result = pd.Series(TRAINED, index=cells.index, dtype=object)
    result[status == "diverged"] = DIVERGED
    result[(status == "ok") & below] = DID_NOT_LEARN
    result[~status.isin(("ok", "diverged"))] = FAILED
    return result


def trained_seeds(cells: pd.DataFrame) -> set:
    """The seeds of the cells that trained (finished ok and learned)."""
    return set(cells.loc[outcomes(cells) == TRAINED, "seed"])


@dataclass(frozen=True)
class Rate:
    """k of n finished cells, with the exact (Clopper-Pearson) interval at RATE_LEVEL."""

    k: int
    n: int

    @property
    def interval(self) -> tuple:
        """(low, high) share; (NaN, NaN) without cells."""
        if self.n == 0:
            return math.nan, math.nan
        ci = stats.binomtest(self.k, self.n).proportion_ci(confidence_level=RATE_LEVEL, method="exact")
        return float(ci.low), float(ci.high)

    def text(self) -> str:
        """'2/10 (20%, 95% CI 2.5-56%)'; '—' without cells."""
        if self.n == 0:
            return "—"
        low, high = self.interval
        return f"{self.k}/{self.n} ({self.k / self.n:.0%}, {RATE_LEVEL:.0%} CI {_percent(low)}-{_percent(high)})"


def _percent(share: float) -> str:
    """0.025 -> '2.5%', 0.5562 -> '56%', 0 -> '0%'."""
    return f"{100 * share:.2g}%"


def rates_differ_p(first: Rate, second: Rate) -> float:
    """The two-sided p-value of Boschloo's exact test that two shares of cells are the same (uniformly more powerful
    than Fisher's exact test on a 2 x 2 table with fixed row totals); NaN when a side has no cells."""
    if first.n == 0 or second.n == 0:
        return math.nan
    table = [[first.k, first.n - first.k], [second.k, second.n - second.k]]
    return float(stats.boschloo_exact(table, alternative="two-sided").pvalue)
