"""Shared table rendering: pandas Styler to an escaped HTML fragment with the report's table class, and the marks
a cell can carry.

Styler.to_html() does not escape by default: every label and every text cell is escaped here, so that no
value read from a run folder (a grid value, a cell's error, a bench note) can put markup in the page.

One meaning per colour on a page, explained once in its legend (templates/report.html.j2 declares the colours):
a cell or a phrase marked BETTER is statistically better than what it is compared with, WORSE statistically worse;
the best mean of a summary column is bold (BEST_CSS), a ranking and not a test, so it gets no colour.
"""

import pandas as pd
from markupsafe import Markup

from ablate.runs.configs import format_label

BETTER, WORSE = "better", "worse"  # the CSS classes of the page's two colours
MARKS = (BETTER, WORSE)
BEST_CSS = "font-weight: bold;"
FINDINGS_CLASS = "data findings"  # a findings table: its text wraps, so it fits the page without a scroll


def render(styler, table_class: str = "data") -> Markup:
    """The Styler as an HTML <table> fragment, index and column labels in their shortest form, every label
    and text cell HTML-escaped (numeric cells keep the formats the caller gave them)."""
    data = styler.data
    text_columns = [c for c in data.columns if not pd.api.types.is_numeric_dtype(data[c])]
    if text_columns:
        styler = styler.format(escape="html", subset=text_columns)
    styler = styler.format_index(format_label, axis=0, escape="html").format_index(format_label, axis=1, escape="html")
    return Markup(styler.set_table_attributes(f'class="{table_class}"').to_html())


def plain_table(df: pd.DataFrame, float_format: str = "{:.4g}") -> Markup:
    """A DataFrame as a plain HTML table, floats formatted, NaN shown as an empty cell."""
    floats = [c for c in df.columns if pd.api.types.is_float_dtype(df[c])]
    return render(df.style.format(float_format, subset=floats, na_rep="").hide(axis="index"))
