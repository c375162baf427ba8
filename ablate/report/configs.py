"""The reference slice a figure fixes (one value per key it does not show), and series labels.

Which keys vary and how a setting is written: ablate.runs.configs.
"""

import pandas as pd

from ablate.loss.registry import DEFAULT_VARIANT
from ablate.runs.configs import describe, format_label

# The paper's settings, fixed when a figure must hold a key at one value (alpha=0.5 as in its
# lambda figure), and the default variant; a key without a preference takes its smallest value.
PREFERRED = {"alpha": 0.5, "rule": "paper", "variant": DEFAULT_VARIANT, "convention": "mean"}


def reference_values(df: pd.DataFrame, keys) -> dict:
    """One value per key: the preferred one when df has it, else the smallest; None when df has it unset
    in every row (an option only failed cells set)."""
    values = {}
    for key in keys:
        present = sorted(df[key].dropna().unique())
        preferred = PREFERRED.get(key)
        values[key] = preferred if preferred in present else (present[0] if present else None)
    return values


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
