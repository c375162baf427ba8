"""How `ablate tune` searches: the [tune] table of a grid TOML, checked, with the command line's overrides.

    [tune]
    budget = 20                 # trials per objective, the same for every one
    metric = "cosine_map_at_r"  # a metric of the registry with a direction, measured on the validation split
    seeds = 10                  # fresh seeds each objective's selected setting is scored on (the test set)
    trial_seed = 0              # every trial's seed, and the split seed of every cell of the tune
    sampler_seed = 0            # TPE's seed
    startup_trials = 5          # TPE's random trials before it models (default: half the budget, at most 10)
    prune_percentile = 50       # a trial is pruned when its best value so far lies below this percentile of the
    prune_after_trials = 3      #   finished trials' at the same epoch, once this many trials finished,
    prune_after_epochs = 2      #   from this epoch on
    [tune.space]
    lr = [0.001, 0.1]           # a searched option narrowed to a range within its declared one
    margin = false              # not searched: the grid's value (or its recipe's) is kept

Every error names the grid, the key and what it expects.
"""

import math
from dataclasses import dataclass, field, replace

from ablate.limits import INT64_MAX
from ablate.metrics import METRICS

# The default metric: the first of these the registry has (retrieval on L2-normalized features, Musgrave et al.'s
# geometry, where it is registered; else MAP@R on the raw features).
DEFAULT_METRICS = ("cosine_map_at_r", "map_at_r")
DEFAULT_BUDGET = 20
DEFAULT_SEEDS = 10
MAX_TPE_STARTUP = 10  # Optuna's own default number of random trials


def default_metric() -> str:
    return next(name for name in DEFAULT_METRICS if name in METRICS)


@dataclass(frozen=True)
class TuneSettings:
    """The [tune] table, checked; see the module docstring for each key. space: key -> (low, high) to narrow the
    key's search range to, or False to leave it out of the search."""

    budget: int = DEFAULT_BUDGET
    metric: str = field(default_factory=default_metric)
    seeds: int = DEFAULT_SEEDS
    trial_seed: int = 0
    sampler_seed: int = 0
    startup_trials: int | None = None
    prune_percentile: float = 50.0
    prune_after_trials: int = 3
    prune_after_epochs: int = 2
    space: dict = field(default_factory=dict)

    @property
    def tpe_startup_trials(self) -> int:
        """TPE's random trials before it models: startup_trials, else half the budget (at least 1, at most 10)."""
        if self.startup_trials is not None:
            return self.startup_trials
        return max(1, min(MAX_TPE_STARTUP, self.budget // 2))

    @property
    def final_seeds(self) -> list:
        """The seeds of the selected settings' final cells: the `seeds` integers after trial_seed, none of them a
        trial's seed."""
        return list(range(self.trial_seed + 1, self.trial_seed + 1 + self.seeds))

    @property
    def maximize(self) -> bool:
        return bool(METRICS.get(self.metric).higher_is_better)

    def with_overrides(self, where: str, **values) -> "TuneSettings":
        """These settings with the command line's values (None: not given) checked and set."""
        given = {key: value for key, value in values.items() if value is not None}
        return _checked(replace(self, **given), where)


INTEGERS = {"budget": 1, "seeds": 1, "trial_seed": 0, "sampler_seed": 0, "startup_trials": 0,
            "prune_after_trials": 0, "prune_after_epochs": 1}  # key -> its least value


def settings_from_table(table: dict, source: str) -> TuneSettings:
    """The [tune] table of the grid `source`, checked (ValueError naming the grid and the key)."""
    where = f"grid {source}: [tune]"
    known = [f.name for f in TuneSettings.__dataclass_fields__.values()]
    unknown = [key for key in table if key not in known]
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; expected keys among "
                         f"{', '.join(known)}")
    values = dict(table)
    if "space" in values:
        values["space"] = _space(values["space"], where)
    return _checked(TuneSettings(**values), where)


def _checked(settings: TuneSettings, where: str) -> TuneSettings:
    for key, low in INTEGERS.items():
        value = getattr(settings, key)
        if value is None and key == "startup_trials":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= INT64_MAX:
            raise ValueError(f"{where} {key} must be an integer >= {low}, got {value!r}")
    metric = settings.metric
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"{where} metric must be a metric of the registry, got {metric!r}; expected one of "
                         f"{', '.join(m.name for m in METRICS if m.ranked and m.compute is not None)}")
    entry = METRICS.get(metric)
    if entry.higher_is_better is None or entry.compute is None:
        raise ValueError(f"{where} metric {metric!r} has no direction or is not computed from features (a raw "
                         "distance, a time): a tune needs a metric to maximize or minimize")
    percentile = settings.prune_percentile
    if (isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not math.isfinite(percentile)
            or not 0 < percentile < 100):
        raise ValueError(f"{where} prune_percentile must be a number in (0, 100), got {percentile!r}")
    return settings


def _space(table: object, where: str) -> dict:
    """[tune.space]: key -> [low, high] or false."""
    if not isinstance(table, dict):
        raise ValueError(f"{where} space must be a table of option = [low, high] or false, got {table!r}")
    space = {}
    for key, value in table.items():
        if value is False:
            space[key] = False
        elif (isinstance(value, list) and len(value) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
              and value[0] < value[1]):
            space[key] = (float(value[0]), float(value[1]))
        else:
            raise ValueError(f"{where} space.{key} must be [low, high] (numbers, low < high) to narrow its range, "
                             f"or false to leave it out of the search, got {value!r}")
    return space
