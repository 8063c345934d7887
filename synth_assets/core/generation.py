"""Turns a batch's seeds into generation attempts with full provenance, whatever the backend.

Every attempt becomes exactly one row of ``generated``, successful or not, so counts reconcile
downstream: attempts = accepted + rejected. Row ids and request keys are content-addressed, so
the same inputs always name the same attempt.

Backends (``generation.backend`` in task.yaml):
- ``template``: offline recombination of the seeds (:mod:`synth_assets.core.template_generator`).
- ``openai``: any OpenAI-compatible chat endpoint (:mod:`synth_assets.core.llm_client`); an
  attempt is one example slot of a request, and a request's tokens and cost are booked on its
  first slot so that sums over rows are exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd

from synth_assets.core import template_generator
from synth_assets.core.attempts import TOP_UP_TABLE
from synth_assets.core.hashing import derive_seed, stable_hash
from synth_assets.core.lake import Lake
from synth_assets.core.llm_cache import AnswerCache, CachedAnswer
from synth_assets.core.llm_client import Failure, StructuredOutputUnsupported, prompt_tokens_of, run_requests
from synth_assets.core.llm_generator import raw_text, slot_outcomes
from synth_assets.core.pricing import price_for
from synth_assets.core.prompts import PROMPT_ID, PROMPT_VERSION, GenerationRequest, build_requests, refinement_request
from synth_assets.core.quotas import uniform_quotas
from synth_assets.core.task_config import GateConfig, TaskConfig

GENERATED_COLUMNS = [
    "row_id",
    "batch",
    "text",
    "label",
    "status",
    "error",
    "raw_response",
    "generator",
    "model",
    "template_id",
    "template_version",
    "request_key",
    "seed_ids",
    "sample_index",
    "replaces_row_id",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
]
# Problems a second request with feedback can fix, as the model is told them.
REFINABLE_STATUSES = {
    "parse_error": "the answer was not the asked JSON",
    "truncated": "the answer was cut off at the token limit; write shorter examples",
    "off_label": "an example did not belong to the asked label",
    "missing_example": "the answer held fewer examples than asked for",
}
# Completion tokens expected per example beyond the text itself (JSON keys, quotes, label).
JSON_TOKENS_PER_EXAMPLE = 12


class BudgetError(RuntimeError):
    """Starting the batch would pass a budget cap of task.yaml."""


@dataclass
class LlmSession:
    """What an LLM backend needs beyond the task: where answers are cached, the key, the caps."""

    cache: AnswerCache
    api_key: str | None
    replay: bool
    spent_by_task_usd: float = 0.0  # what other batches of the task already cost
    spent_by_batch_usd: float = 0.0  # what this batch already cost (a top-up round: its first pass and earlier rounds)
    unanswered: str | None = None  # set: send nothing, missing answers are request_failed rows saying this
    progress: Callable[[int, int, dict], None] | None = None


@dataclass
class GenerationResult:
    table: pd.DataFrame
    summary: dict = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)  # LLM backends: one record per request, for the audit trail


def request_record(request: GenerationRequest, result: CachedAnswer | Failure, refines: str = "") -> dict:
    """What the audit trail keeps of one LLM request: its key, outcome and a digest of the answer (never its text)."""
    answered = isinstance(result, CachedAnswer)
    return {
        "request_key": request.key,
        "label": request.label,
        "seed_ids": list(request.seed_ids),
        "outcome": "answered" if answered else result.reason,
        "finish_reason": result.finish_reason if answered else None,
        "response_sha256": stable_hash(result.content, result.refusal, result.finish_reason, length=64) if answered else None,
        "prompt_tokens": result.prompt_tokens if answered else 0,
        "completion_tokens": result.completion_tokens if answered else 0,
        "cost_usd": result.cost_usd if answered else 0.0,
        **({"refines": refines} if refines else {}),
    }


def spent_by_batches(lake: Lake, batches: list[str]) -> float:
    """Dollars the generation attempts of ``batches`` cost, top-up rounds included (missing partitions cost nothing)."""
    total = 0.0
    for table in ("generated", TOP_UP_TABLE):
        written = [batch for batch in batches if lake.has_table(table, batch)]
        spent = lake.query(table, written, "SELECT coalesce(sum(cost_usd), 0) AS spent FROM rows", ["spent"])
        total += float(spent["spent"].iloc[0]) if len(spent) else 0.0
    return total


def template_version(task: TaskConfig) -> str:
    return template_generator.TEMPLATE_VERSION if task.generation.backend == "template" else PROMPT_VERSION


def generator_version(task: TaskConfig) -> str:
    """What changes the generated rows of a task: backend, its code version and settings."""
    return stable_hash(task.generation.backend, template_version(task), task.generation.model_dump(), length=12)


def _frame(rows: dict) -> pd.DataFrame:
    return pd.DataFrame(rows)[GENERATED_COLUMNS].astype(
        {"sample_index": "int64", "prompt_tokens": "int64", "completion_tokens": "int64", "cost_usd": "float64"}
    )


def _template_batch(
    task: TaskConfig, batch: str, seeds: pd.DataFrame, attempts: dict[str, int], top_up_round: int, avoid: Iterable[str]
) -> GenerationResult:
    seeds_fingerprint = stable_hash(sorted(zip(seeds["text"], seeds["label"])))
    top_up = ("top_up", top_up_round) if top_up_round else ()
    rows = template_generator.generate_template_rows(
        seeds[["seed_id", "text", "label"]],
        {label: task.labels[label] for label in sorted(seeds["label"].unique())},
        attempts=attempts,
        rng_seed=derive_seed(task.name, batch, "generate", *top_up),
        weights=task.generation.operators,
        near_copy_threshold=task.dedup.near_dup_threshold,
        shingle_chars=task.dedup.shingle_chars,
        avoid=avoid,
    )
    request_keys = [
        stable_hash(
            "template", template_generator.TEMPLATE_VERSION, task.name, batch, label, int(index), seeds_fingerprint, *top_up
        )
        for label, index in zip(rows["label"], rows["sample_index"])
    ]
    table = _frame(
        {
            "row_id": request_keys,
            "batch": batch,
            "text": rows["text"].astype(str),
            "label": rows["label"].astype(str),
            "status": "ok",
            "error": "",
            "raw_response": "",
            "generator": "template",
            "model": "",
            "template_id": rows["template_id"].astype(str),
            "template_version": template_generator.TEMPLATE_VERSION,
            "request_key": request_keys,
            "seed_ids": [list(ids) for ids in rows["seed_ids"]],
            "sample_index": rows["sample_index"],
            "replaces_row_id": "",
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
        }
    )
    return GenerationResult(table, {"requests": 0, "from_cache": 0, "spent_usd": 0.0})


def budget_left(
    task: TaskConfig,
    batch: str,
    requests,
    cache: AnswerCache,
    seeds: pd.DataFrame,
    spent_by_task_usd: float,
    *,
    at_batch_price: bool,
    spent_by_batch_usd: float = 0.0,
) -> float:
    """Dollars ``batch`` may still spend; :class:`BudgetError` if its expected cost does not fit.

    What the batch's cached answers cost counts against both caps, as do the task's other batches
    and what the batch already spent (``spent_by_batch_usd``: a top-up round's first pass and earlier rounds).
    """
    llm = task.generation.llm
    price = price_for(llm.model, llm.price_per_million_tokens)
    cached = cache.get_many([request.key for request in requests])
    spent = sum(answer.cost_usd for answer in cached.values()) + spent_by_batch_usd
    budget = min(llm.budget_usd_per_batch - spent, llm.budget_usd_per_task - spent_by_task_usd - spent)
    pending = [request for request in requests if request.key not in cached]
    text_tokens = seeds["text"].str.len().mean() / 4 if len(seeds) else 0
    completion = min(llm.max_tokens, int(llm.examples_per_request * (text_tokens + JSON_TOKENS_PER_EXAMPLE)))
    estimate = sum(price.cost(prompt_tokens_of(r), completion, batch=at_batch_price) for r in pending)
    if pending and estimate > budget:
        raise BudgetError(
            f"batch {batch} would cost about ${estimate:.4f} for {len(pending)} requests, more than the ${max(budget, 0):.4f} "
            f"left (generation.llm.budget_usd_per_batch={llm.budget_usd_per_batch}, budget_usd_per_task="
            f"{llm.budget_usd_per_task}, ${spent_by_task_usd:.4f} already spent by the task's other batches); "
            "raise a budget in task.yaml or lower generation.per_label"
        )
    return budget


def _llm_batch(
    task: TaskConfig, batch: str, seeds: pd.DataFrame, session: LlmSession, attempts: dict[str, int], top_up_round: int
) -> GenerationResult:
    llm = task.generation.llm
    price = price_for(llm.model, llm.price_per_million_tokens)
    mode = llm.structured_output
    requests = build_requests(task, batch, seeds, mode, attempts, top_up_round)
    sending = not session.replay and session.unanswered is None
    budget = (
        budget_left(
            task,
            batch,
            requests,
            session.cache,
            seeds,
            session.spent_by_task_usd,
            at_batch_price=False,
            spent_by_batch_usd=session.spent_by_batch_usd,
        )
        if sending
        else 0.0
    )
    run = dict(
        api_key=session.api_key,
        budget_usd=budget,
        replay=session.replay,
        unanswered=session.unanswered,
        progress=session.progress,
    )
    try:
        results, summary = run_requests(requests, llm, session.cache, price, **run)
    except StructuredOutputUnsupported:
        # The endpoint has no json_schema support: the same batch in JSON mode, under new keys.
        mode = "json_object"
        requests = build_requests(task, batch, seeds, mode, attempts, top_up_round)
        results, summary = run_requests(requests, llm, session.cache, price, **run)
    slots = llm.examples_per_request
    columns: dict[str, list] = {name: [] for name in GENERATED_COLUMNS}
    for request in requests:
        _append_rows(
            columns, batch, llm.model, request, results[request.key], slot_outcomes(request, results[request.key], slots)
        )
    log = [request_record(request, results[request.key]) for request in requests]
    refined = 0
    if llm.refine_max_share > 0 and session.unanswered is None:
        refined, refine_summary = _refine(
            task, requests, results, columns, session, price, mode, run, budget - summary["spent_usd"], log
        )
        summary = {name: value + refine_summary.get(name, 0) for name, value in summary.items()}
    summary |= {"structured_output": mode, "price_table_version": price.table_version, "refinement_requests": refined}
    return GenerationResult(_frame(columns), summary, log)


def _append_rows(columns: dict, batch: str, model: str, request, result, outcomes, replaces: list[str] | None = None) -> None:
    """One row per example slot of ``request``; its tokens and cost go on the first slot."""
    base = "refine" if replaces else ""
    for slot, (status, text, error) in enumerate(outcomes):
        first = slot == 0 and isinstance(result, CachedAnswer)
        columns["row_id"].append(stable_hash(request.key, base, slot))
        columns["batch"].append(batch)
        columns["text"].append(text)
        columns["label"].append(request.label)
        columns["status"].append(status)
        columns["error"].append(error)
        columns["raw_response"].append("" if status == "ok" else raw_text(result))
        columns["generator"].append("openai")
        columns["model"].append(model)
        columns["template_id"].append(PROMPT_ID + ("/refine" if replaces else ""))
        columns["template_version"].append(PROMPT_VERSION)
        columns["request_key"].append(request.key)
        columns["seed_ids"].append(request.seed_ids)
        columns["sample_index"].append(request.request_index * len(outcomes) + slot)
        columns["replaces_row_id"].append(replaces[slot] if replaces else "")
        columns["prompt_tokens"].append(result.prompt_tokens if first else 0)
        columns["completion_tokens"].append(result.completion_tokens if first else 0)
        columns["cost_usd"].append(result.cost_usd if first else 0.0)


def _fixable_problem(status: str, text: str, gate: GateConfig) -> str | None:
    """Why a row is worth one more try with feedback, or None (duplicates and refusals are not)."""
    if status in REFINABLE_STATUSES:
        return REFINABLE_STATUSES[status]
    if status == "ok" and len(text) < gate.min_chars:
        return f"an example was shorter than {gate.min_chars} characters"
    if status == "ok" and len(text) > gate.max_chars:
        return f"an example was longer than {gate.max_chars} characters"
    return None


def _refine(task, requests, results, columns, session, price, mode, run, budget, log: list[dict]) -> tuple[int, dict]:
    """Ask once more, with the problem as feedback, for the slots rejected for fixable reasons.

    At most ``refine_max_share`` of the batch's requests get a follow-up; the new rows name the
    row they replace in ``replaces_row_id`` (the replaced rows stay, rejected with their reason).
    Each follow-up's :func:`request_record` goes on ``log``, naming the request it refines.
    """
    llm = task.generation.llm
    row_ids, statuses, texts = columns["row_id"], columns["status"], columns["text"]
    position = {
        key: index for index, key in enumerate(columns["request_key"]) if index == 0 or columns["request_key"][index - 1] != key
    }
    follow_ups = []
    for request in requests:
        start = position[request.key]
        fixes = [
            (row_ids[i], problem)
            for i in range(start, start + llm.examples_per_request)
            if (problem := _fixable_problem(statuses[i], texts[i], task.gate))
        ]
        if fixes:
            problems = sorted({problem for _, problem in fixes})
            previous = raw_text(results[request.key]) or "(no usable answer)"
            follow_up = refinement_request(task, request, previous, problems, len(fixes), mode)
            follow_ups.append((follow_up, [row_id for row_id, _ in fixes], request.key))
    follow_ups = follow_ups[: int(len(requests) * llm.refine_max_share)]
    if not follow_ups:
        return 0, {}
    answers, summary = run_requests(
        [request for request, _, _ in follow_ups], llm, session.cache, price, **(run | {"budget_usd": max(budget, 0.0)})
    )
    for request, replaced, refines in follow_ups:
        result = answers[request.key]
        _append_rows(
            columns, columns["batch"][0], llm.model, request, result, slot_outcomes(request, result, len(replaced)), replaced
        )
        log.append(request_record(request, result, refines))
    return len(follow_ups), summary


def generate_batch(
    task: TaskConfig,
    batch: str,
    seeds: pd.DataFrame,
    session: LlmSession | None = None,
    attempts: dict[str, int] | None = None,
    top_up_round: int = 0,
    avoid: Iterable[str] = (),
) -> GenerationResult:
    """All generation attempts for ``batch``, in the ``generated`` lake schema, and the run's numbers.

    ``attempts`` per label (core/quotas.py) defaults to the task's ``per_label`` for every seed label.
    A top-up round (``top_up_round`` > 0, core/top_up.py) draws anew under keys of its own, so its
    attempts never repeat the first pass's and a rerun finds them in the cache; the template
    backend also redraws an example equal to one of the texts in ``avoid``.
    """
    attempts = attempts or uniform_quotas(sorted(set(seeds["label"])), task.generation.per_label)
    if task.generation.backend == "template":
        return _template_batch(task, batch, seeds, attempts, top_up_round, avoid)
    if session is None:
        raise ValueError(f"backend {task.generation.backend!r} needs an LlmSession (cache, API key, replay flag)")
    return _llm_batch(task, batch, seeds, session, attempts, top_up_round)
