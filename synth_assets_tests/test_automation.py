"""The incoming-file sensor and the refresh schedule open batches and request runs."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from synth_assets.core.task_config import load_task
from synth_assets.defs.partitions import BATCHES
from synth_assets.defs.resources import FactoryResource
from synth_assets.defs.schedules import refresh_schedule
from synth_assets.defs.sensors import incoming_seed_files
from synth_assets_tests.conftest import write_csv


def _tick(instance, data_dir):
    with dg.build_sensor_context(instance=instance, resources={"factory": FactoryResource(data_dir=str(data_dir))}) as context:
        return incoming_seed_files(context)


def test_a_dropped_seed_file_becomes_a_batch_and_a_run(data_dir, instance):
    write_csv(
        data_dir / "incoming" / "home" / "More Seeds.csv",
        [("set an alarm for four", "alarm_set"), ("is it foggy", "weather_query")],
    )
    result = _tick(instance, data_dir)
    assert isinstance(result, dg.SensorResult)
    [request] = result.run_requests
    assert request.partition_key.startswith("home-more_seeds-") and request.run_key == request.partition_key
    assert request.asset_selection == [dg.AssetKey("seeds")], "automation carries the later stages"
    assert result.dynamic_partitions_requests[0].partition_keys == [request.partition_key]
    assert (data_dir / "lake" / "_batches" / f"{request.partition_key}.csv").is_file()


def test_the_same_file_is_not_turned_into_a_second_batch(data_dir, instance):
    write_csv(data_dir / "incoming" / "home" / "new.csv", [("set an alarm for four", "alarm_set")])
    first = _tick(instance, data_dir)
    instance.add_dynamic_partitions(BATCHES, first.dynamic_partitions_requests[0].partition_keys)
    again = _tick(instance, data_dir)
    assert isinstance(again, dg.SkipReason) and again.skip_message == "no new seed files"


def test_a_bad_file_is_skipped_with_the_reason_and_good_files_still_run(data_dir, instance):
    write_csv(data_dir / "incoming" / "home" / "a_bad.csv", [("set an alarm", "no_such_label")])
    write_csv(data_dir / "incoming" / "home" / "b_good.csv", [("set an alarm for four", "alarm_set")])
    result = _tick(instance, data_dir)
    assert [r.partition_key.split("-")[1] for r in result.run_requests] == ["b_good"]
    instance.add_dynamic_partitions(BATCHES, result.dynamic_partitions_requests[0].partition_keys)
    only_bad = _tick(instance, data_dir)
    assert (
        isinstance(only_bad, dg.SkipReason) and "a_bad.csv" in only_bad.skip_message and "unknown label" in only_bad.skip_message
    )


def test_a_file_for_an_unknown_task_is_reported(data_dir, instance):
    write_csv(data_dir / "incoming" / "nosuchtask" / "x.csv", [("set an alarm", "alarm_set")])
    result = _tick(instance, data_dir)
    assert isinstance(result, dg.SkipReason) and "nosuchtask" in result.skip_message and "task.yaml" in result.skip_message


def test_sensor_runs_by_default_and_schedule_is_off(data_dir):
    assert incoming_seed_files.default_status == dg.DefaultSensorStatus.RUNNING
    schedule = refresh_schedule(load_task(data_dir / "tasks" / "home"))
    assert schedule.name == "refresh_home" and schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 6 * * 1"


def test_schedule_opens_one_refresh_batch_per_task_idempotently(data_dir, tmp_path):
    when = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    # A schedule context needs an instance reference, which only a persistent (temporary) instance has.
    (tmp_path / "instance").mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "instance")) as instance:

        def evaluate():
            with dg.build_schedule_context(
                instance=instance, scheduled_execution_time=when, resources={"factory": FactoryResource(data_dir=str(data_dir))}
            ) as context:
                return refresh_schedule(load_task(data_dir / "tasks" / "home"))(context)

        request = evaluate()
        assert request.partition_key == "home-refresh_20261123_0600" and request.asset_selection == [dg.AssetKey("seeds")]
        assert evaluate().run_key == "home-refresh_20261123_0600"
        assert instance.get_dynamic_partitions(BATCHES) == ["home-refresh_20261123_0600"]
