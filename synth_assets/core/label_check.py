"""Label consistency: a classifier trained on the real seeds disputes rows whose claimed label it rejects.

The expensive tier of the gate, run only on rows every cheap filter kept. TF-IDF over character
2-5 grams (robust to the spelling and word-form variety of short texts) and a logistic regression,
trained on the batch's real seeds. A row is disputed when its claimed label is not among the
classifier's ``dispute_rank`` most likely labels *and* the most likely label is at least
``dispute_ratio`` times as probable: a confident disagreement, not a close call. A task with no
more labels than ``dispute_rank`` would never see a dispute, so there the rank needed is one less
than the number of labels (for two labels: the claimed one is not the classifier's choice).

Measured on HWU64 (10 seeds per label, template rows, 10% of labels replaced by a random wrong
one; see bench/README.md): precision 1.00 and recall 0.95-0.97 at rank 3 and ratio 5, with no
correctly labelled row rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline


@dataclass(frozen=True)
class LabelChecker:
    model: Pipeline
    dispute_rank: int
    dispute_ratio: float

    @classmethod
    def fit(cls, texts: pd.Series, labels: pd.Series, dispute_rank: int, dispute_ratio: float) -> LabelChecker:
        model = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
            LogisticRegression(max_iter=2000, C=10.0),
        )
        return cls(model.fit(texts.astype(str), labels.astype(str)), dispute_rank, dispute_ratio)

    def disputes(self, texts: pd.Series, claimed: pd.Series) -> pd.Series:
        """For each row, why the classifier disputes its label ("" where it does not)."""
        return self.assess(texts, claimed)[0]

    def assess(self, texts: pd.Series, claimed: pd.Series) -> tuple[pd.Series, pd.Series]:
        """(why each row is disputed or "", whether the classifier is unsure: not disputed, yet not its first choice)."""
        if texts.empty:
            return pd.Series("", index=texts.index, dtype=object), pd.Series(False, index=texts.index)
        classes = list(self.model.classes_)
        proba = self.model.predict_proba(texts.astype(str))
        known = claimed.isin(classes).to_numpy()
        column = np.array([classes.index(label) if label in classes else 0 for label in claimed])
        p_claimed = np.where(known, proba[np.arange(len(texts)), column], 0.0)
        rank = (proba > p_claimed[:, None]).sum(axis=1) + 1
        top = proba.argmax(axis=1)
        # With k labels no claimed label ranks below #k: a task of 2 or 3 labels needs only "not the first choice(s)".
        needed_rank = min(self.dispute_rank, len(classes) - 1)
        disputed = known & (rank > needed_rank) & (proba.max(axis=1) >= self.dispute_ratio * p_claimed)
        details = [
            f"a classifier on the seeds ranks {label!r} #{r} ({p:.3f}); it says {classes[t]!r} ({proba[i, t]:.3f})"
            if flag
            else ""
            for i, (flag, label, r, p, t) in enumerate(zip(disputed, claimed, rank, p_claimed, top))
        ]
        unsure = known & ~disputed & (rank > 1)
        return pd.Series(details, index=texts.index, dtype=object), pd.Series(unsure, index=texts.index)
