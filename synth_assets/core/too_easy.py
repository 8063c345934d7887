"""The AFLite-style "too easy" filter: drop synthetic rows a model tells from real text at a glance.

A discriminator (TF-IDF word 1-2 grams, logistic regression) learns real seeds against the
batch's accepted synthetic rows over ``FOLDS`` folds; a synthetic row it calls synthetic with
probability at least ``threshold`` in its held-out fold looks artificial (templated phrasing, odd
word order) and teaches the classifier the generator's style rather than the task.

Whether the filter is worth it is decided per batch on real data the test never sees, on the same
stratified folds of the seeds the mixing ratio is chosen on (:func:`synth_assets.core.validation.out_of_fold`):
the task's evaluation model is trained on the other folds' seeds plus the synthetic rows with and
without the filter (rows made from the fold's seeds left out of both), and the filter is applied
only when it raises the out-of-fold macro-F1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline

from synth_assets.core.validation import can_validate, out_of_fold

FOLDS = 4  # of the discriminator
VALIDATION_FOLDS = 3  # of the seeds, as the mixing ratio's default


@dataclass(frozen=True)
class TooEasyDecision:
    flagged: pd.Series  # bool per synthetic row: the discriminator finds it artificial
    applied: bool
    validation_macro_f1_without: float
    validation_macro_f1_with: float

    def summary(self) -> dict:
        return {
            "flagged": int(self.flagged.sum()),
            "applied": self.applied,
            "validation_macro_f1_without": round(self.validation_macro_f1_without, 4),
            "validation_macro_f1_with": round(self.validation_macro_f1_with, 4),
        }


def artificial_rows(real: pd.Series, synthetic: pd.Series, threshold: float, seed: int) -> pd.Series:
    """Per synthetic text: does a real-vs-synthetic discriminator, not trained on it, call it synthetic with p >= threshold?"""
    texts = pd.concat([real, synthetic], ignore_index=True).astype(str)
    is_synthetic = np.r_[np.zeros(len(real), dtype=int), np.ones(len(synthetic), dtype=int)]
    probability = np.zeros(len(texts))
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    for train, test in folds.split(texts, is_synthetic):
        # Balanced: synthetic rows outnumber real ones, and "synthetic" must not win by prior alone.
        model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=2000, class_weight="balanced")
        )
        model.fit(texts.iloc[train], is_synthetic[train])
        probability[test] = model.predict_proba(texts.iloc[test])[:, 1]
    return pd.Series(probability[len(real) :] >= threshold, index=synthetic.index)


def decide(seeds: pd.DataFrame, synthetic: pd.DataFrame, threshold: float, model: str, seed: int) -> TooEasyDecision:
    """Flag the artificial-looking synthetic rows, and apply the flags only if out-of-fold macro-F1 on the seeds rises."""
    if len(synthetic) < FOLDS or len(seeds) < 2 * FOLDS or not can_validate(seeds, VALIDATION_FOLDS):
        # Too few rows to cross-validate the discriminator or to fold the seeds: the filter cannot prove itself.
        return TooEasyDecision(pd.Series(False, index=synthetic.index), False, 0.0, 0.0)
    flagged = artificial_rows(seeds["text"], synthetic["text"], threshold, seed)
    kept = synthetic.index[~flagged]

    def with_and_without(train_real: pd.DataFrame, usable: pd.DataFrame, _fold: int) -> list[pd.DataFrame]:
        columns = ["text", "label"]
        return [
            pd.concat([train_real[columns], usable[columns]], ignore_index=True),
            pd.concat([train_real[columns], usable.loc[usable.index.intersection(kept), columns]], ignore_index=True),
        ]

    without, with_filter = out_of_fold(seeds, synthetic, with_and_without, VALIDATION_FOLDS, model)
    applied = bool(flagged.any() and with_filter.macro_f1 > without.macro_f1)
    return TooEasyDecision(flagged, applied, without.macro_f1, with_filter.macro_f1)
