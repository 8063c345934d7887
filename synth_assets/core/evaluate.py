"""Held-out evaluation: train the task's model on training tables and score them on real data.

Two models, both deterministic and both the ones the shared datasets' published baselines use:

- ``embedding_logreg`` (default): potion-base-8M static sentence embeddings (model2vec) and a
  logistic regression (``C=10, max_iter=2000``): the model a user would train today. Ten seeds per
  label with it come within a few points of TF-IDF on all the real data, so a synthetic-data gain
  is worth claiming only if it holds here;
- ``tfidf_logreg``: TF-IDF over word 1-2 grams and a logistic regression (``max_iter=2000``), for
  comparison with published TF-IDF baselines. Its weakness makes any extra rows look useful.

A training table's optional ``weight`` column is passed to the fit as sample weights: that is how
a version reaches its real/synthetic ratio without discarding accepted rows. Every table is scored
the same way on the same held-out split, so the difference between a version and the seeds-only
baseline is the effect of the synthetic data and nothing else.

A version's evaluation is many fits (draws, ratio curve, attribution, baselines), so they run in
worker processes (``SYNTH_ASSETS_EVAL_WORKERS``, default: up to 2) and the scores of tables that
do not change between versions (the all-real baseline, seeds-only while no seeds arrive) are
cached by the content of what was trained and scored.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from synth_assets.core.embeddings import load_static_model, model_dir
from synth_assets.core.hashing import stable_hash

EVALUATION_VERSION = "2026.12.1"
MODELS = ("embedding_logreg", "tfidf_logreg")
WORKERS_ENV = "SYNTH_ASSETS_EVAL_WORKERS"
IDLE_WORKER_SECONDS = 10  # long enough to be reused from training_set's validation to heldout_eval


@dataclass(frozen=True)
class Score:
    trained_on: str
    train_rows: int
    accuracy: float
    macro_f1: float
    per_class: pd.DataFrame  # trained_on, label, precision, recall, f1, support

    def summary(self) -> dict:
        return {"train_rows": self.train_rows, "accuracy": round(self.accuracy, 4), "macro_f1": round(self.macro_f1, 4)}

    def as_record(self) -> dict:
        return {
            **self.summary(),
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": self.per_class.to_dict("list"),
        }

    @classmethod
    def from_record(cls, trained_on: str, record: dict) -> Score:
        per_class = pd.DataFrame(record["per_class"]).assign(trained_on=trained_on).astype({"support": "int64"})
        return cls(trained_on, record["train_rows"], record["accuracy"], record["macro_f1"], per_class)


ScoreCache = tuple[Callable[[str], dict | None], Callable[[str, dict], None]]  # (get, put) by content key


def _embed(texts, folder: str) -> np.ndarray:
    return load_static_model(folder).encode(list(texts))


def build_model(model: str, folder: str | None = None):
    """An unfitted sklearn pipeline over raw texts; ``folder`` holds the embedding model (default: :func:`model_dir`)."""
    if model == "tfidf_logreg":
        return make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=2000))
    if model == "embedding_logreg":
        embed = FunctionTransformer(_embed, kw_args={"folder": folder or str(model_dir())})
        return make_pipeline(embed, LogisticRegression(C=10, max_iter=2000))
    raise ValueError(f"unknown evaluation model {model!r}; available: {', '.join(MODELS)}")


def workers() -> int:
    configured = os.environ.get(WORKERS_ENV)
    if configured is not None and not configured.isdigit():
        raise ValueError(f"{WORKERS_ENV} must be a whole number of worker processes; got {configured!r}")
    return max(1, int(configured)) if configured else max(1, min(2, os.cpu_count() or 1))


def _fit_predict(train: pd.DataFrame, texts: pd.Series, model: str, folder: str) -> np.ndarray:
    weights = {"logisticregression__sample_weight": train["weight"].to_numpy(float)} if "weight" in train else {}
    return build_model(model, folder).fit(train["text"], train["label"], **weights).predict(texts)


def fit_predict_many(
    trainings: list[pd.DataFrame], texts: pd.Series, model: str, names: list[str] | None = None
) -> list[np.ndarray]:
    """Fit one model per training table (``text, label``, optional ``weight``) and predict ``texts`` with each, in parallel.

    ``names`` (one per table) name a table that cannot be trained in the error; else its position does.
    """
    for index, train in enumerate(trainings):
        if train["label"].nunique() < 2:
            name = repr(names[index]) if names else f"table {index}"
            raise ValueError(f"cannot train {name}: it has {train['label'].nunique()} label(s), at least 2 are needed")
    folder = str(model_dir())
    if model == "embedding_logreg":
        load_static_model(folder)  # a missing model fails here, with the fix, not in a worker
    build_model(model, folder)
    arguments = [(train[[c for c in ("text", "label", "weight") if c in train]], texts, model, folder) for train in trainings]
    n_jobs = min(workers(), len(arguments))
    if n_jobs <= 1:
        return [_fit_predict(*args) for args in arguments]
    # Idle workers exit soon: a finished Dagster run process waits for them before it can exit.
    with parallel_config(backend="loky", idle_worker_timeout=IDLE_WORKER_SECONDS):
        return Parallel(n_jobs=n_jobs)(delayed(_fit_predict)(*args) for args in arguments)


def score_predictions(trained_on: str, train_rows: int, truth: pd.Series, predicted: np.ndarray, labels: list[str]) -> Score:
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    per_class = pd.DataFrame(
        {"trained_on": trained_on, "label": labels, "precision": precision, "recall": recall, "f1": f1, "support": support}
    ).astype({"support": "int64"})
    return Score(
        trained_on=trained_on,
        train_rows=train_rows,
        accuracy=float(accuracy_score(truth, predicted)),
        macro_f1=macro_f1_of(truth, predicted, labels),
        per_class=per_class,
    )


def train_and_score(
    trained_on: str, train: pd.DataFrame, heldout: pd.DataFrame, labels: list[str], model: str = "embedding_logreg"
) -> Score:
    """Fit ``model`` on ``train`` (text, label) and score it on ``heldout`` (text, label)."""
    (predicted,) = fit_predict_many([train], heldout["text"], model, [trained_on])
    return score_predictions(trained_on, len(train), heldout["label"], predicted, labels)


def content_key(train: pd.DataFrame, heldout: pd.DataFrame, labels: list[str], model: str) -> str:
    """What a score depends on: the trained rows, the scored rows, the labels, the model and this module's version."""
    return stable_hash(
        EVALUATION_VERSION,
        model,
        labels,
        sorted(zip(train["text"], train["label"], train["weight"] if "weight" in train else [1.0] * len(train))),
        list(zip(heldout["text"], heldout["label"])),
        length=32,
    )


