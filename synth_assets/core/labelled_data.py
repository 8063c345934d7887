"""Reading real labelled text files (seeds, held-out split, real pool) with errors a user can act on.

Accepted formats: CSV with a header containing ``text`` and ``label`` (other columns ignored),
or JSON Lines with ``text`` and ``label`` keys. UTF-8 only. Every problem is reported with the
file, the line number as an editor shows it, and the fix; a file with any problem is rejected
whole, so a batch is never half-created from it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from synth_assets.core.lake import LakePath, as_path
from synth_assets.core.task_config import label_problem
from synth_assets.core.text import collapse_whitespace, normalize_text

SUPPORTED_SUFFIXES = (".csv", ".jsonl")
MAX_PROBLEMS_SHOWN = 10


class InputFileError(ValueError):
    """A labelled data file cannot be used; the message names the file, the lines and the fix."""


def _decode(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror}); check the path and its permissions") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputFileError(f"{path}: line {line} is not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8") from exc


def _csv_records(path: Path, content: str) -> Iterable[tuple[int, dict]]:
    reader = csv.DictReader(io.StringIO(content, newline=""))
    missing = [column for column in ("text", "label") if column not in (reader.fieldnames or [])]
    if missing:
        raise InputFileError(
            f"{path}: missing column(s) {', '.join(missing)}; the header must contain text,label "
            f"(found: {', '.join(reader.fieldnames or []) or 'no header'})"
        )
    for record in reader:
        # DictReader counts physical lines, so quoted multi-line fields still point at the right line.
        yield reader.line_num, record


def _jsonl_records(path: Path, content: str) -> Iterable[tuple[int, dict]]:
    for line_number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{path}: line {line_number} is not valid JSON ({exc.msg}); fix or remove the line") from exc
        if not isinstance(record, dict):
            raise InputFileError(f"{path}: line {line_number} must be a JSON object with text and label")
        yield line_number, record


def _field(value: object) -> str:
    """A CSV cell or JSON value as the string a task names it by: JSON ``0`` and ``1.0`` are labels "0" and "1"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_labelled_file(
    path: LakePath | str, labels: Iterable[str] | None, *, reject_duplicates: bool = True, drop_textless: bool = False
) -> pd.DataFrame:
    """Validated rows of ``path`` as a DataFrame with columns ``text, label, line``.

    Raises :class:`InputFileError` listing every problem found (up to ten) when the file has a
    missing column, an empty text, a label not in ``labels`` (``None``: any label a task may have,
    for importing a dataset), a duplicate text (when ``reject_duplicates``), broken encoding or no rows at all.
    ``drop_textless``: rows whose text is empty or has no letters or digits are left out instead, and
    their line numbers listed in ``attrs["textless_lines"]`` (a public dataset's stray ``"?"`` rows).
    """
    path = as_path(path)  # a batch's input copied into a lake on S3 is read from there
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise InputFileError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    content = _decode(path)
    records = _csv_records(path, content) if path.suffix.lower() == ".csv" else _jsonl_records(path, content)
    known = set(labels) if labels is not None else None
    rows: list[dict] = []
    problems: list[str] = []
    first_line_of: dict[str, int] = {}
    textless: list[int] = []
    for line, record in records:
        text = collapse_whitespace(_field(record.get("text")))
        label = _field(record.get("label")).strip()
        key = normalize_text(text)
        if drop_textless and not key:
            textless.append(line)
            continue
        if not text:
            problems.append(f"line {line}: empty text; write the example or delete the line")
        elif not key:
            problems.append(f"line {line}: text {text!r} has no letters or digits; delete the line")
        if known is None:
            if not label:
                problems.append(f"line {line}: empty label; write the label or delete the line")
            elif problem := label_problem(label):
                problems.append(f"line {line}: label {label!r} {problem}; rename it")
        elif label not in known:
            shown = ", ".join(sorted(known)[:8]) + (", ..." if len(known) > 8 else "")
            problems.append(f"line {line}: unknown label {label!r}; use a label from task.yaml ({shown}) or add it there")
        if reject_duplicates and key and key in first_line_of:
            problems.append(f"line {line}: duplicate of line {first_line_of[key]} ({text!r}); delete one of them")
        first_line_of.setdefault(key, line)
        rows.append({"text": text, "label": label, "line": line})
    if problems:
        more = f"\n  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise InputFileError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems[:MAX_PROBLEMS_SHOWN]) + more)
    if not rows:
        raise InputFileError(f"{path}: no examples found; add rows with text and label")
    table = pd.DataFrame(rows, columns=["text", "label", "line"]).astype({"line": "int64"})
    table.attrs["textless_lines"] = textless
    return table
