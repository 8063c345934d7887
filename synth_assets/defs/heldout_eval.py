"""Stage 6: does version k help on real data it never saw? Scored next to the seeds-only baseline."""

import dagster as dg

from synth_assets.core.evaluate import EVALUATION_VERSION, evaluate_version
from synth_assets.core.labelled_data import read_labelled_file
from synth_assets.core.report import markdown_table
from synth_assets.core.schemas import heldout_metrics_schema
from synth_assets.core.text import normalize_text
from synth_assets.defs.partitions import batches, batches_up_to
from synth_assets.defs.publishing import publish, stage_code_version
from synth_assets.defs.resources import FactoryResource
from synth_assets.defs.training_set import training_set

BASELINE_CHECK = "beats_seeds_only"
PREVIOUS_CHECK = "not_below_previous_version"
WORST_CLASSES_SHOWN = 10


@dg.asset(
    partitions_def=batches,
    deps=[training_set],
    group_name="factory",
    kinds={"scikitlearn", "parquet"},
    code_version=stage_code_version(EVALUATION_VERSION, "evaluation"),
    check_specs=[
        dg.AssetCheckSpec(
            BASELINE_CHECK,
            asset="heldout_eval",
            description="Warns when the version scores below the seeds-only baseline on held-out macro-F1.",
        ),
        dg.AssetCheckSpec(
            PREVIOUS_CHECK,
            asset="heldout_eval",
            description="Warns when the version scores below the task's previous version on held-out macro-F1.",
        ),
    ],
    description="Accuracy, macro-F1 and per-class F1 on the held-out real split, for version k and the real-only baselines.",
)
def heldout_eval(context: dg.AssetExecutionContext, factory: FactoryResource) -> dg.MaterializeResult:
    version = context.partition_key
    task = factory.task_for_batch(version)
    lake = factory.lake()
    heldout = read_labelled_file(task.heldout_path, task.labels, reject_duplicates=False)
    real_pool = None
    if task.real_pool_path is not None:
        pool = read_labelled_file(task.real_pool_path, task.labels, reject_duplicates=False)
        # The all-real baseline must not train on held-out text either.
        real_pool = pool[~pool["text"].map(normalize_text).isin(set(heldout["text"].map(normalize_text)))]
    labels = sorted(task.labels)
    summary, per_class = evaluate_version(
        lake.read_table("training_set", version), heldout, real_pool, labels, task.evaluation.model
    )
    summary_path = lake.write_json("heldout_eval", version, summary)
    mixed, baseline = summary["version"]["macro_f1"], summary["seeds_only"]["macro_f1"]
    context.log.info(
        f"{version}: held-out macro-F1 {mixed:.4f} vs seeds-only {baseline:.4f} ({summary['delta_macro_f1_vs_seeds_only']:+.4f})"
    )
    version_f1 = per_class[per_class["trained_on"] == "version"].set_index("label")["f1"]
    seeds_f1 = per_class[per_class["trained_on"] == "seeds_only"].set_index("label")["f1"]
    comparison = (
        version_f1.rename("f1_version")
        .to_frame()
        .join(seeds_f1.rename("f1_seeds_only"))
        .reset_index()
        .round(3)
        .sort_values(["f1_version", "label"])
    )
    check = dg.AssetCheckResult(
        check_name=BASELINE_CHECK,
        passed=mixed >= baseline,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"version macro-F1 {mixed:.4f} vs seeds-only {baseline:.4f}",
        metadata={"version_macro_f1": mixed, "seeds_only_macro_f1": baseline},
    )
    earlier = [
        key
        for key in batches_up_to(context.instance, version, inclusive=False)
        if lake.sidecar_path("heldout_eval", key).is_file()
    ]
    previous = lake.read_json("heldout_eval", earlier[-1])["version"]["macro_f1"] if earlier else None
    previous_check = dg.AssetCheckResult(
        check_name=PREVIOUS_CHECK,
        passed=previous is None or mixed >= previous,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "the task's first evaluated version"
            if previous is None
            else f"version macro-F1 {mixed:.4f} vs previous version {earlier[-1]} {previous:.4f} ({mixed - previous:+.4f})"
        ),
        metadata={"version_macro_f1": mixed, "previous_version": earlier[-1] if earlier else "none"},
    )
    all_real = summary.get("all_real", {})
    return publish(
        lake,
        "heldout_eval",
        version,
        per_class,
        heldout_metrics_schema(labels),
        {
            "macro_f1": mixed,
            "accuracy": summary["version"]["accuracy"],
            "seeds_only_macro_f1": baseline,
            "seeds_only_accuracy": summary["seeds_only"]["accuracy"],
            "delta_macro_f1_vs_seeds_only": summary["delta_macro_f1_vs_seeds_only"],
            **({"all_real_macro_f1": all_real["macro_f1"], "all_real_accuracy": all_real["accuracy"]} if all_real else {}),
            "train_rows": summary["version"]["train_rows"],
            "heldout_rows": summary["heldout_rows"],
            "model": task.evaluation.model,
            "worst_classes": dg.MetadataValue.md(markdown_table(comparison, WORST_CLASSES_SHOWN)),
            "summary": dg.MetadataValue.path(str(summary_path)),
        },
        sample=comparison,
        check_results=[check, previous_check],
    )
