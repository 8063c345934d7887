"""A real validation split carved from the seeds (never the held-out test), to choose things on.

The seeds are split into ``validation_folds`` stratified folds. For each fold, a version is mixed
from the other folds' seeds and the synthetic pool at each candidate share and scored on the
fold's seeds; every seed is predicted exactly once, and the macro-F1 of those out-of-fold
predictions is the share's validation score. Synthetic rows made from a fold's seeds are left out
of that fold's training: they paraphrase the very texts being scored.

What comes out: the chosen share (best validation macro-F1, the lower share on a tie) and the
per-label validation F1 at that share, which the next batch's generation quotas are weighted by.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from synth_assets.core.evaluate import fit_predict_many
from synth_assets.core.hashing import derive_seed
from synth_assets.core.mix import mix_version
from synth_assets.core.task_config import MixConfig


@dataclass(frozen=True)
class ValidationResult:
    folds: int
    rows: int
    macro_f1_by_share: dict[float, float]
    macro_f1_std_by_share: dict[float, float]  # across folds
    chosen_share: float
    per_label_f1: dict[str, float]  # out-of-fold, at the chosen share

    def summary(self) -> dict:
        return {
            "folds": self.folds,
            "rows": self.rows,
            "macro_f1_by_share": {f"{share:g}": score for share, score in self.macro_f1_by_share.items()},
            "macro_f1_std_by_share": {f"{share:g}": score for share, score in self.macro_f1_std_by_share.items()},
            "chosen_share": self.chosen_share,
            "per_label_f1": self.per_label_f1,
        }


def _folds(real: pd.DataFrame, folds: int, seed: int) -> list[np.ndarray]:
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Labels with fewer seeds than folds are fine: they are validated in fewer folds.
        warnings.simplefilter("ignore", UserWarning)
        return [test for _, test in splitter.split(real["text"], real["label"])]


def made_from_any(seed_ids: pd.Series, seeds: set[str]) -> pd.Series:
    """Per synthetic row (its ``seed_ids``): was it made from any of ``seeds``?"""
    return seed_ids.map(lambda ids: not seeds.isdisjoint(ids)).astype(bool)


def can_validate(real: pd.DataFrame, folds: int) -> bool:
    return real["label"].nunique() >= 2 and int(real["label"].value_counts().max()) >= folds


@dataclass(frozen=True)
class OutOfFold:
    """One candidate training recipe scored on folds of the seeds: every seed predicted once, by a model that never saw it."""

    predicted: np.ndarray  # per seed row, in the order of the seeds given
    fold_macro_f1: list[float]
    macro_f1: float
    per_label_f1: dict[str, float]


TrainingsForFold = Callable[[pd.DataFrame, pd.DataFrame, int], list[pd.DataFrame]]


def out_of_fold(
    real: pd.DataFrame, pool: pd.DataFrame, trainings_for_fold: TrainingsForFold, folds: int, seed: int, model: str
) -> list[OutOfFold]:
    """Score candidate training recipes on stratified folds of ``real`` (the seeds).

    For each fold, ``trainings_for_fold(train_real, usable_pool, fold)`` returns one training table per
    candidate, from the other folds' seeds and the pool rows not made from this fold's seeds. All
    models are fitted in one parallel call; the result holds one :class:`OutOfFold` per candidate.
    """
    real = real.reset_index(drop=True)
    test_folds = _folds(real, folds, seed)
    trainings, plan = [], []
    for fold, test in enumerate(test_folds):
        usable = pool[~made_from_any(pool["seed_ids"], set(real.loc[test, "seed_id"]))]
        for candidate, training in enumerate(trainings_for_fold(real.drop(index=test), usable, fold)):
            trainings.append(training)
            plan.append((fold, candidate))
    candidates = 1 + max(candidate for _, candidate in plan)
    labels = sorted(real["label"].unique())
    predicted = [np.empty(len(real), dtype=object) for _ in range(candidates)]
    fold_scores: list[list[float]] = [[] for _ in range(candidates)]
    # Each fold's texts are predicted by every model, then each model keeps its own fold's rows.
    for (fold, candidate), predictions in zip(plan, fit_predict_many(trainings, real["text"], model)):
        test = test_folds[fold]
        predicted[candidate][test] = predictions[test]
        fold_scores[candidate].append(
            f1_score(real.loc[test, "label"], predictions[test], labels=labels, average="macro", zero_division=0)
        )
    results = []
    for candidate in range(candidates):
        per_label = f1_score(real["label"], predicted[candidate], labels=labels, average=None, zero_division=0)
        results.append(
            OutOfFold(
                predicted=predicted[candidate],
                fold_macro_f1=fold_scores[candidate],
                macro_f1=round(float(np.mean(per_label)), 4),
                per_label_f1={label: round(float(score), 4) for label, score in zip(labels, per_label)},
            )
        )
    return results


def validate_shares(
    task: str, version: str, real: pd.DataFrame, pool: pd.DataFrame, policy: MixConfig, shares: list[float], model: str
) -> ValidationResult | None:
    """Validation macro-F1 of each share on folds of ``real``; None when the seeds are too few to fold."""
    if not can_validate(real, policy.validation_folds):
        return None

    def mixes(train_real: pd.DataFrame, usable: pd.DataFrame, fold: int) -> list[pd.DataFrame]:
        return [mix_version(task, f"{version}:fold{fold}", train_real, usable, policy, share)[0] for share in shares]

    scored = dict(zip(shares, out_of_fold(real, pool, mixes, policy.validation_folds, derive_seed(task, "validation"), model)))
    chosen = max(shares, key=lambda share: (scored[share].macro_f1, -share))
    return ValidationResult(
        folds=len(scored[chosen].fold_macro_f1),
        rows=len(real),
        macro_f1_by_share={share: result.macro_f1 for share, result in scored.items()},
        macro_f1_std_by_share={share: round(float(np.std(result.fold_macro_f1, ddof=1)), 4) for share, result in scored.items()},
        chosen_share=chosen,
        per_label_f1=scored[chosen].per_label_f1,
    )