def score_trainings(
    trainings: dict[str, pd.DataFrame],
    heldout: pd.DataFrame,
    labels: list[str],
    model: str,
    cache: ScoreCache | None = None,
    keep_predictions: tuple[str, ...] = (),
) -> tuple[dict[str, Score], dict[str, np.ndarray]]:
    """Scores of every named training table on ``heldout``, and the predictions of the names in ``keep_predictions``.

    Tables whose score is in ``cache`` are not refitted (unless their predictions are wanted).
    """
    keys = {name: content_key(train, heldout, labels, model) for name, train in trainings.items()} if cache else {}
    cached = {name: cache[0](keys[name]) for name in trainings if name not in keep_predictions} if cache else {}
    scores = {name: Score.from_record(name, record) for name, record in cached.items() if record is not None}
    to_fit = [name for name in trainings if name not in scores]
    predictions = dict(zip(to_fit, fit_predict_many([trainings[name] for name in to_fit], heldout["text"], model, to_fit)))
    for name in to_fit:
        scores[name] = score_predictions(name, len(trainings[name]), heldout["label"], predictions[name], labels)
        if cache:
            cache[1](keys[name], scores[name].as_record())
    return {name: scores[name] for name in trainings}, {name: predictions[name] for name in keep_predictions}


def macro_f1_of(truth: pd.Series, predicted: np.ndarray, labels: list[str]) -> float:
    return float(f1_score(truth, predicted, labels=labels, average="macro", zero_division=0))


def confusion_table(truth: pd.Series, predicted: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """Counts with true labels as rows and predicted labels as columns."""
    matrix = confusion_matrix(truth, predicted, labels=labels)
    return pd.DataFrame(matrix, index=pd.Index(labels, name="true_label"), columns=labels)


def top_confusions(confusion: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The most frequent (true, predicted) mistakes: where the classifier is still confused."""
    pairs = confusion.stack().rename("count").reset_index()
    pairs.columns = ["true_label", "predicted_label", "count"]
    mistakes = pairs[(pairs["true_label"] != pairs["predicted_label"]) & (pairs["count"] > 0)]
    return mistakes.sort_values(["count", "true_label", "predicted_label"], ascending=[False, True, True]).head(limit)


def spread(scores: list[Score]) -> dict:
    """Mean and standard deviation of macro-F1 and accuracy over draws of the same kind of table."""
    macro, accuracy = np.array([s.macro_f1 for s in scores]), np.array([s.accuracy for s in scores])
    return {
        "draws": len(scores),
        "macro_f1_mean": round(float(macro.mean()), 4),
        "macro_f1_std": round(float(macro.std(ddof=1)) if len(scores) > 1 else 0.0, 4),
        "accuracy_mean": round(float(accuracy.mean()), 4),
        "accuracy_std": round(float(accuracy.std(ddof=1)) if len(scores) > 1 else 0.0, 4),
    }
