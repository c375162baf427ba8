"""The reference slice a figure fixes (one value per key it does not show), and series labels.

Which keys vary and how a setting is written: ablate.runs.configs.
"""

import pandas as pd

from ablate.loss.registry import DEFAULT_VARIANT
from ablate.objectives import DEFAULT_HEAD
from ablate.runs.configs import describe, format_label

# The paper's settings, preferred when a figure must hold a key at one value (alpha=0.5 as in its lambda figure),
# the default variant and softmax's head; an unset value (an option a cell leaves to its recipe, no pair loss) is
# preferred too.
PREFERRED = {"alpha": 0.5, "rule": "paper", "variant": DEFAULT_VARIANT, "convention": "mean", "head": DEFAULT_HEAD}


def reference_values(df: pd.DataFrame, keys, free_keys=(), preferred: dict | None = None) -> dict:
    """One value per key of `keys`, together a configuration that df's rows hold (None for a key it leaves unset):
    the one whose rows span the most combinations of `free_keys` (the lambdas of a figure over lambda), then the
    one with the most preferred values (PREFERRED, updated with `preferred`; unset counts as preferred), then the
    smallest values. Choosing each key's value apart could name a mix that no cell holds."""
    keys = list(keys)
    if not keys or df.empty:
        return dict.fromkeys(keys)
    wanted = {**PREFERRED, **(preferred or {})}
    free = [k for k in free_keys if k in df]

    def score(group: tuple) -> tuple:
        values, rows = group
        values = values if isinstance(values, tuple) else (values,)
        span = len(rows[free].drop_duplicates()) if free else len(rows)
        liked = sum(pd.isna(v) or (k in wanted and v == wanted[k]) for k, v in zip(keys, values))
        return span, liked

    values, _ = max(df.groupby(keys, dropna=False, sort=True), key=score)  # the first of equals: the smallest values
    values = values if isinstance(values, tuple) else (values,)
    return {k: None if pd.isna(v) else v for k, v in zip(keys, values)}


def select(df: pd.DataFrame, values: dict) -> pd.DataFrame:
    """The rows of df where every key equals its value (None: where it is unset)."""
    mask = pd.Series(True, index=df.index)
    for key, value in values.items():
        mask &= df[key].isna() if value is None else df[key] == value
    return df[mask]


def series_labels(df: pd.DataFrame, keys) -> pd.Series:
    """A label per row naming its values of `keys`: the bare value for one key, 'k=v, ...' for several."""
    if not keys:
        return pd.Series("all", index=df.index)
    if len(keys) == 1:
        return df[keys[0]].map(format_label)
    return df[keys].apply(lambda row: describe(row.to_dict()), axis=1)
