"""The fake OpenAI server, driven by the real ``openai`` client over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from synth_assets.core.prompts import response_format
from synth_assets.fake_openai import FakeSettings
from synth_assets_tests.fake_server import running_fake_openai

SEEDS = ["turn off the lights", "switch the bedroom light off", "kill the lights", "shut off all the lamps"]
FINISHED = ("completed", "expired", "cancelled", "failed")


def prompt(label: str = "lights_off", n: int = 5) -> str:
    seed_lines = "".join(f"- {seed}\n" for seed in SEEDS)
    return (
        "Write new, varied requests a user might say to a home assistant.\n"
        f"Label: {label}\nNumber of examples: {n}\nExamples:\n{seed_lines}\n"
        'Answer with JSON: {"examples": [{"text": ..., "label": ...}]}'
    )


def schema_format(label: str = "lights_off", n: int = 5) -> dict:
    """The response_format the generator sends (the contract the fake must honour)."""
    return response_format(label, n, "json_schema")


def request_body(label: str = "lights_off", n: int = 5, response_format: dict | None = None) -> dict:
    body = {
        "model": "fake-model",
        "messages": [{"role": "system", "content": "You write training data."}, {"role": "user", "content": prompt(label, n)}],
    }
    return body | ({"response_format": response_format} if response_format else {})


def ask(client: openai.OpenAI, label: str = "lights_off", n: int = 5, response_format: dict | None = None, **options):
    return client.chat.completions.create(**request_body(label, n, response_format or schema_format(label, n)), **options)


def examples_of(completion) -> list[dict]:
    return json.loads(completion.choices[0].message.content)["examples"]


def start_batch(client: openai.OpenAI, labels: list[str]) -> str:
    lines = [
        {"custom_id": f"item-{index}", "method": "POST", "url": "/v1/chat/completions", "body": request_body(label, 3)}
        for index, label in enumerate(labels)
    ]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    uploaded = client.files.create(file=("requests.jsonl", content), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h").id


def wait_for_batch(client: openai.OpenAI, batch_id: str):
    deadline = time.monotonic() + 5
    while (batch := client.batches.retrieve(batch_id)).status not in FINISHED:
        assert time.monotonic() < deadline, f"batch stuck in {batch.status}"
        time.sleep(0.02)
    return batch


def jsonl(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()] if file_id else []


@pytest.fixture(scope="module")
def shared_server():
    with running_fake_openai() as server:
        yield server


@pytest.fixture
def server(shared_server):
    shared_server.reset()
    return shared_server


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)


def test_json_schema_request_gets_n_distinct_varied_examples_of_the_label_with_usage(client):
    completion = ask(client, n=8)

    examples = examples_of(completion)
    assert len(examples) == 8 and {example["label"] for example in examples} == {"lights_off"}
    texts = [example["text"] for example in examples]
    assert len(set(texts)) == 8 and not set(texts) & set(SEEDS)
    assert all(any(word in text for word in ("light", "lamp")) for text in texts)
    assert completion.choices[0].finish_reason == "stop" and completion.choices[0].message.refusal is None
    assert completion.id and completion.model == "fake-model"
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_json_object_and_plain_requests_take_label_and_count_from_the_prompt(client):
    as_json_object = ask(client, label="alarm_set", n=3, response_format={"type": "json_object"})
    plain = client.chat.completions.create(**request_body("alarm_set", 4))

    assert [example["label"] for example in examples_of(as_json_object)] == ["alarm_set"] * 3
    assert [example["label"] for example in examples_of(plain)] == ["alarm_set"] * 4


def test_same_request_body_gets_the_same_examples_and_another_body_others(client):
    first, again = examples_of(ask(client)), examples_of(ask(client))
    other_label = examples_of(ask(client, label="lights_out"))

    assert first == again
    assert [example["text"] for example in other_label] != [example["text"] for example in first]


def test_prompt_without_label_or_count_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hello"}])


def test_rate_limit_raises_rate_limit_error_carrying_retry_after(server, client):
    server.set_faults(rate_limit={"first": 1, "retry_after": 0.05})

    with pytest.raises(openai.RateLimitError) as raised:
        ask(client)

    assert raised.value.response.headers["retry-after"] == "0.05"
    assert raised.value.code == "rate_limit_exceeded"
    assert examples_of(ask(client))


def test_server_error_raises_internal_server_error(server, client):
    server.set_faults(server_error={"first": 1})

    with pytest.raises(openai.InternalServerError):
        ask(client)


def test_timeout_stalls_the_answer_past_the_client_timeout(server, client):
    server.set_faults(timeout={"first": 1, "seconds": 2})

    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(client, timeout=0.2)

    assert time.monotonic() - started < 1
    assert examples_of(ask(client, timeout=1))


def test_truncate_cuts_the_json_with_finish_reason_length(server, client):
    server.set_faults(truncate={})

    completion = ask(client)

    assert completion.choices[0].finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(completion.choices[0].message.content)


def test_answer_longer_than_max_tokens_stops_there_with_finish_reason_length(client):
    completion = ask(client, n=20, max_tokens=30)

    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 30


def test_malformed_answers_stop_normally_but_are_not_examples_json(server, client):
    server.set_faults(malformed={"first": 1})
    prose = ask(client).choices[0]
    server.set_faults(malformed={"first": 1, "style": "wrong_shape"})
    wrong_shape = ask(client).choices[0]

    assert prose.finish_reason == wrong_shape.finish_reason == "stop"
    with pytest.raises(json.JSONDecodeError):
        json.loads(prose.message.content)
    assert "examples" not in json.loads(wrong_shape.message.content)


def test_refusal_sets_the_refusal_field_or_answers_a_refusal_text(server, client):
    server.set_faults(refusal={"first": 1})
    in_field = ask(client).choices[0]
    server.set_faults(refusal={"first": 1, "style": "content_text"})
    in_text = ask(client).choices[0]

    assert in_field.message.content is None and in_field.message.refusal == "I can't help with that."
    assert in_field.finish_reason == "stop"
    assert "can't help" in in_text.message.content and in_text.message.refusal is None


def test_wrong_label_examples_carry_another_label(server, client):
    server.set_faults(wrong_label={"label": "play_music"})

    assert {example["label"] for example in examples_of(ask(client))} == {"play_music"}


def test_duplicate_repeats_one_text_or_the_previous_answer(server, client):
    previous = examples_of(ask(client))
    server.set_faults(duplicate={"first": 1})
    identical = examples_of(ask(client, n=4))
    server.set_faults(duplicate={"first": 1, "style": "previous"})
    repeated = examples_of(ask(client, n=4))

    assert len(identical) == 4 and len({example["text"] for example in identical}) == 1
    assert repeated == previous


def test_match_faults_only_requests_whose_prompt_contains_it(server, client):
    server.set_faults(server_error={"match": "Label: alarm_set"})

    assert examples_of(ask(client, label="lights_off"))
    with pytest.raises(openai.InternalServerError):
        ask(client, label="alarm_set")


def test_every_and_share_pick_an_exact_evenly_spread_count(server, client):
    server.set_faults(server_error={"every": 3}, wrong_label={"share": 0.5})
    outcomes = []
    for _ in range(9):
        try:
            outcomes.append(examples_of(ask(client, n=1))[0]["label"])
        except openai.InternalServerError:
            outcomes.append(500)

    # Requests 3, 6 and 9 fail; wrong_label sees the other six and takes every second one.
    assert outcomes == ["lights_off", "other", 500, "lights_off", "other", 500, "lights_off", "other", 500]


def test_faults_apply_in_order_each_counting_the_requests_that_reach_it(server, client):
    server.set_faults(server_error={"first": 1}, rate_limit={"first": 2})

    with pytest.raises(openai.RateLimitError):
        ask(client)
    with pytest.raises(openai.RateLimitError):
        ask(client)
    with pytest.raises(openai.InternalServerError):
        ask(client)
    assert examples_of(ask(client))


def test_unknown_fault_or_option_is_refused_with_the_reason(server):
    with pytest.raises(ValueError, match="rate_limits"):
        server.set_faults(rate_limits={"first": 1})
    with pytest.raises(ValueError, match="at most one"):
        server.set_faults(server_error={"first": 1, "every": 2})


def test_faults_in_the_settings_apply_from_the_start_and_after_reset():
    with running_fake_openai(FakeSettings(faults={"server_error": {"first": 1}})) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            ask(client)
        server.reset()
        with pytest.raises(openai.InternalServerError):
            ask(client)
        assert examples_of(ask(client))


def test_json_schema_unsupported_is_a_400_while_json_object_still_works():
    with running_fake_openai(FakeSettings(json_schema=False)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        with pytest.raises(openai.BadRequestError) as raised:
            ask(client)
        assert raised.value.code == "unsupported_parameter"
        assert raised.value.body["type"] == "invalid_request_error"
        assert examples_of(ask(client, response_format={"type": "json_object"}))


def test_batch_completes_with_an_output_line_per_custom_id(client):
    batch_id = start_batch(client, ["lights_off", "alarm_set", "play_music"])

    batch = wait_for_batch(client, batch_id)

    assert batch.status == "completed" and batch.error_file_id is None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (3, 3, 0)
    lines = jsonl(client, batch.output_file_id)
    assert [line["custom_id"] for line in lines] == ["item-0", "item-1", "item-2"]
    assert all(line["response"]["status_code"] == 200 and line["error"] is None for line in lines)
    labels = [json.loads(line["response"]["body"]["choices"][0]["message"]["content"])["examples"][0]["label"] for line in lines]
    assert labels == ["lights_off", "alarm_set", "play_music"]
    assert client.files.retrieve(batch.output_file_id).purpose == "batch_output"
    assert [listed.id for listed in client.batches.list()] == [batch_id]


def test_batch_moves_through_validating_and_in_progress():
    with running_fake_openai(FakeSettings(batch_delay_s=0.6)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        batch_id = start_batch(client, ["lights_off"] * 4)
        seen = [client.batches.retrieve(batch_id).status]
        while seen[-1] not in FINISHED:
            time.sleep(0.05)
            seen.append(client.batches.retrieve(batch_id).status)

    assert list(dict.fromkeys(seen)) == ["validating", "in_progress", "completed"]


def test_batch_expire_puts_chosen_items_in_the_error_file_as_batch_expired(server, client):
    server.set_faults(batch_expire={"match": "Label: alarm_set"})
    batch_id = start_batch(client, ["lights_off", "alarm_set", "play_music", "alarm_set"])

    batch = wait_for_batch(client, batch_id)

    assert batch.status == "expired"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 2)
    assert [line["custom_id"] for line in jsonl(client, batch.output_file_id)] == ["item-0", "item-2"]
    errors = jsonl(client, batch.error_file_id)
    assert [(line["custom_id"], line["error"]["code"]) for line in errors] == [
        ("item-1", "batch_expired"),
        ("item-3", "batch_expired"),
    ]


def test_failed_batch_items_land_in_the_error_file_with_their_status(server, client):
    server.set_faults(server_error={"first": 1})
    batch = wait_for_batch(client, start_batch(client, ["lights_off", "lights_off"]))

    assert batch.status == "completed" and batch.request_counts.failed == 1
    [failed] = jsonl(client, batch.error_file_id)
    assert failed["custom_id"] == "item-0" and failed["response"]["status_code"] == 500


def test_batch_with_an_invalid_input_file_fails(client):
    uploaded = client.files.create(file=("requests.jsonl", b"not json\n"), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")

    failed = wait_for_batch(client, batch.id)

    assert failed.status == "failed" and failed.errors.data[0].line == 1


def test_cancelled_batch_keeps_only_the_items_done_before_the_cancel(client):
    batch_id = start_batch(client, ["lights_off"] * 10)

    assert client.batches.cancel(batch_id).status == "cancelling"
    batch = wait_for_batch(client, batch_id)

    assert batch.status == "cancelled" and batch.request_counts.completed < 10
    assert len(jsonl(client, batch.output_file_id)) == batch.request_counts.completed
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch_id)


def test_without_batch_api_files_and_batches_are_not_found():
    with running_fake_openai(FakeSettings(batch_api=False, fine_tuning=False)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        with pytest.raises(openai.NotFoundError):
            client.files.create(file=("requests.jsonl", b"{}\n"), purpose="batch")
        with pytest.raises(openai.NotFoundError):
            client.batches.create(input_file_id="file-x", endpoint="/v1/chat/completions", completion_window="24h")
        assert examples_of(ask(client))


def test_stats_count_hits_per_endpoint_and_outcomes(server, client):
    server.set_faults(server_error={"first": 1})
    with pytest.raises(openai.InternalServerError):
        ask(client)
    ask(client)
    wait_for_batch(client, start_batch(client, ["lights_off"]))

    stats = server.stats()

    assert stats["hits"]["POST /v1/chat/completions"] == 2
    assert stats["hits"]["POST /v1/files"] == 1 and stats["hits"]["POST /v1/batches"] == 1
    assert stats["hits"]["GET /v1/batches/{batch_id}"] >= 1
    assert stats["chat"] == {"server_error": 1, "ok": 1}
    assert stats["batch_items"] == {"ok": 1}


def test_reset_clears_faults_stats_files_and_batches(server, client):
    server.set_faults(server_error={})
    batch_id = start_batch(client, ["lights_off"])

    server.reset()

    assert examples_of(ask(client))
    assert server.stats()["hits"] == {"POST /v1/chat/completions": 1}
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve(batch_id)


def test_latency_is_served_concurrently_to_async_clients():
    with running_fake_openai(FakeSettings(latency_ms=200)) as server:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)

        async def ask_many():
            requests = [client.chat.completions.create(**request_body(n=2)) for _ in range(50)]
            return await asyncio.gather(*requests)

        started = time.monotonic()
        answers = asyncio.run(ask_many())
        elapsed = time.monotonic() - started

        assert len(answers) == 50 and 0.2 <= elapsed < 2
        assert server.stats()["max_concurrent_chat"] > 1


@contextlib.contextmanager
def command_line_server(log: Path, *options: str) -> Iterator[str]:
    """``python -m synth_assets.fake_openai`` with ``options`` on a free port until the block ends; yields the root URL."""
    with running_fake_openai() as probe:  # only to borrow a free port number
        port = int(probe.root_url.rsplit(":", 1)[1])
    command = [sys.executable, "-m", "synth_assets.fake_openai", "--port", str(port), *options]
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_control/stats", timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_command_line_serves_the_api(tmp_path):
    with command_line_server(tmp_path / "server.log", "--latency-ms", "1") as root_url:
        client = openai.OpenAI(base_url=f"{root_url}/v1", api_key="test-key", max_retries=0)
        assert examples_of(ask(client))
