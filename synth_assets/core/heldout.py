"""Everything a version is scored on, on the held-out real split, in one set of parallel fits.

- the version itself and ``repeats - 1`` other draws of its synthetic rows (the spread says how
  much the score depends on which synthetic rows were picked);
- the real-only baselines: the version's seeds, and the task's larger real pool when it has one;
- the mixing-ratio curve: the same total size at each synthetic share, 100% being
  train-synthetic-test-real;
- attribution: the version without each of its largest batches, generators and templates.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from synth_assets.core.attribution import attribution_groups, attribution_table, leave_one_out_trainings
from synth_assets.core.evaluate import (
    EVALUATION_VERSION,
    ScoreCache,
    confusion_table,
    score_trainings,
    spread,
    top_confusions,
)
from synth_assets.core.mix import fixed_size_mix, mix_version
from synth_assets.core.task_config import EvaluationConfig, MixConfig

CONFUSIONS_SHOWN = 10
CURVE_COLUMNS = ["split", "synthetic_share", "train_rows", "draws", "macro_f1_mean", "macro_f1_std", "accuracy_mean"]


@dataclass(frozen=True)
class HeldoutEvaluation:
    summary: dict
    per_class: pd.DataFrame  # trained_on (version, seeds_only, all_real), label, precision, recall, f1, support
    curve: pd.DataFrame  # CURVE_COLUMNS
    attribution: pd.DataFrame  # see core/attribution.py
    confusion: pd.DataFrame  # true label x predicted label, of the version


def _draw_name(draw: int) -> str:
    return "version" if draw == 0 else f"version draw {draw}"


def _curve_name(share: float, draw: int) -> str:
    return f"curve {share:g} draw {draw}"


def evaluate_on_heldout(
    task: str,
    version: str,
    training: pd.DataFrame,
    real: pd.DataFrame,
    pool: pd.DataFrame,
    share: float,
    policy: MixConfig,
    heldout: pd.DataFrame,
    real_pool: pd.DataFrame | None,
    labels: list[str],
    config: EvaluationConfig,
    cache: ScoreCache | None = None,
) -> HeldoutEvaluation:
    """Score version ``training`` (mixed from ``real`` and ``pool`` at ``share``) and its comparisons on ``heldout``."""
    trainings = {"version": training, "seeds_only": training[training["origin"] == "real"]}
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
    groups = attribution_groups(training, config.attribution_groups)
    trainings |= leave_one_out_trainings(training, groups)

    scores, predictions = score_trainings(trainings, heldout, labels, config.model, cache, keep_predictions=("version",))
    version_score, seeds_score = scores["version"], scores["seeds_only"]
    summary = {name: scores[name].summary() for name in ("version", "seeds_only", "all_real") if name in scores}
    summary |= {
        "version_draws": spread([scores[_draw_name(draw)] for draw in range(draws)]),
        "delta_macro_f1_vs_seeds_only": round(version_score.macro_f1 - seeds_score.macro_f1, 4),
        "delta_accuracy_vs_seeds_only": round(version_score.accuracy - seeds_score.accuracy, 4),
        "heldout_rows": len(heldout),
        "model": config.model,
        "evaluation_version": EVALUATION_VERSION,
    }
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
    confusion = confusion_table(heldout["label"], predictions["version"], labels)
    summary["top_confusions"] = top_confusions(confusion, CONFUSIONS_SHOWN).to_dict("records")
    per_class = pd.concat([scores[name].per_class for name in ("version", "seeds_only", "all_real") if name in scores])
    return HeldoutEvaluation(
        summary=summary,
        per_class=per_class.reset_index(drop=True),
        curve=curve,
        attribution=attribution_table(version_score, scores, groups),
        confusion=confusion,
    )
