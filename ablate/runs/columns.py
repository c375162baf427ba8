"""A typed column of a run folder: what each value of a cell record or a table column may be (Column), checked
value by value (fits) and column by column (dtype_fits, row_fits), and declared in run.json (to_json, from_json).

The columns of a grid's records and results table are declared in ablate.runs.record (RecordSchema). Booleans are not
numbers (JSON's true is no seed, no lambda, no count); NaN is a number's null (allowed only where the column is
nullable); inf only where the column says so.
"""

import math
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from ablate.messages import listed

KINDS = ("integer", "number", "text", "flag", "scalar", "curve")
_WORDS = {"integer": "an integer", "number": "a number", "text": "text", "flag": "true or false",
          "scalar": "a number or text", "curve": "a list of numbers"}
_SHOWN = 300  # characters of a refused value shown in an error


def shown(value: object) -> str:
    """A value as an error shows it: its repr, cut at a few dozen characters."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text):,} characters)"


def _number(value: float) -> str:
    """A bound as text: an integer in full (4294967295, not 4.29497e+09), any other number at its shortest."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**63 else f"{value:g}"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Column:
    """One column's type: `kind` (KINDS), a range [low, high] (either end open, either absent), whether null (None,
    and NaN for a number) is allowed, whether an infinite number is, and the values a text column may take."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    infinite: bool = False
    choices: tuple = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}; expected one of {', '.join(KINDS)}")

    def describe(self) -> str:
        """'an integer in [0, 4294967295]', 'a number >= 0 or null', 'one of ok, diverged'."""
        if self.choices:
            text = "one of " + listed(self.choices)
        else:
            text = _WORDS[self.kind] + self._range_text()
        return text + (" or null" if self.nullable else "")

    def _range_text(self) -> str:
        phrase = self.range_phrase()
        return "" if not phrase else " " + phrase.removeprefix("be ").removeprefix("lie ")

    def range_phrase(self) -> str:
        """'be >= 1', 'lie in [0, 4294967295]', 'be < 1' (a verb for "X must ..."); '' without a range."""
        if self.low is not None and self.high is not None:
            return (f"lie in {'(' if self.low_open else '['}{_number(self.low)}, {_number(self.high)}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"be {'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"be {'<' if self.high_open else '<='} {_number(self.high)}"
        return ""

    def _in_range(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def fits(self, value: object) -> bool:
        """Whether one value (from JSON or a table cell) is of this column."""
        if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
            return self.nullable and (value is None or self.kind in ("number", "integer", "scalar"))
        if self.kind == "text":
            return isinstance(value, str) and (not self.choices or value in self.choices)
        if self.kind == "flag":
            return isinstance(value, (bool, np.bool_))
        if self.kind == "curve":
            return isinstance(value, (list, np.ndarray)) and all(
                _is_number(v) or v is None for v in value)
        if self.kind == "scalar" and isinstance(value, str):
            return True
        if not _is_number(value):
            return False
        number = float(value)  # type: ignore[arg-type]  # a number, as _is_number found
        if math.isinf(number):
            return self.infinite and self._in_range(number)
        if self.kind == "integer" and not number.is_integer():
            return False
        return self._in_range(value if isinstance(value, int) else number)

    def problem(self, name: str, value: object) -> str | None:
        """None when `value` fits, else '<name> must be <describe()>, got <value>'."""
        return None if self.fits(value) else f"{name} must be {self.describe()}, got {shown(value)}"

    # --- tables -------------------------------------------------------------------------------------------------

    def dtype_fits(self, series: pd.Series) -> bool:
        """Whether a table column's dtype can hold this column's values (its rows are checked with `fits`): no
        booleans where numbers go, no text where numbers go, no numbers where text goes."""
        values = series.dropna()
        if values.empty:
            return self.nullable or series.empty
        dtype = series.dtype
        if pd.api.types.is_bool_dtype(dtype):
            return self.kind == "flag"
        if pd.api.types.is_numeric_dtype(dtype):
            return self.kind in ("integer", "number", "scalar")
        if self.kind in ("integer", "number"):  # an object column of numbers (None among them) is read value by value
            return all(_is_number(v) for v in values)
        if self.kind == "text":
            return all(isinstance(v, str) for v in values)
        return True

    def row_fits(self, series: pd.Series) -> pd.Series:
        """Per row: whether its value fits (see fits)."""
        return series.map(self.fits).astype(bool)

    # --- run.json -----------------------------------------------------------------------------------------------

    def to_json(self) -> dict:
        """The declaration run.json records: the fields that differ from their defaults."""
        return {f.name: (list(value) if isinstance(value, tuple) else value) for f in fields(self)
                if (value := getattr(self, f.name)) != f.default or f.name == "kind"}

    @classmethod
    def from_json(cls, declared: object, where: str) -> "Column":
        """A declaration read from run.json, checked (ValueError naming `where`)."""
        if not isinstance(declared, dict) or not isinstance(declared.get("kind"), str):
            raise ValueError(f"{where}: expected a column declaration {{\"kind\": ...}}, got {shown(declared)}")
        names = {f.name: f for f in fields(cls)}
        unknown = [k for k in declared if k not in names]
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {listed(map(repr, unknown))} in a column declaration")
        values = dict(declared)
        for bound in ("low", "high"):
            if values.get(bound) is not None and not _is_number(values[bound]):
                raise ValueError(f"{where}: {bound} must be a number, got {shown(values[bound])}")
        for flag in ("low_open", "high_open", "nullable", "infinite"):
            if not isinstance(values.get(flag, False), bool):
                raise ValueError(f"{where}: {flag} must be true or false, got {shown(values[flag])}")
        choices = values.get("choices", [])
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise ValueError(f"{where}: choices must be a list of text, got {shown(choices)}")
        values["choices"] = tuple(choices)
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
