"""Oracle mode of the fake OpenAI server, and the faults and fault preset the oracle benchmark uses.

Driven by the real ``openai`` client over real HTTP, against a small task on disk whose real pool
hides copies of its seeds and held-out texts that differ only by case, punctuation or spacing.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections import Counter

import openai
import pandas as pd
import pytest

from synth_assets.core.probes import PROBES
from synth_assets.core.task_config import load_task
from synth_assets.core.text import normalize_text
from synth_assets.fake_openai import BENCH_FAULT_MIX, BENCH_FAULTS, FakeOpenAI, FakeSettings, Oracle, faults_by_overall_share
from synth_assets_tests.conftest import HELDOUT, SEEDS, write_csv, write_task
from synth_assets_tests.fake_server import running_fake_openai
from synth_assets_tests.test_fake_openai import ask, command_line_server, examples_of, start_batch, wait_for_batch

NEW_LIGHTS_OFF = [
    "dim every light downstairs",
    "lights out in the garage",
    "switch the porch light off",
    "turn off the reading lamp",
    "no lights in the nursery tonight",
    "darken the dining room",
]
NEW_ALARM_SET = ["set an alarm for quarter to six", "wake me at dawn", "alarm at 6:45 on weekdays"]
# A seed, a seed, a held-out text and a pool text again, each changed only in case, punctuation or spacing.
DISGUISED_COPIES = [
    ("Turn off the LIGHTS!", "lights_off"),
    ("kill  the lights", "lights_off"),
    ("switch off the lamp.", "lights_off"),
    ("Lights out in the garage.", "lights_off"),
    ("Wake me up at six-thirty", "alarm_set"),
]
REAL_POOL = [(text, "lights_off") for text in NEW_LIGHTS_OFF] + [(text, "alarm_set") for text in NEW_ALARM_SET] + DISGUISED_COPIES
BENCH_REQUESTS = 400


@pytest.fixture(scope="module")
def oracle_task(tmp_path_factory):
    """The conftest home task with a real pool of new texts and disguised copies; no pool text for two labels."""
    task_dir = write_task(tmp_path_factory.mktemp("data"), real_pool="real_pool.csv")
    write_csv(task_dir / "real_pool.csv", REAL_POOL)
    return load_task(task_dir)


@pytest.fixture(scope="module")
def fake_llm_settings(oracle_task):
    return FakeSettings(oracle=Oracle.from_task(oracle_task))


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)


@pytest.fixture(scope="module", params=["seed variations", "oracle"])
def either_mode(request, oracle_task):
    """A fake server in each answering mode, for the faults that must work in both."""
    settings = FakeSettings(oracle=Oracle.from_task(oracle_task)) if request.param == "oracle" else None
    with running_fake_openai(settings) as running:
        yield running


@pytest.fixture
def either_mode_client(either_mode):
    either_mode.reset()
    return openai.OpenAI(base_url=either_mode.base_url, api_key="test-key", max_retries=0)


def planted(server) -> list[dict]:
    with urllib.request.urlopen(f"{server.root_url}/_control/planted", timeout=5) as response:
        return json.load(response)


def texts_of(completion) -> list[str]:
    return texts_of_examples(examples_of(completion))


def texts_of_examples(examples: list[dict]) -> list[str]:
    return [example["text"] for example in examples]


def one_word_apart(first: str, second: str) -> bool:
    shorter, longer = sorted((first.split(), second.split()), key=len)
    return len(longer) == len(shorter) + 1 and any(longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer)))


def test_oracle_answers_are_new_real_pool_texts_never_a_seed_or_heldout_text_in_disguise(client):
    examples = examples_of(ask(client, n=len(NEW_LIGHTS_OFF)))

    assert {example["label"] for example in examples} == {"lights_off"}
    assert sorted(example["text"] for example in examples) == sorted(NEW_LIGHTS_OFF)
    known = {normalize_text(text) for texts in (*SEEDS.values(), *HELDOUT.values()) for text in texts}
    assert not {normalize_text(example["text"]) for example in examples} & known


def test_oracle_serves_distinct_texts_across_requests_until_the_label_runs_out_then_repeats(server, client):
    served = [text for _ in range(3) for text in texts_of(ask(client, n=2))]
    after_the_pool = texts_of(ask(client, n=2))

    assert sorted(served) == sorted(NEW_LIGHTS_OFF)
    assert after_the_pool == served[:2]
    assert [record["fault"] for record in planted(server)] == [""] * 6 + ["repeat"] * 2


def test_oracle_cursors_are_per_label(client):
    first_lights = texts_of(ask(client, label="lights_off", n=2))
    alarms = texts_of(ask(client, label="alarm_set", n=3))
    next_lights = texts_of(ask(client, label="lights_off", n=2))

    assert sorted(alarms) == sorted(NEW_ALARM_SET)
    assert not set(first_lights) & set(next_lights)


def test_oracle_answers_the_same_requests_the_same_after_a_reset_and_in_a_fresh_server(server, client, oracle_task):
    requests = [("lights_off", 2), ("alarm_set", 2), ("lights_off", 3), ("alarm_set", 2)]

    def answers(to: openai.OpenAI) -> list[list[str]]:
        return [texts_of(ask(to, label=label, n=n)) for label, n in requests]

    first = answers(client)
    server.reset()
    after_reset = answers(client)
    with running_fake_openai(FakeSettings(oracle=Oracle.from_task(oracle_task))) as fresh:
        in_fresh_server = answers(openai.OpenAI(base_url=fresh.base_url, api_key="test-key", max_retries=0))

    assert first == after_reset == in_fresh_server


def test_label_without_oracle_texts_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError, match="no real texts of label 'play_music'"):
        ask(client, label="play_music")


def test_from_frames_drops_excluded_texts_after_normalisation_and_keeps_each_text_once():
    pool = pd.DataFrame(
        [("Play some JAZZ!", "play_music"), ("put on a record", "play_music"), ("Put on a record.", "play_music")],
        columns=["text", "label"],
    )

    oracle = Oracle.from_frames(pool, exclude_texts=["play some jazz"])

    assert oracle.texts == {"play_music": ("put on a record",)}


def test_from_frames_refuses_a_pool_with_nothing_left_to_serve():
    pool = pd.DataFrame([("Play some JAZZ!", "play_music")], columns=["text", "label"])

    with pytest.raises(ValueError, match="nothing to serve"):
        Oracle.from_frames(pool, exclude_texts=["play some jazz"])


def test_batch_items_are_answered_from_the_oracle(client):
    batch = wait_for_batch(client, start_batch(client, ["lights_off", "lights_off"]))

    lines = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
    texts = [
        example["text"]
        for line in lines
        for example in json.loads(line["response"]["body"]["choices"][0]["message"]["content"])["examples"]
    ]
    assert len(texts) == 6 and set(texts) <= set(NEW_LIGHTS_OFF) and len(set(texts)) == 6


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"rate_limit": {"first": 1, "retry_after": 0.01}}, openai.RateLimitError),
        ({"server_error": {"first": 1}}, openai.InternalServerError),
    ],
)
def test_failed_requests_raise_the_client_error_and_take_no_oracle_text(server, client, fault, error):
    server.set_faults(**fault)
    with pytest.raises(error):
        ask(client, n=2)
    after_the_failure = texts_of(ask(client, n=2))
    server.reset()

    assert after_the_failure == texts_of(ask(client, n=2))


def test_timeout_stalls_an_oracle_answer_past_the_client_timeout(server, client):
    server.set_faults(timeout={"first": 1, "seconds": 2})

    with pytest.raises(openai.APITimeoutError):
        ask(client, timeout=0.2)
    assert set(texts_of(ask(client, n=2, timeout=1))) <= set(NEW_LIGHTS_OFF)


def test_truncate_and_malformed_cut_or_mangle_an_oracle_answer(server, client):
    server.set_faults(truncate={"first": 1})
    truncated = ask(client, n=2).choices[0]
    server.set_faults(malformed={"first": 1})
    prose = ask(client, n=2).choices[0]

    assert truncated.finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.message.content)
    assert prose.message.content.startswith("Sure!")
    assert [record["fault"] for record in planted(server)] == ["truncate"] * 2 + ["malformed"] * 2
    assert all(record["text"] in prose.message.content for record in planted(server)[2:])


def test_refusal_in_oracle_mode_serves_no_example_and_takes_no_text(server, client):
    server.set_faults(refusal={"first": 1})

    refused = ask(client, n=2).choices[0]
    after_the_refusal = texts_of(ask(client, n=2))

    assert refused.message.refusal and refused.message.content is None
    assert [record["text"] for record in planted(server)] == after_the_refusal
    server.reset()
    assert after_the_refusal == texts_of(ask(client, n=2))


def test_wrong_label_serves_real_texts_of_the_asked_label_under_another_label(server, client):
    server.set_faults(wrong_label={"first": 1, "label": "play_music"})

    examples = examples_of(ask(client, n=2))

    assert {example["label"] for example in examples} == {"play_music"}
    assert {example["text"] for example in examples} <= set(NEW_LIGHTS_OFF)
    assert [(record["label_asked"], record["label_given"], record["fault"]) for record in planted(server)] == [
        ("lights_off", "play_music", "wrong_label")
    ] * 2


def test_mislabelled_text_serves_another_labels_real_texts_under_the_asked_label(server, client):
    server.set_faults(wrong_label={"first": 1, "style": "mislabelled_text"})

    examples = examples_of(ask(client, n=2))

    assert {example["label"] for example in examples} == {"lights_off"}, "labelled as asked: only a label check catches it"
    assert {example["text"] for example in examples} <= set(NEW_ALARM_SET)
    assert [(record["label_given"], record["fault"]) for record in planted(server)] == [
        ("lights_off", "wrong_label:alarm_set")
    ] * 2


def test_mislabelled_text_needs_oracle_mode():
    with pytest.raises(ValueError, match="mislabelled_text needs oracle mode"):
        FakeOpenAI(FakeSettings(faults={"wrong_label": {"style": "mislabelled_text"}}))


def test_duplicate_identical_and_previous_repeat_oracle_texts(server, client):
    previous = examples_of(ask(client, n=3))
    server.set_faults(duplicate={"first": 1})
    identical = texts_of(ask(client, n=3))
    server.set_faults(duplicate={"first": 1, "style": "previous"})
    repeated = examples_of(ask(client, n=3))

    assert len(set(identical)) == 1 and identical[0] in NEW_LIGHTS_OFF and identical[0] not in texts_of_examples(previous)
    assert repeated == previous
    assert [record["fault"] for record in planted(server)[3:]] == ["duplicate:identical"] * 3 + ["duplicate:previous"] * 3


def test_one_word_edit_repeats_the_previous_answer_with_one_word_inserted_or_deleted(either_mode, either_mode_client):
    previous = texts_of(ask(either_mode_client, n=4))
    either_mode.set_faults(duplicate={"first": 1, "style": "one_word_edit"})

    edited = examples_of(ask(either_mode_client, n=4))

    assert {example["label"] for example in edited} == {"lights_off"}
    for before, after in zip(previous, texts_of_examples(edited), strict=True):
        assert one_word_apart(before, after) and normalize_text(before) != normalize_text(after)
    assert [record["fault"] for record in planted(either_mode)[4:]] == ["duplicate:one_word_edit"] * 4


def test_one_word_edit_without_a_previous_answer_repeats_one_text(either_mode, either_mode_client):
    either_mode.set_faults(duplicate={"first": 1, "style": "one_word_edit"})

    assert len(set(texts_of(ask(either_mode_client, n=3)))) == 1
    assert [record["fault"] for record in planted(either_mode)] == ["duplicate:identical"] * 3


def test_pii_appends_a_real_looking_contact_or_card_the_gate_reads_as_pii_not_placeholder(either_mode, either_mode_client):
    either_mode.set_faults(pii={"first": 1})

    texts = texts_of(ask(either_mode_client, n=6))

    assert all(PROBES["pii"](text, None) and not PROBES["placeholder"](text, None) for text in texts)
    assert [record["fault"] for record in planted(either_mode)] == ["pii"] * 6


def test_planted_lists_every_served_example_in_order_until_a_reset(either_mode, either_mode_client):
    clean = texts_of(ask(either_mode_client, n=2))
    either_mode.set_faults(wrong_label={"first": 1})
    mislabelled = texts_of(ask(either_mode_client, n=2))

    assert planted(either_mode) == [
        {"label_asked": "lights_off", "text": text, "label_given": label, "fault": fault}
        for texts, label, fault in ((clean, "lights_off", ""), (mislabelled, "other", "wrong_label"))
        for text in texts
    ]
    either_mode.reset()
    assert planted(either_mode) == []


def test_faults_by_overall_share_divides_each_share_by_what_the_earlier_faults_leave():
    faults = faults_by_overall_share([("rate_limit", {}, 0.1), ("truncate", {}, 0.1), ("duplicate", {}, 0.4)])

    assert (faults.rate_limit.share, faults.truncate.share) == (0.1, pytest.approx(0.1 / 0.9))
    assert faults.duplicate.share == pytest.approx(0.4 / 0.8)
    with pytest.raises(ValueError, match="order they are checked"):
        faults_by_overall_share([("truncate", {}, 0.1), ("rate_limit", {}, 0.1)])


def test_bench_preset_gives_each_fault_its_share_of_all_requests(oracle_task):
    settings = FakeSettings(faults=BENCH_FAULTS, oracle=Oracle.from_task(oracle_task))
    with running_fake_openai(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        for _ in range(BENCH_REQUESTS):
            with contextlib.suppress(openai.RateLimitError):  # a 429 is one of the requests counted
                ask(client, n=1)
        outcomes = Counter(server.stats()["chat"])
        # One example per request, so a duplicate request's style is the fault of its one planted example.
        del outcomes["duplicate"]
        outcomes.update(record["fault"] for record in planted(server) if record["fault"].startswith("duplicate:"))

    shares = {f"duplicate:{options['style']}" if name == "duplicate" else name: share for name, options, share in BENCH_FAULT_MIX}
    shares["ok"] = 1 - sum(shares.values())
    assert outcomes == {outcome: round(share * BENCH_REQUESTS) for outcome, share in shares.items()}


def test_command_line_serves_oracle_mode_with_the_bench_preset(tmp_path, oracle_task):
    with command_line_server(tmp_path / "server.log", "--oracle", str(oracle_task.task_dir), "--faults", "bench") as root_url:
        with urllib.request.urlopen(f"{root_url}/_control/stats", timeout=5) as response:
            active = json.load(response)["faults"]
        client = openai.OpenAI(base_url=f"{root_url}/v1", api_key="test-key", max_retries=0)
        first_answer = texts_of(ask(client, n=2))

    assert active == BENCH_FAULTS.model_dump(exclude_none=True)
    assert set(first_answer) <= set(NEW_LIGHTS_OFF)
