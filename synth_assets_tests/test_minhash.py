"""The vectorised engine gives datasketch's signatures and finds the near-duplicates the current engine finds."""

import numpy as np
from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32

from synth_assets.core.minhash import (
    band_keys,
    estimated_jaccard,
    fingerprints,
    jaccard_of_pairs,
    lsh_bands,
    lsh_candidate_pairs,
    query_pairs,
    shingle_hash,
    shingle_hashes,
    signatures,
    signatures_from_hashes,
    verify_pairs,
)
from synth_assets.core.text import normalize_text
from synth_assets_tests.reference_dedup import datasketch_signatures as _signatures
from synth_assets_tests.reference_dedup import jaccard, shingles

BANDS, ROWS = lsh_bands(0.8, 128)
TEXTS = [
    normalize_text(t)
    for t in [
        "please set an alarm for nine am tomorrow",
        "please set an alarm for nine am tomorow",
        "what is the weather like in rome this weekend",
        "play some relaxing piano music in the kitchen",
        "turn off all the lights in the kitchen please",
        "hi",
        "今日の天気はどうですか",
    ]
]
WORDS = [
    "alarm",
    "weather",
    "music",
    "lights",
    "kitchen",
    "rome",
    "nine",
    "tomorrow",
    "piano",
    "play",
    "set",
    "turn",
    "off",
    "what",
    "is",
    "the",
    "like",
    "in",
    "some",
]


def _random_texts(count, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(6, 14))) + f" {i}" for i in range(count)]


def _shingle_list(text, size=5):
    return [text[i : i + size] for i in range(len(text) - size + 1)] if len(text) > size else [text]


def test_signatures_are_bit_identical_to_datasketch_with_our_shingle_hash():
    sigs = signatures(TEXTS, 128, 5)
    for text, row in zip(TEXTS, sigs):
        reference = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash)
        for shingle in _shingle_list(text):
            reference.update(shingle)
        assert (reference.hashvalues == row).all()


def test_sha1_shingle_hashes_reproduce_the_current_engines_signatures():
    sets = [shingles(text, 5) for text in TEXTS]
    hashes = [[sha1_hash32(s.encode("utf-8")) for s in sorted(item)] for item in sets]
    offsets = np.cumsum([0] + [len(h) for h in hashes])
    ours = signatures_from_hashes(np.array(sum(hashes, []), dtype=np.uint32), offsets, 128)
    for current, row in zip(_signatures(sets, 128), ours):
        assert (current.hashvalues == row).all()


def test_estimated_jaccard_is_close_to_datasketch_and_to_the_exact_jaccard():
    base = "set an alarm for nine in the morning and play some music in the kitchen"
    variants = [base.replace("nine", "ten"), base.replace("music", "jazz music"), base + " now", "what is the weather in rome"]
    sigs = signatures([base, *variants], 128, 5)
    sha1 = _signatures([shingles(t, 5) for t in [base, *variants]], 128)
    for k, variant in enumerate(variants, start=1):
        exact = jaccard(shingles(base, 5), shingles(variant, 5))
        ours = estimated_jaccard(sigs[0], sigs[k])[0]
        assert abs(ours - exact) < 0.15
        assert abs(ours - sha1[0].jaccard(sha1[k])) < 0.15


def test_shingle_hashes_match_the_reference_hash_and_short_texts_are_one_shingle():
    flat, offsets = shingle_hashes(["hello world", "hi", ""], 5)
    assert offsets.tolist() == [0, 7, 8, 9]
    assert flat[:7].tolist() == [shingle_hash(s) for s in _shingle_list("hello world")]
    assert flat[7] == shingle_hash("hi")
    assert flat[7] != shingle_hash("hi\x00")


def test_signatures_are_deterministic_across_calls_and_chunking():
    texts = _random_texts(300)
    first = signatures(texts, 128, 5)
    assert (signatures(texts, 128, 5) == first).all()
    assert (signatures(texts[150:], 128, 5) == first[150:]).all()
    assert first.dtype == np.uint32 and first.shape == (300, 128)


