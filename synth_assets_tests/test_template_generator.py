"""The offline generator: deterministic, label-safe by construction, distinct texts with provenance."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from synth_assets.core import template_generator as tg
from synth_assets.core.generation import generate_batch
from synth_assets.core.text import normalize_text
from synth_assets_tests.conftest import SEEDS

DESCRIPTIONS = {
    "alarm_set": "the user wants to set an alarm",
    "weather_query": "the user asks about the weather forecast",
    "play_music": "the user wants music played",
    "lights_off": "the user wants the lights turned off",
}


@pytest.fixture
def seeds() -> pd.DataFrame:
    rows = [(f"s:{label}:{i}", text, label) for label, texts in SEEDS.items() for i, text in enumerate(texts)]
    return pd.DataFrame(rows, columns=["seed_id", "text", "label"])


def _generate(seeds, per_label=30, rng_seed=7):
    return tg.generate_template_rows(seeds, DESCRIPTIONS, attempts=dict.fromkeys(DESCRIPTIONS, per_label), rng_seed=rng_seed)


def test_same_seeds_and_random_seed_give_the_same_rows(seeds):
    pd.testing.assert_frame_equal(_generate(seeds), _generate(seeds))


def test_another_random_seed_gives_other_rows(seeds):
    assert set(_generate(seeds, rng_seed=1)["text"]) != set(_generate(seeds, rng_seed=2)["text"])


def test_every_label_gets_per_label_attempts_numbered_from_zero(seeds):
    rows = _generate(seeds, per_label=25)
    assert rows.groupby("label").size().to_dict() == {label: 25 for label in SEEDS}
    assert all(sorted(group) == list(range(25)) for _, group in rows.groupby("label")["sample_index"])


def test_rows_draw_only_on_seeds_of_their_own_label(seeds):
    label_of = dict(zip(seeds["seed_id"], seeds["label"]))
    for label, seed_ids in zip(*_generate(seeds).pipe(lambda r: (r["label"], r["seed_ids"]))):
        assert seed_ids and {label_of[seed_id] for seed_id in seed_ids} == {label}


def test_every_word_comes_from_the_label_a_slot_or_neutral_framing(seeds):
    """Label safety: no operator can carry a word of another label's seeds into this label."""
    bank = tg.SeedBank.from_seeds(seeds, DESCRIPTIONS)
    neutral = {word for phrase in bank.openers + bank.closers for word in phrase}
    slots = {word for words in tg.SLOT_LEXICONS.values() for word in words} | set(tg.FIRST_NAMES)
    forms = tg.inflection_lexicon(tg.INFLECTION_LEXICON)
    for text, label in zip(*_generate(seeds, per_label=60).pipe(lambda r: (r["text"], r["label"]))):
        own = {token.lower() for _, tokens in bank.by_label[label] for token in tokens} | set(bank.description_words[label])
        allowed = own | {form for word in own for form in forms.get(word, ())} | neutral | slots
        assert not {token.lower() for token in tg.tokenize(text)} & bank.foreign_words[label] - own - neutral, (label, text)
        assert {token.lower() for token in tg.tokenize(text)} <= allowed, (label, text)


def test_texts_are_distinct_and_new(seeds):
    rows = _generate(seeds)
    keys = rows["text"].map(normalize_text)
    assert keys.is_unique
    assert not set(keys) & set(seeds["text"].map(normalize_text))


def test_template_id_names_the_operators_applied(seeds):
    for template_id in _generate(seeds)["template_id"]:
        assert set(template_id.split("+")) <= set(tg.OPERATORS)


def test_slot_swaps_a_value_for_another_of_the_same_slot():
    tokens = tg.tokenize("wake me at seven on monday")
    rng = random.Random(0)
    results = {tuple(tg.OPERATORS["slot"](tokens, "alarm_set", None, rng, [])) for _ in range(40)}
    for result in results:
        changed = [(old, new) for old, new in zip(tokens, result) if old != new]
        assert len(changed) == 1
        old, new = changed[0]
        assert tg._SLOT_OF[old] == tg._SLOT_OF[new.lower()]
    assert len(results) > 5


