"""Duplicates are found with their partners; held-out copies count as contamination."""

import numpy as np
import pandas as pd

from synth_assets.core.dedup import (
    Reference,
    dedup_batch,
    duplicate_pairs,
    find_duplicates,
    signature_table,
    stored_signatures,
)
from synth_assets.core.minhash import candidate_probability, lsh_bands, signatures
from synth_assets.core.text import normalize_text

SETTINGS = {"threshold": 0.8, "num_perm": 128, "shingle_chars": 5}


def _candidates(*texts, failed=()):
    return pd.DataFrame(
        {
            "row_id": [f"r{i}" for i in range(len(texts))],
            "text": list(texts),
            "status": ["request_failed" if i in failed else "ok" for i in range(len(texts))],
        }
    )


def _verdicts(candidates, references=()):
    result = find_duplicates(candidates, list(references), **SETTINGS)
    return list(zip(result["dup_status"], result["dup_of"]))


def test_exact_duplicates_after_normalisation_point_at_the_first():
    assert _verdicts(_candidates("Set an alarm!", "set  an ALARM", "play jazz")) == [
        ("unique", ""),
        ("exact_dup", "r0"),
        ("unique", ""),
    ]


def test_near_duplicate_is_found_with_its_partner_and_similarity():
    result = find_duplicates(
        _candidates("please set an alarm for nine am tomorrow", "please set an alarm for nine am tomorow"), [], **SETTINGS
    )
    assert result["dup_status"].tolist() == ["unique", "near_dup"]
    assert result["dup_of"].tolist()[1] == "r0"
    assert 0.8 <= result["dup_similarity"].tolist()[1] < 1.0


def test_different_texts_stay_unique():
    assert [v for v, _ in _verdicts(_candidates("set an alarm for nine", "what is the weather in rome"))] == ["unique", "unique"]


def test_copy_of_heldout_is_contamination_and_beats_other_matches():
    references = [
        Reference(["heldout:7"], ["what is the weather like in paris today"], "contaminates_heldout"),
        Reference(["seed:1"], ["what is the weather like in paris today"], "copies_seed"),
    ]
    assert _verdicts(_candidates("What is the weather like in Paris today?"), references) == [
        ("contaminates_heldout", "heldout:7")
    ]


def test_near_copy_of_a_seed_is_rejected_as_copies_seed():
    references = [Reference(["seed:3"], ["turn off all the lights in the kitchen please"], "copies_seed")]
    assert _verdicts(_candidates("turn off all the lights in the kitchen pls"), references) == [("copies_seed", "seed:3")]


def test_rows_of_earlier_batches_count_as_duplicates():
    references = [Reference(["earlier-row"], ["play some relaxing piano music"], "exact_dup")]
    assert _verdicts(_candidates("play some relaxing piano music"), references) == [("exact_dup", "earlier-row")]


def test_failed_and_empty_rows_are_not_checked():
    assert [v for v, _ in _verdicts(_candidates("ok text here", "", "!!!", failed=(0,)))] == ["not_checked"] * 3


def test_non_latin_and_long_texts_are_handled():
    long_text = " ".join(f"word{i}" for i in range(2000))
    verdicts = _verdicts(_candidates("今日の天気はどうですか", "今日の天気はどうですか？", long_text, long_text + " extra"))
    assert verdicts == [("unique", ""), ("exact_dup", "r0"), ("unique", ""), ("near_dup", "r2")]


def test_stored_signatures_stand_in_for_the_text_of_earlier_rows():
    earlier = ["play some relaxing piano music", "turn off all the lights in the kitchen"]
    _, stored = dedup_batch(_candidates(*earlier), [], **SETTINGS)
    assert (
        stored_signatures(list(stored["row_id"]), earlier, stored, 128, 5).tobytes()
        == signatures([normalize_text(t) for t in earlier], 128, 5).tobytes()
    )
    # The index is loaded from the stored signatures; verification still reads the texts.
    reference = Reference(
        list(stored["row_id"]),
        earlier,
        "exact_dup",
        signatures=stored_signatures(list(stored["row_id"]), earlier, stored, 128, 5),
    )
    assert _verdicts(_candidates("play some relaxing piano music now"), [reference]) == [("near_dup", "r0")]


def test_only_unique_rows_have_their_signatures_stored():
    table, stored = dedup_batch(_candidates("play jazz", "play jazz", "turn the lights off"), [], **SETTINGS)
    assert list(stored["row_id"]) == list(table.loc[table["dup_status"] == "unique", "row_id"])
    assert stored["signature"].map(len).eq(128 * 4).all() and stored["settings"].eq("perm128-shingle5-seed1").all()


def test_lsh_bands_reach_the_recall_target_at_the_threshold():
    for threshold in (0.5, 0.7, 0.8, 0.9):
        bands, rows = lsh_bands(threshold, 128)
        assert bands * rows <= 128
        assert candidate_probability(threshold, bands, rows) >= 0.99


