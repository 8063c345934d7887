"""The ``openai-batch`` backend's driver: submit, poll, resubmit, then materialize the partition.

The sensor ``llm_batches`` looks at every partition of an ``openai-batch`` task that has no
``generated`` file yet: it submits the partition's requests to the Batch API, polls open
batches, reads finished ones into the response cache (at the batch price) and, once nothing is
open, requests the factory run, whose ``generated`` step then makes no call. Each change of a
job is recorded as an observation of ``generated`` with the batch ids, so the UI shows them.
"""

from __future__ import annotations

import dagster as dg

from synth_assets.core.batches import BatchKeyError, load_batch, seed_table
from synth_assets.core.generation import BudgetError, spent_by_batches
from synth_assets.core.llm_batch import BatchApiError, BatchJob, load_job, poll, submit
from synth_assets.core.quotas import attempts_for_batch
from synth_assets.core.task_config import TaskConfigError
from synth_assets.defs.jobs import factory_job
from synth_assets.defs.partitions import BATCHES, batches_up_to
from synth_assets.defs.resources import FactoryResource

BATCH_BACKEND = "openai-batch"


def uses_batch_api(factory: FactoryResource, key: str) -> bool:
    return factory.task_for_batch(key).generation.backend == BATCH_BACKEND


def advance(factory: FactoryResource, instance: dg.DagsterInstance, key: str) -> BatchJob:
    """One step of ``key``'s Batch API job: submit it if new, else poll it."""
    task = factory.task_for_batch(key)
    lake = factory.lake()
    record = load_batch(lake, key)
    seeds = seed_table(task, record)
    attempts = attempts_for_batch(task, seeds["label"], record.quota_feedback)
    cache = factory.llm_cache()
    try:
        if load_job(lake, key) is None:
            spent = spent_by_batches(lake, batches_up_to(instance, key, inclusive=False))
            return submit(task, key, seeds, lake, cache, factory.llm_api_key(task), attempts, spent)
        return poll(task, key, seeds, lake, cache, factory.llm_api_key(task), attempts)
    finally:
        cache.close()


def waiting_partitions(factory: FactoryResource, instance: dg.DagsterInstance) -> list[str]:
    """Partitions of ``openai-batch`` tasks whose ``generated`` is not written yet."""
    lake = factory.lake()
    waiting = []
    for key in instance.get_dynamic_partitions(BATCHES):
        try:
            if uses_batch_api(factory, key) and not lake.has_table("generated", key):
                waiting.append(key)
        except (TaskConfigError, BatchKeyError):
            continue  # the task's own runs report its broken config
    return waiting


def job_metadata(job: BatchJob) -> dict:
    return {
        "batch_api_state": job.state,
        "batch_api_ids": ", ".join(s["id"] for s in job.submissions) or "none",
        "batch_api_statuses": ", ".join(s["status"] for s in job.submissions) or "none",
        "batch_api_requests": sum(len(s["keys"]) for s in job.submissions),
        "batch_api_resubmissions": job.resubmissions,
    }


@dg.sensor(
    job=factory_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Submits openai-batch partitions to the Batch API, polls them, and runs the factory when they complete.",
)
def llm_batches(context: dg.SensorEvaluationContext, factory: FactoryResource):
    run_requests, observations, problems = [], [], []
    for key in waiting_partitions(factory, context.instance):
        before = load_job(factory.lake(), key)
        try:
            job = advance(factory, context.instance, key)
        except (BatchApiError, BudgetError, TaskConfigError) as exc:
            problems.append(f"{key}: {exc}")
            context.log.error(f"{key}: {exc}")
            continue
        if before is None or before.as_dict() != job.as_dict():
            context.log.info(f"{key}: Batch API job {job.state} ({job_metadata(job)['batch_api_statuses']})")
            observations.append(dg.AssetObservation(asset_key="generated", partition=key, metadata=job_metadata(job)))
        if job.settled:
            run_requests.append(dg.RunRequest(partition_key=key, run_key=f"{key}:{job.state}:{len(job.submissions)}"))
    if not run_requests and not observations:
        return dg.SkipReason("; ".join(problems) if problems else "no Batch API work changed")
    return dg.SensorResult(run_requests=run_requests, asset_events=observations)
