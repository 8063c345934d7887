"""Verdicts: a paired bootstrap interval of a macro-F1 difference, and the one word it earns."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from synth_assets.core.verdict import HELPED, HURT, NO_DIFFERENCE, bootstrap_macro_f1, compare, interval, sentence

LABELS = ["a", "b", "c"]


def _predictions(truth: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(truth)) > accuracy
    shifted = np.array([LABELS[(LABELS.index(label) + 1) % 3] for label in truth], dtype=object)
    return np.where(wrong, shifted, truth)


TRUTH = np.array([LABELS[i % 3] for i in range(600)], dtype=object)


def _delta(new, old):
    score = lambda predicted: f1_score(TRUTH, predicted, labels=LABELS, average="macro", zero_division=0)
    return score(new) - score(old)


def test_a_clearly_better_model_helped_and_a_clearly_worse_one_hurt():
    good, bad = _predictions(TRUTH, 0.9, 1), _predictions(TRUTH, 0.6, 2)
    better = compare(TRUTH, good, bad, LABELS, _delta(good, bad), seed=0)
    assert better.word == HELPED and 0 < better.ci_low <= better.delta <= better.ci_high
    worse = compare(TRUTH, bad, good, LABELS, _delta(bad, good), seed=0)
    assert worse.word == HURT and worse.ci_high < 0


def test_a_difference_inside_the_noise_is_no_measurable_difference():
    first = _predictions(TRUTH, 0.80, 3)
    second = first.copy()
    # 16 wrong rows set right and 14 right rows set wrong: a small net gain that 600 rows cannot confirm.
    wrong, right = np.flatnonzero(first != TRUTH), np.flatnonzero(first == TRUTH)
    second[wrong[:16]] = TRUTH[wrong[:16]]
    second[right[:14]] = _predictions(TRUTH[right[:14]], 0.0, 9)
    verdict = compare(TRUTH, first, second, LABELS, _delta(first, second), seed=0)
    assert verdict.word == NO_DIFFERENCE and verdict.ci_low < 0 < verdict.ci_high
    assert sentence(verdict.summary()).startswith("no measurable difference: ")


def test_identical_predictions_have_a_zero_width_interval():
    same = _predictions(TRUTH, 0.7, 5)
    verdict = compare(TRUTH, same, same, LABELS, 0.0, seed=0)
    assert (verdict.ci_low, verdict.ci_high, verdict.word) == (0.0, 0.0, NO_DIFFERENCE)


def test_the_bootstrap_centres_on_sklearns_macro_f1_and_is_deterministic():
    predicted = _predictions(TRUTH, 0.75, 6)
    scores = bootstrap_macro_f1(TRUTH, [predicted], LABELS, seed=7)[:, 0]
    exact = f1_score(TRUTH, predicted, labels=LABELS, average="macro")
    assert abs(scores.mean() - exact) < 0.005
    low, high = interval(TRUTH, predicted, LABELS, seed=7)
    assert low < exact < high and (low, high) == interval(TRUTH, predicted, LABELS, seed=7)


def test_the_paired_interval_is_narrower_than_the_scores_own():
    first, second = _predictions(TRUTH, 0.80, 8), _predictions(TRUTH, 0.82, 8)  # same rng: mostly the same mistakes
    paired = compare(TRUTH, first, second, LABELS, _delta(first, second), seed=0)
    low, high = interval(TRUTH, first, LABELS, seed=0)
    assert paired.ci_high - paired.ci_low < (high - low) / 2
