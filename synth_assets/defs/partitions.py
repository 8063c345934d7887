"""One dynamic partition set for every task: a partition is a batch and a dataset version."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from synth_assets.core.batches import register_batch, task_of
from synth_assets.core.lake import Lake
from synth_assets.core.task_config import TaskConfig

BATCHES = "batches"
batches = dg.DynamicPartitionsDefinition(name=BATCHES)


def batches_up_to(instance: dg.DagsterInstance, batch: str, *, inclusive: bool = True) -> list[str]:
    """Batches of ``batch``'s task that came before it in partition (insertion) order.

    Cross-batch stages read only these, so rebuilding batch 3 after batch 9 exists reads exactly
    what it read the first time.
    """
    keys = task_batches(instance, task_of(batch))
    if batch not in keys:
        raise ValueError(f"{batch} is not a partition of {BATCHES!r}; add it with `python -m synth_assets add-batch`")
    position = keys.index(batch)
    return keys[: position + 1] if inclusive else keys[:position]


def task_batches(instance: dg.DagsterInstance, task: str) -> list[str]:
    """The task's batches in partition order."""
    return [key for key in instance.get_dynamic_partitions(BATCHES) if task_of(key) == task]


def open_batch(instance: dg.DagsterInstance, lake: Lake, task: TaskConfig, key: str, source: Path, kind: str) -> str:
    """Validate and register a batch's input, then add its partition (both idempotent)."""
    register_batch(lake, task, key, source, kind, task_batches(instance, task.name))
    if not instance.has_dynamic_partition(BATCHES, key):
        instance.add_dynamic_partitions(BATCHES, [key])
    return key
