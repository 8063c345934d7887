"""Stage 6: does version k help on real data it never saw, and why? Scored next to the real-only baselines."""

import dagster as dg
import numpy as np
import pandas as pd

from synth_assets.core.diversity import collapse_verdict, dcr_summary, distance_to_closest_record, diversity_profile, shift_report
from synth_assets.core.evaluate import EVALUATION_VERSION, ScoreCache
from synth_assets.core.hashing import derive_seed
from synth_assets.core.heldout import HeldoutEvaluation, evaluate_on_heldout
from synth_assets.core.labelled_data import read_labelled_file
from synth_assets.core.lake import Lake
from synth_assets.core.mix import label_distribution
from synth_assets.core.report import markdown_table
from synth_assets.core.schemas import heldout_metrics_schema
from synth_assets.core.task_config import TaskConfig
from synth_assets.core.text import normalize_text
from synth_assets.core.verdict import HELPED, HURT, sentence
from synth_assets.core.version_report import HISTORY_METRICS, ReportInputs, write_report
from synth_assets.defs.automation import FACTORY_CONDITION
from synth_assets.defs.partitions import batches, batches_up_to
from synth_assets.defs.publishing import publish, stage_code_version
from synth_assets.defs.resources import FactoryResource
from synth_assets.defs.training_set import export_paths, training_set, version_inputs

BASELINE_CHECK = "synthetic_data_helped"
PREVIOUS_CHECK = "not_below_previous_version"
COLLAPSE_CHECK = "diversity_not_collapsing"
SCORE_CACHE = "_evaluation_cache"  # lake folder: scores of tables already fitted, by content
PREDICTIONS = "_heldout_predictions"  # lake folder: each version's held-out predictions, for the next version's verdict
REPORTS = "reports"  # lake folder: reports/<version>/report.md with its plots
WORST_CLASSES_SHOWN = 10
COLLAPSE_TOLERANCE = 0.1  # relative fall of distinct-2 (or rise of self-similarity) between consecutive versions
DUPLICATE_STATUSES = ("exact_dup", "near_dup", "semantic_dup")


def lake_score_cache(lake: Lake) -> ScoreCache:
    def get(key: str) -> dict | None:
        return lake.read_json(SCORE_CACHE, key) if lake.sidecar_path(SCORE_CACHE, key).is_file() else None

    def put(key: str, record: dict) -> None:
        lake.write_json(SCORE_CACHE, key, record)

    return get, put


