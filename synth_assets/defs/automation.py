"""Declarative automation: a landed batch partition flows downstream with no clicks.

A new seed file (sensor) or a refresh (schedule) materializes only ``seeds``; every later stage
carries the condition below, so the automation sensor materializes it for the same partition
once its upstream partition is there and that upstream's blocking checks (``gate_passed``,
``reviewed_acceptance``) passed. A batch failing its gate therefore stops at ``gated``.
"""

import dagster as dg

FACTORY_CONDITION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
AUTOMATED_STAGES = ["generated", "deduplicated", "gated", "training_set", "heldout_eval"]

factory_automation = dg.AutomationConditionSensorDefinition(
    "factory_automation",
    target=dg.AssetSelection.assets(*AUTOMATED_STAGES),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Materializes each stage of a batch once the stage before it landed and its blocking checks passed.",
)

# Concurrency pools (limits: dagster.yaml `concurrency.pools.default_limit`, or
# `dagster instance concurrency set <pool> <limit>`; see docs/operations.md).
LLM_POOL = "llm"  # steps that may call the task's LLM: generation and the LLM-judge tier of the gate
CROSS_BATCH_POOL = "cross_batch_writers"  # steps that read every earlier batch and write what later batches read
