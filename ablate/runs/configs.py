"""Configurations of a grid: which config keys vary, and how a setting is written and matched."""

import pandas as pd


def format_label(value: object) -> str:
    """A value as a label: floats as the shortest form (0.003, not 0.003000)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def varying(df: pd.DataFrame, keys: list | tuple) -> list:
    """The keys (columns of df) that take more than one value, in the order given."""
    return [k for k in keys if k in df.columns and df[k].nunique(dropna=False) > 1]


def describe(values: dict) -> str:
    """'alpha=0.5, rule=paper' (empty when there is nothing to say); unset (None or NaN) values left out."""
    return ", ".join(f"{k}={format_label(v)}" for k, v in values.items() if not pd.isna(v))


def group_key(value: object) -> tuple:
    """A groupby key as a tuple, an unset (NaN) value as None, so that equal settings compare equal."""
    values = value if isinstance(value, tuple) else (value,)
    return tuple(None if pd.isna(v) else v for v in values)


def setting_key(setting: dict) -> tuple:
    """A setting ({key: value}) as a sorted tuple of (key, value) pairs, to match settings by."""
    return tuple(sorted(setting.items()))


def seeds_draw_splits(results: pd.DataFrame) -> bool:
    """Whether each seed of `results` drew its own train/validation/test split (split_seed following seed, as in a
    grid, or a run from before split_seed), so that the spread over seeds holds the test set's sampling noise; a
    tune's final seeds share one split."""
    return "split_seed" not in results or bool((results["split_seed"] == results["seed"]).all())
