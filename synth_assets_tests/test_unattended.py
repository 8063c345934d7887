"""Unattended operation: declarative automation, pools, per-task schedules, freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import yaml

from synth_assets.core.freshness import freshness_from
from synth_assets.defs.automation import AUTOMATED_STAGES, CROSS_BATCH_POOL, LLM_POOL
from synth_assets_tests.factory_harness import build_factory


@pytest.fixture
def factory(data_dir, monkeypatch, instance):
    return build_factory(data_dir, monkeypatch, instance)


def _materialize(factory, key, *stages):
    result = factory.defs.resolve_job_def("factory").execute_in_process(
        partition_key=key, instance=factory.instance, asset_selection=[dg.AssetKey(s) for s in stages], raise_on_error=False
    )
    return result


class Automation:
    """Evaluates the automation conditions tick by tick, carrying the cursor as the sensor does."""

    def __init__(self, factory):
        self.factory, self.cursor = factory, None

    def tick(self) -> set[tuple[str, str]]:
        result = dg.evaluate_automation_conditions(
            defs=self.factory.defs,
            instance=self.factory.instance,
            asset_selection=dg.AssetSelection.assets(*AUTOMATED_STAGES),
            cursor=self.cursor,
        )
        self.cursor = result.cursor
        return {(stage, key) for stage in AUTOMATED_STAGES for key in result.get_requested_partitions(dg.AssetKey(stage))}


def test_a_landed_seeds_partition_flows_downstream_up_to_the_gate_then_past_it(factory):
    automation = Automation(factory)
    key = factory.open("b1")
    assert automation.tick() == set(), "nothing has landed yet"
    assert _materialize(factory, key, "seeds").success
    # One run up to the gate: the version must wait for gated's blocking checks to pass.
    assert automation.tick() == {("generated", key), ("deduplicated", key), ("gated", key)}
    assert automation.tick() == set(), "requested once, not on every tick"
    assert _materialize(factory, key, "generated", "deduplicated", "gated").success
    assert automation.tick() == {("training_set", key), ("heldout_eval", key)}, "gate_passed passed"


def test_a_batch_whose_blocking_gate_failed_is_not_carried_further(factory, data_dir):
    task_file = data_dir / "tasks" / "home" / "task.yaml"
    strict = yaml.safe_load(task_file.read_text())
    strict["gate"]["max_chars"] = 4  # every generated utterance is longer: yield 0, gate fails
    task_file.write_text(yaml.safe_dump(strict))
    automation = Automation(factory)
    key = factory.open("b1")
    automation.tick()
    _materialize(factory, key, "seeds")
    automation.tick()
    _materialize(factory, key, "generated", "deduplicated", "gated")
    checks = factory.instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("gated"), "gate_passed"), limit=1
    )
    assert checks[0].event.dagster_event.event_specific_data.passed is False
    assert automation.tick() == set(), "the failed blocking check stops the batch at gated"


def test_llm_steps_and_cross_batch_writers_have_their_pools(factory):
    graph = factory.defs.resolve_asset_graph()
    pools = {key.to_user_string(): graph.get(key).pools for key in graph.get_all_asset_keys()}
    assert pools["generated"] == {LLM_POOL} and pools["gated"] == {LLM_POOL}
    assert pools["deduplicated"] == {CROSS_BATCH_POOL} and pools["training_set"] == {CROSS_BATCH_POOL}


def test_each_task_has_a_refresh_schedule_from_its_cron(data_dir, monkeypatch, instance):
    task_file = data_dir / "tasks" / "home" / "task.yaml"
    config = yaml.safe_load(task_file.read_text())
    config["operations"] = {"refresh_cron": "30 2 * * *", "refresh_schedule": "running"}
    task_file.write_text(yaml.safe_dump(config))
    factory = build_factory(data_dir, monkeypatch, instance)
    schedule = factory.defs.resolve_schedule_def("refresh_home")
    assert schedule.cron_schedule == "30 2 * * *" and schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.execution_timezone == "UTC"


def test_a_task_without_a_recent_accepted_batch_is_stale():
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    fresh = freshness_from("t", [("t-a", now - timedelta(hours=30)), ("t-b", now - timedelta(hours=2))], 24, now)
    assert not fresh.stale and fresh.last_batch == "t-b" and fresh.hours_since == 2.0
    stale = freshness_from("t", [("t-a", now - timedelta(hours=30))], 24, now)
    assert stale.stale and "30 h ago (window 24 h)" in stale.sentence()
    never = freshness_from("t", [], 24, now)
    assert never.stale and "no accepted batch yet" in never.sentence()


def test_freshness_check_and_sensor_name_the_stale_task(factory, data_dir, monkeypatch, instance):
    from synth_assets.defs.freshness import task_freshness

    def tick():
        with dg.build_sensor_context(instance=instance, resources={"factory": factory.resource}, cursor=cursor) as context:
            result = task_freshness(context)
            return result, context.cursor

    cursor = None
    result, cursor = tick()
    assert isinstance(result, dg.RunRequest), "a task without any accepted batch is stale: the check runs"
    again, cursor = tick()
    assert isinstance(again, dg.SkipReason) and "home: no accepted batch yet" in again.skip_message, "no change, no run"
    assert factory.run(factory.open("b1")).success
    result, cursor = tick()
    assert isinstance(result, dg.RunRequest), "the stale set changed: run the check again"
    check = factory.defs.resolve_job_def("task_freshness_check").execute_in_process(instance=instance)
    [evaluation] = check.get_asset_check_evaluations()
    assert evaluation.passed and "home: fresh, last accepted batch home-b1" in evaluation.description
