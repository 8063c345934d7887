"""Top-up rounds on a real Dagster instance: a label left without an accepted row gets more attempts before the verdict.

On the openai backend the project's fake server writes the first pass's ``lights_off`` examples
for another label; the top-up asks again and fills the label, counts reconcile over
``generated``, ``top_up`` and ``gated``, and a replay sends nothing. On the template backend a
label whose seeds hold no slot value can only be copied under ``operators: {slot: 1}``, so every
attempt copies a seed, top-up included: the batch passes or fails on the coverage that is left.
"""

from __future__ import annotations

import dagster as dg
import pytest
import yaml

from synth_assets.core.attempts import TOP_UP_TABLE
from synth_assets.core.audit import read_entries, trail_path
from synth_assets.core.batches import synthetic_registry
from synth_assets.core.generation import spent_by_batches
from synth_assets.defs.deduplicated import references_so_far
from synth_assets.defs.resources import REPLAY_VARIABLE
from synth_assets.defs.training_set import version_inputs
from synth_assets_tests.conftest import write_csv, write_task
from synth_assets_tests.factory_harness import build_factory

API_KEY = "sk-test-top-up-0123456789"
UP_TO_GATE = ("seeds", "generated", "deduplicated", "gated")
STARVED = "lights_off"
SMALL_TALK = ["nice to meet you", "what is up buddy", "you are a good listener", "tell me something nice", "thanks for the chat"]
TOPICS = [
    "laundry",
    "garden",
    "dentist",
    "rent",
    "passport",
    "piano",
    "recycling",
    "vaccine",
    "plumber",
    "library",
    "haircut",
    "insurance",
    "taxes",
    "groceries",
    "birthday",
    "meeting",
    "medicine",
    "car",
    "gym",
]


def _run_to_gate(factory, key: str, stages=UP_TO_GATE) -> dg.ExecuteInProcessResult:
    return factory.defs.resolve_job_def("factory").execute_in_process(
        partition_key=key, instance=factory.instance, asset_selection=[dg.AssetKey(s) for s in stages], raise_on_error=False
    )


def _gated_metadata(factory) -> dict:
    event = factory.instance.get_latest_materialization_event(dg.AssetKey("gated"))
    return {name: value.value for name, value in event.asset_materialization.metadata.items()}


def _chat_hits(server) -> int:
    return server.stats()["hits"].get("POST /v1/chat/completions", 0)


@pytest.fixture
def llm_factory(server, data_dir, monkeypatch, instance):
    """The home task on the openai backend against the fake server, whose first two lights_off answers are off-label."""
    task_file = data_dir / "tasks" / "home" / "task.yaml"
    config = yaml.safe_load(task_file.read_text())
    llm = {
        "model": "gpt-4o-mini",
        "base_url": server.base_url,
        "api_key_env": "FAKE_OPENAI_KEY",
        "examples_per_request": 3,
        "refine_max_share": 0.0,  # the off-label answers go to the top-up, not to a follow-up request
    }
    config["generation"] = {"backend": "openai", "per_label": 6, "llm": llm}
    config["gate"]["top_up_attempts_per_label"] = 6
    task_file.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("FAKE_OPENAI_KEY", API_KEY)
    server.set_faults(wrong_label={"match": f"Label: {STARVED}", "first": 2, "label": "play_music"})
    return build_factory(data_dir, monkeypatch, instance)


