"""A weekly refresh batch per task: the task's own seed file again, drawn with a new random seed.

Off by default, because on an LLM backend every refresh spends money: turn it on in the UI
(Automation) or with ``dagster schedule start weekly_refresh_batches``.
"""

import dagster as dg

from synth_assets.core.batches import key_for_refresh
from synth_assets.defs.jobs import factory_job
from synth_assets.defs.llm_batches import uses_batch_api
from synth_assets.defs.partitions import open_batch
from synth_assets.defs.resources import FactoryResource


@dg.schedule(
    job=factory_job,
    cron_schedule="0 6 * * 1",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every Monday 06:00 UTC: one refresh batch per task, run through the whole factory.",
)
def weekly_refresh_batches(context: dg.ScheduleEvaluationContext, factory: FactoryResource):
    # Schedules cannot return dynamic-partition requests, so the batch is opened here; the key comes
    # from the tick's scheduled time, which makes a re-evaluated tick open the same batch.
    lake = factory.lake()
    for name, task in factory.tasks().items():
        key = open_batch(
            context.instance, lake, task, key_for_refresh(name, context.scheduled_execution_time), task.seeds_path, "refresh"
        )
        if not uses_batch_api(factory, key):  # the llm_batches sensor runs those when answered
            yield dg.RunRequest(partition_key=key, run_key=key)
