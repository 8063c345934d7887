"""Closing the loop: weak labels on validation get more of the next batch's attempts."""

from synth_assets.core.quotas import MAX_FACTOR, MIN_FACTOR, quotas_from_validation, uniform_quotas


def test_weak_labels_get_more_attempts_and_the_total_is_kept():
    quotas = quotas_from_validation(["a", "b", "c"], 50, {"a": 0.2, "b": 0.6, "c": 0.9})
    assert quotas["a"] > quotas["b"] > quotas["c"]
    assert sum(quotas.values()) == 150


def test_no_label_is_starved_or_floods_the_batch():
    quotas = quotas_from_validation(["a", "b", "c", "d"], 100, {"a": 0.0, "b": 1.0, "c": 1.0, "d": 1.0})
    assert quotas["a"] / quotas["b"] <= MAX_FACTOR / MIN_FACTOR + 0.05
    assert quotas["a"] / quotas["b"] >= MAX_FACTOR / MIN_FACTOR - 0.05, "the weakest label reaches the bound"
    assert sum(quotas.values()) == 400


def test_equal_scores_and_unknown_labels_split_evenly():
    assert quotas_from_validation(["a", "b"], 10, {"a": 1.0, "b": 1.0}) == uniform_quotas(["a", "b"], 10)
    assert quotas_from_validation(["a", "b"], 10, {}) == {"a": 10, "b": 10}
