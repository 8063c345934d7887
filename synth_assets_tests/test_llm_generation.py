"""The openai backend end to end against the project's fake OpenAI server, fault by fault.

Each test counts what the server saw, so "nothing lost", "retries bounded", "zero calls on
resume" and "replay makes no call" are measured, not assumed.
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from synth_assets.core.generation import BudgetError, LlmSession, generate_batch
from synth_assets.core.llm_cache import ResponseCache
from synth_assets.core.llm_client import CircuitOpenError, LlmError, ReplayMissError, prompt_tokens_of
from synth_assets.core.pricing import price_for
from synth_assets.core.prompts import build_requests
from synth_assets.core.task_config import load_task
from synth_assets.fake_openai import FakeSettings
from synth_assets_tests.fake_server import running_fake_openai

API_KEY = "sk-test-never-logged-0123456789"
PER_REQUEST = 3
REQUESTS = 4 * 2  # 4 labels, per_label 6 -> 2 requests of 3 examples each


def write_llm_task(data_dir, base_url, **llm):
    task_dir = data_dir / "tasks" / "home"
    config = yaml.safe_load((task_dir / "task.yaml").read_text())
    settings = {
        "model": "gpt-4o-mini",
        "base_url": base_url,
        "api_key_env": "FAKE_OPENAI_KEY",
        "examples_per_request": PER_REQUEST,
        "max_retries": 3,
        "timeout_seconds": 2,
        "concurrency": 4,
        "refine_max_share": 0.0,  # the refinement pass has its own tests below
    }
    config["generation"] = {"backend": "openai", "per_label": 6, "llm": settings | llm}
    (task_dir / "task.yaml").write_text(yaml.safe_dump(config))
    return load_task(task_dir)


@pytest.fixture
def cache(tmp_path):
    store = ResponseCache(tmp_path / "cache" / "llm.sqlite")
    yield store
    store.close()


def _run(task, seed_rows, cache, replay=False, spent=0.0):
    session = LlmSession(cache=cache, api_key=API_KEY, replay=replay, spent_by_task_usd=spent)
    return generate_batch(task, "home-b1", seed_rows, session)


def _chat_hits(server) -> int:
    return server.stats()["hits"].get("POST /v1/chat/completions", 0)


def _statuses(result) -> dict:
    return result.table["status"].value_counts().to_dict()


def test_a_clean_run_fills_every_slot_with_provenance_and_cost(server, data_dir, seed_rows, cache):
    task = write_llm_task(data_dir, server.base_url)
    result = _run(task, seed_rows, cache)
    table = result.table
    assert len(table) == REQUESTS * PER_REQUEST and _statuses(result) == {"ok": len(table)}
    assert table["request_key"].nunique() == REQUESTS and table["row_id"].is_unique
    assert (table["generator"] == "openai").all() and (table["model"] == "gpt-4o-mini").all()
    assert table["cost_usd"].sum() == pytest.approx(result.summary["spent_usd"], abs=1e-6) and table["cost_usd"].sum() > 0
    assert (table.groupby("request_key")["prompt_tokens"].apply(lambda s: (s > 0).sum()) == 1).all(), "booked once"
    assert result.summary["sent"] == REQUESTS == _chat_hits(server)


def test_rate_limits_are_retried_after_retry_after_and_nothing_is_lost(server, data_dir, seed_rows, cache):
    task = write_llm_task(data_dir, server.base_url)
    server.set_faults(rate_limit={"first": 5, "retry_after": 0.05}, server_error={"first": 2})
    result = _run(task, seed_rows, cache)
    assert _statuses(result) == {"ok": REQUESTS * PER_REQUEST}
    assert result.summary["retries"] == 7 and _chat_hits(server) == REQUESTS + 7


def test_retries_are_bounded_and_the_failure_is_a_row_with_the_reason(server, data_dir, seed_rows, cache):
    task = write_llm_task(data_dir, server.base_url, max_retries=2, circuit_breaker_failures=50)
    server.set_faults(rate_limit={"match": "Label: play_music", "retry_after": 0.01})
    result = _run(task, seed_rows, cache)
    failed = result.table[result.table["status"] == "request_failed"]
    assert set(failed["label"]) == {"play_music"} and len(failed) == 2 * PER_REQUEST
    assert failed["error"].str.contains("HTTP 429").all() and failed["error"].str.contains("after 3 attempt").all()
    assert _chat_hits(server) == (REQUESTS - 2) + 2 * 3


def test_timeouts_are_retried(server, data_dir, seed_rows, cache):
    task = write_llm_task(data_dir, server.base_url, timeout_seconds=0.3)
    server.set_faults(timeout={"first": 2, "seconds": 3})
    result = _run(task, seed_rows, cache)
    assert _statuses(result) == {"ok": REQUESTS * PER_REQUEST} and result.summary["retries"] == 2


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ({"truncate": {"first": 1}}, "truncated"),
        ({"malformed": {"first": 1}}, "parse_error"),
        ({"malformed": {"first": 1, "style": "wrong_shape"}}, "parse_error"),
        ({"refusal": {"first": 1}}, "refused"),
        ({"wrong_label": {"first": 1}}, "off_label"),
    ],
)
def test_a_bad_answer_becomes_rejected_rows_with_the_raw_text_kept(server, data_dir, seed_rows, cache, fault, status):
    task = write_llm_task(data_dir, server.base_url, concurrency=1)
    server.set_faults(**fault)
    result = _run(task, seed_rows, cache)
    bad = result.table[result.table["status"] != "ok"]
    assert set(bad["status"]) == {status} and len(bad) == PER_REQUEST
    assert (bad["error"] != "").all() and (bad["raw_response"] != "").all()
    assert len(result.table) == REQUESTS * PER_REQUEST


def test_duplicate_answers_are_caught_by_the_dedup_stage_with_their_partner(server, data_dir, seed_rows, cache):
    from synth_assets.core.dedup import find_duplicates, references_for_batch

    task = write_llm_task(data_dir, server.base_url, concurrency=1)
    server.set_faults(duplicate={"first": 1, "style": "identical"})
    table = _run(task, seed_rows, cache).table
    empty = pd.DataFrame({"row_id": [], "text": [], "line": [], "label": []})
    verdicts = find_duplicates(table, references_for_batch(empty, seed_rows, empty), threshold=0.8, num_perm=128, shingle_chars=5)
    first_request = verdicts[verdicts["request_key"] == verdicts["request_key"].iloc[0]]
    assert first_request["dup_status"].tolist()[1:] == ["exact_dup"] * (PER_REQUEST - 1)
    assert set(first_request["dup_of"].iloc[1:]) == {first_request["row_id"].iloc[0]}


def test_an_endpoint_that_keeps_failing_trips_the_breaker_and_keeps_what_was_paid(server, data_dir, seed_rows, cache):
    task = write_llm_task(data_dir, server.base_url, concurrency=1, max_retries=0, circuit_breaker_failures=2)
    server.set_faults(server_error={"match": "Label: play_music"})
    with pytest.raises(CircuitOpenError, match="2 failed requests in a row") as stopped:
        _run(task, seed_rows, cache)
    assert "HTTP 500" in str(stopped.value) and "re-run to resume" in str(stopped.value)
    assert _chat_hits(server) == 6, "labels in order: 2 answered each for alarm_set and lights_off, then 2 failures"
    assert len(cache) == 4


def test_a_rerun_after_a_crash_sends_only_what_is_missing(server, data_dir, seed_rows, cache):
    task = write_llm_task(data_dir, server.base_url, concurrency=1, max_retries=0, circuit_breaker_failures=2)
    server.set_faults(server_error={"match": "Label: weather_query"})
    with pytest.raises(CircuitOpenError):
        _run(task, seed_rows, cache)
    cached_before = len(cache)
    server.reset()
    result = _run(task, seed_rows, cache)
    assert _statuses(result) == {"ok": REQUESTS * PER_REQUEST}
    assert _chat_hits(server) == REQUESTS - cached_before and result.summary["from_cache"] == cached_before


def test_a_second_run_is_free_and_identical(server, data_dir, seed_rows, cache):
    task = write_llm_task(data_dir, server.base_url)
    first = _run(task, seed_rows, cache).table
    hits = _chat_hits(server)
    again = _run(task, seed_rows, cache)
    assert _chat_hits(server) == hits and again.summary["spent_usd"] == 0
    pd.testing.assert_frame_equal(first, again.table)


def test_replay_makes_no_call_and_names_missing_keys(server, data_dir, seed_rows, cache):
    task = write_llm_task(data_dir, server.base_url)
    with pytest.raises(ReplayMissError, match=r"8 of 8 requests are not in the cache .*missing keys: [0-9a-f]{32}"):
        _run(task, seed_rows, cache, replay=True)
    assert _chat_hits(server) == 0
    recorded = _run(task, seed_rows, cache).table
    replayed = _run(task, seed_rows, cache, replay=True).table
    assert _chat_hits(server) == REQUESTS
    pd.testing.assert_frame_equal(recorded, replayed)


def test_a_batch_over_budget_is_refused_before_any_call(server, data_dir, seed_rows, cache):
    task = write_llm_task(data_dir, server.base_url, budget_usd_per_batch=0.00001)
    with pytest.raises(BudgetError, match="budget_usd_per_batch=1e-05"):
        _run(task, seed_rows, cache)
    assert _chat_hits(server) == 0


def test_the_task_budget_counts_earlier_batches(server, data_dir, seed_rows, cache):
    task = write_llm_task(data_dir, server.base_url, budget_usd_per_task=1.0)
    with pytest.raises(BudgetError, match=r"\$1.0000 already spent"):
        _run(task, seed_rows, cache, spent=1.0)


def test_spend_stops_before_the_cap_counting_requests_in_flight(server, data_dir, seed_rows, cache):
    # Each request in flight reserves its worst case (prompt + max_tokens). With a cap of 3.5 worst
    # cases and all requests started at once, three go out and the rest are never sent.
    task = write_llm_task(data_dir, server.base_url, max_tokens=4000, concurrency=REQUESTS)
    requests = build_requests(task, "home-b1", seed_rows, "json_schema")
    worst_case = max(price_for("gpt-4o-mini").cost(prompt_tokens_of(r), 4000) for r in requests)
    task = write_llm_task(data_dir, server.base_url, max_tokens=4000, concurrency=REQUESTS, budget_usd_per_batch=3.5 * worst_case)
    result = _run(task, seed_rows, cache)
    assert _statuses(result) == {"ok": 3 * PER_REQUEST, "budget_exhausted": 5 * PER_REQUEST}
    assert _chat_hits(server) == 3 and result.summary["skipped_for_budget"] == 5
    assert result.table["cost_usd"].sum() <= 3.5 * worst_case
    exhausted = result.table[result.table["status"] == "budget_exhausted"]
    assert exhausted["error"].str.contains("would pass the budget").all()


def test_without_json_schema_support_the_batch_runs_in_json_mode(data_dir, seed_rows, cache):
    with running_fake_openai(FakeSettings(json_schema=False)) as plain:
        task = write_llm_task(data_dir, plain.base_url)
        result = _run(task, seed_rows, cache)
    assert result.summary["structured_output"] == "json_object"
    assert _statuses(result) == {"ok": REQUESTS * PER_REQUEST}


def test_a_missing_api_key_names_the_variable_not_a_value(server, data_dir, seed_rows, cache):
    task = write_llm_task(data_dir, server.base_url)
    session = LlmSession(cache=cache, api_key=None, replay=False)
    with pytest.raises(LlmError, match="FAKE_OPENAI_KEY is not set"):
        generate_batch(task, "home-b1", seed_rows, session)


def test_fixable_rejects_are_asked_again_once_with_the_reason_and_linked(server, data_dir, seed_rows, cache):
    task = write_llm_task(data_dir, server.base_url, concurrency=1, refine_max_share=0.5)
    server.set_faults(truncate={"first": 1}, wrong_label={"first": 1})
    result = _run(task, seed_rows, cache)
    table = result.table
    refined = table[table["replaces_row_id"] != ""]
    replaced = table.set_index("row_id").loc[refined["replaces_row_id"]]
    assert result.summary["refinement_requests"] == 2 and len(refined) == 2 * PER_REQUEST
    assert sorted(set(replaced["status"])) == ["off_label", "truncated"], "each new row names the row it replaces"
    assert (refined["status"] == "ok").all() and (refined["template_id"] == "labelled_examples/refine").all()
    assert (refined["label"].to_numpy() == replaced["label"].to_numpy()).all()
    assert len(table) == (REQUESTS + 2) * PER_REQUEST and _chat_hits(server) == REQUESTS + 2


def test_refinement_is_bounded_per_batch_and_replays_from_the_cache(server, data_dir, seed_rows, cache):
    task = write_llm_task(data_dir, server.base_url, refine_max_share=0.25)
    server.set_faults(malformed={})
    first = _run(task, seed_rows, cache)
    assert first.summary["refinement_requests"] == 2 and _chat_hits(server) == REQUESTS + 2
    replayed = _run(task, seed_rows, cache, replay=True)
    assert _chat_hits(server) == REQUESTS + 2
    pd.testing.assert_frame_equal(first.table, replayed.table)


def test_the_factory_runs_end_to_end_on_the_openai_backend_without_leaking_the_key(server, data_dir, monkeypatch, instance):
    import dagster as dg

    from synth_assets_tests.factory_harness import build_factory

    write_llm_task(data_dir, server.base_url, examples_per_request=4)
    monkeypatch.setenv("FAKE_OPENAI_KEY", API_KEY)
    factory = build_factory(data_dir, monkeypatch, instance)
    keys = [factory.open("b1"), factory.open("b2")]
    run_ids = []
    for key in keys:
        result = factory.run(key)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        run_ids.append(result.run_id)
    generated = instance.get_latest_materialization_event(dg.AssetKey("generated")).asset_materialization.metadata
    assert generated["llm_sent"].value == 8 and generated["cost_usd"].value > 0
    gated = instance.get_latest_materialization_event(dg.AssetKey("gated")).asset_materialization.metadata
    assert gated["cost_per_accepted_example_usd"].value > 0
    manifest = factory.lake.read_json("training_set", keys[1])
    assert manifest["cost_per_accepted_example_usd"] > 0 and manifest["counts"]["by_origin"]["synthetic"] > 0
    assert factory.lake.read_json("heldout_eval", keys[1])["version"]["macro_f1"] > 0

    written = [path.read_bytes() for path in (data_dir / "lake").rglob("*") if path.is_file()]
    written += [path.read_bytes() for path in (data_dir / "cache").rglob("*") if path.is_file()]
    assert not any(API_KEY.encode() in blob for blob in written)
    assert API_KEY not in " ".join(str(event) for run_id in run_ids for event in instance.all_logs(run_id))
