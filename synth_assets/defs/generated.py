"""Stage 2: every generation attempt for the batch, with provenance, tokens and cost."""

import dagster as dg
import pandas as pd

from synth_assets.core import prompts, template_generator
from synth_assets.core.batches import load_batch
from synth_assets.core.generation import (
    GenerationResult,
    LlmSession,
    generate_batch,
    generator_version,
    spent_by_batches,
    template_version,
)
from synth_assets.core.hashing import stable_hash
from synth_assets.core.llm_batch import load_job, unanswered_reason
from synth_assets.core.quotas import attempts_for_batch
from synth_assets.core.schemas import generated_schema
from synth_assets.core.task_config import TaskConfig
from synth_assets.defs.automation import FACTORY_CONDITION, LLM_POOL
from synth_assets.defs.partitions import batches, batches_up_to
from synth_assets.defs.publishing import counts_table, publish, record_llm_requests, stage_code_version
from synth_assets.defs.resources import FactoryResource
from synth_assets.defs.seeds import seeds


def _batch_api_unanswered(factory: FactoryResource, batch: str) -> str | None:
    """For ``openai-batch``: why missing answers are missing, or None to use the sync path."""
    job = load_job(factory.lake(), batch)
    if job is not None and job.state == "sync_fallback":
        return None
    if job is None or not job.settled:
        raise dg.Failure(
            description=(
                f"{batch}: the Batch API has not answered yet ({'not submitted' if job is None else job.state}); "
                "the sensor llm_batches submits it and materializes this partition when the batch completes "
                "(or run `python -m synth_assets poll-batches`)"
            )
        )
    return unanswered_reason(job)


def _generate(
    context: dg.AssetExecutionContext, factory: FactoryResource, batch: str, seed_rows: pd.DataFrame, attempts: dict[str, int]
) -> GenerationResult:
    task = factory.task_for_batch(batch)
    if task.generation.backend == "template":
        return generate_batch(task, batch, seed_rows, attempts=attempts)
    unanswered = _batch_api_unanswered(factory, batch) if task.generation.backend == "openai-batch" else None

    session = llm_session(context, factory, batch, unanswered)
    try:
        return generate_batch(task, batch, seed_rows, session, attempts)
    finally:
        session.cache.close()


def llm_session(
    context: dg.AssetExecutionContext,
    factory: FactoryResource,
    batch: str,
    unanswered: str | None = None,
    spent_by_batch_usd: float = 0.0,
) -> LlmSession:
    """What a stage that calls the task's LLM needs: the cache, the key, replay mode, spend so far, progress lines.

    ``spent_by_batch_usd`` is what ``batch`` itself already spent (for its top-up rounds, in ``gated``).
    """

    def progress(done: int, total: int, numbers: dict) -> None:
        context.log.info(
            f"{batch}: {done}/{total} requests answered ({numbers['from_cache']} from cache, {numbers['retries']} retries, "
            f"{numbers['failed']} failed), {numbers['requests_per_second']} req/s, ${numbers['spent_usd']:.4f} spent"
        )

    return LlmSession(
        cache=factory.llm_cache(),
        api_key=factory.llm_api_key(factory.task_for_batch(batch)),
        replay=factory.llm_replay,
        spent_by_task_usd=spent_by_batches(factory.lake(), batches_up_to(context.instance, batch, inclusive=False)),
        spent_by_batch_usd=spent_by_batch_usd,
        unanswered=unanswered,
        progress=progress,
    )


@dg.asset(
    partitions_def=batches,
    automation_condition=FACTORY_CONDITION,
    pool=LLM_POOL,
    deps=[seeds],
    group_name="factory",
    kinds={"parquet", "openai"},
    code_version=stage_code_version(f"{template_generator.TEMPLATE_VERSION}/{prompts.PROMPT_VERSION}", "generation", "dedup"),
    description=(
        "Every generation attempt: text, label, status, generator, model, template id and version, seed ids, "
        "request key, tokens, cost."
    ),
)
def generated(context: dg.AssetExecutionContext, factory: FactoryResource) -> dg.MaterializeResult:
    batch = context.partition_key
    task = factory.task_for_batch(batch)
    lake = factory.lake()
    feedback = load_batch(lake, batch).quota_feedback
    seed_rows = lake.read_table("seeds", batch)
    attempts = attempts_for_batch(task, seed_rows["label"], feedback)
    if feedback and task.generation.quotas == "validation_f1":
        context.log.info(f"{batch}: attempts per label weighted by the validation F1 of version {feedback['version']}")
    lake.write_json("generated", batch, {"attempts_by_label": attempts, "quota_feedback": feedback})
    result = _generate(context, factory, batch, seed_rows, attempts)
    record_llm_requests(lake, batch, result.requests)
    table = result.table
    failed = table["status"] != "ok"
    context.log.info(
        f"{batch}: {len(table)} attempts ({int(failed.sum())} without a usable example) for {table['label'].nunique()} labels"
    )
    job = load_job(factory.lake(), batch)
    return publish(
        factory.lake(),
        "generated",
        batch,
        table,
        generated_schema(task.labels),
        {
            "attempts": len(table),
            "failed_attempts": int(failed.sum()),
            "generator": task.generation.backend,
            "model": task.generation.llm.model if task.generation.llm else "",
            "generator_version": generator_version(task),
            "template_version": template_version(task),
            "per_label": task.generation.per_label,
            "quotas_weighted_by": feedback["version"] if feedback and task.generation.quotas == "validation_f1" else "none",
            "attempts_by_label": counts_table(attempts, "label", "attempts"),
            "cost_usd": round(float(table["cost_usd"].sum()), 6),
            "prompt_tokens": int(table["prompt_tokens"].sum()),
            "completion_tokens": int(table["completion_tokens"].sum()),
            **{f"llm_{name}": value for name, value in result.summary.items()},
            **({"batch_api_ids": ", ".join(s["id"] for s in job.submissions) or "none"} if job else {}),
            "attempts_by_status": counts_table(table["status"].value_counts().to_dict(), "status"),
            "attempts_by_template": counts_table(table["template_id"].value_counts().to_dict(), "template_id"),
        },
        sample=table[["text", "label", "status", "template_id", "seed_ids", "request_key"]],
        audit=("generation", _generation_audit(task, result)),
    )


def _generation_audit(task: TaskConfig, result: GenerationResult) -> dict:
    """The audit trail's ``generation`` entry of a batch (its llm_request entries precede it)."""
    table = result.table
    return {
        "generator": task.generation.backend,
        "model": task.generation.llm.model if task.generation.llm else "",
        "generator_version": generator_version(task),
        "template_version": template_version(task),
        "attempts": len(table),
        "attempts_by_status": table["status"].value_counts().sort_index().to_dict(),
        "cost_usd": round(float(table["cost_usd"].sum()), 6),
        "prompt_tokens": int(table["prompt_tokens"].sum()),
        "completion_tokens": int(table["completion_tokens"].sum()),
        "llm_requests": len(result.requests),
        "llm_from_cache": result.summary.get("from_cache", 0),
        # One digest over every request key and answer digest: ties this entry to its llm_request entries.
        "llm_requests_sha256": stable_hash([[r["request_key"], r["response_sha256"]] for r in result.requests], length=64),
    }
