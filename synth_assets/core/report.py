"""Small renderers for what users read: markdown tables for materializations and the terminal."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import pandas as pd

MAX_CELL_CHARS = 80
MISSING = "–"  # what a missing value (None, NaN, pd.NA, NaT) prints as, rather than "nan" or "<NA>"
MAX_DECIMALS = 4  # scores are read to the fourth decimal everywhere in the reports
SIGNIFICANT_DIGITS_WHEN_TINY = 2  # a non-zero value too small for MAX_DECIMALS, e.g. a cost per row


def format_number(value: float, decimals: int = MAX_DECIMALS) -> str:
    """``value`` with ``decimals`` fixed decimals; never "-0", and a non-zero value that would print as zero keeps its digits."""
    if math.isnan(value):
        return MISSING
    if value == 0:  # also -0.0, and a value rounded to zero upstream
        return f"{0.0:.{decimals}f}"
    if round(value, decimals) == 0:
        return f"{value:.{SIGNIFICANT_DIGITS_WHEN_TINY}g}"
    return f"{value:.{decimals}f}"


def _decimals_needed(values: Iterable) -> int:
    """The fewest decimals (up to MAX_DECIMALS) that show every value exactly: 0 for counts stored as floats."""
    finite = [float(value) for value in values if _is_real_number(value) and math.isfinite(value)]
    for decimals in range(MAX_DECIMALS):
        if all(math.isclose(value, round(value, decimals), rel_tol=0, abs_tol=1e-9) for value in finite):
            return decimals
    return MAX_DECIMALS


def _is_real_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_missing(value: object) -> bool:
    return not isinstance(value, (list, tuple, dict)) and bool(pd.isna(value))


def _text(value: object, decimals: int | None) -> str:
    """A value as a reader wants it; ``decimals`` is the column's when it is numeric, else each number gets what it needs."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(item, None) for item in value)
    if _is_real_number(value):
        return format_number(float(value), _decimals_needed([value]) if decimals is None else decimals)
    return str(value)


def _cell(value: object, decimals: int | None) -> str:
    text = _text(value, decimals).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def _is_numeric_column(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def markdown_table(frame: pd.DataFrame, max_rows: int = 10) -> str:
    """A GitHub-flavoured markdown table of the first ``max_rows`` rows.

    Numeric columns are right-aligned with one number of decimals per column (the fewest that show
    every value, at most MAX_DECIMALS), so counts stored as floats print as integers; missing values
    print as MISSING.
    """
    if frame.empty:
        return "_(no rows)_"
    shown = frame.head(max_rows)
    numeric = [_is_numeric_column(shown[column]) for column in shown.columns]
    decimals = [_decimals_needed(shown.iloc[:, position]) if is_numeric else None for position, is_numeric in enumerate(numeric)]
    header = "| " + " | ".join(map(str, shown.columns)) + " |"
    rule = "| " + " | ".join("---:" if is_numeric else "---" for is_numeric in numeric) + " |"
    body = [
        "| " + " | ".join(_cell(value, places) for value, places in zip(row, decimals)) + " |"
        for row in shown.itertuples(index=False, name=None)
    ]
    more = [f"\n_{len(frame) - max_rows} more rows not shown_"] if len(frame) > max_rows else []
    return "\n".join([header, rule, *body, *more])
