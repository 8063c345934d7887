"""Versioned prompt templates for LLM generation, and the requests a batch sends.

A request asks for ``examples_per_request`` texts of one label. It shows the label's
description, a few of the batch's real seeds of that label (rotated from request to request so
every seed is seen) and one point on each diversity axis (who is writing, how, how long), drawn
per request. The template id and version are stored on every generated row; changing the
wording below means bumping ``PROMPT_VERSION``, which changes every request key, so cached
answers to the old wording are never reused for the new one.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import numpy as np
import pandas as pd

from synth_assets.core.folds import seed_folds
from synth_assets.core.hashing import stable_hash
from synth_assets.core.quotas import uniform_quotas
from synth_assets.core.task_config import LlmConfig, TaskConfig

PROMPT_ID = "labelled_examples"
PROMPT_VERSION = "2026.12.1"
SCHEMA_NAME = "labelled_examples"

DIVERSITY_AXES: dict[str, tuple[str, ...]] = {
    "persona": (
        "a busy parent",
        "a retired person who is new to technology",
        "a student",
        "a non-native English speaker",
        "a professional in a hurry",
        "someone who is annoyed",
        "someone very polite",
        "a teenager",
    ),
    "style": (
        "terse, few words",
        "casual and chatty",
        "formal",
        "phrased as a question",
        "phrased as a command",
        "indirect, hinting at what they want",
        "with a small typo or missing word, as typed on a phone",
    ),
    "length": ("very short (2-5 words)", "short (one clause)", "one full sentence", "two sentences"),
}

SYSTEM_PROMPT = (
    "You write realistic training examples for a text classifier. Every example must clearly belong "
    "to the requested label and to no other label of the task. Write examples that differ from each "
    "other and from the reference examples in wording, structure and detail; never copy a reference."
)

USER_TEMPLATE = """Task: {text_kind}.
Label: {label}
Meaning of the label: {description}
Other labels of the task (an example must not fit any of them): {other_labels}

Examples:
{examples}
{top_up_note}
Write as {persona}; style: {style}; length: {length}.
Number of examples: {count}
Answer with JSON only: {{"examples": [{{"text": "...", "label": {label_json}}}, ...]}} with exactly {count} items."""


# Said in a top-up round's requests (core/top_up.py): every earlier example of the label was rejected.
TOP_UP_NOTE = (
    "Every example written for this label so far was rejected, most often as a repeat of an existing text or as "
    "fitting another label better. Write examples that are clearly this label and unlike the usual phrasings."
)


@dataclass(frozen=True)
class GenerationRequest:
    """One chat request: what it asks, and the key its answer is cached and billed under."""

    key: str
    label: str
    request_index: int
    messages: list[dict]
    params: dict
    seed_ids: list[str]
    axes: dict[str, str]


def response_format(label: str, count: int, mode: str) -> dict | None:
    """The ``response_format`` for ``mode``: a strict JSON schema, plain JSON mode, or none."""
    if mode == "prompt":
        return None
    if mode == "json_object":
        return {"type": "json_object"}
    item = {
        "type": "object",
        "properties": {"text": {"type": "string"}, "label": {"type": "string", "enum": [label]}},
        "required": ["text", "label"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {"examples": {"type": "array", "minItems": count, "maxItems": count, "items": item}},
        "required": ["examples"],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema}}


def request_params(llm: LlmConfig, label: str, mode: str) -> dict:
    params = {"model": llm.model, "temperature": llm.temperature, "max_tokens": llm.max_tokens}
    fmt = response_format(label, llm.examples_per_request, mode)
    return params | ({"response_format": fmt} if fmt else {})


def _json_string(label: str) -> str:
    """The label as the answer must spell it in JSON (``"alarm_set"``; a quote in a label escaped, not broken)."""
    return json.dumps(label, ensure_ascii=False)


def _other_labels(task: TaskConfig, label: str, limit: int = 40) -> str:
    others = [name for name in sorted(task.labels) if name != label]
    return ", ".join(others[:limit]) + (f" and {len(others) - limit} more" if len(others) > limit else "")


REFINE_TEMPLATE = """Your previous answer could not be used: {problems}.
Write {count} new examples that fix this.
Label: {label}
Meaning of the label: {description}

Examples:
{examples}

