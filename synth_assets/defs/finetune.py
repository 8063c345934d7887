"""The fine-tuning handoff (optional): dataset version k handed to an OpenAI-compatible fine-tuning API.

Not in the ``factory`` job: it spends money and needs a ``finetune`` section in task.yaml, so it runs only when
someone materializes it for a version (UI: group ``handoff``). Materializing it again refreshes the status of the
version's job instead of starting another (core/finetune.py, docs/finetuning.md).
"""

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from synth_assets.core.finetune import HANDOFF_VERSION, FinetuneError, FinetuneJob, hand_off, record_path, settings_of
from synth_assets.core.lake import Lake, LakeError
from synth_assets.core.task_config import FinetuneConfig
from synth_assets.defs.partitions import batches
from synth_assets.defs.publishing import stage_code_version
from synth_assets.defs.resources import FactoryResource
from synth_assets.defs.training_set import EXPORTS, training_set


class HandoffConfig(dg.Config):
    resubmit_failed: bool = Field(False, description="start a new job when the version's job failed or was cancelled")


def finetune_api_key(settings: FinetuneConfig) -> str | None:
    """The key, read from the variable the task names at the moment of use, never stored."""
    return os.environ.get(settings.api_key_env)


def training_jsonl(lake: Lake, version: str) -> str:
    try:
        return lake.read_text(EXPORTS, f"{version}.jsonl")
    except LakeError as missing:
        raise FinetuneError(f"{missing}: materialize training_set for {version} to export it") from None


def job_metadata(job: FinetuneJob, record: Path) -> dict:
    metadata = {
        "job_id": job.job_id,
        "status": job.status,
        "file_id": job.file_id,
        "base_model": job.model,
        "training_examples": job.examples,
        "content_hash": job.content_hash,
        "record": dg.MetadataValue.path(str(record)),
    }
    if job.fine_tuned_model:
        metadata["fine_tuned_model"] = job.fine_tuned_model
    if job.trained_tokens is not None:
        metadata["trained_tokens"] = job.trained_tokens
    if job.error:
        metadata["error"] = str(job.error.get("message", job.error))
    return metadata


@dg.asset(
    partitions_def=batches,
    deps=[training_set],
    group_name="handoff",
    kinds={"openai"},
    code_version=stage_code_version(HANDOFF_VERSION, "finetune"),
    description=(
        "Dataset version k's fine-tuning JSONL uploaded to the task's OpenAI-compatible fine-tuning API (task.yaml "
        "finetune), with the job's id and status. Materialize again to refresh the status; never part of the factory job."
    ),
)
def finetune_job(context: dg.AssetExecutionContext, config: HandoffConfig, factory: FactoryResource) -> dg.MaterializeResult:
    version = context.partition_key
    lake = factory.lake()
    try:
        settings = settings_of(factory.task_for_batch(version))
        content_hash = lake.read_json("training_set", version)["content_hash"]
        job, submitted = hand_off(
            settings,
            version,
            content_hash,
            training_jsonl(lake, version),
            lake,
            finetune_api_key(settings),
            resubmit_failed=config.resubmit_failed,
        )
    except (FinetuneError, LakeError) as error:
        raise dg.Failure(description=f"{version}: {error}") from None
    metadata = job_metadata(job, record_path(lake, version))
    context.log.info(
        f"{version}: {'submitted' if submitted else 'refreshed'} fine-tuning job {job.job_id} of {job.model} "
        f"({job.examples} examples, content {job.content_hash[:12]}): {job.status}"
    )
    if job.status == "failed":
        raise dg.Failure(
            description=(
                f"{version}: fine-tuning job {job.job_id} failed: {metadata['error']}; "
                "materialize with resubmit_failed: true to start a new job"
            ),
            metadata=metadata,
        )
    if job.status == "cancelled":
        context.log.warning(f"{version}: job {job.job_id} was cancelled; materialize with resubmit_failed: true for a new one")
    elif job.fine_tuned_model:
        context.log.info(f"{version}: fine-tuned model {job.fine_tuned_model}")
    elif job.open:
        context.log.info(f"{version}: materialize finetune_job again, or run `python -m synth_assets finetune-status {version}`")
    return dg.MaterializeResult(metadata=metadata)