def real_splits(task: TaskConfig) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The held-out split, and the larger real pool without any held-out text (the all-real baseline)."""
    heldout = read_labelled_file(task.heldout_path, task.labels, reject_duplicates=False)
    if task.real_pool_path is None:
        return heldout, None
    pool = read_labelled_file(task.real_pool_path, task.labels, reject_duplicates=False)
    return heldout, pool[~pool["text"].map(normalize_text).isin(set(heldout["text"].map(normalize_text)))]


def _per_class_comparison(per_class: pd.DataFrame) -> pd.DataFrame:
    wide = per_class.pivot(index="label", columns="trained_on", values="f1")
    wide.columns = [f"f1_{name}" for name in wide.columns]
    return wide.reset_index().round(3).sort_values(["f1_version", "label"])


def quality_of_text(lake: Lake, version: str, training: pd.DataFrame, heldout: pd.DataFrame, seed: int) -> dict:
    """Shift from real text, diversity of the version and of this batch, and leakage towards the seeds and held-out split."""
    real = training.loc[training["origin"] == "real", "text"]
    synthetic = training.loc[training["origin"] == "synthetic", "text"]
    batch_rows = lake.query("gated", [version], "SELECT text, accepted, dup_status FROM rows")
    leakage = dcr_summary(synthetic, real, heldout["text"], seed)
    to_heldout = distance_to_closest_record(synthetic, heldout["text"], seed)
    return {
        "shift": shift_report(real, synthetic, seed),
        "diversity": diversity_profile(synthetic, seed),
        "batch_diversity": diversity_profile(batch_rows.loc[batch_rows["accepted"], "text"], seed),
        "batch_near_dup_rate": round(float(batch_rows["dup_status"].isin(DUPLICATE_STATUSES).mean()), 4)
        if len(batch_rows)
        else None,
        "leakage": leakage
        | {
            "heldout_copies_in_version": int(synthetic.map(normalize_text).isin(set(heldout["text"].map(normalize_text))).sum()),
            "heldout_copies_rejected_in_batch": int((batch_rows["dup_status"] == "contaminates_heldout").sum()),
            "dcr_to_heldout_min": round(float(to_heldout.min()), 4) if len(to_heldout.dropna()) else None,
            "dcr_to_heldout_p05": round(float(to_heldout.quantile(0.05)), 4) if len(to_heldout.dropna()) else None,
        },
    }


def history_of(earlier: dict[str, dict], version: str, summary: dict) -> pd.DataFrame:
    """Scores and text-quality numbers of the task's evaluated versions (``earlier``: summaries, oldest first), this one last."""

    def row(key: str, record: dict) -> dict:
        return {
            "version": key,
            "macro_f1": record["version"]["macro_f1"],
            "macro_f1_ci_low": record["version"].get("macro_f1_ci_low"),
            "macro_f1_ci_high": record["version"].get("macro_f1_ci_high"),
            "seeds_only_macro_f1": record["seeds_only"]["macro_f1"],
            "discriminator_auc": record.get("shift", {}).get("discriminator_auc"),
            "distinct_2": record.get("diversity", {}).get("distinct_2"),
            "self_similarity": record.get("diversity", {}).get("self_similarity"),
            "batch_near_dup_rate": record.get("batch_near_dup_rate"),
        }

    rows = [row(key, record) for key, record in earlier.items()] + [row(version, summary)]
    return pd.DataFrame(rows).astype({column: float for column in HISTORY_METRICS})


def _curves(evaluation: HeldoutEvaluation, manifest: dict) -> pd.DataFrame:
    """The held-out ratio curve with the validation one (when the version was validated) under it."""
    validation = manifest.get("validation")
    if not validation:
        return evaluation.curve
    weights = validation["synthetic_weight_by_share"]
    rows = pd.DataFrame(
        {
            "split": "validation",
            "synthetic_share": [float(weights[key]) for key in validation["macro_f1_by_share"]],
            "train_rows": pd.NA,
            "draws": validation["folds"],
            "macro_f1_mean": list(validation["macro_f1_by_share"].values()),
            "macro_f1_std": list(validation["macro_f1_std_by_share"].values()),
            "accuracy_mean": float("nan"),
        }
    ).sort_values("synthetic_share", kind="stable")
    return pd.concat([evaluation.curve.astype({"train_rows": "Int64"}), rows.astype({"train_rows": "Int64"})], ignore_index=True)


def _checks(summary: dict, collapse: tuple[bool, str]) -> list[dg.AssetCheckResult]:
    versus, previous = summary["versus_seeds_only"], summary.get("versus_previous")
    return [
        dg.AssetCheckResult(
            check_name=BASELINE_CHECK,
            passed=versus["verdict"] == HELPED,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                "seeds only: validation found no evidence the synthetic rows help, so none are in the version"
                if summary["mix_policy"] == "seeds only"
                else f"{summary['mix_policy']}: {sentence(versus)} over the seeds alone on held-out"
            ),
            metadata={"verdict": versus["verdict"], **{k: versus[k] for k in ("delta_macro_f1", "ci_low", "ci_high")}},
        ),
        dg.AssetCheckResult(
            check_name=PREVIOUS_CHECK,
            passed=previous is None or previous["verdict"] != HURT,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                "the task's first evaluated version"
                if previous is None
                else f"{sentence(previous)} against the previous version {previous['version']}"
            ),
            metadata={"verdict": previous["verdict"] if previous else "first version"},
        ),
        dg.AssetCheckResult(
            check_name=COLLAPSE_CHECK,
            passed=not collapse[0],
            severity=dg.AssetCheckSeverity.WARN,
            description=collapse[1],
            metadata={"distinct_2": summary["diversity"]["distinct_2"] or 0.0},
        ),
    ]


