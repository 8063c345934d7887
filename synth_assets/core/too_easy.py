"""The AFLite-style "too easy" filter: drop synthetic rows a model tells from real text at a glance.

A discriminator (TF-IDF word 1-2 grams, logistic regression) learns real seeds against the
batch's accepted synthetic rows over ``FOLDS`` folds; a synthetic row it calls synthetic with
probability at least ``threshold`` in its held-out fold looks artificial (templated phrasing, odd
word order) and teaches the classifier the generator's style rather than the task.

Whether the filter is worth it is decided per batch on real data the test never sees: the seeds
are split (stratified, seeded) into a training and a validation part, and the task's evaluation
model is trained on the training seeds plus the synthetic rows with and without the filter (rows
made from a validation seed left out of both), and the filter is applied only when it raises
validation macro-F1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline

from synth_assets.core.evaluate import build_model
from synth_assets.core.validation import made_from_any

FOLDS = 4
VALIDATION_SHARE = 0.3


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
    """Flag the artificial-looking synthetic rows, and apply the flags only if validation macro-F1 rises."""
    counts = seeds["label"].value_counts()
    if len(synthetic) < FOLDS or counts.min() < 2 or len(seeds) < 2 * FOLDS or counts.size < 2:
        # Too few rows to cross-validate or to carve a validation split from: the filter cannot prove itself.
        return TooEasyDecision(pd.Series(False, index=synthetic.index), False, 0.0, 0.0)
    flagged = artificial_rows(seeds["text"], synthetic["text"], threshold, seed)
    train, validation = train_test_split(seeds, test_size=VALIDATION_SHARE, stratify=seeds["label"], random_state=seed)
    # Rows made from a validation seed would grade the validation set on its own paraphrases.
    held_back = set(validation["seed_id"])
    usable = ~made_from_any(synthetic["seed_ids"], held_back)

    def score(rows: pd.DataFrame) -> float:
        rows = rows[usable.loc[rows.index]]
        data = pd.concat([train[["text", "label"]], rows[["text", "label"]]], ignore_index=True)
        predicted = build_model(model).fit(data["text"], data["label"]).predict(validation["text"])
        return float(f1_score(validation["label"], predicted, average="macro", zero_division=0))

    without, with_filter = score(synthetic), score(synthetic[~flagged])
    return TooEasyDecision(flagged, bool(flagged.any() and with_filter > without), without, with_filter)
