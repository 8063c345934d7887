"""Held-out evaluation: train the task's model on a dataset version and score it on real data.

The default model is the one the datasets' published baselines use: TF-IDF over word 1-2 grams
and a logistic regression (``max_iter=2000``), fully deterministic. Every training set is scored
the same way on the same held-out split, so the difference between a version and the seeds-only
baseline is the effect of the synthetic data and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.pipeline import make_pipeline

EVALUATION_VERSION = "2026.11.1"


@dataclass(frozen=True)
class Score:
    trained_on: str
    train_rows: int
    accuracy: float
    macro_f1: float
    per_class: pd.DataFrame  # trained_on, label, precision, recall, f1, support

    def summary(self) -> dict:
        return {"train_rows": self.train_rows, "accuracy": round(self.accuracy, 4), "macro_f1": round(self.macro_f1, 4)}


def build_model(model: str):
    if model != "tfidf_logreg":
        raise ValueError(f"unknown evaluation model {model!r}; available: tfidf_logreg")
    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=2000))


def train_and_score(
    trained_on: str, train: pd.DataFrame, heldout: pd.DataFrame, labels: list[str], model: str = "tfidf_logreg"
) -> Score:
    """Fit ``model`` on ``train`` (text, label) and score it on ``heldout`` (text, label)."""
    if train["label"].nunique() < 2:
        raise ValueError(f"cannot train {trained_on!r}: it has {train['label'].nunique()} label(s), at least 2 are needed")
    pipeline = build_model(model).fit(train["text"], train["label"])
    predicted = pipeline.predict(heldout["text"])
    precision, recall, f1, support = precision_recall_fscore_support(heldout["label"], predicted, labels=labels, zero_division=0)
    per_class = pd.DataFrame(
        {"trained_on": trained_on, "label": labels, "precision": precision, "recall": recall, "f1": f1, "support": support}
    ).astype({"support": "int64"})
    return Score(
        trained_on=trained_on,
        train_rows=len(train),
        accuracy=float(accuracy_score(heldout["label"], predicted)),
        macro_f1=float(f1_score(heldout["label"], predicted, average="macro", zero_division=0)),
        per_class=per_class,
    )


def evaluate_version(
    training: pd.DataFrame, heldout: pd.DataFrame, real_pool: pd.DataFrame | None, labels: list[str], model: str
) -> tuple[dict, pd.DataFrame]:
    """Scores of a version and its baselines on the held-out split: (summary, per-class table).

    Baselines are trained the same way: ``seeds_only`` on the version's real rows, and
    ``all_real`` on the task's larger real pool when it has one.
    """
    trainings = {"version": training, "seeds_only": training[training["origin"] == "real"]}
    if real_pool is not None:
        trainings["all_real"] = real_pool
    scores = [train_and_score(name, rows, heldout, labels, model) for name, rows in trainings.items()]
    summary = {score.trained_on: score.summary() for score in scores}
    summary["delta_macro_f1_vs_seeds_only"] = round(summary["version"]["macro_f1"] - summary["seeds_only"]["macro_f1"], 4)
    summary["delta_accuracy_vs_seeds_only"] = round(summary["version"]["accuracy"] - summary["seeds_only"]["accuracy"], 4)
    summary["heldout_rows"] = len(heldout)
    summary["model"] = model
    summary["evaluation_version"] = EVALUATION_VERSION
    return summary, pd.concat([score.per_class for score in scores], ignore_index=True)
