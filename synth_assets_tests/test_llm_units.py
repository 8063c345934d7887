"""Pieces of the openai backend that need no server: prompts, prices, the answer cache, answer parsing."""

from __future__ import annotations

import json
import multiprocessing

import pytest
import yaml

from synth_assets.core.folds import seed_folds
from synth_assets.core.llm_cache import CachedAnswer, ResponseCache
from synth_assets.core.llm_client import Failure
from synth_assets.core.llm_generator import slot_outcomes
from synth_assets.core.pricing import UnknownPriceError, price_for
from synth_assets.core.prompts import DIVERSITY_AXES, build_requests
from synth_assets.core.task_config import TaskConfigError, load_task


def _llm_task(data_dir, **llm):
    task_dir = data_dir / "tasks" / "home"
    config = yaml.safe_load((task_dir / "task.yaml").read_text())
    config["generation"] = {"backend": "openai", "per_label": 12, "llm": {"model": "gpt-4o-mini", **llm}}
    (task_dir / "task.yaml").write_text(yaml.safe_dump(config))
    return load_task(task_dir)


def _answer(content=None, finish_reason="stop", refusal=None) -> CachedAnswer:
    return CachedAnswer("k", "m", content, refusal, finish_reason, 10, 20, 0.001, "sync")


def _request(data_dir, seed_rows, label="alarm_set"):
    task = _llm_task(data_dir, examples_per_request=3)
    return next(r for r in build_requests(task, "home-b1", seed_rows, "json_schema") if r.label == label)


