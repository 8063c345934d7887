"""Each probe catches its failure mode, says what it saw, and leaves real requests alone."""

from __future__ import annotations

import pandas as pd
import pytest

from synth_assets.core.gate import apply_filters
from synth_assets.core.probes import PROBES, SeedProfile, opening_phrases, probe
from synth_assets.core.task_config import GateConfig
from synth_assets_tests.conftest import HELDOUT, SEEDS

PROFILE = SeedProfile.of(list(SEEDS) + ["iot_hue_lightoff"], [text for texts in SEEDS.values() for text in texts])
REAL = pd.Series([text for texts in {**SEEDS, **HELDOUT}.values() for text in texts])


@pytest.mark.parametrize(
    ("name", "text", "evidence"),
    [
        ("refusal", "As an AI, I cannot help with that request.", "refusal 'As an AI"),
        ("refusal", "I'm sorry, but I can't generate that", "refusal \"I'm sorry, but"),
        ("meta_text", "Here are 5 examples of alarm requests:", "starts with 'Here are'"),
        ("meta_text", "Example 3: wake me at six", "starts with 'Example 3:'"),
        ("list_marker", "2. turn the lights off", "list marker '2.'"),
        ("list_marker", "- play some jazz", "list marker '-'"),
        ("label_leak", "please do iot_hue_lightoff now", "contains the label id 'iot_hue_lightoff'"),
        ("pii", "send it to jane.doe@example.com", "e-mail address 'jane.doe@example.com'"),
        ("pii", "call me on +1 415-555-0132", "phone number '+1 415-555-0132'"),
        ("pii", "my card is 4111 1111 1111 1111", "payment card number"),
        ("pii", "pay to GB82 WEST 1234 5698 7654 32 today", "IBAN"),
        ("repetition", "play play play some music", "'play' 3 times in a row"),
        ("repetition", "lights lights on lights off lights kitchen lights", "'lights' is 5 of 8 words"),
        ("wrong_script", "今日の天気はどうですか", "mostly hiragana letters, the seeds are latin"),
        ("wrong_script", "Какая сегодня погода", "mostly cyrillic letters, the seeds are latin"),
        ("length_outlier", "wake " * 100, "500 characters; the seeds have"),
    ],
)
def test_each_probe_names_what_it_found(name, text, evidence):
    found = probe(name, pd.Series([text]), PROFILE).iloc[0]
    assert evidence in found


@pytest.mark.parametrize("name", list(PROBES))
def test_no_probe_fires_on_real_requests(name):
    assert (probe(name, REAL, PROFILE) == "").all()


def test_numeric_label_ids_are_not_leaks_and_ids_match_whole_tokens():
    profile = SeedProfile.of(["0", "1", "sci/tech", "weather_query"], ["hello"])
    texts = pd.Series(["give it 1 star out of 10", "weather_querying is not a word", "more sci/tech news", "x weather_query"])
    assert probe("label_leak", texts, profile).tolist() == [
        "",
        "",
        "contains the label id 'sci/tech'",
        "contains the label id 'weather_query'",
    ]


def test_labels_of_plain_words_are_not_ids_in_any_script():
    profile = SeedProfile.of(["card arrival", "négatif", "Sci/Tech"], ["hello"])
    texts = pd.Series(["when is my card arrival due", "un avis négatif", "sci/tech headlines"])
    assert probe("label_leak", texts, profile).tolist() == ["", "", "contains the label id 'Sci/Tech'"]


@pytest.mark.parametrize(
    "text", ["my card is 4111 1111 1111 1112", "pay to GB00 WEST 1234 5698 7654 32", "the year 2024 was long", "spam is a word"]
)
def test_numbers_that_fail_their_checksum_and_plain_words_are_not_pii_or_leaks(text):
    assert probe("pii", pd.Series([text]), PROFILE).iloc[0] == ""
    assert probe("label_leak", pd.Series([text]), SeedProfile.of(["spam", "ham"], ["hello"])).iloc[0] == ""


def _rows(*texts):
    return pd.DataFrame(
        {
            "text": list(texts),
            "label": "alarm_set",
            "status": "ok",
            "error": "",
            "norm_key": [text.lower() for text in texts],
            "dup_status": "unique",
            "dup_of": "",
            "dup_similarity": 0.0,
        }
    )


def test_the_gate_rejects_probe_hits_with_the_probe_as_reason_and_the_evidence_as_detail():
    gated = apply_filters(_rows("Sure! wake me at six", "wake me at six please", "1. wake me at seven"), GateConfig(), PROFILE)
    assert gated["reject_reason"].tolist() == ["meta_text", "", "list_marker"]
    assert gated["reject_detail"].tolist() == ["starts with 'Sure!'", "", "list marker '1.'"]


def test_a_task_can_skip_a_probe():
    rows = _rows("email me at bob@mailbox.org at six")
    assert apply_filters(rows, GateConfig(), PROFILE)["reject_reason"].tolist() == ["pii"]
    assert apply_filters(rows, GateConfig(skip_probes=["pii"]), PROFILE)["reject_reason"].tolist() == [""]


def test_an_unknown_probe_name_is_refused():
    with pytest.raises(ValueError, match="unknown probe"):
        GateConfig(skip_probes=["pi"])


def test_common_openings_show_a_stuck_phrasing():
    openings = opening_phrases(pd.Series(["please set an alarm", "please set an alarm now", "please set an timer", "wake me"]))
    assert openings.iloc[0].tolist() == ["please set an", 3, 0.75]


DESCRIBED = SeedProfile.of({"alarm_set": "the user wants to set an alarm", "play_music": "music"}, ["set an alarm for six"])


@pytest.mark.parametrize(
    ("text", "evidence"),
    [
        ("Number of examples: 5", "prompt field 'Number of examples:'"),
        ("Answer with JSON only", "prompt field 'Answer with JSON'"),
        ("the user wants to set an alarm at six", "a label description word for word: 'the user wants to set an alarm'"),
    ],
)
def test_prompt_echo_finds_the_request_written_back(text, evidence):
    assert probe("prompt_echo", pd.Series([text]), DESCRIBED).iloc[0] == evidence


@pytest.mark.parametrize(
    "text", ["email John Doe about it", "call [name] tomorrow", "ring 555-0123 now", "send it to bob@example.com"]
)
def test_placeholder_values_are_caught(text):
    assert probe("placeholder", pd.Series([text]), PROFILE).iloc[0].startswith("placeholder")


def test_short_descriptions_and_real_requests_are_not_echoes():
    assert (probe("prompt_echo", pd.Series(["play some music", "set an alarm"]), DESCRIBED) == "").all()
