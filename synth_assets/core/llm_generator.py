"""Answers of the ``openai`` backend, turned into one row per example slot.

A request asks for ``examples_per_request`` examples, so it owns that many slots, and every slot
becomes exactly one row whatever happened: an accepted-for-now example (``status=ok``) or a row
whose status says what went wrong, with the raw answer kept in ``raw_response``:

- ``request_failed``: no answer after the retries (429 storm, 5xx, timeout); ``error`` has the last error
- ``budget_exhausted``: not sent, because it could have passed the budget cap
- ``truncated``: the answer hit ``max_tokens`` (``finish_reason=length``)
- ``refused``: the model refused
- ``parse_error``: the answer is not JSON, or not of the asked shape
- ``off_label``: the example claims another label than the one asked for
- ``missing_example``: the answer held fewer examples than asked for

So ``slots = requests * examples_per_request = ok + every other status``, per batch.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, ValidationError

from synth_assets.core.llm_cache import CachedAnswer
from synth_assets.core.llm_client import Failure
from synth_assets.core.prompts import GenerationRequest
from synth_assets.core.text import collapse_whitespace

RAW_CHARS_KEPT = 4000


class _Example(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str
    label: str | None = None


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    examples: list[_Example]


def _json_payload(content: str) -> str:
    """The JSON inside an answer, without the markdown fence some models wrap it in."""
    stripped = content.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped


def slot_outcomes(request: GenerationRequest, result: CachedAnswer | Failure, slots: int) -> list[tuple[str, str, str]]:
    """(status, text, error) for each of the request's ``slots`` example slots."""
    if isinstance(result, Failure):
        return [(result.reason, "", result.detail)] * slots
    if result.refusal or result.content is None:
        return [("refused", "", f"the model refused: {result.refusal or 'empty answer'}")] * slots
    if result.finish_reason == "length":
        return [("truncated", "", "the answer hit max_tokens (finish_reason=length); raise generation.llm.max_tokens")] * slots
    try:
        examples = _Answer.model_validate(json.loads(_json_payload(result.content))).examples
    except (json.JSONDecodeError, ValidationError) as error:
        reason = "not JSON" if isinstance(error, json.JSONDecodeError) else "JSON without a list of {text, label} examples"
        return [("parse_error", "", f"the answer is {reason}: {str(error).splitlines()[0][:200]}")] * slots
    outcomes = []
    for example in examples[:slots]:
        text = collapse_whitespace(example.text)
        if example.label is not None and example.label != request.label:
            outcomes.append(("off_label", text, f"asked for {request.label!r}, the example claims {example.label!r}"))
        else:
            outcomes.append(("ok", text, ""))
    missing = slots - len(outcomes)
    outcomes += [("missing_example", "", f"the answer held {len(examples)} of {slots} examples")] * missing
    return outcomes


def raw_text(result: CachedAnswer | Failure) -> str:
    if isinstance(result, Failure):
        return ""
    return (result.content or result.refusal or "")[:RAW_CHARS_KEPT]