Number of examples: {count}
Answer with JSON only: {{"examples": [{{"text": "...", "label": {label_json}}}, ...]}} with exactly {count} items."""


def refinement_request(
    task: TaskConfig, original: GenerationRequest, previous_answer: str, problems: list[str], count: int, mode: str
) -> GenerationRequest:
    """A follow-up to ``original`` that shows the model its answer and what was wrong with it."""
    examples = original.messages[-1]["content"].split("Examples:\n", 1)[1].split("\n\n", 1)[0]
    feedback = REFINE_TEMPLATE.format(
        problems="; ".join(problems),
        count=count,
        label=original.label,
        label_json=_json_string(original.label),
        description=task.labels[original.label],
        examples=examples,
    )
    messages = [*original.messages, {"role": "assistant", "content": previous_answer}, {"role": "user", "content": feedback}]
    params = request_params(task.generation.llm, original.label, mode) | {
        "response_format": response_format(original.label, count, mode)
    }
    params = {name: value for name, value in params.items() if value is not None}
    key = stable_hash(task.generation.llm.model, messages, params, PROMPT_ID, PROMPT_VERSION, "refine", length=32)
    return GenerationRequest(key, original.label, original.request_index, messages, params, original.seed_ids, original.axes)


def _seeds_by_fold(rows: pd.DataFrame, folds: int, rng: random.Random) -> list[list[int]]:
    """Positions of a label's seeds grouped by validation fold (core/folds.py), each group shuffled; empty folds left out."""
    assigned = seed_folds(rows["text"], rows["label"], folds)
    groups = [rng.sample(list(np.flatnonzero(assigned == fold)), int((assigned == fold).sum())) for fold in range(folds)]
    return [group for group in groups if group] or [[]]


def build_requests(
    task: TaskConfig,
    batch: str,
    seeds: pd.DataFrame,
    mode: str,
    attempts: dict[str, int] | None = None,
    top_up_round: int = 0,
) -> list[GenerationRequest]:
    """Every request of ``batch``: ``ceil(attempts / examples_per_request)`` per label of the seeds.

    ``attempts`` per label defaults to the task's ``per_label`` for every label. A top-up round
    (``top_up_round`` > 0) draws its own seed rotation and diversity axes, says :data:`TOP_UP_NOTE`,
    and keys its requests by the round, so its answers are new and cached apart from the first pass's.
    """
    llm = task.generation.llm
    per_request = llm.examples_per_request
    attempts = attempts or uniform_quotas(sorted(set(seeds["label"])), task.generation.per_label)
    top_up = ("top_up", top_up_round) if top_up_round else ()
    requests = []
    for label in sorted(set(seeds["label"])):
        requests_per_label = -(-attempts.get(label, 0) // per_request)
        rows = seeds[seeds["label"] == label].sort_values("seed_id")
        rng = random.Random(stable_hash(task.name, batch, label, "prompts", *top_up))
        groups = _seeds_by_fold(rows, task.mix.validation_folds, rng)
        for index in range(requests_per_label):
            # Request i shows seeds of fold i mod folds only: its rows stay usable when validation scores other folds.
            group = groups[index % len(groups)]
            shown = min(llm.seed_examples_per_request, len(group))
            turn = index // len(groups)
            examples = rows.iloc[[group[(turn * shown + offset) % len(group)] for offset in range(shown)]]
            axes = {axis: rng.choice(values) for axis, values in DIVERSITY_AXES.items()}
            user = USER_TEMPLATE.format(
                text_kind=task.text_kind,
                label=label,
                label_json=_json_string(label),
                description=task.labels[label],
                other_labels=_other_labels(task, label),
                examples="\n".join(f"- {text}" for text in examples["text"]) or "- (none yet)",
                count=per_request,
                top_up_note=f"\n{TOP_UP_NOTE}\n" if top_up_round else "",
                **axes,
            )
            messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
            params = request_params(llm, label, mode)
            key = stable_hash(llm.model, messages, params, PROMPT_ID, PROMPT_VERSION, index, *top_up, length=32)
            requests.append(GenerationRequest(key, label, index, messages, params, list(examples["seed_id"]), axes))
    return requests


JUDGE_PROMPT_ID = "label_judge"
JUDGE_PROMPT_VERSION = "2026.12.1"
JUDGE_SYSTEM_PROMPT = "You check labelled training examples for a text classifier against a rubric, strictly and briefly."
JUDGE_TEMPLATE = """Task: {text_kind}.
Judge label: {label}
Meaning of the label: {description}
Other labels of the task: {other_labels}

Rubric: a text belongs to the label when a person reading only the text would give it this label
and no other label of the task; a text that fits another label better, or no label, does not.

Texts:
{texts}

Answer with JSON only: {{"verdicts": [{{"id": 1, "belongs": true, "reason": "..."}}, ...]}}, one per text."""


def judge_request(task: TaskConfig, label: str, items: list[tuple[str, str]]) -> GenerationRequest:
    """One request asking the task's model whether each ``(row_id, text)`` belongs to ``label``."""
    llm = task.generation.llm
    user = JUDGE_TEMPLATE.format(
        text_kind=task.text_kind,
        label=label,
        description=task.labels[label],
        other_labels=_other_labels(task, label),
        texts="\n".join(f"{number}. {text}" for number, (_, text) in enumerate(items, start=1)),
    )
    messages = [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": user}]
    params = {"model": llm.model, "temperature": 0.0, "max_tokens": llm.max_tokens, "response_format": {"type": "json_object"}}
    key = stable_hash(llm.model, messages, params, JUDGE_PROMPT_ID, JUDGE_PROMPT_VERSION, length=32)
    # A judge request's ``seed_ids`` are the rows it judges, in the order of their numbers.
    return GenerationRequest(key, label, 0, messages, params, [row_id for row_id, _ in items], {})
