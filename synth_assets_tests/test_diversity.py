"""Diversity, shift and memorisation metrics measure what they claim on small real corpora."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synth_assets.core.diversity import collapse_verdict, dcr_summary, distance_to_closest_record, diversity_profile, shift_report
from synth_assets_tests.conftest import HELDOUT, SEEDS

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "po", "si", "de", "fa", "gu", "ho", "ji", "be", "vo", "za"]
REAL_TEXTS = pd.Series([text for texts in SEEDS.values() for text in texts])
HELDOUT_TEXTS = pd.Series([text for texts in HELDOUT.values() for text in texts])


def _vocabulary(size: int = 600) -> list[str]:
    rng = np.random.default_rng(1)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES, size=rng.integers(1, 4))))
    return sorted(words)


VOCABULARY = _vocabulary()
ZIPF = 1 / np.arange(1, len(VOCABULARY) + 1) / (1 / np.arange(1, len(VOCABULARY) + 1)).sum()


def varied(rows: int, seed: int) -> pd.Series:
    """Texts of 4-11 words drawn from a Zipfian 600-word vocabulary: one distribution, any number of rows."""
    rng = np.random.default_rng(seed)
    return pd.Series([" ".join(rng.choice(VOCABULARY, size=rng.integers(4, 12), p=ZIPF)) for _ in range(rows)])


def templated(rows: int, seed: int) -> pd.Series:
    """A collapsed generator: one template with a few slot values."""
    rng = np.random.default_rng(seed)
    openers = ["please set an alarm for", "set an alarm for", "please set my alarm for"]
    return pd.Series([f"{rng.choice(openers)} {rng.integers(1, 13)} {rng.choice(['am', 'pm'])}" for _ in range(rows)])


# --- shift_report ---------------------------------------------------------------------------------


def test_samples_of_one_distribution_are_indistinguishable():
    report = shift_report(varied(500, 1), varied(500, 2), seed=0)
    assert 0.4 < report["discriminator_auc"] < 0.6
    assert report["vocabulary_js_divergence"] < 0.1
    assert report["length_ks"] < 0.1


def test_templated_synthetic_text_is_told_apart_from_varied_real_text():
    report = shift_report(REAL_TEXTS, templated(200, 0), seed=0)
    assert report["discriminator_auc"] > 0.9
    assert report["vocabulary_js_divergence"] > 0.5


def test_vocabulary_and_length_numbers_are_counted_on_normalised_words():
    real = pd.Series(["Set an alarm.", "wake me up", "set the alarm", "an alarm please", "alarm now"])
    synthetic = pd.Series(
        ["set an ALARM tomorrow!", "wake me up now please", "set an alarm soon", "alarm alarm alarm", "please wake"]
    )
    report = shift_report(real, synthetic, seed=0)
    # 18 synthetic words; "tomorrow" and "soon" never occur in the real text.
    assert report["synthetic_vocabulary_share_unseen"] == pytest.approx(2 / 18, abs=1e-4)
    assert report["mean_words_real"] == pytest.approx(14 / 5)
    assert report["mean_words_synthetic"] == pytest.approx(18 / 5)


def test_shift_report_on_too_few_rows_has_no_auc_but_still_compares_vocabulary():
    report = shift_report(pd.Series(["set an alarm"]), pd.Series(["set an alarm", "wake me up"]), seed=0)
    assert report["discriminator_auc"] is None
    assert report["synthetic_vocabulary_share_unseen"] == pytest.approx(3 / 6, abs=1e-4)


def test_shift_report_on_empty_or_blank_input_is_all_none():
    empty = shift_report(pd.Series([], dtype=object), pd.Series([], dtype=object), seed=0)
    blank = shift_report(pd.Series(["", " ", "!", "?", "..."]), pd.Series(["", "", "", "", ""]), seed=0)
    for report in (empty, blank):
        measured = {key: value for key, value in report.items() if not key.endswith("_rows")}
        assert set(measured.values()) <= {None, 0.0}
        assert report["discriminator_auc"] is None and report["vocabulary_js_divergence"] is None


# --- diversity_profile ----------------------------------------------------------------------------


def test_distinct_n_is_unique_over_all_ngrams_within_texts():
    profile = diversity_profile(pd.Series(["a b a b", "c"]), seed=0)
    # unigrams a b a b c; bigrams (a b)(b a)(a b); trigrams (a b a)(b a b): none spans the two texts.
    assert (profile["distinct_1"], profile["distinct_2"], profile["distinct_3"]) == (0.6, 0.6667, 1.0)


def test_templated_text_is_less_diverse_than_varied_text():
    # Same number of texts on both sides: distinct-n of different-size samples is not comparable.
    real = diversity_profile(REAL_TEXTS, seed=0)
    synthetic = diversity_profile(templated(200, 0), seed=0, sample_rows=len(REAL_TEXTS))
    assert synthetic["distinct_2"] < real["distinct_2"] / 2
    assert synthetic["self_similarity"] > 2 * real["self_similarity"]
    assert synthetic["near_duplicate_share"] > real["near_duplicate_share"]


def test_a_larger_corpus_from_the_same_generator_gets_the_same_sampled_distinct_n():
    small, large = varied(1000, 3), varied(6000, 4)
    assert diversity_profile(small, seed=0)["distinct_2"] == pytest.approx(
        diversity_profile(large, seed=0)["distinct_2"], abs=0.03
    )
    # Why the sample: over whole corpora the larger one looks far more repetitive.
    whole_small = diversity_profile(small, seed=0, sample_rows=len(small))["distinct_2"]
    whole_large = diversity_profile(large, seed=0, sample_rows=len(large))["distinct_2"]
    assert whole_small - whole_large > 0.1


def test_a_corpus_repeated_ten_times_is_less_diverse_however_large():
    once = varied(1000, 5)
    profile_once = diversity_profile(once, seed=0)
    profile_repeated = diversity_profile(pd.concat([once] * 10, ignore_index=True), seed=0)
    assert profile_repeated["sample_rows"] == profile_once["sample_rows"] == 1000
    assert profile_repeated["rows"] == 10_000
    assert profile_repeated["distinct_2"] < profile_once["distinct_2"] - 0.1
    assert profile_repeated["near_duplicate_share"] > 0.4 > profile_once["near_duplicate_share"]


def test_profile_of_too_few_texts_has_no_similarity():
    one = diversity_profile(pd.Series(["set an alarm"]), seed=0)
    assert one["self_similarity"] is None and one["distinct_2"] == 1.0
    empty = diversity_profile(pd.Series([], dtype=object), seed=0)
    assert {empty[key] for key in ("distinct_1", "distinct_2", "self_similarity", "near_duplicate_share")} == {None}
    assert (empty["sample_rows"], empty["rows"]) == (0, 0)


# --- distance to closest record -------------------------------------------------------------------


def test_a_copy_has_distance_zero_and_counts_as_an_exact_copy():
    synthetic = pd.Series(["SET an alarm for seven tomorrow morning!", "zebra xylophone quantum"], index=[10, 11])
    distances = distance_to_closest_record(synthetic, REAL_TEXTS, seed=0)
    assert distances.loc[10] == 0.0
    assert distances.loc[11] > 0.5
    summary = dcr_summary(synthetic, REAL_TEXTS, None, seed=0)
    assert (summary["exact_copies"], summary["dcr_min"], summary["rows"]) == (1, 0.0, 2)


def test_a_light_edit_is_close_to_its_source():
    synthetic = pd.Series(["set an alarm for seven tomorrow mornings", "what is the weather like today then"])
    summary = dcr_summary(synthetic, REAL_TEXTS, None, seed=0)
    assert summary["exact_copies"] == 0
    assert summary["dcr_min"] > 0 and summary["share_below_0.1"] == 1.0


def test_real_baseline_appears_only_with_reference_text():
    synthetic = REAL_TEXTS + " please"
    without = dcr_summary(synthetic, REAL_TEXTS, None, seed=0)
    with_reference = dcr_summary(synthetic, REAL_TEXTS, HELDOUT_TEXTS, seed=0)
    assert without["real_baseline_dcr_p05"] is None and without["synthetic_closer_than_real_p05"] is None
    assert 0 < with_reference["real_baseline_dcr_p05"] <= with_reference["real_baseline_dcr_p50"]
    # Every synthetic row is a seed plus one word: far closer to the seeds than fresh real text is.
    assert with_reference["synthetic_closer_than_real_p05"] > 0.5


def test_fresh_text_from_the_domain_is_not_flagged_as_memorised():
    summary = dcr_summary(varied(300, 6), varied(300, 7), varied(300, 8), seed=0)
    assert summary["synthetic_closer_than_real_p05"] < 0.15
    assert summary["dcr_p50"] == pytest.approx(summary["real_baseline_dcr_p50"], abs=0.05)


def test_distance_without_real_text_is_undefined():
    distances = distance_to_closest_record(pd.Series(["set an alarm"]), pd.Series([], dtype=object), seed=0)
    assert distances.isna().all() and len(distances) == 1
    summary = dcr_summary(pd.Series(["set an alarm"]), pd.Series([], dtype=object), pd.Series([], dtype=object), seed=0)
    assert summary["dcr_p50"] is None and summary["synthetic_closer_than_real_p05"] is None


# --- determinism and sampling ---------------------------------------------------------------------


def test_same_seed_gives_the_same_numbers_and_the_seed_chooses_the_sample():
    real, synthetic = varied(400, 9), pd.concat([varied(300, 10), templated(300, 11)], ignore_index=True)

    def measure(seed: int) -> tuple:
        return (
            shift_report(real, synthetic, seed, max_rows=200),
            diversity_profile(synthetic, seed, sample_rows=100),
            dcr_summary(synthetic, real, varied(100, 12), seed, max_rows=200),
            distance_to_closest_record(synthetic, real, seed, max_rows=200).index.tolist(),
        )

    first, again, other = measure(0), measure(0), measure(1)
    assert first == again
    assert first[1]["sample_rows"] == 100 and first[0]["synthetic_rows"] == 200 and len(first[3]) == 200
    assert first[3] != other[3] and first[1] != other[1]


# --- collapse_verdict -----------------------------------------------------------------------------


def _profile(version: str, distinct_2: float, self_similarity: float) -> dict:
    return {"version": version, "distinct_2": distinct_2, "self_similarity": self_similarity}


def test_first_version_cannot_collapse():
    collapsed, sentence = collapse_verdict([], _profile("v1", 0.6, 0.1))
    assert not collapsed and sentence.startswith("first version")


def test_a_twenty_percent_fall_of_distinct_2_is_a_collapse():
    collapsed, sentence = collapse_verdict([_profile("v1", 0.7, 0.1), _profile("v2", 0.6, 0.1)], _profile("v3", 0.48, 0.1))
    assert collapsed
    assert "distinct-2 fell from 0.6 to 0.48 (-20%)" in sentence and "v2 and v3" in sentence


def test_a_five_percent_fall_is_not_a_collapse():
    collapsed, sentence = collapse_verdict([_profile("v1", 0.6, 0.1)], _profile("v2", 0.57, 0.1))
    assert not collapsed
    assert "distinct-2 fell from 0.6 to 0.57 (-5%)" in sentence and "self-similarity held at 0.1" in sentence


def test_a_twenty_percent_rise_of_self_similarity_is_a_collapse():
    collapsed, sentence = collapse_verdict(
        [{"distinct_2": 0.6, "self_similarity": 0.1}], {"distinct_2": 0.6, "self_similarity": 0.12}
    )
    assert collapsed and "self-similarity rose from 0.1 to 0.12 (+20%)" in sentence and "previous version" in sentence


def test_profiles_without_numbers_are_not_called_a_collapse():
    collapsed, sentence = collapse_verdict([_profile("v1", None, None)], _profile("v2", 0.3, 0.5))
    assert not collapsed and "no comparable" in sentence
