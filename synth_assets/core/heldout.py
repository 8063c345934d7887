"""Everything a version is scored on, on the held-out real split, in one set of parallel fits.

- the version itself and ``repeats - 1`` resamples of its synthetic rows (the spread says how
  much the score depends on which synthetic rows the generator happened to produce);
- the real-only baselines: the version's seeds, and the task's larger real pool when it has one;
- the verdict: the version's gain over the seeds alone (and over the previous version) with a
  95% paired bootstrap interval over held-out rows, and its word (:mod:`synth_assets.core.verdict`);
- every mixing policy validation chose from, scored here too: the regret of the validation-chosen
  policy against the best one on held-out (reported, never used to choose);
- the same version and baselines under each of ``evaluation.compare_models`` (e.g. TF-IDF);
- the mixing-ratio curve: the same total size at each synthetic share, 100% being
  train-synthetic-test-real;
- attribution: the version without each of its largest batches, generators and templates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synth_assets.core.attribution import attribution_groups, attribution_table, leave_one_out_trainings
from synth_assets.core.evaluate import (
    EVALUATION_VERSION,
    ScoreCache,
    confusion_table,
    macro_f1_of,
    score_trainings,
    spread,
    top_confusions,
)
from synth_assets.core.mix import Share, fixed_size_mix, mix_version, policy_name
from synth_assets.core.task_config import EvaluationConfig, MixConfig
from synth_assets.core.validation import candidate_policies, share_key
from synth_assets.core.verdict import compare, interval

CONFUSIONS_SHOWN = 10
CURVE_COLUMNS = ["split", "synthetic_share", "train_rows", "draws", "macro_f1_mean", "macro_f1_std", "accuracy_mean"]
POLICY_COLUMNS = ["policy", "validation_macro_f1", "heldout_macro_f1", "chosen"]


@dataclass(frozen=True)
class HeldoutEvaluation:
    summary: dict
    per_class: pd.DataFrame  # trained_on (version, seeds_only, all_real), label, precision, recall, f1, support
    curve: pd.DataFrame  # CURVE_COLUMNS
    attribution: pd.DataFrame  # see core/attribution.py
    confusion: pd.DataFrame  # true label x predicted label, of the version
    policies: pd.DataFrame  # POLICY_COLUMNS: every candidate policy, on validation and on held-out
    predictions: np.ndarray  # the version's held-out predictions (the next version is compared with them)


def _draw_name(draw: int) -> str:
    return "version" if draw == 0 else f"version draw {draw}"


def _curve_name(share: float, draw: int) -> str:
    return f"curve {share:g} draw {draw}"


def _policy_name(share: Share) -> str:
    return f"policy {share_key(share)}"


def _policy_table(scores: dict, shares: list[Share], chosen: Share, validation: dict | None) -> tuple[pd.DataFrame, float]:
    """Every candidate policy's validation and held-out macro-F1, and the chosen one's regret against the best on held-out."""
    validated = (validation or {}).get("macro_f1_by_share", {})
    table = pd.DataFrame(
        [
            {
                "policy": policy_name(share),
                "validation_macro_f1": validated.get(share_key(share), float("nan")),
                "heldout_macro_f1": round(scores[_policy_name(share)].macro_f1, 4),
                "chosen": "yes" if share == chosen else "",
            }
            for share in shares
        ],
        columns=POLICY_COLUMNS,
    )
    regret = float(table["heldout_macro_f1"].max() - scores[_policy_name(chosen)].macro_f1) if len(table) else 0.0
    return table, round(regret, 4)


def compare_models_summary(
    trainings: dict[str, pd.DataFrame], heldout: pd.DataFrame, labels: list[str], models: list[str], seed: int, cache
) -> dict:
    """The version and its real-only baselines under other models, each with its verdict against the seeds alone."""
    names = [name for name in ("version", "seeds_only", "all_real") if name in trainings]
    out = {}
    for model in models:
        chosen = {name: trainings[name] for name in names}
        scores, predictions = score_trainings(chosen, heldout, labels, model, cache, keep_predictions=("version", "seeds_only"))
        delta = scores["version"].macro_f1 - scores["seeds_only"].macro_f1
        versus = compare(heldout["label"], predictions["version"], predictions["seeds_only"], labels, delta, seed)
        out[model] = {name: scores[name].summary() for name in names} | {"versus_seeds_only": versus.summary()}
    return out


def evaluate_on_heldout(
    task: str,
    version: str,
    training: pd.DataFrame,
    real: pd.DataFrame,
    pool: pd.DataFrame,
    share: Share,
    policy: MixConfig,
    heldout: pd.DataFrame,
    real_pool: pd.DataFrame | None,
    labels: list[str],
    config: EvaluationConfig,
    cache: ScoreCache | None = None,
    validation: dict | None = None,
    previous: tuple[str, np.ndarray] | None = None,
    seed: int = 0,
) -> HeldoutEvaluation:
    """Score version ``training`` (mixed from ``real`` and ``pool`` under ``share``) and its comparisons on ``heldout``.

    ``validation`` is the manifest's validation summary (its per-policy scores go beside the held-out
    ones); ``previous`` the previous version's name and held-out predictions, when there is one.
    """
    trainings = {"version": training, "seeds_only": training[training["origin"] == "real"].drop(columns="weight")}
    if real_pool is not None:
        trainings["all_real"] = real_pool
    has_synthetic = bool((training["origin"] == "synthetic").any())
    draws = config.repeats if has_synthetic else 1
    for draw in range(1, draws):
        trainings[_draw_name(draw)] = mix_version(task, version, real, pool, policy, share, draw)[0]
    shares = [s for s in config.ratio_curve if s == 0.0 or len(pool)]
    for curve_share in shares:
        for draw in range(draws):
            trainings[_curve_name(curve_share, draw)] = fixed_size_mix(
                task, version, real, pool, curve_share, len(training), draw
            )
    policies = [s for s in dict.fromkeys([*candidate_policies(policy), share]) if s in (0, share) or len(pool)]
    for candidate in policies:
        trainings[_policy_name(candidate)] = mix_version(task, version, real, pool, policy, candidate)[0]
    groups = attribution_groups(training, config.attribution_groups)
    trainings |= leave_one_out_trainings(training, groups)

    kept = ("version", "seeds_only")
    scores, predictions = score_trainings(trainings, heldout, labels, config.model, cache, keep_predictions=kept)
    version_score, seeds_score = scores["version"], scores["seeds_only"]
    truth = heldout["label"]
    delta = version_score.macro_f1 - seeds_score.macro_f1
    versus_seeds = compare(truth, predictions["version"], predictions["seeds_only"], labels, delta, seed)
    low, high = interval(truth, predictions["version"], labels, seed)
    summary = {name: scores[name].summary() for name in ("version", "seeds_only", "all_real") if name in scores}
    summary["version"] |= {"macro_f1_ci_low": round(low, 4), "macro_f1_ci_high": round(high, 4)}
    summary |= {
        "mix_policy": policy_name(share),
        "version_draws": spread([scores[_draw_name(draw)] for draw in range(draws)]),
        "delta_macro_f1_vs_seeds_only": round(delta, 4),
        "delta_accuracy_vs_seeds_only": round(version_score.accuracy - seeds_score.accuracy, 4),
        "versus_seeds_only": versus_seeds.summary(),
        "verdict": versus_seeds.word,
        "heldout_rows": len(heldout),
        "model": config.model,
        "evaluation_version": EVALUATION_VERSION,
    }
    if previous is not None:
        previous_name, previous_predictions = previous
        previous_score = macro_f1_of(truth, previous_predictions, labels)
        gain = version_score.macro_f1 - previous_score
        change = compare(truth, predictions["version"], previous_predictions, labels, gain, seed)
        summary["versus_previous"] = {"version": previous_name, "macro_f1": round(previous_score, 4)} | change.summary()
    policy_table, regret = _policy_table(scores, policies, share, validation)
    summary |= {"policies": policy_table.to_dict("records"), "policy_regret_on_heldout": regret}
    if config.compare_models:
        other = [model for model in config.compare_models if model != config.model]
        summary["other_models"] = compare_models_summary(trainings, heldout, labels, other, seed, cache)
    curve = pd.DataFrame(
        [
            {
                "split": "heldout",
                "synthetic_share": curve_share,
                "train_rows": len(training),
                **{
                    k: v
                    for k, v in spread([scores[_curve_name(curve_share, d)] for d in range(draws)]).items()
                    if k != "accuracy_std"
                },
            }
            for curve_share in shares
        ],
        columns=CURVE_COLUMNS,
    )
    confusion = confusion_table(truth, predictions["version"], labels)
    summary["top_confusions"] = top_confusions(confusion, CONFUSIONS_SHOWN).to_dict("records")
    per_class = pd.concat([scores[name].per_class for name in ("version", "seeds_only", "all_real") if name in scores])
    return HeldoutEvaluation(
        summary=summary,
        per_class=per_class.reset_index(drop=True),
        curve=curve,
        attribution=attribution_table(version_score, scores, groups),
        confusion=confusion,
        policies=policy_table,
        predictions=predictions["version"],
    )
