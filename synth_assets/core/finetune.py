"""The fine-tuning handoff: a dataset version's chat JSONL sent to an OpenAI-compatible fine-tuning API.

:func:`hand_off` checks the version's fine-tuning JSONL line by line before anything leaves the machine, uploads it
(purpose ``fine-tune``), starts a job and records it in ``<lake>/_finetune_jobs/<version>.json``. It is idempotent:
when the version's content hash and the base model already have a job, that job's status is refreshed and nothing
is submitted; a rebuilt version (another content hash) or another model gets a new job, and the record keeps every
job of the version. A failed or cancelled job is submitted again only when asked (``resubmit_failed``).

The caller reads the API key from the variable ``finetune.api_key_env`` names and passes it in: it never enters a
record, and it is masked in every error message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import openai
from openai.types.fine_tuning import FineTuningJob

from synth_assets.core.lake import Lake
from synth_assets.core.task_config import TASK_FILE, FinetuneConfig, TaskConfig

HANDOFF_VERSION = "2026.11.1"
RECORDS = "_finetune_jobs"
OPEN_STATUSES = ("validating_files", "queued", "running")
ENDED_WITHOUT_MODEL = ("failed", "cancelled")
ROLES = ("system", "user", "assistant")
MIN_EXAMPLES = 10  # the fewest OpenAI accepts in a training file
CLIENT_RETRIES = 3
CLIENT_TIMEOUT_S = 60.0
KEY_MASK = "***"


class FinetuneError(RuntimeError):
    """The handoff cannot go on; the message says which step failed and why, never the API key."""


@dataclass(frozen=True)
class FinetuneJob:
    """One fine-tuning job of a dataset version, as recorded in the lake."""

    version: str
    content_hash: str
    model: str
    examples: int
    file_id: str
    job_id: str
    status: str
    fine_tuned_model: str | None
    trained_tokens: int | None
    error: dict | None  # {code, message, param, ...} of a failed job
    created_at: str
    updated_at: str

    @property
    def open(self) -> bool:
        """The API may still change its status."""
        return self.status in OPEN_STATUSES


def settings_of(task: TaskConfig) -> FinetuneConfig:
    """The task's ``finetune`` section; :class:`FinetuneError` saying how to add it when there is none."""
    if task.finetune is None:
        raise FinetuneError(
            f"task {task.name} has no finetune section: add one to {task.path(TASK_FILE)}, at least "
            "`finetune: {model: <base model>}` (see docs/finetuning.md)"
        )
    return task.finetune


def check_training_file(jsonl: str, source: str) -> int:
    """The number of chat examples in ``jsonl``; :class:`FinetuneError` naming the first line OpenAI would refuse."""
    examples = 0
    for line_number, line in enumerate(jsonl.splitlines(), start=1):
        if not line.strip():
            continue
        problem = _example_problem(line)
        if problem:
            raise FinetuneError(f"{source} line {line_number}: {problem}; nothing was uploaded")
        examples += 1
    if examples < MIN_EXAMPLES:
        raise FinetuneError(f"{source} has {examples} example(s); fine-tuning needs at least {MIN_EXAMPLES}")
    return examples


def _example_problem(line: str) -> str | None:
    try:
        example = json.loads(line)
    except json.JSONDecodeError as error:
        return f"not valid JSON ({error.msg})"
    messages = example.get("messages") if isinstance(example, dict) else None
    if not isinstance(messages, list) or not messages:
        return "not a JSON object with a non-empty 'messages' list"
    for position, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"message {position} has no role of {', '.join(ROLES)}"
        if not isinstance(message.get("content"), str):
            return f"message {position} ({message['role']}) has no text 'content'"
    if not any(message["role"] == "assistant" for message in messages):
        return "no assistant message"
    return None


def record_path(lake: Lake, version: str) -> Path:
    return lake.sidecar_path(RECORDS, version)


def load_jobs(lake: Lake, version: str) -> list[FinetuneJob]:
    """Every job of ``version``, oldest first."""
    if not record_path(lake, version).is_file():
        return []
    return [FinetuneJob(**job) for job in lake.read_json(RECORDS, version)["jobs"]]