def test_splice_joins_two_seeds_of_the_label_at_a_shared_word(seeds):
    bank = tg.SeedBank.from_seeds(seeds, DESCRIPTIONS)
    tokens = tg.tokenize("set an alarm for seven tomorrow morning")
    used: list[str] = []
    result = tg.OPERATORS["splice"](tokens, "alarm_set", bank, random.Random(3), used)
    partner = dict(bank.by_label["alarm_set"])[used[0]]
    shared = next(i for i in range(1, len(result)) if result[:i] == tokens[:i] and result[i:] == partner[-(len(result) - i) :])
    assert 0 < shared < len(result)


def test_no_protected_word_is_ever_framing(seeds):
    bank = tg.SeedBank.from_seeds(seeds, DESCRIPTIONS)
    assert not {word for phrase in bank.openers + bank.closers for word in phrase} & tg.PROTECTED_WORDS


def test_inflect_swaps_singular_and_plural():
    tokens = tg.tokenize("turn on the light in the kitchen")
    bank = tg.SeedBank.from_seeds(
        pd.DataFrame({"seed_id": ["a"], "text": ["turn on the light in the kitchen"], "label": ["lights_on"]}), {"lights_on": "x"}
    )
    results = {" ".join(tg.OPERATORS["inflect"](tokens, "lights_on", bank, random.Random(seed), [])) for seed in range(20)}
    assert results == {"turn on the lights in the kitchen", "turn on the light in the kitchens"}


def test_operator_weights_come_from_the_task(seeds):
    only_reframe = tg.generate_template_rows(
        seeds, DESCRIPTIONS, attempts=dict.fromkeys(DESCRIPTIONS, 10), rng_seed=1, weights={"reframe": 1}
    )
    assert set(only_reframe["template_id"].str.split("+").explode()) <= {"reframe", "copy"}


def test_description_words_are_only_the_label_specific_ones():
    words = tg.SeedBank.from_seeds(
        pd.DataFrame({"seed_id": ["a"], "text": ["wake me up at six in the morning"], "label": ["alarm_set"]}), DESCRIPTIONS
    ).description_words
    assert "lights" in words["lights_off"] and "forecast" in words["weather_query"]
    assert not {"user", "wants", "the"} & {word for label_words in words.values() for word in label_words}


def test_a_description_that_is_a_bare_number_gives_no_word_to_insert():
    seeds = pd.DataFrame({"seed_id": ["a", "b"], "text": ["it is a great film", "the film is dull"], "label": ["1", "0"]})
    bank = tg.SeedBank.from_seeds(seeds, {"0": "0", "1": "1 star or more"})
    assert bank.description_words == {"0": [], "1": ["star"]}


def test_generate_batch_keys_are_stable_and_name_the_attempt(task, seeds):
    first = generate_batch(task, "home-b1", seeds).table
    assert first.equals(generate_batch(task, "home-b1", seeds).table)
    assert first["request_key"].is_unique and (first["row_id"] == first["request_key"]).all()
    assert not set(first["request_key"]) & set(generate_batch(task, "home-b2", seeds).table["request_key"])


def test_seeds_in_another_language_get_no_english_framing_or_description_words():
    seeds = pd.DataFrame(
        {
            "seed_id": [f"s{i}" for i in range(6)],
            "text": [
                "Сколько стоит еда",
                "Я люблю кушать",
                "Ты любишь кушать",
                "Сколько у тебя денег",
                "Деньги это",
                "Где мои деньги",
            ],
            "label": ["food", "food", "food", "money", "money", "money"],
        }
    )
    bank = tg.SeedBank.from_seeds(seeds, {"food": "food and eating", "money": "money and prices"})
    assert not tg._looks_english(bank.by_label)
    assert bank.openers == [] and bank.closers == [] and bank.description_words == {"food": [], "money": []}
    rows = tg.generate_template_rows(seeds, {"food": "food", "money": "money"}, attempts={"food": 20, "money": 20}, rng_seed=3)
    latin = rows["text"].str.contains(r"[A-Za-z]")
    assert not latin.any(), rows.loc[latin, "text"].tolist()