def test_a_label_the_llm_got_wrong_is_topped_up_and_the_batch_publishes(llm_factory, server):
    key = llm_factory.open("b1")
    result = _run_to_gate(llm_factory, key)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    lake = llm_factory.lake
    generated, deduplicated = lake.read_table("generated", key), lake.read_table("deduplicated", key)
    top_up, gated = lake.read_table(TOP_UP_TABLE, key), lake.read_table("gated", key)
    verdict = lake.read_json("gated", key)
    assert set(generated.loc[generated["label"] == STARVED, "status"]) == {"off_label"}
    assert verdict["passed"] and verdict["missing_labels"] == [] and verdict["label_coverage"] == 1.0
    assert verdict["top_up"]["labels_missing_before"] == [STARVED] and verdict["top_up"]["labels_topped_up"] == [STARVED]
    assert verdict["top_up"]["attempts_by_round"] == {"1": 6} and verdict["top_up"]["labels_still_missing"] == []
    assert gated.loc[gated["accepted"] & (gated["label"] == STARVED), "top_up_round"].eq(1).all()

    # Every attempt, first pass or top-up, ends accepted or rejected with a reason, once.
    assert len(gated) == len(generated) + len(top_up) == verdict["attempted"] == verdict["accepted"] + verdict["rejected"]
    assert (gated.loc[~gated["accepted"], "reject_reason"] != "").all()
    first_pass = gated[gated["top_up_round"] == 0]
    assert list(first_pass["row_id"]) == list(deduplicated["row_id"])
    assert list(first_pass["dup_status"]) == list(deduplicated["dup_status"])
    assert list(gated.loc[gated["top_up_round"] > 0, "row_id"]) == list(top_up["row_id"])
    assert (top_up["top_up_round"] == 1).all() and set(top_up["label"]) == {STARVED}
    assert not set(top_up["request_key"]) & set(generated["request_key"])

    assert _chat_hits(server) == 8 + 2, "8 first-pass requests, then 2 for 6 top-up attempts of one label"
    requests = [e for e in read_entries(trail_path(lake.local_root, "home")) if e["kind"] == "llm_request"]
    assert len(requests) == 10 and len({entry["payload"]["request_key"] for entry in requests}) == 10

    metadata = _gated_metadata(llm_factory)
    assert metadata["top_up_rounds_run"] == 1 and metadata["labels_topped_up"] == STARVED
    assert metadata["labels_still_missing"] == "none" and "| 1 | lights_off | 6 |" in metadata["top_up_attempts_by_round"]

    pool = version_inputs(llm_factory.instance, lake, key).pool
    accepted = gated[gated["accepted"]]
    assert set(pool["row_id"]) == set(accepted["row_id"]) and STARVED in set(pool["label"])


def test_replaying_a_topped_up_batch_makes_no_call_and_writes_the_same_bytes(llm_factory, server, data_dir, monkeypatch):
    key = llm_factory.open("b1")
    assert _run_to_gate(llm_factory, key).success
    paths = [llm_factory.lake.table_path(stage, key) for stage in ("generated", "deduplicated", "gated", TOP_UP_TABLE)]
    before, hits = {path: path.read_bytes() for path in paths}, _chat_hits(server)
    assert len(llm_factory.lake.read_table(TOP_UP_TABLE, key)) == 6

    monkeypatch.setenv(REPLAY_VARIABLE, "1")  # a cache miss would fail the run instead of calling out
    replaying = build_factory(data_dir, monkeypatch, llm_factory.instance)
    result = _run_to_gate(replaying, key, ("generated", "deduplicated", "gated"))
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    assert _chat_hits(server) == hits
    assert {path: path.read_bytes() for path in paths} == before


def test_later_batches_count_the_top_up_rows_as_the_batchs_own(llm_factory):
    first = llm_factory.open("b1")
    assert _run_to_gate(llm_factory, first).success
    second = llm_factory.open("b2")
    assert _run_to_gate(llm_factory, second, ("seeds",)).success
    top_up = llm_factory.lake.read_table(TOP_UP_TABLE, first)
    unique = set(top_up.loc[top_up["dup_status"] == "unique", "row_id"])
    references, _stored = references_so_far(llm_factory.instance, llm_factory.resource, second)
    [earlier_batches] = [reference for reference in references if reference.verdict == "exact_dup"]
    assert unique and unique <= set(earlier_batches.ids), "the second batch is deduplicated against them"
    assert unique <= set(synthetic_registry(llm_factory.lake, [first])["row_id"]), "seed files copying them are caught"
    spent = llm_factory.lake.read_table("generated", first)["cost_usd"].sum() + top_up["cost_usd"].sum()
    assert top_up["cost_usd"].sum() > 0 and spent_by_batches(llm_factory.lake, [first]) == pytest.approx(spent)


