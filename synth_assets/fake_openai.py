"""A fake OpenAI-compatible server: the test double for the LLM generator, no network, no key.

It speaks the OpenAI wire format for chat completions, files, the Batch API and fine-tuning jobs, answers the
generator's labelled-examples request with plausible examples varied from the seed examples in
the prompt, and fails on demand, so every failure path of a client can be exercised for real.

The request it understands: ``response_format`` json_schema "labelled_examples" (label from
``examples.items.properties.label.enum[0]``, N from ``minItems``), or json_object / none, with
the last user message holding ``Label: <label>``, ``Number of examples: <N>`` and, after a line
``Examples:``, seed examples one per ``- `` line. The answer is a function of the request body:
the same body always gets the same examples, any change gets others. An answer longer than the
request's ``max_tokens`` is cut there with finish_reason ``length``, as a real model's would be.

Batches go validating -> in_progress -> completed (``expired`` if any item expired) over
``batch_delay_s``; answers go to the output file, non-200 and expired items to the error file.

Fine-tuning jobs (``/v1/fine_tuning/jobs``, on unless ``fine_tuning`` is off) take a file uploaded with purpose
``fine-tune`` and move one status per retrieve: validating_files -> queued -> running -> succeeded, with
``fine_tuned_model`` and ``trained_tokens`` set at the end. The training file is checked as OpenAI checks it (every
line a JSON object whose ``messages`` are {role, content} with roles system/user/assistant and at least one
assistant turn; at least 10 examples): an invalid file fails the job at its first retrieve with an error carrying
``code``, ``message``, ``param`` and ``line``. Every status change is an event (``GET .../events``, newest first).

Faults come from ``FakeSettings.faults`` or ``POST /_control/faults`` (which replaces them and
restarts their counts); ``POST /_control/reset`` restores the start state and ``GET /_control/stats``
reports hits and outcomes. They map a fault name to a selector, e.g.
``{"rate_limit": {"first": 3, "retry_after": 0.05}, "wrong_label": {"match": "Label: alarm_set",
"share": 0.5, "label": "play_music"}}``:

- every selector: ``match`` (only requests whose prompt contains it), then at most one of
  ``first`` K, ``every`` k (the k-th, 2k-th, ...) or ``share`` p (evenly spread, exactly p of
  them); none of the three means every matching request.
- ``batch_expire`` (batch items only): error file line with code ``batch_expired``.
- ``fine_tuning_failure`` (fine-tuning jobs only, ``match`` against the job's model and suffix, counted per job
  created): the job fails while running, with error code ``internal_error``.
- ``timeout`` (live only): stall ``seconds`` (default 30) before answering.
- ``rate_limit``: 429 with ``Retry-After: retry_after`` seconds (default 1). ``server_error``: 500.
- ``truncate``: content cut mid-JSON, finish_reason ``length``.
- ``malformed``: finish_reason ``stop`` with ``style`` ``not_json`` (prose) or ``wrong_shape``.
- ``refusal``: ``style`` ``refusal_field`` (content null, ``message.refusal`` set) or ``content_text``.
- ``wrong_label``: the examples carry ``label`` (default ``other``) instead of the one asked; with ``style``
  ``mislabelled_text`` (oracle mode) they are real texts of another label, labelled as asked (planted as
  ``wrong_label:<their label>``).
- ``duplicate``: ``style`` ``identical`` (N copies of one text), ``previous`` (the examples of the
  previous clean answer for the same label) or ``one_word_edit`` (those examples, each with one word
  inserted or deleted: a near duplicate that an exact or normalised comparison misses); with no
  previous answer for the label, ``previous`` and ``one_word_edit`` answer as ``identical``. Alone of
  the faults, ``duplicate`` may be a list of selectors (one per style), checked in order.
- ``pii``: every example gets a real-looking e-mail address, phone number or payment card number
  appended (from ``PII``; never example.com or 555 numbers, which the gate reads as placeholders).

Faults are checked in that order and a request gets the first that picks it; each fault (each
selector of a list) counts only the requests that reach it, so ``rate_limit first 3`` then
``server_error first 1`` fails requests 1-3 with 429 and request 4 with 500.
``faults_by_overall_share`` turns "this share of all requests" into those per-fault shares.
``BENCH_FAULTS`` (``--faults bench``) is the benchmark's mix, as shares of all requests, 429s
included: 5% rate limited (``retry_after`` 0.01 s), 5% truncated, 3% refused, 20% wrong labels
(``mislabelled_text``: real texts of another label, labelled as asked; oracle mode only),
30% duplicates (5% identical, 10% previous, 15% one_word_edit), 3% PII; the other 29% are clean.

Oracle mode (``FakeSettings.oracle``, ``--oracle <task folder>``) answers a generation request for
label L with N real texts of L instead of seed variations: what a perfect generator would write,
for development and for benchmarks that measure what one is worth. ``Oracle.from_task`` takes
the task's ``real_pool`` minus every text that is a seed or held-out text of the task (compared
after ``normalize_text``), each text once; ``Oracle.from_frames`` does the same for a pool and
exclusions a bench script chose itself. Each label's texts are served in a fixed shuffled order
from a per-label cursor, so answers are distinct until the label's texts run out; then the
cursor wraps round and texts come again, as duplicates the factory must catch. The cursor moves
by the new texts an answer carries: N for a clean answer, one for ``duplicate`` identical, none
for a refusal, a repeat of a previous answer, a 429 or a 500. So an answer depends on the order
of the requests for its label: K clean requests of N examples get the first K*N texts of the
label's order, and which request gets which follows the order they arrive in. A reset or freshly
started server given the same requests in the same order gives the same answers. A request for
a label without oracle texts is a 400; judge requests are answered as in the default mode; every
fault works in both modes.

``GET /_control/planted`` lists every example served since the start or the last reset, in
order, as ``{label_asked, text, label_given, fault}``: ``fault`` is the request's fault
(``duplicate:<style>`` for duplicates, naming the style actually served), ``repeat`` for a
clean example whose text an earlier answer already carried (after ``normalize_text``), ``""``
otherwise. Refusals, 429s, 500s and expired batch items serve no example; ``GET /_control/stats``
counts them.

    python -m synth_assets.fake_openai --port 8765 [--latency-ms 200] [--no-batch-api] [--no-fine-tuning] [--no-json-schema]
        [--oracle data/tasks/hwu64] [--faults bench]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import random
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.exceptions import HTTPException

from synth_assets.core.text import normalize_text

if TYPE_CHECKING:
    import pandas as pd

    from synth_assets.core.task_config import TaskConfig

CHAT_ENDPOINT = "/v1/chat/completions"
REFUSAL = "I can't help with that."
CONTENT_REFUSAL = "I'm sorry, but I can't help with that request."
MAX_EXAMPLES = 1000
FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
FINE_TUNE_PURPOSE = "fine-tune"
FINE_TUNING_ROLES = ("system", "user", "assistant")
MIN_FINE_TUNING_EXAMPLES = 10
MAX_SUFFIX_CHARS = 64
AUTO_EPOCHS = 3  # what "auto" resolves to here; the real API picks it from the file's size
# One retrieve moves a job one status on, so a test sees every status in order and no clock is involved.
NEXT_FINE_TUNING_STATUS = {"validating_files": "queued", "queued": "running", "running": "succeeded"}
OPEN_FINE_TUNING_STATUSES = tuple(NEXT_FINE_TUNING_STATUS)
FINE_TUNING_EVENTS = {
    "queued": "Files validated, moving job to queued state",
    "running": "Fine-tuning job started",
    "succeeded": "The job has successfully completed",
    "cancelled": "Fine-tuning job cancelled",
}
INTERNAL_ERROR = {"code": "internal_error", "message": "The job failed due to an internal error.", "param": None}

# Small, label-neutral edits that keep a seed's meaning: how a person rephrases a request.
OPENERS = ("", "please ", "hey, ", "could you ", "hi, ", "quick one: ", "so, ", "ok, ")
CLOSERS = ("", " please", " thanks", " now", " for me", " if you can", " asap", " thank you")
SWAPS = (("the", "my"), ("turn", "switch"), ("please", "kindly"), ("can you", "could you"), ("i want", "i'd like"))
# Words a model slips into a text it repeats; one of them, or one word fewer, makes a one_word_edit duplicate.
FILLER_WORDS = ("just", "really", "now", "also", "maybe", "quickly")
# Real-looking values: example.com addresses and 555 numbers are the placeholder probe's, not PII.
PII = (
    "{} and email me at jo.martin@mailbox.org".format,
    "{} call me on +1 415-867-2231".format,
    "{} my card 4111 1111 1111 1111".format,
)

_LABEL_LINE = re.compile(r"^Label:\s*(.+?)\s*$", re.MULTILINE)
_COUNT_LINE = re.compile(r"^Number of examples:\s*(\d+)\s*$", re.MULTILINE)
# A judge request (the gate's LLM tier): "Judge label: <label>", then "Texts:" and "<n>. <text>" lines.
_JUDGE_LINE = re.compile(r"^Judge label:\s*(.+?)\s*$", re.MULTILINE)
_NUMBERED_LINE = re.compile(r"^(\d+)\.\s+(.*)$", re.MULTILINE)
_DESCRIPTION_LINE = re.compile(r"^Meaning of the label:\s*(.+?)\s*$", re.MULTILINE)


class Selector(BaseModel):
    """Which requests a fault hits; counted per fault over the requests that reach it."""

    model_config = ConfigDict(extra="forbid")

    match: str | None = None
    first: int | None = Field(default=None, ge=0)
    every: int | None = Field(default=None, ge=1)
    share: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _at_most_one_picker(self) -> Selector:
        if sum(value is not None for value in (self.first, self.every, self.share)) > 1:
            raise ValueError("give at most one of first, every, share")
        return self

    def picks(self, n: int) -> bool:
        """Whether the ``n``-th (1-based) request reaching this fault gets it."""
        if self.first is not None:
            return n <= self.first
        if self.every is not None:
            return n % self.every == 0
        if self.share is not None:
            # The epsilon keeps 0.29 * 100 from flooring to 28: exactly round(p * n) of n are hit.
            return math.floor(n * self.share + 1e-9) > math.floor((n - 1) * self.share + 1e-9)
        return True


class TimeoutFault(Selector):
    seconds: float = Field(default=30.0, ge=0)


class RateLimitFault(Selector):
    retry_after: float = Field(default=1.0, ge=0)


class MalformedFault(Selector):
    style: Literal["not_json", "wrong_shape"] = "not_json"


class RefusalFault(Selector):
    style: Literal["refusal_field", "content_text"] = "refusal_field"


class WrongLabelFault(Selector):
    label: str = "other"
    # label_field: the examples carry ``label`` (the client refuses them itself);
    # mislabelled_text (oracle mode): real texts of another label, labelled as asked, the way a model
    # gets a label wrong; only the gate's label check can catch them.
    style: Literal["label_field", "mislabelled_text"] = "label_field"


class DuplicateFault(Selector):
    style: Literal["identical", "previous", "one_word_edit"] = "identical"


class Faults(BaseModel):
    """The active faults by name, in the order they are checked (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    batch_expire: Selector | None = None
    timeout: TimeoutFault | None = None
    rate_limit: RateLimitFault | None = None
    server_error: Selector | None = None
    truncate: Selector | None = None
    malformed: MalformedFault | None = None
    refusal: RefusalFault | None = None
    wrong_label: WrongLabelFault | None = None
    duplicate: DuplicateFault | list[DuplicateFault] | None = None
    pii: Selector | None = None
    fine_tuning_failure: Selector | None = None

    def selectors(self, name: str) -> list[Selector]:
        """The selectors of fault ``name``, in the order they are checked."""
        chosen = getattr(self, name)
        return [] if chosen is None else chosen if isinstance(chosen, list) else [chosen]


def faults_by_overall_share(mix: Sequence[tuple[str, dict[str, Any], float]]) -> Faults:
    """Faults that hit each given share of *all* requests; ``mix`` is (fault, options, share), in the order faults are checked.

    A fault sees only the requests the faults before it left, so its selector's share is its
    overall share over what is left: 5% rate limits then 5% truncations is truncate share 0.05 / 0.95.
    """
    order = list(Faults.model_fields)
    positions = [order.index(name) for name, _, _ in mix]
    if positions != sorted(positions):
        raise ValueError(f"list the faults in the order they are checked: {', '.join(order)}")
    if sum(share for _, _, share in mix) > 1:
        raise ValueError("the shares add up to more than all requests")
    left = 1.0
    selectors: dict[str, list[dict[str, Any]]] = {}
    for name, options, share in mix:
        selectors.setdefault(name, []).append({**options, "share": share / left})
        left -= share
    return Faults.model_validate({name: found if len(found) > 1 else found[0] for name, found in selectors.items()})


# The benchmark's target mix. A real model repeats its earlier answers, near-verbatim more often
# than verbatim, and seldom writes one text N times in one answer.
BENCH_FAULT_MIX = (
    ("rate_limit", {"retry_after": 0.01}, 0.05),
    ("truncate", {}, 0.05),
    ("refusal", {}, 0.03),
    ("wrong_label", {"style": "mislabelled_text"}, 0.20),
    ("duplicate", {"style": "identical"}, 0.05),
    ("duplicate", {"style": "previous"}, 0.10),
    ("duplicate", {"style": "one_word_edit"}, 0.15),
    ("pii", {}, 0.03),
)
BENCH_FAULTS = faults_by_overall_share(BENCH_FAULT_MIX)
FAULT_PRESETS = {"bench": BENCH_FAULTS}

CHAT_FAULTS = tuple(name for name in Faults.model_fields if name != "fine_tuning_failure")
LIVE_FAULTS = tuple(name for name in CHAT_FAULTS if name != "batch_expire")
BATCH_FAULTS = tuple(name for name in CHAT_FAULTS if name != "timeout")


@dataclass(frozen=True)
class Oracle:
    """Real texts per label, each label's in the order oracle mode serves them (see the module docstring)."""

    texts: dict[str, tuple[str, ...]]

    @classmethod
    def from_frames(cls, pool: pd.DataFrame, exclude_texts: Iterable[str], shuffle_seed: int = 0) -> Oracle:
        """The ``text``/``label`` rows of ``pool`` but those equal to an excluded text after ``normalize_text``.

        A text the pool holds twice is kept once, under the label of its first row, so no label
        serves a text twice before its texts run out and no two labels serve the same text.
        """
        taken = {normalize_text(text) for text in exclude_texts}
        by_label: dict[str, list[str]] = {}
        for text, label in zip(pool["text"], pool["label"]):
            key = normalize_text(text)
            if key not in taken:
                taken.add(key)
                by_label.setdefault(label, []).append(text)
        if not by_label:
            raise ValueError(
                "no text of the pool is left once the excluded texts are taken out; oracle mode has nothing to serve"
            )
        # A generator per label: adding or removing a label leaves the other labels' orders as they were.
        shuffled = {
            label: random.Random(f"{shuffle_seed}:{label}").sample(texts, len(texts)) for label, texts in by_label.items()
        }
        return cls({label: tuple(texts) for label, texts in shuffled.items()})

    @classmethod
    def from_task(cls, task: TaskConfig, shuffle_seed: int = 0) -> Oracle:
        """The task's ``real_pool`` without its seeds and held-out texts."""
        # Imported here: reading task files pulls in the lake (duckdb, S3 paths), which the fake server needs only in oracle mode.
        from synth_assets.core.labelled_data import read_labelled_file

        if task.real_pool_path is None:
            raise ValueError(f"task {task.name} has no real_pool in its task.yaml; oracle mode serves texts from it")
        pool = read_labelled_file(task.real_pool_path, task.labels, reject_duplicates=False)
        seeds = read_labelled_file(task.seeds_path, task.labels, reject_duplicates=False)
        heldout = read_labelled_file(task.heldout_path, task.labels, reject_duplicates=False)
        return cls.from_frames(pool, [*seeds["text"], *heldout["text"]], shuffle_seed)


@dataclass
class FakeSettings:
    latency_ms: float = 0.0
    batch_api: bool = True
    fine_tuning: bool = True
    json_schema: bool = True
    # Creation to completion of a batch: a quarter validating, the rest spread over its items.
    batch_delay_s: float = 0.2
    faults: Faults | dict[str, Any] = field(default_factory=Faults)
    oracle: Oracle | None = None  # oracle mode: answer with these real texts instead of seed variations


class BadRequest(Exception):
    """A request the real API would refuse with 400; carries the OpenAI error body."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.body = _error_body(message, "invalid_request_error", param=param, code=code)


@dataclass(frozen=True)
class Ask:
    """What one chat request asks for, parsed from its body."""

    model: str
    label: str
    n: int
    seeds: tuple[str, ...]
    prompt: str
    digest: int
    max_tokens: int | None
    judged: tuple[str, ...] = ()  # a judge request: the numbered texts to judge against the label


@dataclass
class StoredFile:
    meta: dict[str, Any]
    content: bytes


@dataclass
class FineTuningRun:
    """A fine-tuning job as the client sees it, its events (oldest first) and how it will end."""

    job: dict[str, Any]
    events: list[dict[str, Any]]
    problem: dict[str, Any] | None  # the training file's first problem: the job fails validating
    injected_failure: bool  # a ``fine_tuning_failure`` fault: the job fails while running
    trained_tokens: int


def _error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _error(status: int, message: str) -> Response:
    return _json(_error_body(message, "invalid_request_error"), status)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # Serialising by hand skips the response validation machinery: this path must stay fast.
    return Response(json.dumps(body), status_code=status, headers=headers, media_type="application/json")


def _tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _schema_ask(response_format: dict[str, Any]) -> tuple[str | None, int | None]:
    try:
        examples = response_format["json_schema"]["schema"]["properties"]["examples"]
        return examples["items"]["properties"]["label"]["enum"][0], examples.get("minItems")
    except (KeyError, IndexError, TypeError):
        return None, None


def parse_ask(payload: dict[str, Any], json_schema_supported: bool = True) -> Ask:
    """The label, N and seed examples a chat request asks for; ``BadRequest`` if it asks nothing."""
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("'messages' must be a non-empty array of message objects.", param="messages")
    texts = [_message_text(message) for message in messages]
    last_user = next((text for message, text in zip(messages[::-1], texts[::-1]) if message.get("role") == "user"), "")
    response_format = payload.get("response_format")
    response_format = response_format if isinstance(response_format, dict) else {}
    label, n = None, None
    if judge := _JUDGE_LINE.search(last_user):
        texts_part = last_user.split("Texts:", 1)[1] if "Texts:" in last_user else ""
        judged = tuple(text for _, text in _NUMBERED_LINE.findall(texts_part))
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        description = _DESCRIPTION_LINE.search(last_user)
        return Ask(
            model=str(payload.get("model", "fake-model")),
            label=judge.group(1),
            n=len(judged),
            seeds=(description.group(1) if description else judge.group(1),),
            prompt="\n".join(texts),
            digest=int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big"),
            max_tokens=payload.get("max_tokens") or payload.get("max_completion_tokens"),
            judged=judged,
        )
    if response_format.get("type") == "json_schema":
        if not json_schema_supported:
            raise BadRequest(
                "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
                param="response_format",
                code="unsupported_parameter",
            )
        label, n = _schema_ask(response_format)
    if label is None and (found := _LABEL_LINE.search(last_user)):
        label = found.group(1)
    if n is None and (found := _COUNT_LINE.search(last_user)):
        n = int(found.group(1))
    if not label or not isinstance(n, int) or not 1 <= n <= MAX_EXAMPLES:
        raise BadRequest(
            f"The fake server needs a label and 1..{MAX_EXAMPLES} examples: a json_schema 'labelled_examples' or "
            "the lines 'Label: <label>' and 'Number of examples: <N>' in the last user message.",
            param="messages",
        )
    seeds = _seed_examples(last_user)
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return Ask(
        model=str(payload.get("model", "fake-model")),
        label=label,
        n=n,
        seeds=seeds or (f"an example of {label}",),
        prompt="\n".join(texts),
        digest=int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big"),
        max_tokens=payload.get("max_completion_tokens") or payload.get("max_tokens"),
    )


def _seed_examples(prompt: str) -> tuple[str, ...]:
    """The ``- `` lines after the line ``Examples:``, up to the first other non-blank line."""
    lines = [line.strip() for line in prompt.splitlines()]
    if "Examples:" not in lines:
        return ()
    seeds = []
    for line in lines[lines.index("Examples:") + 1 :]:
        if line.startswith("- ") and line[2:].strip():
            seeds.append(line[2:].strip())
        elif line:
            break
    return tuple(seeds)


def _vary(seed: str, rng: random.Random) -> str:
    old, new = rng.choice(SWAPS)
    if rng.random() < 0.5:
        seed = re.sub(rf"\b{re.escape(old)}\b", new, seed, count=1)
    return f"{rng.choice(OPENERS)}{seed}{rng.choice(CLOSERS)}"


def _one_word_edit(text: str, rng: random.Random) -> str:
    """``text`` with one filler word inserted or, in a text of three words or more, one word deleted."""
    words = text.split()
    if len(words) >= 3 and rng.random() < 0.5:
        del words[rng.randrange(len(words))]
    else:
        words.insert(rng.randrange(len(words) + 1), rng.choice(FILLER_WORDS))
    return " ".join(words)


def example_texts(ask: Ask) -> list[str]:
    """``ask.n`` distinct variations of the seeds, none a verbatim seed, fixed by the request body."""
    rng = random.Random(ask.digest)
    seen = {seed.casefold() for seed in ask.seeds}
    texts: list[str] = []
    for _ in range(20 * ask.n):
        if len(texts) == ask.n:
            break
        text = _vary(rng.choice(ask.seeds), rng)
        if text.casefold() not in seen:
            seen.add(text.casefold())
            texts.append(text)
    while len(texts) < ask.n:  # more examples asked than variations exist: number the rest
        texts.append(f"{ask.seeds[len(texts) % len(ask.seeds)]} (variant {len(texts) + 1})")
    return texts


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    # python-multipart is not a dependency; the stdlib email parser reads form-data just as well.
    message = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    if not message.is_multipart():
        return {}
    return {
        part.get_param("name", header="content-disposition"): (part.get_filename(), part.get_payload(decode=True))
        for part in message.iter_parts()
    }


def _batch_input(content: bytes) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any] | None]:
    """The (custom_id, body) items of a batch input file, or the first problem as a batch error."""
    items: list[tuple[str, dict[str, Any]]] = []
    for line_number, line in enumerate(content.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            item = None
        if not isinstance(item, dict) or not isinstance(item.get("body"), dict) or not item.get("custom_id"):
            problem = "each line must be a JSON object with custom_id, method, url and body"
        elif item.get("url") != CHAT_ENDPOINT or item.get("method", "POST") != "POST":
            problem = f"only POST {CHAT_ENDPOINT} is supported"
        elif any(item["custom_id"] == seen for seen, _ in items):
            problem = f"duplicate custom_id {item['custom_id']!r}"
        else:
            items.append((item["custom_id"], item["body"]))
            continue
        return [], {"code": "invalid_request", "message": problem, "param": None, "line": line_number}
    if not items:
        return [], {"code": "empty_file", "message": "the input file has no requests", "param": None, "line": None}
    return items, None


def _check_fine_tuning_file(content: bytes) -> tuple[int, dict[str, Any] | None]:
    """(tokens, first problem as a job error) of a chat fine-tuning file, checked as OpenAI checks it.

    This stands for the remote service, so it does not share the client's own check (``core/finetune.py``):
    were they one function, a mistake in it would pass both.
    """
    examples, tokens = 0, 0
    for line_number, line in enumerate(content.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        problem = _fine_tuning_example_problem(line)
        if problem:
            message = f"Invalid file format. Line {line_number}: {problem}."
            return tokens, {"code": "invalid_training_file", "message": message, "param": "training_file", "line": line_number}
        examples += 1
        tokens += _tokens(len(line))
    if examples < MIN_FINE_TUNING_EXAMPLES:
        message = f"Training file has {examples} example(s), but must have at least {MIN_FINE_TUNING_EXAMPLES} examples."
        return tokens, {"code": "invalid_n_examples", "message": message, "param": "training_file", "line": None}
    return tokens, None


def _fine_tuning_example_problem(line: str) -> str | None:
    try:
        example = json.loads(line)
    except json.JSONDecodeError:
        return "not valid JSON"
    messages = example.get("messages") if isinstance(example, dict) else None
    if not isinstance(messages, list) or not messages:
        return "each line must be a JSON object with a non-empty 'messages' list"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in FINE_TUNING_ROLES:
            return f"every message needs a 'role' of {', '.join(FINE_TUNING_ROLES)}"
        if not isinstance(message.get("content"), str):
            return "every message needs a string 'content'"
    if not any(message["role"] == "assistant" for message in messages):
        return "an example needs at least one assistant message"
    return None


def _page(newest_first: list[dict[str, Any]], request: Request) -> dict[str, Any]:
    """One page of a list endpoint: ``limit`` items after the item ``after`` (cursor pagination)."""
    after = request.query_params.get("after")
    ids = [item["id"] for item in newest_first]
    if after in ids:
        newest_first = newest_first[ids.index(after) + 1 :]
    limit = int(request.query_params.get("limit", 20))
    page = newest_first[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(newest_first) > limit,
    }


def _fine_tuning_hyperparameters(payload: dict[str, Any]) -> dict[str, Any]:
    """The job's hyperparameters from ``method.supervised`` or the older top-level field, ``auto`` resolved."""
    method = payload.get("method") if isinstance(payload.get("method"), dict) else {}
    supervised = method.get("supervised") if isinstance(method.get("supervised"), dict) else {}
    given = supervised.get("hyperparameters") or payload.get("hyperparameters") or {}
    if not isinstance(given, dict):
        raise BadRequest("'hyperparameters' must be an object.", param="hyperparameters")
    n_epochs = given.get("n_epochs", "auto")
    if n_epochs != "auto" and not (isinstance(n_epochs, int) and 1 <= n_epochs <= 50):
        raise BadRequest("'n_epochs' must be 'auto' or an integer from 1 to 50.", param="hyperparameters.n_epochs")
    resolved = {"n_epochs": AUTO_EPOCHS, "batch_size": 1, "learning_rate_multiplier": 1.8}
    return {name: auto if given.get(name, "auto") == "auto" else given[name] for name, auto in resolved.items()}


class FakeOpenAI:
    """The server's state and handlers; one per app, mutated only on the event loop."""

    def __init__(self, settings: FakeSettings):
        self.settings = settings
        self.batch_tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0  # live requests, not a statistic: a reset must not lose the ones under way
        self.reset()

    def reset(self) -> None:
        """Back to the start state: the settings' faults, zero counters, nothing stored or planted, oracle cursors at 0."""
        for task in self.batch_tasks:
            task.cancel()
        self.faults = self._usable(Faults.model_validate(self.settings.faults))
        self.fault_counts: Counter[str] = Counter()
        self.hits: Counter[str] = Counter()
        self.chat_outcomes: Counter[str] = Counter()
        self.batch_item_outcomes: Counter[str] = Counter()
        self.max_in_flight = self.in_flight
        self.previous_examples: dict[str, list[dict[str, str]]] = {}
        self.oracle_cursors: Counter[str] = Counter()
        self.planted: list[dict[str, str]] = []
        self.served_keys: set[str] = set()
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_tasks = set()
        self.fine_tuning_runs: dict[str, FineTuningRun] = {}
        self.fine_tuning_outcomes: Counter[str] = Counter()
        self.ids: Counter[str] = Counter()

    def _new_id(self, prefix: str) -> str:
        self.ids[prefix] += 1
        return f"{prefix}{self.ids[prefix]:06d}"

    def _pick_fault(self, prompt: str, names: tuple[str, ...]) -> tuple[str, Selector] | None:
        for name in names:
            for position, rule in enumerate(self.faults.selectors(name)):
                if rule.match is not None and rule.match not in prompt:
                    continue
                counted = f"{name}.{position}"
                self.fault_counts[counted] += 1
                if rule.picks(self.fault_counts[counted]):
                    return name, rule
        return None

    def _parse_ask(self, payload: dict[str, Any]) -> Ask:
        """``parse_ask``, and in oracle mode a ``BadRequest`` for a label the oracle has no texts of."""
        ask = parse_ask(payload, self.settings.json_schema)
        oracle = self.settings.oracle
        if oracle is not None and not ask.judged and not oracle.texts.get(ask.label):
            raise BadRequest(f"The oracle has no real texts of label {ask.label!r}.", param="messages")
        return ask

    def _usable(self, faults: Faults) -> Faults:
        wrong = faults.wrong_label
        if wrong is not None and wrong.style == "mislabelled_text" and self.settings.oracle is None:
            raise ValueError("wrong_label style mislabelled_text needs oracle mode: only the oracle has other labels' texts")
        return faults

    def _new_texts(self, ask: Ask, count: int) -> list[str]:
        """``count`` new texts of the asked label: seed variations, or the oracle's next texts of the label."""
        oracle = self.settings.oracle
        if oracle is None:
            return example_texts(ask)[:count]
        texts = oracle.texts[ask.label]
        start = self.oracle_cursors[ask.label]
        self.oracle_cursors[ask.label] += count
        return [texts[(start + offset) % len(texts)] for offset in range(count)]

    def _examples(self, ask: Ask, name: str, rule: Selector | None) -> list[dict[str, str]]:
        """The examples of a 200 answer to ``ask`` with its fault applied, each recorded in ``planted``."""
        if isinstance(rule, RefusalFault):
            return []
        rng = random.Random(ask.digest)
        previous = self.previous_examples.get(ask.label)
        planted_as = "" if name == "ok" else name
        if isinstance(rule, DuplicateFault) and rule.style != "identical" and previous:
            edit = rule.style == "one_word_edit"
            examples = [{**example, "text": _one_word_edit(example["text"], rng)} if edit else example for example in previous]
            planted_as = f"duplicate:{rule.style}"
        elif isinstance(rule, DuplicateFault):
            examples = [{"text": self._new_texts(ask, 1)[0], "label": ask.label}] * ask.n
            planted_as = "duplicate:identical"
        elif isinstance(rule, WrongLabelFault) and rule.style == "mislabelled_text":
            others = sorted(label for label in self.settings.oracle.texts if label != ask.label)
            other = replace(ask, label=rng.choice(others))
            examples = [{"text": text, "label": ask.label} for text in self._new_texts(other, ask.n)]
            planted_as = f"wrong_label:{other.label}"
        else:
            texts = self._new_texts(ask, ask.n)
            if name == "pii":
                texts = [rng.choice(PII)(text) for text in texts]
            label = rule.label if isinstance(rule, WrongLabelFault) else ask.label
            examples = [{"text": text, "label": label} for text in texts]
        if name in ("ok", "timeout"):
            self.previous_examples[ask.label] = examples
        for example in examples:
            key = normalize_text(example["text"])
            fault = planted_as or ("repeat" if key in self.served_keys else "")
            self.planted.append(
                {"label_asked": ask.label, "text": example["text"], "label_given": example["label"], "fault": fault}
            )
            self.served_keys.add(key)
        return examples

    def _answer(self, ask: Ask, fault: tuple[str, Selector] | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, body, headers) of the chat completion for ``ask`` with ``fault`` applied."""
        name, rule = fault or ("ok", None)
        if isinstance(rule, RateLimitFault):
            message = f"Rate limit reached for {ask.model}. Please try again in {rule.retry_after:g}s."
            body = _error_body(message, "requests", code="rate_limit_exceeded")
            return 429, body, {"retry-after": f"{rule.retry_after:g}"}
        if name == "server_error":
            return 500, _error_body("The server had an error while processing your request.", "server_error"), {}
        if ask.judged:
            return 200, self._judgement(ask, name, rule), {}
        examples = self._examples(ask, name, rule)
        content: str | None = json.dumps({"examples": examples}, ensure_ascii=False)
        refusal, finish_reason = None, "stop"
        if name == "truncate":
            content, finish_reason = content[: len(content) // 2], "length"
        elif isinstance(rule, MalformedFault):
            texts = [example["text"] for example in examples]
            prose = "Sure! Here are some examples:\n- " + "\n- ".join(texts)
            content = json.dumps({"data": texts}) if rule.style == "wrong_shape" else prose
        elif isinstance(rule, RefusalFault):
            content, refusal = (None, REFUSAL) if rule.style == "refusal_field" else (CONTENT_REFUSAL, None)
        if content and isinstance(ask.max_tokens, int) and _tokens(len(content)) > ask.max_tokens:
            # Like a real model, an answer longer than the token budget stops at the budget.
            content, finish_reason = content[: ask.max_tokens * 4], "length"
        prompt_tokens, completion_tokens = _tokens(len(ask.prompt)), _tokens(len(content or refusal or ""))
        body = {
            "id": self._new_id("chatcmpl-fake"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": ask.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": refusal},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return 200, body, {}

    def _judgement(self, ask: Ask, name: str, rule: Selector | None) -> dict[str, Any]:
        """A judge's verdicts: a text belongs when it shares a word of 4+ letters with the label or its meaning."""
        vocabulary = set(re.findall(r"[a-z]{4,}", f"{ask.label} {ask.seeds[0]}".replace("_", " ").casefold()))
        verdicts = [
            {
                "id": number,
                "belongs": bool(vocabulary & set(re.findall(r"[a-z]{4,}", text.casefold()))),
                "reason": "shares words with the label"
                if vocabulary & set(re.findall(r"[a-z]{4,}", text.casefold()))
                else "off topic",
            }
            for number, text in enumerate(ask.judged, start=1)
        ]
        content = json.dumps({"verdicts": verdicts})
        finish_reason = "stop"
        if name == "truncate":
            content, finish_reason = content[: len(content) // 2], "length"
        elif isinstance(rule, MalformedFault):
            content = "Looks fine to me."
        prompt_tokens, completion_tokens = _tokens(len(ask.prompt)), _tokens(len(content))
        return {
            "id": self._new_id("chatcmpl-fake"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": ask.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    async def chat_completions(self, request: Request) -> Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.settings.latency_ms:
                await asyncio.sleep(self.settings.latency_ms / 1000)
            try:
                payload = json.loads(await request.body())
                if not isinstance(payload, dict):
                    raise BadRequest("The request body must be a JSON object.")
                ask = self._parse_ask(payload)
            except json.JSONDecodeError:
                self.chat_outcomes["bad_request"] += 1
                return _error(400, "We could not parse the JSON body of your request.")
            except BadRequest as refused:
                self.chat_outcomes["bad_request"] += 1
                return _json(refused.body, 400)
            fault = self._pick_fault(ask.prompt, LIVE_FAULTS)
            if fault and isinstance(fault[1], TimeoutFault):
                await _stall(request, fault[1].seconds)
            status, body, headers = self._answer(ask, fault)
            self.chat_outcomes[fault[0] if fault else "ok"] += 1
            return _json(body, status, headers)
        finally:
            self.in_flight -= 1

    async def upload_file(self, request: Request) -> Response:
        fields = _parse_multipart(request.headers.get("content-type", ""), await request.body())
        filename, content = fields.get("file", (None, None))
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if content is None or not purpose:
            return _error(400, "A multipart 'file' and a 'purpose' are required.")
        if purpose not in FILE_PURPOSES:
            return _error(400, f"Invalid value for 'purpose': {purpose!r}; expected one of {', '.join(FILE_PURPOSES)}.")
        file_id = self._new_id("file-fake")
        self.files[file_id] = StoredFile(self._file_meta(file_id, filename or "upload.jsonl", purpose, len(content)), content)
        return _json(self.files[file_id].meta)

    @staticmethod
    def _file_meta(file_id: str, filename: str, purpose: str, size: int) -> dict[str, Any]:
        return {
            "id": file_id,
            "object": "file",
            "bytes": size,
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }

    def _stored(self, request: Request) -> StoredFile | Response:
        file_id = request.path_params["file_id"]
        return self.files.get(file_id) or _error(404, f"No such File object: {file_id}")

    async def get_file(self, request: Request) -> Response:
        stored = self._stored(request)
        return _json(stored.meta) if isinstance(stored, StoredFile) else stored

    async def get_file_content(self, request: Request) -> Response:
        stored = self._stored(request)
        return Response(stored.content, media_type="application/octet-stream") if isinstance(stored, StoredFile) else stored

    async def create_batch(self, request: Request) -> Response:
        payload = json.loads(await request.body() or b"{}")
        input_file_id = payload.get("input_file_id")
        if input_file_id not in self.files:
            return _error(400, f"Invalid 'input_file_id': {input_file_id!r} is not an uploaded file.")
        if payload.get("endpoint") != CHAT_ENDPOINT:
            return _error(400, f"Invalid 'endpoint': only {CHAT_ENDPOINT} is supported.")
        now = int(time.time())
        batch: dict[str, Any] = {
            "id": self._new_id("batch_fake"),
            "object": "batch",
            "endpoint": CHAT_ENDPOINT,
            "errors": None,
            "input_file_id": input_file_id,
            "completion_window": payload.get("completion_window", "24h"),
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 24 * 3600,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": payload.get("metadata"),
        }
        self.batches[batch["id"]] = batch
        task = asyncio.create_task(self._run_batch(batch))
        self.batch_tasks.add(task)
        task.add_done_callback(self.batch_tasks.discard)
        return _json(batch)

    async def _run_batch(self, batch: dict[str, Any]) -> None:
        await asyncio.sleep(self.settings.batch_delay_s / 4)
        items, problem = _batch_input(self.files[batch["input_file_id"]].content)
        if problem and batch["status"] == "validating":
            batch.update(status="failed", failed_at=int(time.time()), errors={"object": "list", "data": [problem]})
            return
        counts = batch["request_counts"]
        counts["total"] = len(items)
        if batch["status"] == "validating":
            batch.update(status="in_progress", in_progress_at=int(time.time()))
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        expired = False
        for custom_id, body in items:
            await asyncio.sleep(self.settings.batch_delay_s * 3 / 4 / len(items))
            if batch["status"] == "cancelling":
                break
            line, outcome = self._batch_item(custom_id, body)
            self.batch_item_outcomes[outcome] += 1
            expired = expired or outcome == "batch_expire"
            succeeded = line["response"] is not None and line["response"]["status_code"] == 200
            (outputs if succeeded else errors).append(line)
            counts["completed" if succeeded else "failed"] += 1
        batch["output_file_id"] = self._store_output(outputs, batch["id"], "output")
        batch["error_file_id"] = self._store_output(errors, batch["id"], "errors")
        final = "cancelled" if batch["status"] == "cancelling" else "expired" if expired else "completed"
        batch.update({"status": final, f"{final}_at": int(time.time())})

    def _batch_item(self, custom_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        line: dict[str, Any] = {"id": self._new_id("batch_req_fake"), "custom_id": custom_id, "response": None, "error": None}
        try:
            ask = self._parse_ask(body)
        except BadRequest as refused:
            line["response"] = {"status_code": 400, "request_id": self._new_id("req_fake"), "body": refused.body}
            return line, "bad_request"
        fault = self._pick_fault(ask.prompt, BATCH_FAULTS)
        if fault and fault[0] == "batch_expire":
            message = "This request could not be executed before the completion window expired."
            line["error"] = {"code": "batch_expired", "message": message}
            return line, "batch_expire"
        status, answer, _ = self._answer(ask, fault)
        line["response"] = {"status_code": status, "request_id": self._new_id("req_fake"), "body": answer}
        return line, fault[0] if fault else "ok"

    def _store_output(self, lines: list[dict[str, Any]], batch_id: str, kind: str) -> str | None:
        if not lines:
            return None
        content = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        file_id = self._new_id("file-fake")
        meta = self._file_meta(file_id, f"{batch_id}_{kind}.jsonl", "batch_output", len(content))
        self.files[file_id] = StoredFile(meta, content)
        return file_id

    async def get_batch(self, request: Request) -> Response:
        batch = self.batches.get(request.path_params["batch_id"])
        return _json(batch) if batch else _error(404, f"No batch found with id '{request.path_params['batch_id']}'.")

    async def cancel_batch(self, request: Request) -> Response:
        batch = self.batches.get(request.path_params["batch_id"])
        if batch is None:
            return _error(404, f"No batch found with id '{request.path_params['batch_id']}'.")
        if batch["status"] not in ("validating", "in_progress"):
            return _error(409, f"Cannot cancel a batch with status '{batch['status']}'.")
        batch.update(status="cancelling", cancelling_at=int(time.time()))
        return _json(batch)

    async def list_batches(self, request: Request) -> Response:
        return _json(_page(list(self.batches.values())[::-1], request))

    async def create_fine_tuning_job(self, request: Request) -> Response:
        try:
            payload = json.loads(await request.body() or b"{}")
            if not isinstance(payload, dict):
                raise BadRequest("The request body must be a JSON object.")
            run = self._new_fine_tuning_run(payload)
        except json.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.")
        except BadRequest as refused:
            return _json(refused.body, 400)
        self.fine_tuning_runs[run.job["id"]] = run
        return _json(run.job)

    def _new_fine_tuning_run(self, payload: dict[str, Any]) -> FineTuningRun:
        model = payload.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("Missing required parameter: 'model'.", param="model")
        training = self._fine_tuning_upload(payload.get("training_file"), "training_file")
        if payload.get("validation_file") is not None:
            self._fine_tuning_upload(payload["validation_file"], "validation_file")
        suffix = payload.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > MAX_SUFFIX_CHARS):
            raise BadRequest(f"'suffix' must be a string of at most {MAX_SUFFIX_CHARS} characters.", param="suffix")
        hyperparameters = _fine_tuning_hyperparameters(payload)
        tokens, problem = _check_fine_tuning_file(training.content)
        job_id = self._new_id("ftjob-fake")
        seed = payload.get("seed")
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "model": model,
            "created_at": int(time.time()),
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": "org-fake",
            "result_files": [],
            "status": "validating_files",
            "training_file": payload["training_file"],
            "validation_file": payload.get("validation_file"),
            "hyperparameters": hyperparameters,
            "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
            "trained_tokens": None,
            "error": None,
            "seed": seed if isinstance(seed, int) else self.ids["ftjob-fake"],  # the API generates one when none is given
            "estimated_finish": None,
            "integrations": [],
            "metadata": payload.get("metadata"),
            "user_provided_suffix": suffix,
        }
        injected_failure = self._pick_fault(f"{model} {suffix or ''}", ("fine_tuning_failure",)) is not None
        run = FineTuningRun(job, [], problem, injected_failure, tokens * hyperparameters["n_epochs"])
        self._fine_tuning_event(run, f"Created fine-tuning job: {job_id}")
        self._fine_tuning_event(run, f"Validating training file: {job['training_file']}")
        return run

    def _fine_tuning_upload(self, file_id: Any, param: str) -> StoredFile:
        stored = self.files.get(file_id) if isinstance(file_id, str) else None
        if stored is None:
            raise BadRequest(f"Invalid '{param}': {file_id!r} is not an uploaded file.", param=param, code="invalid_file_id")
        if stored.meta["purpose"] != FINE_TUNE_PURPOSE:
            message = f"File {file_id} has purpose {stored.meta['purpose']!r}; fine-tuning needs purpose {FINE_TUNE_PURPOSE!r}."
            raise BadRequest(message, param=param, code="invalid_file_purpose")
        return stored

    def _fine_tuning_event(self, run: FineTuningRun, message: str, level: str = "info") -> None:
        event_id = self._new_id("ftevent-fake")
        run.events.append(
            {
                "id": event_id,
                "object": "fine_tuning.job.event",
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "data": {},
                "type": "message",
            }
        )

    def _advance(self, run: FineTuningRun) -> None:
        """One status on: an invalid file fails validating, an injected failure fails running."""
        job = run.job
        if job["status"] == "validating_files" and run.problem:
            self._finish(run, "failed", run.problem)
        elif job["status"] == "running" and run.injected_failure:
            self._finish(run, "failed", INTERNAL_ERROR)
        elif job["status"] == "running":
            job["fine_tuned_model"] = f"ft:{job['model']}:org-fake:{job['user_provided_suffix'] or ''}:{job['id'][-6:]}"
            job["trained_tokens"] = run.trained_tokens
            self._fine_tuning_event(run, f"New fine-tuned model created: {job['fine_tuned_model']}")
            self._finish(run, "succeeded")
        elif job["status"] in NEXT_FINE_TUNING_STATUS:
            job["status"] = NEXT_FINE_TUNING_STATUS[job["status"]]
            self._fine_tuning_event(run, FINE_TUNING_EVENTS[job["status"]])

    def _finish(self, run: FineTuningRun, status: str, error: dict[str, Any] | None = None) -> None:
        run.job.update(status=status, finished_at=int(time.time()), error=error)
        self.fine_tuning_outcomes[error["code"] if error else status] += 1
        self._fine_tuning_event(run, error["message"] if error else FINE_TUNING_EVENTS[status], "error" if error else "info")

    def _fine_tuning_run(self, request: Request) -> FineTuningRun | Response:
        job_id = request.path_params["job_id"]
        return self.fine_tuning_runs.get(job_id) or _error(404, f"No fine-tuning job found with id '{job_id}'.")

    async def get_fine_tuning_job(self, request: Request) -> Response:
        run = self._fine_tuning_run(request)
        if isinstance(run, Response):
            return run
        self._advance(run)
        return _json(run.job)

    async def list_fine_tuning_jobs(self, request: Request) -> Response:
        return _json(_page([run.job for run in self.fine_tuning_runs.values()][::-1], request))

    async def cancel_fine_tuning_job(self, request: Request) -> Response:
        run = self._fine_tuning_run(request)
        if isinstance(run, Response):
            return run
        if run.job["status"] not in OPEN_FINE_TUNING_STATUSES:
            return _error(409, f"Cannot cancel a fine-tuning job with status '{run.job['status']}'.")
        self._finish(run, "cancelled")
        return _json(run.job)

    async def list_fine_tuning_events(self, request: Request) -> Response:
        run = self._fine_tuning_run(request)
        return run if isinstance(run, Response) else _json(_page(run.events[::-1], request))

    async def set_faults(self, request: Request) -> Response:
        try:
            self.faults = self._usable(Faults.model_validate_json(await request.body() or b"{}"))
        except (ValidationError, ValueError) as invalid:
            return _error(422, str(invalid))
        self.fault_counts.clear()
        return _json({"faults": self.faults.model_dump(exclude_none=True)})

    async def reset_state(self, request: Request) -> Response:
        self.reset()
        return _json({"reset": True})

    async def planted_examples(self, request: Request) -> Response:
        return _json(self.planted)

    async def stats(self, request: Request) -> Response:
        return _json(
            {
                "hits": dict(self.hits),
                "chat": dict(self.chat_outcomes),
                "batch_items": dict(self.batch_item_outcomes),
                "fine_tuning": dict(self.fine_tuning_outcomes),
                "max_concurrent_chat": self.max_in_flight,
                "faults": self.faults.model_dump(exclude_none=True),
            }
        )


async def _stall(request: Request, seconds: float) -> None:
    """Wait ``seconds``, or less if the client hangs up first, so shutdown never waits on a stall."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(_disconnected(request), timeout=seconds)


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(settings: FakeSettings | None = None) -> FastAPI:
    """The fake server as an ASGI app; ``app.state.fake`` is its state, for in-process control."""
    fake = FakeOpenAI(settings or FakeSettings())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for task in fake.batch_tasks:
            task.cancel()

    app = FastAPI(title="fake OpenAI", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.fake = fake
    routes = [("POST", CHAT_ENDPOINT, fake.chat_completions)]
    if fake.settings.batch_api or fake.settings.fine_tuning:
        routes += [
            ("POST", "/v1/files", fake.upload_file),
            ("GET", "/v1/files/{file_id}", fake.get_file),
            ("GET", "/v1/files/{file_id}/content", fake.get_file_content),
        ]
    if fake.settings.batch_api:
        routes += [
            ("POST", "/v1/batches", fake.create_batch),
            ("GET", "/v1/batches", fake.list_batches),
            ("GET", "/v1/batches/{batch_id}", fake.get_batch),
            ("POST", "/v1/batches/{batch_id}/cancel", fake.cancel_batch),
        ]
    if fake.settings.fine_tuning:
        routes += [
            ("POST", "/v1/fine_tuning/jobs", fake.create_fine_tuning_job),
            ("GET", "/v1/fine_tuning/jobs", fake.list_fine_tuning_jobs),
            ("GET", "/v1/fine_tuning/jobs/{job_id}", fake.get_fine_tuning_job),
            ("POST", "/v1/fine_tuning/jobs/{job_id}/cancel", fake.cancel_fine_tuning_job),
            ("GET", "/v1/fine_tuning/jobs/{job_id}/events", fake.list_fine_tuning_events),
        ]
    for method, path, handler in routes:
        app.add_route(path, _counted(fake, f"{method} {path}", handler), methods=[method])
    app.add_route("/_control/faults", fake.set_faults, methods=["POST"])
    app.add_route("/_control/reset", fake.reset_state, methods=["POST"])
    app.add_route("/_control/stats", fake.stats, methods=["GET"])
    app.add_route("/_control/planted", fake.planted_examples, methods=["GET"])

    @app.exception_handler(HTTPException)
    async def openai_style_error(request: Request, error: HTTPException) -> Response:
        # Unknown paths (and the Batch and fine-tuning APIs when switched off) answer like the real API's 404.
        return _error(error.status_code, f"Invalid URL ({request.method} {request.url.path})")

    return app


def _counted(fake: FakeOpenAI, key: str, handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        fake.hits[key] += 1
        return await handler(request)

    return endpoint


@contextlib.contextmanager
def serving_in_background(settings: FakeSettings | None = None, port: int = 0, start_timeout_s: float = 10.0) -> Iterator[str]:
    """Serve ``create_app(settings)`` on 127.0.0.1 in a thread until the block ends; yields the root URL.

    ``port=0`` takes a free port. Binding the socket here and handing it to uvicorn leaves no
    window for another process to take the port.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot serve the fake OpenAI server on 127.0.0.1:{port} ({exc.strerror}); free the port") from None
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"fake-openai-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the fake OpenAI server did not start on port {port}")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake OpenAI-compatible server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every chat answer")
    parser.add_argument("--batch-delay-s", type=float, default=0.2, help="creation to completion of a batch")
    parser.add_argument("--no-batch-api", action="store_true", help="answer /v1/batches with 404")
    parser.add_argument("--no-fine-tuning", action="store_true", help="answer /v1/fine_tuning with 404")
    parser.add_argument("--no-json-schema", action="store_true", help="refuse response_format json_schema with 400")
    parser.add_argument(
        "--oracle", type=Path, metavar="TASK_DIR", help="oracle mode: answer with real texts of the task's real_pool"
    )
    parser.add_argument("--faults", choices=sorted(FAULT_PRESETS), help="start with this fault preset (bench: BENCH_FAULTS)")
    args = parser.parse_args(argv)
    oracle = None
    if args.oracle:
        from synth_assets.core.task_config import load_task  # only oracle mode reads a task

        oracle = Oracle.from_task(load_task(args.oracle))
        counts = {label: len(texts) for label, texts in oracle.texts.items()}
        print(
            f"oracle: {sum(counts.values())} real texts of {len(counts)} labels, {min(counts.values())} to "
            f"{max(counts.values())} per label",
            file=sys.stderr,
        )
    settings = FakeSettings(
        latency_ms=args.latency_ms,
        batch_api=not args.no_batch_api,
        fine_tuning=not args.no_fine_tuning,
        json_schema=not args.no_json_schema,
        batch_delay_s=args.batch_delay_s,
        faults=FAULT_PRESETS[args.faults] if args.faults else Faults(),
        oracle=oracle,
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
