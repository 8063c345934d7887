"""Freshness: flag a task that has had no newly accepted batch within ``operations.freshness_hours``.

The check ``tasks_fresh`` (on ``gated``, not partitioned) evaluates every task; the sensor
``task_freshness`` (running by default) evaluates the same every hour and runs the check whenever
the set of stale tasks changes, so the UI shows a warning naming them, the hours since their last
accepted batch and their window.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from synth_assets.core.freshness import Freshness, freshness_from
from synth_assets.core.hashing import stable_hash
from synth_assets.defs.jobs import FRESHNESS_CHECK
from synth_assets.defs.partitions import task_batches
from synth_assets.defs.resources import FactoryResource


def freshness_of_tasks(instance: dg.DagsterInstance, factory: FactoryResource, now: datetime) -> list[Freshness]:
    lake = factory.lake()
    states = []
    for name, task in sorted(factory.tasks().items()):
        accepted = []
        for key in task_batches(instance, name):
            verdict = lake.sidecar_path("gated", key)
            if verdict.is_file() and lake.read_json("gated", key)["passed"]:
                accepted.append((key, datetime.fromtimestamp(verdict.stat().st_mtime, UTC)))
        states.append(freshness_from(name, accepted, task.operations.freshness_hours, now))
    return states


@dg.asset_check(
    asset="gated",
    name=FRESHNESS_CHECK,
    description="Warns when a task has had no newly accepted batch within its operations.freshness_hours window.",
)
def tasks_fresh(context: dg.AssetCheckExecutionContext, factory: FactoryResource) -> dg.AssetCheckResult:
    states = freshness_of_tasks(context.instance, factory, datetime.now(UTC))
    stale = [state for state in states if state.stale]
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(state.sentence() for state in (stale or states)) or "no tasks",
        metadata={
            "stale_tasks": ", ".join(state.task for state in stale) or "none",
            **{
                f"hours_since_accepted/{state.task}": state.hours_since if state.hours_since is not None else -1.0
                for state in states
            },
        },
    )


freshness_job = dg.define_asset_job(
    "task_freshness_check",
    selection=dg.AssetSelection.checks(tasks_fresh),
    description="Evaluates the tasks_fresh check.",
)


@dg.sensor(
    job=freshness_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=3600,
    description="Hourly: runs the tasks_fresh check whenever the set of stale tasks changes.",
)
def task_freshness(context: dg.SensorEvaluationContext, factory: FactoryResource):
    states = freshness_of_tasks(context.instance, factory, datetime.now(UTC))
    stale = sorted(state.task for state in states if state.stale)
    cursor = json.dumps(stale)
    if cursor == context.cursor:
        return dg.SkipReason("; ".join(state.sentence() for state in states) or "no tasks")
    context.update_cursor(cursor)
    for state in states:
        (context.log.warning if state.stale else context.log.info)(state.sentence())
    return dg.RunRequest(run_key=f"freshness-{stable_hash(stale, length=12)}-{datetime.now(UTC):%Y%m%d%H}")
