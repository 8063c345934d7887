"""The openai-batch backend: submit, poll through the sensor, resubmit by key, cancel, sync fallback."""

from __future__ import annotations

import time

import dagster as dg
import pytest

from synth_assets.core.llm_batch import load_job
from synth_assets.core.pricing import price_for
from synth_assets.core.task_config import GateConfig
from synth_assets.defs.llm_batches import llm_batches
from synth_assets.fake_openai import FakeSettings
from synth_assets_tests.factory_harness import build_factory
from synth_assets_tests.fake_server import running_fake_openai
from synth_assets_tests.test_llm_generation import API_KEY, PER_REQUEST, REQUESTS, write_llm_task

SLOTS = REQUESTS * PER_REQUEST


@pytest.fixture(scope="module")
def fake_llm_settings():
    return FakeSettings(batch_delay_s=0.2)


@pytest.fixture
def factory(server, data_dir, monkeypatch, instance):
    write_llm_task(data_dir, server.base_url)
    _use_batch_backend(data_dir)
    monkeypatch.setenv("FAKE_OPENAI_KEY", API_KEY)
    return build_factory(data_dir, monkeypatch, instance)


def _use_batch_backend(data_dir):
    task_file = data_dir / "tasks" / "home" / "task.yaml"
    task_file.write_text(task_file.read_text().replace("backend: openai", "backend: openai-batch"))


def _tick(factory):
    with dg.build_sensor_context(instance=factory.instance, resources={"factory": factory.resource}) as context:
        return llm_batches(context)


def _tick_until_run_requested(factory, key, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = _tick(factory)
        if isinstance(result, dg.SensorResult) and result.run_requests:
            assert [r.partition_key for r in result.run_requests] == [key]
            return result
        time.sleep(0.1)
    raise AssertionError(f"no run requested for {key}: job is {load_job(factory.lake, key)}")


def test_a_batch_job_is_submitted_polled_and_materialized_at_the_batch_price(server, factory):
    key = factory.open("b1")
    first = _tick(factory)
    job = load_job(factory.lake, key)
    assert job.state == "submitted" and len(job.submissions[0]["keys"]) == REQUESTS
    [observation] = first.asset_events
    assert observation.partition == key and observation.metadata["batch_api_ids"].value == job.submissions[0]["id"]
    assert not first.run_requests, "nothing to run before the batch completes"

    _tick_until_run_requested(factory, key)
    result = factory.run(key)
    assert result.success
    generated = factory.lake.read_table("generated", key)
    assert (generated["status"] == "ok").sum() == SLOTS
    stats = server.stats()
    assert stats["hits"].get("POST /v1/chat/completions", 0) == 0, "answers came through the Batch API only"
    price = price_for("gpt-4o-mini")
    booked = generated[generated["prompt_tokens"] > 0]
    expected = [price.cost(p, c, batch=True) for p, c in zip(booked["prompt_tokens"], booked["completion_tokens"])]
    assert booked["cost_usd"].tolist() == pytest.approx(expected)
    assert isinstance(_tick(factory), dg.SkipReason), "a materialized partition is left alone"


def test_a_run_before_the_batch_completes_fails_with_what_to_do(factory):
    key = factory.open("b1")
    result = factory.run(key)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "the Batch API has not answered yet" in failure.step_failure_data.error.message


def test_expired_items_are_resubmitted_by_key_only(server, factory):
    server.set_faults(batch_expire={"first": 3})
    key = factory.open("b1")
    _tick_until_run_requested(factory, key)
    job = load_job(factory.lake, key)
    assert job.resubmissions == 1 and len(job.submissions) == 2
    assert len(job.submissions[1]["keys"]) == 3 and set(job.submissions[1]["keys"]) <= set(job.submissions[0]["keys"])
    assert factory.run(key).success
    assert (factory.lake.read_table("generated", key)["status"] == "ok").all()


def test_requests_never_answered_become_rows_saying_why(server, data_dir, factory):
    task_file = data_dir / "tasks" / "home" / "task.yaml"
    task_file.write_text(task_file.read_text().replace("max_retries: 3", "max_retries: 3\n    batch_resubmissions: 0"))
    server.set_faults(batch_expire={"match": "Label: play_music"})
    key = factory.open("b1")
    _tick_until_run_requested(factory, key)
    factory.run(key)
    generated = factory.lake.read_table("generated", key)
    failed = generated[generated["status"] == "request_failed"]
    assert set(failed["label"]) == {"play_music"} and len(failed) == 2 * PER_REQUEST
    assert failed["error"].str.contains("did not answer it after 0 resubmission").all()
    assert len(generated) == SLOTS
    verdict = factory.lake.read_json("gated", key)
    # The gate tops the label up (core/top_up.py) through the live endpoint: a few requests are not worth a Batch API day.
    assert verdict["top_up"]["labels_missing_before"] == ["play_music"] and verdict["missing_labels"] == []
    top_up_requests = -(-GateConfig().top_up_attempts_per_label // PER_REQUEST)
    assert server.stats()["hits"].get("POST /v1/chat/completions", 0) == top_up_requests


def test_a_cancelled_job_keeps_what_was_answered_and_names_the_rest(server, factory):
    from synth_assets.core.llm_batch import cancel

    key = factory.open("b1")
    _tick(factory)
    job = cancel(factory.resource.task("home"), key, factory.lake, API_KEY)
    assert job.submissions[0]["status"] in ("cancelling", "cancelled")
    _tick_until_run_requested(factory, key)
    assert load_job(factory.lake, key).state == "cancelled"
    factory.run(key)
    generated = factory.lake.read_table("generated", key)
    assert len(generated) == SLOTS
    assert set(generated["status"]) <= {"ok", "request_failed"}
    cancelled = generated[generated["status"] == "request_failed"]
    assert cancelled["error"].str.contains("cancelled before this request was answered").all()
    top_up = factory.lake.read_table("top_up", key)  # labels the cancel left without an answer are topped up live
    assert factory.lake.read_json("gated", key)["attempted"] == SLOTS + len(top_up)


def test_an_endpoint_without_a_batch_api_runs_the_sync_path(data_dir, monkeypatch, instance):
    with running_fake_openai(FakeSettings(batch_api=False)) as plain:
        write_llm_task(data_dir, plain.base_url)
        _use_batch_backend(data_dir)
        monkeypatch.setenv("FAKE_OPENAI_KEY", API_KEY)
        factory = build_factory(data_dir, monkeypatch, instance)
        key = factory.open("b1")
        _tick_until_run_requested(factory, key)
        assert load_job(factory.lake, key).state == "sync_fallback"
        assert factory.run(key).success
        assert plain.stats()["hits"]["POST /v1/chat/completions"] == REQUESTS
    assert (factory.lake.read_table("generated", key)["status"] == "ok").all()
