"""A real validation split carved from the seeds (never the held-out test), to choose a mixing policy on.

The seeds are split into ``validation_folds`` stratified folds, fixed by their text
(:mod:`synth_assets.core.folds`, so LLM requests can show seeds of one fold only). For each fold, a version is mixed
from the other folds' seeds and the synthetic pool under each candidate policy and scored on the
fold's seeds; every seed is predicted exactly once, and the macro-F1 of those out-of-fold
predictions is the policy's validation score. Synthetic rows made from a fold's seeds are left out
of that fold's training: they paraphrase the very texts being scored.

The candidates are the seeds alone, every accepted row unweighted, and every accepted row with the
real rows weighted so the synthetic rows carry each of ``candidate_shares`` of the weight. Ten
seeds a label make a noisy validation set, so the rule accounts for noise (standard errors from a
paired bootstrap over the seed rows, :mod:`synth_assets.core.verdict`):

1. **Prefer more data.** Among the policies with synthetic rows, take the one giving the synthetic
   rows the most weight whose score is not below the best one's by more than one standard error
   of their difference.
2. **Do no harm** (``mix.do_no_harm``, on by default). Publish it only if it beats the seeds alone
   by more than one standard error of that difference; otherwise the version is the seeds alone.

What comes out: the chosen policy, why, every candidate's score, and the per-label validation F1
of the chosen one, which the next batch's generation quotas are weighted by.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from synth_assets.core.evaluate import fit_predict_many
from synth_assets.core.folds import seed_folds
from synth_assets.core.hashing import derive_seed
from synth_assets.core.mix import UNWEIGHTED, Share, mix_version, policy_name
from synth_assets.core.task_config import MixConfig
from synth_assets.core.verdict import Comparison, compare

EVIDENCE_STANDARD_ERRORS = 1.0  # how far above the seeds alone a policy must score to count as evidence it helps


@dataclass(frozen=True)
class ValidationResult:
    folds: int
    rows: int
    macro_f1_by_share: dict[Share, float]
    macro_f1_std_by_share: dict[Share, float]  # across folds
    synthetic_weight_by_share: dict[Share, float]  # the synthetic rows' share of the weight on all the seeds
    chosen_share: Share
    chosen_by: str  # the rule that chose it, in words
    versus_seeds_only: dict  # the chosen synthetic policy against the seeds alone (verdict.Comparison.summary)
    per_label_f1: dict[str, float]  # out-of-fold, under the chosen policy

    def summary(self) -> dict:
        return {
            "folds": self.folds,
            "rows": self.rows,
            "macro_f1_by_share": {share_key(share): score for share, score in self.macro_f1_by_share.items()},
            "macro_f1_std_by_share": {share_key(share): score for share, score in self.macro_f1_std_by_share.items()},
            "synthetic_weight_by_share": {share_key(share): w for share, w in self.synthetic_weight_by_share.items()},
            "chosen_share": self.chosen_share,
            "chosen_by": self.chosen_by,
            "versus_seeds_only": self.versus_seeds_only,
            "per_label_f1": self.per_label_f1,
        }


def share_key(share: Share) -> str:
    return share if isinstance(share, str) else f"{share:g}"


def _folds(real: pd.DataFrame, folds: int) -> list[np.ndarray]:
    assigned = seed_folds(real["text"], real["label"], folds)
    return [np.flatnonzero(assigned == fold) for fold in range(folds) if (assigned == fold).any()]


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
    real: pd.DataFrame, pool: pd.DataFrame, trainings_for_fold: TrainingsForFold, folds: int, model: str
) -> list[OutOfFold]:
    """Score candidate training recipes on stratified folds of ``real`` (the seeds).

    For each fold, ``trainings_for_fold(train_real, usable_pool, fold)`` returns one training table per
    candidate, from the other folds' seeds and the pool rows not made from this fold's seeds. All
    models are fitted in one parallel call; the result holds one :class:`OutOfFold` per candidate.
    """
    real = real.reset_index(drop=True)
    test_folds = _folds(real, folds)
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


def candidate_policies(policy: MixConfig) -> list[Share]:
    """Seeds only first, then every policy with synthetic rows the task allows choosing from."""
    if policy.synthetic_share == "auto":
        return [0.0, UNWEIGHTED, *policy.candidate_shares]
    return [0.0] if policy.synthetic_share == 0 else [0.0, policy.synthetic_share]


def validate_policies(
    task: str, version: str, real: pd.DataFrame, pool: pd.DataFrame, policy: MixConfig, model: str
) -> ValidationResult | None:
    """Validation macro-F1 of each candidate policy on folds of ``real`` and the one the rule picks.

    None when the seeds are too few to fold.
    """
    if not can_validate(real, policy.validation_folds):
        return None
    shares = candidate_policies(policy)

    def mixes(train_real: pd.DataFrame, usable: pd.DataFrame, fold: int) -> list[pd.DataFrame]:
        return [mix_version(task, f"{version}:fold{fold}", train_real, usable, policy, share)[0] for share in shares]

    seed = derive_seed(task, "validation")
    scored = dict(zip(shares, out_of_fold(real, pool, mixes, policy.validation_folds, model)))
    weight = {share: mix_version(task, version, real, pool, policy, share)[1]["synthetic_share_actual"] for share in shares}
    labels = sorted(real["label"].unique())
    truth = real.reset_index(drop=True)["label"]

    def versus(new: Share, old: Share) -> Comparison:
        delta = scored[new].macro_f1 - scored[old].macro_f1
        return compare(truth, scored[new].predicted, scored[old].predicted, labels, delta, seed)

    chosen, chosen_by, evidence = 0.0, "the task's share is 0: seeds only", {}
    with_synthetic = [share for share in shares if share != 0 and len(pool)]
    if with_synthetic:
        best = max(with_synthetic, key=lambda share: (scored[share].macro_f1, weight[share]))
        # More synthetic weight first: the first within one standard error of the best is taken.
        for share in sorted(with_synthetic, key=lambda share: -weight[share]):
            gap = versus(share, best) if share != best else None
            if gap is None or gap.delta >= -gap.se:
                chosen = share
                break
        comparison = versus(chosen, 0.0)
        evidence = comparison.summary()
        helps = comparison.delta > EVIDENCE_STANDARD_ERRORS * comparison.se
        chosen_by = (
            f"validation over {policy.validation_folds} folds of the seeds: {policy_name(chosen)} scores "
            f"{comparison.delta * 100:+.1f} points over the seeds alone (standard error {comparison.se * 100:.1f})"
        )
        if not helps and policy.do_no_harm:
            chosen_by += "; no evidence the synthetic rows help, so the version is the seeds alone (mix.do_no_harm)"
            chosen = 0.0
    elif shares != [0.0]:
        chosen_by = "no accepted synthetic rows yet: seeds only"
    return ValidationResult(
        folds=len(scored[chosen].fold_macro_f1),
        rows=len(real),
        macro_f1_by_share={share: result.macro_f1 for share, result in scored.items()},
        macro_f1_std_by_share={share: round(float(np.std(result.fold_macro_f1, ddof=1)), 4) for share, result in scored.items()},
        synthetic_weight_by_share=weight,
        chosen_share=chosen,
        chosen_by=chosen_by,
        versus_seeds_only=evidence,
        per_label_f1=scored[chosen].per_label_f1,
    )
