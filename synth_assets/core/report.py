"""Small renderers for what users read: markdown tables for materializations and the terminal."""

from __future__ import annotations

import pandas as pd

MAX_CELL_CHARS = 80


def _cell(value) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def markdown_table(frame: pd.DataFrame, max_rows: int = 10) -> str:
    """A GitHub-flavoured markdown table of the first ``max_rows`` rows."""
    if frame.empty:
        return "_(no rows)_"
    shown = frame.head(max_rows)
    header = "| " + " | ".join(map(str, shown.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in shown.columns) + " |"
    body = ["| " + " | ".join(_cell(value) for value in row) + " |" for row in shown.itertuples(index=False, name=None)]
    more = [f"\n_{len(frame) - max_rows} more rows not shown_"] if len(frame) > max_rows else []
    return "\n".join([header, rule, *body, *more])
