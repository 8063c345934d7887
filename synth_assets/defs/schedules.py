"""A refresh schedule per task: the task's own seed file again, drawn with a new random seed.

Each task's ``operations.refresh_cron`` sets when (UTC) and ``operations.refresh_schedule``
whether ``refresh_<task>`` starts running; stopped is the default, because on an LLM backend
every refresh spends money (turn it on in the UI, Automation, or ``dagster schedule start``).
A tick opens the batch and materializes its seeds; ``factory_automation`` does the rest.
"""

from pathlib import Path

import dagster as dg

from synth_assets.core.batches import key_for_refresh
from synth_assets.core.task_config import TaskConfig, loadable_tasks
from synth_assets.defs.jobs import factory_job
from synth_assets.defs.llm_batches import uses_batch_api
from synth_assets.defs.partitions import open_batch
from synth_assets.defs.resources import FactoryResource, default_data_dir
from synth_assets.defs.sensors import seeds_request


def refresh_schedule(task: TaskConfig) -> dg.ScheduleDefinition:
    name = task.name

    @dg.schedule(
        name=f"refresh_{name}",
        job=factory_job,
        cron_schedule=task.operations.refresh_cron,
        execution_timezone="UTC",
        default_status=(
            dg.DefaultScheduleStatus.RUNNING
            if task.operations.refresh_schedule == "running"
            else dg.DefaultScheduleStatus.STOPPED
        ),
        description=f"{task.operations.refresh_cron} (UTC): one refresh batch of task {name}, run through the factory.",
    )
    def _refresh(context: dg.ScheduleEvaluationContext, factory: FactoryResource):
        # Schedules cannot return dynamic-partition requests, so the batch is opened here; the key comes
        # from the tick's scheduled time, which makes a re-evaluated tick open the same batch.
        current = factory.task(name)
        key = open_batch(
            context.instance,
            factory.lake(),
            current,
            key_for_refresh(name, context.scheduled_execution_time),
            current.seeds_path,
            "refresh",
        )
        if uses_batch_api(factory, key):  # the llm_batches sensor runs those when answered
            return dg.SkipReason(f"{key} opened; the Batch API sensor runs it once answered")
        return seeds_request(key)

    return _refresh


@dg.definitions
def refresh_schedules() -> dg.Definitions:
    # A task whose task.yaml does not load gets no schedule; its error surfaces when it runs.
    tasks = loadable_tasks(Path(default_data_dir(), "tasks"))
    return dg.Definitions(schedules=[refresh_schedule(task) for task in tasks.values()])