def _save(lake: Lake, version: str, jobs: list[FinetuneJob]) -> None:
    lake.write_json(RECORDS, version, {"version": version, "jobs": [asdict(job) for job in jobs]})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _FinetuneApi:
    """The fine-tuning endpoint of a task; every API error becomes a :class:`FinetuneError` with the key masked."""

    def __init__(self, settings: FinetuneConfig, api_key: str | None):
        if not api_key:
            raise FinetuneError(f"the API key variable {settings.api_key_env} is not set; export it to hand off for fine-tuning")
        self.settings = settings
        self._api_key = api_key
        self._client = openai.OpenAI(
            base_url=settings.base_url, api_key=api_key, max_retries=CLIENT_RETRIES, timeout=CLIENT_TIMEOUT_S
        )

    @contextmanager
    def _step(self, what: str) -> Iterator[None]:
        try:
            yield
        except openai.APIError as error:
            # Servers may echo the key they refused; it must not reach a log or the Dagster UI.
            message = f"{what} at {self.settings.base_url} failed: {error}".replace(self._api_key, KEY_MASK)
            raise FinetuneError(message) from None

    def upload(self, version: str, jsonl: str) -> str:
        with self._step(f"uploading {version}.jsonl"):
            return self._client.files.create(file=(f"{version}.jsonl", jsonl.encode("utf-8")), purpose="fine-tune").id

    def create(self, version: str, file_id: str) -> FineTuningJob:
        settings = self.settings
        options = {"suffix": settings.suffix, "seed": settings.seed}
        if settings.n_epochs is not None:
            options["method"] = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": settings.n_epochs}}}
        with self._step(f"starting a fine-tuning job of {settings.model} on {file_id}"):
            return self._client.fine_tuning.jobs.create(
                model=settings.model,
                training_file=file_id,
                metadata={"synth_assets_version": version},
                **{name: value for name, value in options.items() if value is not None},
            )

    def retrieve(self, job_id: str) -> FineTuningJob:
        with self._step(f"asking for the status of fine-tuning job {job_id}"):
            return self._client.fine_tuning.jobs.retrieve(job_id)


def _error_of(remote: FineTuningJob) -> dict | None:
    # Some servers send an empty error object for a job that has not failed.
    details = remote.error.to_dict() if remote.error else {}
    return details or None


def _with_remote(job: FinetuneJob, remote: FineTuningJob) -> FinetuneJob:
    return replace(
        job,
        status=remote.status,
        fine_tuned_model=remote.fine_tuned_model,
        trained_tokens=remote.trained_tokens,
        error=_error_of(remote),
        updated_at=_now(),
    )


def _submit(api: _FinetuneApi, version: str, content_hash: str, jsonl: str, examples: int) -> FinetuneJob:
    file_id = api.upload(version, jsonl)
    remote = api.create(version, file_id)
    now = _now()
    job = FinetuneJob(
        version, content_hash, api.settings.model, examples, file_id, remote.id, remote.status, None, None, None, now, now
    )
    return _with_remote(job, remote)


def _refreshed(api: _FinetuneApi, job: FinetuneJob) -> FinetuneJob:
    return _with_remote(job, api.retrieve(job.job_id)) if job.open else job


def _replacing(jobs: list[FinetuneJob], job: FinetuneJob) -> list[FinetuneJob]:
    if any(known.job_id == job.job_id for known in jobs):
        return [job if known.job_id == job.job_id else known for known in jobs]
    return [*jobs, job]


def hand_off(
    settings: FinetuneConfig,
    version: str,
    content_hash: str,
    training_jsonl: str,
    lake: Lake,
    api_key: str | None,
    *,
    resubmit_failed: bool = False,
) -> tuple[FinetuneJob, bool]:
    """Submit ``version`` for fine-tuning once per (content hash, model); later calls refresh that job's status.

    Returns the job and whether this call submitted it. ``training_jsonl`` is checked before any call
    (:class:`FinetuneError` naming the line); every API error is a :class:`FinetuneError` too.
    """
    examples = check_training_file(training_jsonl, f"{version}.jsonl")
    jobs = load_jobs(lake, version)
    api = _FinetuneApi(settings, api_key)
    current = next((job for job in reversed(jobs) if (job.content_hash, job.model) == (content_hash, settings.model)), None)
    submitting = current is None or (resubmit_failed and current.status in ENDED_WITHOUT_MODEL)
    job = _submit(api, version, content_hash, training_jsonl, examples) if submitting else _refreshed(api, current)
    _save(lake, version, _replacing(jobs, job))
    return job, submitting


def refresh(settings: FinetuneConfig, version: str, lake: Lake, api_key: str | None) -> list[FinetuneJob]:
    """Ask for the status of ``version``'s open jobs, record it, and return every job of the version (oldest first)."""
    jobs = load_jobs(lake, version)
    if not any(job.open for job in jobs):
        return jobs
    api = _FinetuneApi(settings, api_key)
    jobs = [_refreshed(api, job) for job in jobs]
    _save(lake, version, jobs)
    return jobs
