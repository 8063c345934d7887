"""Pandera schemas of every lake table, checked on every write.

The schemas are built per task because the allowed labels and length bounds come from
``task.yaml``. A failed validation raises :class:`LakeSchemaError` listing the failing column,
check and example rows, before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

# Every stage's dup verdicts and gate reasons come from these fixed vocabularies, so a typo in
# code cannot invent a reason that reports and checks would not count.
DUP_STATUSES = ("unique", "exact_dup", "near_dup", "semantic_dup", "copies_seed", "contaminates_heldout", "not_checked")
# Why an attempt produced no usable example (see core/llm_generator.py); "ok" means it did.
GENERATION_FAILURES = (
    "request_failed",
    "budget_exhausted",
    "truncated",
    "refused",
    "parse_error",
    "off_label",
    "missing_example",
)
GENERATION_STATUSES = ("ok", *GENERATION_FAILURES)
ORIGINS = ("real", "synthetic")


class LakeSchemaError(ValueError):
    """A table about to be written breaks its schema."""


def _text(nullable: bool = False, non_empty: bool = False) -> pa.Column:
    checks = [pa.Check.str_length(min_value=1)] if non_empty else []
    return pa.Column(str, checks=checks, nullable=nullable)


def _label(labels: Iterable[str]) -> pa.Column:
    return pa.Column(str, checks=pa.Check.isin(sorted(labels)))


def _generated_columns(labels: Iterable[str]) -> dict[str, pa.Column]:
    return {
        "row_id": pa.Column(str, unique=True),
        "batch": _text(non_empty=True),
        "text": _text(),
        "label": _label(labels),
        "status": pa.Column(str, checks=pa.Check.isin(GENERATION_STATUSES)),
        "error": _text(),
        "raw_response": _text(),
        "generator": _text(non_empty=True),
        "model": _text(),
        "template_id": _text(non_empty=True),
        "template_version": _text(non_empty=True),
        "request_key": _text(non_empty=True),
        "seed_ids": pa.Column(object),
        "sample_index": pa.Column("int64", checks=pa.Check.ge(0)),
        "replaces_row_id": _text(),
        "prompt_tokens": pa.Column("int64", checks=pa.Check.ge(0)),
        "completion_tokens": pa.Column("int64", checks=pa.Check.ge(0)),
        "cost_usd": pa.Column(float, checks=pa.Check.ge(0)),
    }


def _dedup_columns() -> dict[str, pa.Column]:
    return {
        "norm_key": _text(),
        "dup_status": pa.Column(str, checks=pa.Check.isin(DUP_STATUSES)),
        "dup_of": _text(),
        "dup_similarity": pa.Column(float, checks=pa.Check.in_range(0.0, 1.0)),
    }


def seeds_schema(labels: Iterable[str]) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "seed_id": pa.Column(str, unique=True),
            "batch": _text(non_empty=True),
            "text": _text(non_empty=True),
            "label": _label(labels),
            "source_file": _text(non_empty=True),
            "line": pa.Column("int64", checks=pa.Check.ge(1)),
            "synthetic_match": _text(),
            "synthetic_similarity": pa.Column(float, checks=pa.Check.in_range(0.0, 1.0)),
        },
        strict=True,
        name="seeds",
    )


def generated_schema(labels: Iterable[str]) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(_generated_columns(labels), strict=True, name="generated")


def deduplicated_schema(labels: Iterable[str]) -> pa.DataFrameSchema:
    return pa.DataFrameSchema({**_generated_columns(labels), **_dedup_columns()}, strict=True, name="deduplicated")


def top_up_schema(labels: Iterable[str]) -> pa.DataFrameSchema:
    """A batch's top-up attempts as ``generated`` and ``deduplicated`` would hold them, with their round (>= 1)."""
    columns = {**_generated_columns(labels), **_dedup_columns(), "top_up_round": pa.Column("int64", checks=pa.Check.ge(1))}
    return pa.DataFrameSchema(columns, strict=True, name="top_up")


def gated_schema(labels: Iterable[str], min_chars: int, max_chars: int) -> pa.DataFrameSchema:
    accepted_text_fits = pa.Check(
        lambda frame: ~frame["accepted"] | frame["text"].str.len().between(min_chars, max_chars),
        name=f"accepted text is {min_chars}-{max_chars} characters",
    )
    rejected_has_reason = pa.Check(
        lambda frame: frame["accepted"] | (frame["reject_reason"].str.len() > 0),
        name="every rejected row has a reject_reason",
    )
    return pa.DataFrameSchema(
        {
            **_generated_columns(labels),
            **_dedup_columns(),
            "top_up_round": pa.Column("int64", checks=pa.Check.ge(0)),  # 0: the first pass; 1, 2, ...: top-up rounds
            "accepted": pa.Column(bool),
            "reject_reason": _text(),
            "reject_detail": _text(),
        },
        checks=[accepted_text_fits, rejected_has_reason],
        strict=True,
        name="gated",
    )


def training_set_schema(labels: Iterable[str]) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "row_id": pa.Column(str, unique=True),
            "text": _text(non_empty=True),
            "label": _label(labels),
            "origin": pa.Column(str, checks=pa.Check.isin(ORIGINS)),
            "source_batch": _text(non_empty=True),
            "generator": _text(),
            "template_id": _text(),
            "weight": pa.Column(float, checks=pa.Check.gt(0)),  # sample weight, mean 1 (core/mix.py)
        },
        strict=True,
        name="training_set",
    )


def dedup_signatures_schema() -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {"row_id": pa.Column(str, unique=True), "signature": pa.Column(object), "settings": _text(non_empty=True)},
        strict=True,
        name="dedup_signatures",
    )


def heldout_metrics_schema(labels: Iterable[str]) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "trained_on": _text(non_empty=True),
            "label": _label(labels),
            "precision": pa.Column(float, checks=pa.Check.in_range(0.0, 1.0)),
            "recall": pa.Column(float, checks=pa.Check.in_range(0.0, 1.0)),
            "f1": pa.Column(float, checks=pa.Check.in_range(0.0, 1.0)),
            "support": pa.Column("int64", checks=pa.Check.ge(0)),
        },
        strict=True,
        name="heldout_eval",
    )


def validate(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    """Check ``frame`` against ``schema`` (all failures at once) and return it unchanged."""
    try:
        return schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases.head(10)[["column", "check", "failure_case", "index"]]
        raise LakeSchemaError(
            f"table {schema.name!r} breaks its schema ({len(exc.failure_cases)} failure(s)):\n{cases.to_string(index=False)}"
        ) from None
