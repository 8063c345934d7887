"""The gate's optional LLM tier: the task's model judges, against a rubric, the rows the classifier is unsure about.

Only rows every cheaper tier kept and whose claimed label is not the seed classifier's first
choice (a close call it did not dispute) are sent, ``JUDGE_ROWS_PER_REQUEST`` per request,
through the same client, cache, replay mode, limits and budget as generation. A row the judge
says does not belong is ``judge_rejected`` with its reason; a row the judge could not answer for
(request failed, unreadable answer) keeps its verdict, and is counted as unjudged.
"""

from __future__ import annotations

import json

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from synth_assets.core.llm_cache import CachedAnswer
from synth_assets.core.prompts import judge_request
from synth_assets.core.task_config import TaskConfig

JUDGE_ROWS_PER_REQUEST = 10


class _Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    belongs: bool
    reason: str = ""


class _Verdicts(BaseModel):
    model_config = ConfigDict(extra="ignore")
    verdicts: list[_Verdict]


def judge_requests(task: TaskConfig, rows: pd.DataFrame) -> list:
    """The requests judging ``rows`` (``row_id, text, label``), grouped by label."""
    requests = []
    for label, group in rows.groupby("label", sort=True):
        items = list(zip(group["row_id"], group["text"]))
        for start in range(0, len(items), JUDGE_ROWS_PER_REQUEST):
            requests.append(judge_request(task, str(label), items[start : start + JUDGE_ROWS_PER_REQUEST]))
    return requests


def judgements(requests: list, results: dict) -> dict[str, str | None]:
    """Per judged row id: the judge's reason when it rejects the row, "" when it keeps it, None when unjudged."""
    found: dict[str, str | None] = {}
    for request in requests:
        result = results.get(request.key)
        verdicts = {}
        if isinstance(result, CachedAnswer) and result.content and result.finish_reason != "length":
            try:
                verdicts = {v.id: v for v in _Verdicts.model_validate(json.loads(result.content)).verdicts}
            except (json.JSONDecodeError, ValidationError):
                verdicts = {}
        for number, row_id in enumerate(request.seed_ids, start=1):
            verdict = verdicts.get(number)
            found[row_id] = (
                None if verdict is None else ("" if verdict.belongs else f"LLM judge: {verdict.reason or 'does not belong'}")
            )
    return found