def test_planted_near_duplicates_are_found_and_unrelated_texts_are_not_paired():
    texts = _random_texts(400)
    texts.append(texts[17].replace(" ", "  ", 1)[:-1] + "x")  # one character changed
    texts.append(texts[42] + " ok")
    sigs = signatures(texts, 128, 5)
    pairs = lsh_candidate_pairs(band_keys(sigs, BANDS, ROWS))
    verified, similarity = verify_pairs(pairs, sigs, texts, 5, 0.8)
    assert {tuple(p) for p in verified.tolist()} == {(17, 400), (42, 401)}
    exact = [jaccard(shingles(texts[i], 5), shingles(texts[j], 5)) for i, j in verified.tolist()]
    assert np.allclose(similarity, exact)


def test_exact_jaccard_of_pairs_equals_python_sets():
    texts = TEXTS + _random_texts(20)
    flat, offsets = shingle_hashes(texts, 5)
    left, right = np.arange(len(texts) - 1), np.arange(1, len(texts))
    expected = [jaccard(shingles(texts[i], 5), shingles(texts[j], 5)) for i, j in zip(left, right)]
    assert np.allclose(jaccard_of_pairs(flat, offsets, left, right), expected)


def test_query_pairs_find_a_near_duplicate_of_an_index_row():
    index = _random_texts(500)
    batch = [index[123] + " now", "something else entirely new here"]
    index_sigs, batch_sigs = signatures(index, 128, 5), signatures(batch, 128, 5)
    index_keys, batch_keys = band_keys(index_sigs, BANDS, ROWS), band_keys(batch_sigs, BANDS, ROWS)
    pairs = query_pairs(index_keys, batch_keys)
    verified, _ = verify_pairs(pairs, batch_sigs, batch, 5, 0.8, right_sigs=index_sigs, right_texts=index)
    assert verified.tolist() == [[0, 123]]


def test_query_pairs_are_the_same_whichever_side_is_larger():
    keys = band_keys(signatures(_random_texts(300) + _random_texts(300, seed=0)[:40], 128, 5), BANDS, ROWS)
    small_batch = query_pairs(keys, keys[:50])
    large_batch = query_pairs(keys[:50], keys)
    assert len(small_batch) >= 50
    assert {tuple(p) for p in small_batch.tolist()} == {(b, a) for a, b in large_batch.tolist()}


def test_big_buckets_give_linear_not_quadratic_pairs():
    keys = band_keys(np.repeat(signatures(["the very same text"], 128, 5), 1000, axis=0), BANDS, ROWS)
    pairs = lsh_candidate_pairs(keys, max_bucket=64)
    assert len(pairs) == 999 and (pairs[:, 0] == 0).all()
    # A query key pairs with the first 64 index rows sharing it, whichever side is sorted.
    for index, query in ((keys, keys[:3]), (keys[:100], keys)):
        found = query_pairs(index, query, max_bucket=64)
        assert len(found) == len(query) * 64 and found[:, 1].max() == 63


def test_fingerprints_are_equal_exactly_for_equal_signatures():
    sigs = signatures(["set an alarm", "set an alarm", "set an alarm now", "hi"], 128, 5)
    prints = fingerprints(band_keys(sigs, BANDS, ROWS))
    assert prints[0] == prints[1] and len(set(prints[1:].tolist())) == 3


def test_empty_one_row_non_latin_and_long_texts():
    assert signatures([], 128, 5).shape == (0, 128)
    assert lsh_candidate_pairs(band_keys(signatures(["only one"], 128, 5), BANDS, ROWS)).shape == (0, 2)
    empty = signatures([""], 128, 5)[0]
    assert (empty == signatures([""], 128, 5)[0]).all()
    texts = ["今日の天気はどうですか", "今日の天気はどうですかね", "😀 emoji text 😀"]
    sigs = signatures(texts, 128, 5)
    verified, similarity = verify_pairs(lsh_candidate_pairs(band_keys(sigs, BANDS, ROWS)), sigs, texts, 5, 0.8)
    assert verified.tolist() == [[0, 1]] and similarity[0] == jaccard(shingles(texts[0], 5), shingles(texts[1], 5)) == 7 / 8
    reference = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash)
    for shingle in _shingle_list(texts[2]):
        reference.update(shingle)
    assert (reference.hashvalues == sigs[2]).all()