def _write_slot_task(data_dir, topics: int) -> None:
    """A task of ``topics`` reminder labels whose seeds carry slot values, and ``small_talk`` whose seeds carry none."""
    labels = {f"{topic}_reminder": f"the user wants a reminder about the {topic}" for topic in TOPICS[:topics]}
    labels["small_talk"] = "the user chats without asking for anything"
    task_dir = write_task(
        data_dir,
        labels=labels,
        generation={"backend": "template", "per_label": 4, "quotas": "uniform", "operators": {"slot": 1}},
    )
    seeds = [
        (text, f"{topic}_reminder")
        for topic in TOPICS[:topics]
        for text in (
            f"remind me about the {topic} at seven",
            f"{topic} on friday at nine",
            f"put the {topic} on monday morning",
            f"the {topic} is at ten tomorrow",
            f"{topic} reminder for sunday evening at six",
        )
    ]
    write_csv(task_dir / "seeds.csv", seeds + [(text, "small_talk") for text in SMALL_TALK])
    heldout = [(f"do not let me forget the {topic} on a tuesday", f"{topic}_reminder") for topic in TOPICS[:topics]]
    write_csv(task_dir / "heldout.csv", heldout + [("how is your day going", "small_talk")])


def _slot_batch_to_gate(tmp_path, monkeypatch, instance, topics: int):
    """A slot task of ``topics`` reminder labels + small_talk, its first batch run up to the gate."""
    data_dir = tmp_path / "data"
    _write_slot_task(data_dir, topics=topics)
    factory = build_factory(data_dir, monkeypatch, instance)
    key = factory.open("b1")
    return factory, key, _run_to_gate(factory, key)


def test_coverage_095_after_top_up_passes_and_names_the_label_still_missing(tmp_path, monkeypatch, instance):
    factory, key, result = _slot_batch_to_gate(tmp_path, monkeypatch, instance, topics=19)
    assert result.success, [event.message for event in result.all_events if event.is_failure]
    verdict = factory.lake.read_json("gated", key)
    assert verdict["passed"] and verdict["label_coverage"] == 0.95 and verdict["missing_labels"] == ["small_talk"]
    top_up = verdict["top_up"]
    assert top_up["attempts_by_round"] == {"1": 20} and top_up["stopped"] == "round 1 brought no new text"
    gated = factory.lake.read_table("gated", key)
    assert set(gated.loc[gated["label"] == "small_talk", "reject_reason"]) == {"copies_seed"}
    metadata = _gated_metadata(factory)
    assert metadata["labels_still_missing"] == "small_talk" and metadata["top_up_rounds_run"] == 1
    logs = " ".join(event.message for event in instance.all_logs(result.run_id))
    assert "no accepted row for small_talk after 1 top-up round(s)" in logs

    inputs = version_inputs(instance, factory.lake, key)
    assert inputs.included == [key] and set(inputs.pool["row_id"]) == set(gated.loc[gated["accepted"], "row_id"])


def test_a_batch_below_coverage_after_top_up_fails_naming_the_missing_label(tmp_path, monkeypatch, instance):
    factory, key, result = _slot_batch_to_gate(tmp_path, monkeypatch, instance, topics=3)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "gate_passed"]
    failure = "label coverage 0.750 is below gate.min_label_coverage=0.9 (no accepted row for: small_talk)"
    assert not check.passed and check.description == failure
    verdict = factory.lake.read_json("gated", key)
    assert verdict["failures"] == [failure] and verdict["missing_labels"] == ["small_talk"]
    assert verdict["top_up"]["labels_topped_up"] == ["small_talk"] and verdict["top_up"]["rounds_run"] == 1
    assert _gated_metadata(factory)["labels_still_missing"] == "small_talk"
    assert version_inputs(instance, factory.lake, key).included == []
