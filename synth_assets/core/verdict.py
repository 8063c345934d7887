"""Is a difference in macro-F1 real? Paired bootstrap over the scored rows, and the word it earns.

Both models predicted the same rows, so the rows are resampled once per resample and both are
scored on the same resample: the interval is of the *difference*, which is much narrower than the
two scores' own intervals. Resampling weights are drawn as one multinomial matrix and macro-F1 is
computed for every resample at once from weighted per-label counts, so 1,000 resamples of 10,000
rows take well under a second. A label absent from a resample (neither true nor predicted there)
does not enter that resample's average.

The words: *helped* when the 95% interval of the gain lies above 0, *hurt* when it lies below,
*no measurable difference* otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HELPED, NO_DIFFERENCE, HURT = "helped", "no measurable difference", "hurt"
RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Comparison:
    """``new`` minus ``old`` macro-F1 on the same rows: the gain, its 95% interval and standard error, and its word."""

    delta: float
    ci_low: float
    ci_high: float
    se: float
    word: str

    def summary(self) -> dict:
        return {
            "delta_macro_f1": round(self.delta, 4),
            "ci_low": round(self.ci_low, 4),
            "ci_high": round(self.ci_high, 4),
            "se": round(self.se, 4),
            "verdict": self.word,
        }

    def describe(self) -> str:
        interval = f"95% interval {self.ci_low * 100:+.1f} to {self.ci_high * 100:+.1f}"
        return f"{self.word}: {self.delta * 100:+.1f} points macro-F1 ({interval})"


def sentence(summary: dict) -> str:
    """'helped: +7.0 points macro-F1 (95% interval +5.2 to +8.9)' from a :meth:`Comparison.summary`."""
    fields = ("delta_macro_f1", "ci_low", "ci_high", "se", "verdict")
    return Comparison(*(summary[name] for name in fields)).describe()


def word_for(ci_low: float, ci_high: float) -> str:
    return HELPED if ci_low > 0 else HURT if ci_high < 0 else NO_DIFFERENCE


def _codes(values: np.ndarray, index: dict[str, int]) -> np.ndarray:
    return np.array([index.get(value, -1) for value in values], dtype=np.int64)


def bootstrap_macro_f1(truth, predictions: list, labels: list[str], seed: int, resamples: int = RESAMPLES) -> np.ndarray:
    """Macro-F1 of each prediction vector on ``resamples`` paired resamples of the rows: shape (resamples, len(predictions))."""
    index = {label: position for position, label in enumerate(labels)}
    true = _codes(np.asarray(truth, dtype=object), index)
    rows, width = len(true), len(labels)
    weights = np.random.default_rng(seed).multinomial(rows, np.full(rows, 1.0 / rows), size=resamples).astype(np.float64)
    true_hot = np.zeros((rows, width))
    true_hot[np.flatnonzero(true >= 0), true[true >= 0]] = 1.0
    support = weights @ true_hot
    scores = np.empty((resamples, len(predictions)))
    for column, predicted in enumerate(predictions):
        predicted = _codes(np.asarray(predicted, dtype=object), index)
        predicted_hot = np.zeros((rows, width))
        predicted_hot[np.flatnonzero(predicted >= 0), predicted[predicted >= 0]] = 1.0
        hits = weights @ (true_hot * predicted_hot)
        denominator = support + weights @ predicted_hot
        present = denominator > 0
        f1 = np.divide(2 * hits, denominator, out=np.zeros_like(hits), where=present)
        scores[:, column] = f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    return scores


def compare(truth, new, old, labels: list[str], delta: float, seed: int, resamples: int = RESAMPLES) -> Comparison:
    """``new`` against ``old`` predictions of the same rows; ``delta`` is the point estimate (the reported scores' difference)."""
    scores = bootstrap_macro_f1(truth, [new, old], labels, seed, resamples)
    differences = scores[:, 0] - scores[:, 1]
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = (float(value) for value in np.percentile(differences, [tail, 100 - tail]))
    return Comparison(delta=float(delta), ci_low=low, ci_high=high, se=float(differences.std(ddof=1)), word=word_for(low, high))


def interval(truth, predicted, labels: list[str], seed: int, resamples: int = RESAMPLES) -> tuple[float, float]:
    """95% bootstrap interval of one prediction vector's macro-F1."""
    scores = bootstrap_macro_f1(truth, [predicted], labels, seed, resamples)[:, 0]
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(scores, [tail, 100 - tail])
    return float(low), float(high)