def _previous_predictions(lake: Lake, earlier: list[str], heldout_rows: int) -> tuple[str, np.ndarray] | None:
    """The last earlier version's held-out predictions, if they were stored for this held-out split."""
    for key in reversed(earlier):
        if lake.sidecar_path(PREDICTIONS, key).is_file():
            predicted = lake.read_json(PREDICTIONS, key)["predicted"]
            return (key, np.asarray(predicted, dtype=object)) if len(predicted) == heldout_rows else None
    return None


@dg.asset(
    partitions_def=batches,
    automation_condition=FACTORY_CONDITION,
    deps=[training_set],
    group_name="factory",
    kinds={"scikitlearn", "parquet"},
    code_version=stage_code_version(EVALUATION_VERSION, "evaluation"),
    check_specs=[
        dg.AssetCheckSpec(
            BASELINE_CHECK,
            asset="heldout_eval",
            description=(
                "Warns unless the version helped: its held-out macro-F1 gain over the seeds alone has a 95% paired "
                "bootstrap interval above 0 (else: no measurable difference, or hurt)."
            ),
        ),
        dg.AssetCheckSpec(
            PREVIOUS_CHECK,
            asset="heldout_eval",
            description="Warns when the version hurt against the task's previous version (95% interval of the change below 0).",
        ),
        dg.AssetCheckSpec(
            COLLAPSE_CHECK,
            asset="heldout_eval",
            description="Warns when the synthetic rows' diversity (distinct-2, self-similarity) falls from the previous version.",
        ),
    ],
    description=(
        "Held-out accuracy, macro-F1, per-class F1 and confusions of version k next to the real-only baselines, "
        "with the spread over draws, the mixing-ratio curve and per-batch/generator/template attribution."
    ),
)
def heldout_eval(context: dg.AssetExecutionContext, factory: FactoryResource) -> dg.MaterializeResult:
    version = context.partition_key
    task = factory.task_for_batch(version)
    lake = factory.lake()
    heldout, real_pool = real_splits(task)
    inputs = version_inputs(context.instance, lake, version)
    training = lake.read_table("training_set", version)
    manifest = lake.read_json("training_set", version)
    share = manifest["synthetic_share_target"]
    labels = sorted(task.labels)
    earlier_keys = batches_up_to(context.instance, version, inclusive=False)
    seed = derive_seed(task.name, version, "quality")
    context.log.info(f"{version}: scoring the version, its draws, ratio curve and attribution on {len(heldout)} held-out rows")
    evaluation = evaluate_on_heldout(
        task.name,
        version,
        training,
        inputs.real,
        inputs.pool,
        share,
        task.mix,
        heldout,
        real_pool,
        labels,
        task.evaluation,
        lake_score_cache(lake),
        validation=manifest.get("validation"),
        previous=_previous_predictions(lake, earlier_keys, len(heldout)),
        seed=seed,
    )
    lake.write_json(PREDICTIONS, version, {"predicted": evaluation.predictions.tolist()})
    summary = evaluation.summary | quality_of_text(lake, version, training, heldout, seed)
    summary |= {"ratio_curve": evaluation.curve.to_dict("records"), "attribution": evaluation.attribution.to_dict("records")}
    mixed, draws = summary["version"]["macro_f1"], summary["version_draws"]
    context.log.info(
        f"{version}: held-out macro-F1 {mixed:.4f} (mean of {draws['draws']} draws {draws['macro_f1_mean']:.4f} "
        f"± {draws['macro_f1_std']:.4f}) vs seeds-only {summary['seeds_only']['macro_f1']:.4f}: "
        f"{sentence(summary['versus_seeds_only'])}"
    )
    evaluated = [key for key in earlier_keys if lake.sidecar_path("heldout_eval", key).is_file()]
    earlier = {key: lake.read_json("heldout_eval", key) for key in evaluated}
    last = list(earlier)[-1:]
    collapse = collapse_verdict(
        [earlier[key]["diversity"] | {"version": key} for key in last],
        summary["diversity"] | {"version": version},
        COLLAPSE_TOLERANCE,
    )
    comparison = _per_class_comparison(evaluation.per_class)
    report_path = write_report(
        ReportInputs(
            task=task.name,
            version=version,
            heldout=summary,
            manifest=manifest,
            curve=_curves(evaluation, manifest),
            per_class=comparison,
            confusion=evaluation.confusion,
            attribution=evaluation.attribution,
            distribution=label_distribution(training),
            history=history_of(earlier, version, summary),
            exports=export_paths(lake, version),
        ),
        lake.root / REPORTS / version,
    )
    summary_path = lake.write_json("heldout_eval", version, summary | {"report": str(report_path)})
    context.log.info(f"{version}: report {report_path}")
    all_real = summary.get("all_real", {})
    return publish(
        lake,
        "heldout_eval",
        version,
        evaluation.per_class,
        heldout_metrics_schema(labels),
        {
            "macro_f1": mixed,
            "accuracy": summary["version"]["accuracy"],
            "macro_f1_mean_over_draws": draws["macro_f1_mean"],
            "macro_f1_std_over_draws": draws["macro_f1_std"],
            "seeds_only_macro_f1": summary["seeds_only"]["macro_f1"],
            "seeds_only_accuracy": summary["seeds_only"]["accuracy"],
            "delta_macro_f1_vs_seeds_only": summary["delta_macro_f1_vs_seeds_only"],
            "verdict": sentence(summary["versus_seeds_only"]),
            "delta_macro_f1_ci_low": summary["versus_seeds_only"]["ci_low"],
            "delta_macro_f1_ci_high": summary["versus_seeds_only"]["ci_high"],
            **({"verdict_vs_previous": sentence(summary["versus_previous"])} if "versus_previous" in summary else {}),
            "mix_policy": summary["mix_policy"],
            "policies": dg.MetadataValue.md(markdown_table(evaluation.policies, 20)),
            "policy_regret_on_heldout": summary["policy_regret_on_heldout"],
            **{
                f"{model}_macro_f1": scores["version"]["macro_f1"]
                for model, scores in summary.get("other_models", {}).items()
            },
            **({"all_real_macro_f1": all_real["macro_f1"], "all_real_accuracy": all_real["accuracy"]} if all_real else {}),
            "train_rows": summary["version"]["train_rows"],
            "heldout_rows": summary["heldout_rows"],
            "model": task.evaluation.model,
            "ratio_curve": dg.MetadataValue.md(markdown_table(evaluation.curve, 20)),
            "attribution": dg.MetadataValue.md(markdown_table(evaluation.attribution, 20)),
            "top_confusions": dg.MetadataValue.md(markdown_table(pd.DataFrame(summary["top_confusions"]), 10)),
            "worst_classes": dg.MetadataValue.md(markdown_table(comparison, WORST_CLASSES_SHOWN)),
            "discriminator_auc": summary["shift"]["discriminator_auc"] or 0.0,
            "distinct_2": summary["diversity"]["distinct_2"] or 0.0,
            "self_similarity": summary["diversity"]["self_similarity"] or 0.0,
            "dcr_synthetic_p05": summary["leakage"]["dcr_p05"] or 0.0,
            "heldout_copies_in_version": summary["leakage"]["heldout_copies_in_version"],
            "report": dg.MetadataValue.path(str(report_path)),
            "summary": dg.MetadataValue.path(str(summary_path)),
        },
        sample=comparison,
        check_results=_checks(summary, collapse),
        rows_are_records=False,
    )
