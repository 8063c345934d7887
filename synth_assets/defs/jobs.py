"""The job that runs all six stages for one batch partition."""

import dagster as dg

from synth_assets.defs.partitions import batches

FRESHNESS_CHECK = "tasks_fresh"

FACTORY_STAGES = ["seeds", "generated", "deduplicated", "gated", "training_set", "heldout_eval"]

factory_job = dg.define_asset_job(
    "factory",
    # The freshness check looks at every task, not at one batch: it runs on its own (defs/freshness.py).
    selection=dg.AssetSelection.assets(*FACTORY_STAGES)
    - dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey("gated"), FRESHNESS_CHECK)),
    partitions_def=batches,
    description="Seeds to held-out evaluation for one batch: generate, dedup, gate, mix, evaluate.",
)