LONG_SEEDS = {
    "law": [
        "The judge asked for silence. The lawyer stood up slowly. He said his client was innocent of every charge.",
        "A contract is a promise the court will enforce. Read it before you sign. Then read it again with a lawyer.",
        "The jury was out for three days. When they came back, the verdict surprised everyone in the courtroom.",
        "Never ask a witness a question you do not know the answer to. The trial lawyer learns this early.",
    ],
    "food": [
        "Bread is best on the day it is baked. After that, make toast. After a week, feed the ducks.",
        "The chef tasted the soup and frowned. More salt, she said. Then she added a little lemon as well.",
        "Breakfast is the most important meal of the day. Lunch is a close second. Dinner wins on weekends.",
        "A good tomato needs sun and patience. Pick it warm from the vine and eat it with a pinch of salt.",
    ],
}


def _long_seeds() -> pd.DataFrame:
    rows = [(f"s:{label}:{i}", text, label) for label, texts in LONG_SEEDS.items() for i, text in enumerate(texts)]
    return pd.DataFrame(rows, columns=["seed_id", "text", "label"])


def test_sentences_are_cut_after_end_punctuation_followed_by_a_word():
    tokens = tg.tokenize('He said "stop." Then he left! Why? Nobody knows...')
    assert [tg.detokenize(sentence) for sentence in tg._sentences(tokens)] == [
        'He said "stop."',
        "Then he left!",
        "Why?",
        "Nobody knows...",
    ]
    assert tg._sentences(tg.tokenize("one sentence only.")) == [tg.tokenize("one sentence only.")]


@pytest.mark.parametrize(
    "text",
    [
        'He said "stop." Then he left!',
        "A first-degree charge, he said (in court), isn't a \"joke\" and it's “final”.",
        "Set an alarm for 7:30 am, please.",
    ],
)
def test_tokens_join_back_into_the_text_they_came_from(text):
    assert tg.detokenize(tg.tokenize(text)) == text


def test_crossover_joins_the_head_of_one_seed_to_the_tail_of_another_of_its_label():
    seeds = _long_seeds()
    rows = tg.generate_template_rows(
        seeds, {"law": "law", "food": "food"}, attempts={"law": 20, "food": 20}, rng_seed=5, weights={"crossover": 1}
    )
    by_id = dict(zip(seeds["seed_id"], seeds["text"]))
    sentences_of = {
        label: {s for text in texts for s in map(tg.detokenize, tg._sentences(tg.tokenize(text)))}
        for label, texts in LONG_SEEDS.items()
    }
    crossed = rows[rows["template_id"] == "crossover"]
    assert len(crossed) >= 10
    for text, label, seed_ids in zip(crossed["text"], crossed["label"], crossed["seed_ids"]):
        assert len(set(seed_ids)) == len(seed_ids) >= 2 and all(by_id[seed_id] in LONG_SEEDS[label] for seed_id in seed_ids)
        assert set(map(tg.detokenize, tg._sentences(tg.tokenize(text)))) <= sentences_of[label], "whole sentences of its label"


def test_a_near_copy_of_its_seed_is_drawn_again_as_an_exact_copy_is():
    """One inserted word leaves a three-sentence seed a near copy that dedup would reject: the generator looks further."""
    seeds = _long_seeds()
    descriptions = {"law": "courts judges verdicts", "food": "cooking baking meals"}
    attempts = {"law": 30, "food": 30}
    by_id = dict(zip(seeds["seed_id"], seeds["text"]))

    def near_copies(rows, threshold):
        return sum(
            any(tg._jaccard(tg.shingles(text, 5), tg.shingles(by_id[seed_id], 5)) >= threshold for seed_id in seed_ids)
            for text, seed_ids in zip(rows["text"], rows["seed_ids"])
        )

    guarded = tg.generate_template_rows(seeds, descriptions, attempts=attempts, rng_seed=3)
    unguarded = tg.generate_template_rows(seeds, descriptions, attempts=attempts, rng_seed=3, near_copy_threshold=1.01)
    assert near_copies(unguarded, 0.8) > 15, "word edits alone leave long seeds near copies"
    assert near_copies(guarded, 0.8) <= 3
    assert (
        near_copies(tg.generate_template_rows(seeds, descriptions, attempts=attempts, rng_seed=3, near_copy_threshold=0.95), 0.95)
        <= 3
    )