def test_duplicate_pairs_show_both_texts():
    candidates = _candidates("play jazz now", "play jazz now!")
    result = find_duplicates(candidates, [], **SETTINGS)
    pairs = duplicate_pairs(result, [], limit=5)
    assert pairs.to_dict("records") == [
        {"verdict": "exact_dup", "text": "play jazz now!", "duplicates": "play jazz now", "matched_id": "r0", "jaccard": 1.0}
    ]


def test_collapse_needs_history_before_it_judges():
    from synth_assets.core.dedup import collapse_signal

    looks_normal, why = collapse_signal(0.9, [0.05, 0.06])
    assert looks_normal and "3 are needed" in why


def test_a_duplicate_rate_well_above_the_history_is_a_collapse_signal():
    from synth_assets.core.dedup import collapse_signal

    assert collapse_signal(0.12, [0.05, 0.06, 0.04, 0.05])[0]
    looks_normal, why = collapse_signal(0.40, [0.05, 0.06, 0.04, 0.05])
    assert not looks_normal and "may be collapsing" in why and "mean 0.050 over 4 batches" in why


def test_an_empty_batch_and_a_one_row_batch_get_verdicts():
    reference = Reference(["seed:1"], ["please play some relaxing jazz music"], "copies_seed")
    empty, stored = dedup_batch(_candidates(), [reference], **SETTINGS)
    assert empty.empty and stored.empty
    one, stored = dedup_batch(_candidates("please play some relaxing jazz music now"), [reference], **SETTINGS)
    assert one["dup_status"].tolist() == ["copies_seed"] and stored.empty


def test_exact_and_near_duplicates_point_at_the_first_unique_row():
    texts = [
        "please set an alarm for nine am tomorrow",
        "please set an alarm for nine am tomorow",
        "what is the weather like in rome this weekend",
        "play some relaxing piano music in the kitchen",
        "hi",
        "今日の天気はどうですか",
        "今日の天気はどうですかね",
    ]
    table, _ = dedup_batch(_candidates(*texts, texts[0], texts[3] + " now", texts[1]), [], **SETTINGS)
    expected = ["unique", "near_dup", "unique", "unique", "unique", "unique", "near_dup", "exact_dup", "near_dup", "near_dup"]
    assert table["dup_status"].tolist() == expected
    assert table["dup_of"].tolist()[6:] == ["r5", "r0", "r3", "r0"]
    # The copy of a near duplicate is, like it, a near duplicate of the same unique row.
    assert table["dup_similarity"].iat[9] == table["dup_similarity"].iat[1]
    assert 0.8 <= table["dup_similarity"].iat[1] < 1.0 and table["dup_similarity"].iat[6] == 7 / 8


def test_a_copy_of_a_near_duplicate_can_match_a_unique_row_between_them():
    base = "alpha beta gamma delta epsilon zeta eta theta"
    variant = base + " iota kap"  # Jaccard 0.82 with base
    middle = variant + " xyz"  # 0.76 with base (so it stays unique), 0.93 with variant
    table, _ = dedup_batch(_candidates(base, variant, middle, variant), [], **SETTINGS)
    assert table["dup_status"].tolist() == ["unique", "near_dup", "unique", "near_dup"]
    # The first copy only had base before it; the second also has middle, which is more similar.
    assert table["dup_of"].tolist() == ["", "r0", "", "r2"]
    assert table["dup_similarity"].tolist() == [0.0, 0.82, 0.0, 0.9259]


def test_large_references_are_normalised_only_where_a_candidate_points():
    texts = ["Play some relaxing piano music!", "turn off all the lights in the kitchen"]
    sigs = signatures([normalize_text(t) for t in texts], 128, 5)
    # Rows no candidate can reach are never read: None would fail to normalise.
    padding = 5000
    filler = np.repeat(signatures(["zzzz qqqq xxxx"], 128, 5), padding, axis=0)
    reference = Reference(
        [f"old{i}" for i in range(padding + 2)], [None] * padding + texts, "exact_dup", signatures=np.concatenate([filler, sigs])
    )
    verdicts = _verdicts(_candidates("play some relaxing piano music", "turn off all the lights in the kitchen now"), [reference])
    assert verdicts == [("exact_dup", f"old{padding}"), ("near_dup", f"old{padding + 1}")]


def test_stored_signatures_fill_in_what_is_missing_and_the_last_stored_row_counts():
    texts = ["play some relaxing piano music", "turn off all the lights", "set an alarm"]
    sigs = signatures([normalize_text(t) for t in texts], 128, 5)
    stored = pd.concat([signature_table(["a", "b"], np.zeros((2, 128), np.uint32), 5), signature_table(["a", "b"], sigs[:2], 5)])
    loaded = stored_signatures(["a", "b", "c"], texts, stored, 128, 5)
    assert loaded.tobytes() == sigs.tobytes()
    assert stored_signatures(["c"], texts[2:], stored.iloc[:0], 128, 5).tobytes() == sigs[2:].tobytes()
