"""The job that runs all six stages for one batch partition."""

import dagster as dg

from synth_assets.defs.partitions import batches

FACTORY_STAGES = ["seeds", "generated", "deduplicated", "gated", "training_set", "heldout_eval"]

factory_job = dg.define_asset_job(
    "factory",
    selection=dg.AssetSelection.assets(*FACTORY_STAGES),
    partitions_def=batches,
    description="Seeds to held-out evaluation for one batch: generate, dedup, gate, mix, evaluate.",
)