def test_openai_backend_needs_an_llm_section(data_dir):
    task_dir = data_dir / "tasks" / "home"
    config = yaml.safe_load((task_dir / "task.yaml").read_text())
    config["generation"] = {"backend": "openai"}
    (task_dir / "task.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(TaskConfigError, match="backend openai needs an llm section"):
        load_task(task_dir)


def test_requests_cover_per_label_in_whole_requests_with_rotating_seeds(data_dir, seed_rows):
    task = _llm_task(data_dir, examples_per_request=5, seed_examples_per_request=3)
    requests = build_requests(task, "home-b1", seed_rows, "json_schema")
    alarm = [r for r in requests if r.label == "alarm_set"]
    assert len(alarm) == 3  # ceil(12 / 5)
    assert len({tuple(r.seed_ids) for r in alarm}) == 3, "each request shows other seeds"
    assert all(set(r.axes) == set(DIVERSITY_AXES) for r in alarm)
    assert len({r.key for r in requests}) == len(requests)
    assert requests == build_requests(task, "home-b1", seed_rows, "json_schema"), "same inputs, same requests"


def test_each_request_shows_seeds_of_one_validation_fold_only(data_dir, seed_rows):
    task = _llm_task(data_dir, examples_per_request=2, seed_examples_per_request=3)
    folds = dict(zip(seed_rows["seed_id"], seed_folds(seed_rows["text"], seed_rows["label"], task.mix.validation_folds)))
    requests = build_requests(task, "home-b1", seed_rows, "json_schema")
    assert all(len({folds[seed_id] for seed_id in request.seed_ids}) == 1 for request in requests)
    alarm = [request for request in requests if request.label == "alarm_set"]
    assert {folds[request.seed_ids[0]] for request in alarm} == {0, 1, 2}, "requests take the folds in turn"


def test_attempts_per_label_set_the_number_of_requests(data_dir, seed_rows):
    task = _llm_task(data_dir, examples_per_request=5)
    attempts = {"alarm_set": 11, "lights_off": 4, "play_music": 0, "weather_query": 5}
    requests = build_requests(task, "home-b1", seed_rows, "json_schema", attempts)
    per_label = {label: sum(r.label == label for r in requests) for label in attempts}
    assert per_label == {"alarm_set": 3, "lights_off": 1, "play_music": 0, "weather_query": 1}


def test_no_heldout_text_ever_enters_a_prompt(data_dir, seed_rows):
    from synth_assets_tests.conftest import HELDOUT

    task = _llm_task(data_dir, examples_per_request=2, seed_examples_per_request=8)
    prompts = " ".join(m["content"] for r in build_requests(task, "home-b1", seed_rows, "json_schema") for m in r.messages)
    assert all(text in prompts for text in seed_rows["text"]), "every seed is shown at least once"
    assert not [text for texts in HELDOUT.values() for text in texts if text in prompts]


def test_request_shows_label_description_examples_and_the_schema(data_dir, seed_rows):
    request = _request(data_dir, seed_rows)
    user = request.messages[-1]["content"]
    assert "Label: alarm_set" in user and "the user wants to set an alarm" in user and "Number of examples: 3" in user
    schema = request.params["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["examples"]["minItems"] == 3
    assert schema["properties"]["examples"]["items"]["properties"]["label"]["enum"] == ["alarm_set"]


def test_json_mode_changes_the_request_key(data_dir, seed_rows):
    task = _llm_task(data_dir)
    schema_keys = {r.key for r in build_requests(task, "home-b1", seed_rows, "json_schema")}
    json_keys = {r.key for r in build_requests(task, "home-b1", seed_rows, "json_object")}
    assert not schema_keys & json_keys


def test_prices_come_from_the_table_with_the_batch_discount():
    price = price_for("gpt-4o-mini")
    assert price.cost(1_000_000, 0) == pytest.approx(0.15)
    assert price.cost(0, 1_000_000, batch=True) == pytest.approx(0.30)


def test_an_unpriced_model_is_refused_with_the_fix():
    with pytest.raises(UnknownPriceError, match="price_per_million_tokens"):
        price_for("my-local-llama")
    assert price_for("my-local-llama", {"input": 0.0, "output": 0.0}).cost(1000, 1000) == 0.0


def test_cache_round_trips_and_survives_reopening(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    answer = _answer('{"examples": []}')
    cache.put(answer)
    cache.close()
    reopened = ResponseCache(tmp_path / "c.sqlite")
    assert reopened.get_many(["k", "other"]) == {"k": answer}
    assert len(reopened) == 1


def _write_answers(path, start):
    cache = ResponseCache(path)
    for i in range(start, start + 50):
        cache.put(CachedAnswer(f"key{i}", "m", "{}", None, "stop", 1, 1, 0.0, "sync"))
    cache.close()


def test_two_processes_can_write_the_cache_at_once(tmp_path):
    path = tmp_path / "c.sqlite"
    ResponseCache(path).close()
    workers = [multiprocessing.get_context("spawn").Process(target=_write_answers, args=(path, s)) for s in (0, 50)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert len(ResponseCache(path)) == 100


def test_a_good_answer_fills_every_slot(data_dir, seed_rows):
    content = json.dumps({"examples": [{"text": f"wake me at {n}", "label": "alarm_set"} for n in (5, 6, 7)]})
    outcomes = slot_outcomes(_request(data_dir, seed_rows), _answer(content), 3)
    assert [status for status, _, _ in outcomes] == ["ok"] * 3
    assert [text for _, text, _ in outcomes] == ["wake me at 5", "wake me at 6", "wake me at 7"]


@pytest.mark.parametrize(
    ("answer", "statuses"),
    [
        (_answer('{"examples": [{"text": "wake me', finish_reason="length"), ["truncated"] * 3),
        (_answer(None, refusal="I can't help with that."), ["refused"] * 3),
        (_answer("Sure! Here are examples: 1. wake me up"), ["parse_error"] * 3),
        (_answer('{"items": ["wake me up"]}'), ["parse_error"] * 3),
        (
            _answer('{"examples": [{"text": "lights off", "label": "lights_off"}]}'),
            ["off_label", "missing_example", "missing_example"],
        ),
        (Failure("request_failed", "HTTP 429 after 7 attempt(s)"), ["request_failed"] * 3),
    ],
)
def test_every_bad_answer_becomes_rows_with_the_reason(data_dir, seed_rows, answer, statuses):
    outcomes = slot_outcomes(_request(data_dir, seed_rows), answer, 3)
    assert [status for status, _, _ in outcomes] == statuses
    assert all(error for status, _, error in outcomes if status != "ok")


def test_a_fenced_json_answer_is_read(data_dir, seed_rows):
    content = (
        '```json\n{"examples": [{"text": "a", "label": "alarm_set"}, {"text": "b", "label": "alarm_set"}, {"text": "c"}]}\n```'
    )
    assert [s for s, _, _ in slot_outcomes(_request(data_dir, seed_rows), _answer(content), 3)] == ["ok"] * 3
