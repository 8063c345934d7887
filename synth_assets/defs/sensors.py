"""New batches from seed files dropped into ``data/incoming/<task>/``."""

import dagster as dg

from synth_assets.core.batches import BatchKeyError, incoming_files, key_for_file, register_batch
from synth_assets.core.labelled_data import InputFileError
from synth_assets.core.task_config import TaskConfigError
from synth_assets.defs.jobs import factory_job
from synth_assets.defs.llm_batches import uses_batch_api
from synth_assets.defs.partitions import BATCHES, batches, task_batches
from synth_assets.defs.resources import FactoryResource


@dg.sensor(
    job=factory_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Turns each new seed file in data/incoming/<task>/ into a batch partition and materializes its seeds; "
        "factory_automation runs the later stages."
    ),
)
def incoming_seed_files(context: dg.SensorEvaluationContext, factory: FactoryResource):
    known = set(context.instance.get_dynamic_partitions(BATCHES))
    lake = factory.lake()
    new_keys, problems = [], []
    for task_name, path in incoming_files(factory.incoming_root):
        try:
            task = factory.task(task_name)
            key = key_for_file(task_name, path)
            if key in known or key in new_keys:
                continue
            register_batch(lake, task, key, path, "seed_file", task_batches(context.instance, task_name))
        except (InputFileError, BatchKeyError, TaskConfigError) as exc:
            problems.append(str(exc))
            context.log.error(f"skipped {path}: {exc}")
            continue
        context.log.info(f"{path} -> new batch {key}")
        new_keys.append(key)
    if not new_keys:
        return dg.SkipReason("; ".join(problems) if problems else "no new seed files")
    # A Batch API task's run is requested by the llm_batches sensor once its answers are in.
    return dg.SensorResult(
        run_requests=[seeds_request(key) for key in new_keys if not uses_batch_api(factory, key)],
        dynamic_partitions_requests=[batches.build_add_request(new_keys)],
    )


def seeds_request(key: str) -> dg.RunRequest:
    """Materialize the batch's ``seeds``; the automation sensor carries it through the later stages."""
    return dg.RunRequest(partition_key=key, run_key=key, asset_selection=[dg.AssetKey("seeds")])
