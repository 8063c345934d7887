"""The ``openai-batch`` backend: a batch's requests sent through the Batch API at the batch price.

Life of a partition (each step is idempotent and driven by the ``llm_batches`` sensor or the CLI):

1. :func:`submit` writes the requests not yet answered as JSONL (``custom_id`` = request key),
   uploads it, creates a Batch API batch and records its id in ``<lake>/_llm_batches/<partition>.json``.
   An endpoint without a Batch API (404) is recorded as ``sync_fallback``: the partition then runs
   through the synchronous client instead.
2. :func:`poll` asks for the status of open batches. A finished batch (completed, expired,
   cancelled, failed) is read back: every answer goes into the response cache at the batch
   price; requests that expired or failed are resubmitted *by key only*, at most
   ``batch_resubmissions`` times. When nothing is open any more, the job is ``done``.
3. ``generated`` then builds its rows from the cache, making no call; a request the Batch API
   never answered becomes ``request_failed`` rows saying why.

:func:`cancel` cancels the open batches; what they answered before is kept, the rest is not sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import openai
import pandas as pd

from synth_assets.core.generation import budget_left
from synth_assets.core.lake import Lake
from synth_assets.core.llm_cache import AnswerCache, CachedAnswer
from synth_assets.core.pricing import Price, price_for
from synth_assets.core.prompts import GenerationRequest, build_requests
from synth_assets.core.task_config import TaskConfig

RECORDS = "_llm_batches"
CHAT_ENDPOINT = "/v1/chat/completions"
OPEN_STATUSES = ("validating", "in_progress", "finalizing", "cancelling")
CLIENT_RETRIES = 3


class BatchApiError(RuntimeError):
    """The Batch API refused a step; the message says which and why."""


@dataclass(frozen=True)
class BatchJob:
    """What is known about one partition's Batch API work (the record in the lake)."""

    partition: str
    state: str  # submitted | done | sync_fallback | cancelled
    submissions: list[dict]  # {id, keys, status, input_file_id, submitted_at}
    resubmissions: int

    @property
    def open_ids(self) -> list[str]:
        return [s["id"] for s in self.submissions if s["status"] in OPEN_STATUSES]

    @property
    def settled(self) -> bool:
        """Nothing more will arrive: ``generated`` can be built."""
        return self.state in ("done", "sync_fallback", "cancelled")

    def as_dict(self) -> dict:
        return {
            "partition": self.partition,
            "state": self.state,
            "submissions": self.submissions,
            "resubmissions": self.resubmissions,
        }


def load_job(lake: Lake, partition: str) -> BatchJob | None:
    if not lake.sidecar_path(RECORDS, partition).is_file():
        return None
    record = lake.read_json(RECORDS, partition)
    return BatchJob(record["partition"], record["state"], record["submissions"], record["resubmissions"])


def _save(lake: Lake, job: BatchJob) -> BatchJob:
    lake.write_json(RECORDS, job.partition, job.as_dict())
    return job


def _client(task: TaskConfig, api_key: str | None) -> openai.OpenAI:
    llm = task.generation.llm
    if not api_key:
        raise BatchApiError(f"the API key variable {llm.api_key_env} is not set; export it to use the Batch API")
    return openai.OpenAI(base_url=llm.base_url, api_key=api_key, max_retries=CLIENT_RETRIES, timeout=llm.timeout_seconds)


def _jsonl(requests: list[GenerationRequest]) -> bytes:
    lines = (
        json.dumps({"custom_id": r.key, "method": "POST", "url": CHAT_ENDPOINT, "body": {"messages": r.messages, **r.params}})
        for r in requests
    )
    return ("\n".join(lines) + "\n").encode("utf-8")


