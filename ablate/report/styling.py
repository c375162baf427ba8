"""Shared table rendering: pandas Styler to an HTML fragment with the report's table class."""

import pandas as pd

BEST_CSS = "font-weight: bold; background-color: #cfe8d5;"


def format_label(value) -> str:
    """An index or column label: floats as the shortest form (0.003, not 0.003000)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def render(styler) -> str:
    """The Styler as an HTML <table> fragment, index and column labels in their shortest form."""
    styler = styler.format_index(format_label, axis=0).format_index(format_label, axis=1)
    return styler.set_table_attributes('class="data"').to_html()


def plain_table(df: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    """A DataFrame as a plain HTML table, floats formatted, NaN shown as an empty cell."""
    floats = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    return render(df.style.format(float_format, subset=floats, na_rep="").hide(axis="index"))