def _send(client: openai.OpenAI, partition: str, requests: list[GenerationRequest]) -> dict:
    uploaded = client.files.create(file=(f"{partition}.jsonl", _jsonl(requests)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint=CHAT_ENDPOINT,
        completion_window="24h",
        metadata={"synth_assets_partition": partition},
    )
    return {
        "id": batch.id,
        "status": batch.status,
        "input_file_id": uploaded.id,
        "keys": [r.key for r in requests],
        "submitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def batch_requests(task: TaskConfig, partition: str, seeds: pd.DataFrame, attempts: dict[str, int]) -> list[GenerationRequest]:
    """The requests of ``partition``: the sync path's requests, so both share one cache."""
    return build_requests(task, partition, seeds, task.generation.llm.structured_output, attempts)


def submit(
    task: TaskConfig,
    partition: str,
    seeds: pd.DataFrame,
    lake: Lake,
    cache: AnswerCache,
    api_key: str | None,
    attempts: dict[str, int],
    spent_by_task_usd: float = 0.0,
) -> BatchJob:
    """Send the unanswered requests of ``partition`` as one Batch API batch (once; later calls return the record).

    The expected cost at the batch price must fit the task's budgets (:class:`BudgetError` otherwise).
    """
    existing = load_job(lake, partition)
    if existing is not None:
        return existing
    requests = batch_requests(task, partition, seeds, attempts)
    budget_left(task, partition, requests, cache, seeds, spent_by_task_usd, at_batch_price=True)
    cached = cache.get_many([r.key for r in requests])
    pending = [r for r in requests if r.key not in cached]
    if not pending:
        return _save(lake, BatchJob(partition, "done", [], 0))
    try:
        submission = _send(_client(task, api_key), partition, pending)
    except openai.NotFoundError:
        return _save(lake, BatchJob(partition, "sync_fallback", [], 0))
    except openai.APIError as error:
        raise BatchApiError(f"submitting {len(pending)} requests of {partition} to the Batch API failed: {error}") from None
    return _save(lake, BatchJob(partition, "submitted", [submission], 0))


def _answer(key: str, body: dict, model: str, price: Price) -> CachedAnswer:
    choice = body["choices"][0]
    usage = body.get("usage") or {}
    prompt_tokens, completion_tokens = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    return CachedAnswer(
        key=key,
        model=model,
        content=choice["message"].get("content"),
        refusal=choice["message"].get("refusal"),
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=price.cost(prompt_tokens, completion_tokens, batch=True),
        billing="batch",
    )


def _ingest(client: openai.OpenAI, batch, cache: AnswerCache, model: str, price: Price) -> int:
    """Store every answered item of a finished batch in the cache; returns how many."""
    stored = 0
    if batch.output_file_id:
        for line in client.files.content(batch.output_file_id).text.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            response = item.get("response") or {}
            if response.get("status_code") == 200:
                cache.put(_answer(item["custom_id"], response["body"], model, price))
                stored += 1
    return stored


def poll(
    task: TaskConfig,
    partition: str,
    seeds: pd.DataFrame,
    lake: Lake,
    cache: AnswerCache,
    api_key: str | None,
    attempts: dict[str, int],
) -> BatchJob:
    """Advance ``partition``'s job: read finished batches, resubmit what they did not answer."""
    job = load_job(lake, partition)
    if job is None or job.settled:
        return job
    llm = task.generation.llm
    price = price_for(llm.model, llm.price_per_million_tokens)
    client = _client(task, api_key)
    submissions = []
    for submission in job.submissions:
        if submission["status"] in OPEN_STATUSES:
            batch = client.batches.retrieve(submission["id"])
            if batch.status not in OPEN_STATUSES:
                _ingest(client, batch, cache, llm.model, price)
            submission = submission | {"status": batch.status}
        submissions.append(submission)
    job = BatchJob(partition, job.state, submissions, job.resubmissions)
    if job.open_ids:
        return _save(lake, job)
    if any(s["status"] == "cancelled" for s in submissions):
        return _save(lake, BatchJob(partition, "cancelled", submissions, job.resubmissions))
    requests = batch_requests(task, partition, seeds, attempts)
    cached = cache.get_many([r.key for r in requests])
    unanswered = [r for r in requests if r.key not in cached]
    if unanswered and job.resubmissions < llm.batch_resubmissions:
        submissions.append(_send(client, partition, unanswered))
        return _save(lake, BatchJob(partition, "submitted", submissions, job.resubmissions + 1))
    return _save(lake, BatchJob(partition, "done", submissions, job.resubmissions))


def cancel(task: TaskConfig, partition: str, lake: Lake, api_key: str | None) -> BatchJob:
    """Cancel the open batches of ``partition``; answers already in stay, nothing else is sent."""
    job = load_job(lake, partition)
    if job is None or job.settled:
        return job
    client = _client(task, api_key)
    submissions = []
    for submission in job.submissions:
        if submission["status"] in OPEN_STATUSES:
            submission = submission | {"status": client.batches.cancel(submission["id"]).status}
        submissions.append(submission)
    return _save(lake, BatchJob(partition, job.state, submissions, job.resubmissions))


def unanswered_reason(job: BatchJob | None) -> str:
    """Why a request of a settled job has no answer, for its ``request_failed`` rows."""
    if job is None:
        return "never submitted to the Batch API"
    if job.state == "cancelled":
        return "the Batch API batch was cancelled before this request was answered"
    statuses = ", ".join(f"{s['id']}: {s['status']}" for s in job.submissions)
    return f"the Batch API did not answer it after {job.resubmissions} resubmission(s) ({statuses})"
