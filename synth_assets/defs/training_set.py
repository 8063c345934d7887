"""Stage 5: dataset version k = real seeds + accepted synthetic rows of passed batches <= k."""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd

from synth_assets.core.export import EXPORT_COLUMNS, dataset_card, finetune_jsonl
from synth_assets.core.hashing import file_sha256
from synth_assets.core.lake import Lake
from synth_assets.core.mix import (
    MIX_VERSION,
    UNWEIGHTED,
    Share,
    canonical_seed_ids,
    label_distribution,
    manifest,
    mix_version,
    policy_name,
    total_variation,
    unique_real_rows,
)
from synth_assets.core.report import markdown_table
from synth_assets.core.review import apply_review
from synth_assets.core.schemas import training_set_schema
from synth_assets.core.task_config import TaskConfig
from synth_assets.core.validation import ValidationResult, validate_policies
from synth_assets.defs.automation import CROSS_BATCH_POOL, FACTORY_CONDITION
from synth_assets.defs.gated import gated
from synth_assets.defs.partitions import batches, batches_up_to
from synth_assets.defs.publishing import counts_table, publish, stage_code_version
from synth_assets.defs.resources import FactoryResource
from synth_assets.defs.review import reviews_for_version

EXPORTS = "exports"  # lake folder of each version's CSV, fine-tuning JSONL and dataset card
POOL_SQL = (
    "SELECT row_id, text, label, batch, batch_order, generator, model, template_id, template_version, seed_ids "
    "FROM rows WHERE accepted ORDER BY batch_order, file_row_number"
)


def export_paths(lake: Lake, version: str) -> dict[str, Path]:
    """Where version ``version`` is exported: CSV, OpenAI fine-tuning chat JSONL, dataset card."""
    folder = lake.root / EXPORTS
    return {
        "csv": lake.csv_path(EXPORTS, version),
        "finetune_jsonl": folder / f"{version}.jsonl",
        "dataset_card": folder / f"{version}.md",
    }


@dataclass(frozen=True)
class VersionInputs:
    """What version k is mixed from: unique real seeds, the accepted synthetic pool, and which batches count."""

    real: pd.DataFrame
    pool: pd.DataFrame
    included: list[str]
    excluded: dict[str, list[str]]
    cost_usd: float


def version_inputs(instance: dg.DagsterInstance, lake: Lake, version: str) -> VersionInputs:
    """Seeds of batches <= k, and accepted rows of those whose gate and review passed (reviews applied)."""
    so_far = batches_up_to(instance, version)
    verdicts = {batch: lake.read_json("gated", batch) for batch in so_far}
    reviews = reviews_for_version(instance, lake, version, so_far)
    failures = {batch: verdicts[batch]["failures"] + reviews.get(batch, {}).get("failures", []) for batch in so_far}
    included = [batch for batch in so_far if not failures[batch]]
    seeds = lake.query("seeds", so_far, "SELECT seed_id, text, label, batch, line, batch_order FROM rows")
    real = unique_real_rows(seeds)
    canonical = canonical_seed_ids(seeds)
    pool = lake.query("gated", so_far, POOL_SQL).query("batch in @included").reset_index(drop=True)
    pool["seed_ids"] = pool["seed_ids"].map(lambda ids: sorted({canonical.get(seed_id, seed_id) for seed_id in ids}))
    for review in reviews.values():
        pool = apply_review(pool, review["rows"])
    # gated holds every attempt of a batch, its top-up rounds' too: what the batch cost in all.
    cost_by_batch = lake.query("gated", so_far, "SELECT batch, sum(cost_usd) AS cost FROM rows GROUP BY batch")
    return VersionInputs(
        real=real,
        pool=pool,
        included=included,
        excluded={batch: failures[batch] for batch in so_far if failures[batch]},
        cost_usd=float(cost_by_batch.loc[cost_by_batch["batch"].isin(included), "cost"].sum()),
    )


def choose_share(task: TaskConfig, version: str, inputs: VersionInputs) -> tuple[Share, str, ValidationResult | None]:
    """(policy, how it was chosen, validation scores).

    Validation runs for a fixed share too: do no harm, and per-label F1 for the next batch's quotas.
    """
    validation = validate_policies(task.name, version, inputs.real, inputs.pool, task.mix, task.evaluation.model)
    if validation is not None:
        return validation.chosen_share, validation.chosen_by, validation
    share = UNWEIGHTED if task.mix.synthetic_share == "auto" else task.mix.synthetic_share
    return share, f"{policy_name(share)}: too few seeds per label to validate on", None


def _validation_table(validation: ValidationResult) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "policy": [policy_name(share) for share in validation.macro_f1_by_share],
            "synthetic_weight": list(validation.synthetic_weight_by_share.values()),
            "validation_macro_f1": list(validation.macro_f1_by_share.values()),
            "std_across_folds": list(validation.macro_f1_std_by_share.values()),
            "chosen": ["yes" if share == validation.chosen_share else "" for share in validation.macro_f1_by_share],
        }
    )


@dg.asset(
    partitions_def=batches,
    automation_condition=FACTORY_CONDITION,
    pool=CROSS_BATCH_POOL,
    deps=[gated],
    group_name="factory",
    kinds={"parquet", "duckdb"},
    code_version=stage_code_version(MIX_VERSION, "mix"),
    description=(
        "Dataset version k: real seeds of batches <= k plus every accepted synthetic row of passed "
        "batches <= k, weighted to the validation-chosen (or the task's) ratio, or the seeds alone when validation "
        "shows no evidence the synthetic rows help; with a manifest and exports."
    ),
)
def training_set(context: dg.AssetExecutionContext, factory: FactoryResource) -> dg.MaterializeResult:
    version = context.partition_key
    task = factory.task_for_batch(version)
    lake = factory.lake()
    inputs = version_inputs(context.instance, lake, version)
    share, chosen_by, validation = choose_share(task, version, inputs)
    context.log.info(f"{version}: {policy_name(share)} ({chosen_by})")
    table, mix_summary = mix_version(task.name, version, inputs.real, inputs.pool, task.mix, share)
    distribution = label_distribution(table)
    version_manifest = manifest(
        task.name,
        version,
        table,
        mix_summary,
        inputs.included,
        inputs.excluded,
        inputs.pool,
        inputs.cost_usd,
        task.gate.model_dump(),
    ) | {
        "synthetic_share_chosen_by": chosen_by,
        "validation": validation.summary() if validation else None,
        "label_distribution_total_variation": total_variation(distribution),
        "label_distribution": distribution.set_index("label")[["real_share", "version_share"]].round(5).to_dict("index"),
    }
    manifest_path = lake.write_json("training_set", version, version_manifest)
    rejects = lake.query(
        "gated",
        inputs.included,
        "SELECT reject_reason, count(*) AS n FROM rows WHERE NOT accepted GROUP BY reject_reason",
        empty_columns=["reject_reason", "n"],
    )
    exports = export_paths(lake, version)
    lake.write_csv(EXPORTS, version, table[EXPORT_COLUMNS])
    lake.write_text(EXPORTS, exports["finetune_jsonl"].name, finetune_jsonl(table, task))
    card = dataset_card(task, version_manifest, dict(zip(rejects["reject_reason"], rejects["n"].astype(int))))
    lake.write_text(EXPORTS, exports["dataset_card"].name, card)
    for batch, failures in inputs.excluded.items():
        context.log.warning(f"{version}: batch {batch} left out, its gate failed: {'; '.join(failures)}")
    by_origin = version_manifest["counts"]["by_origin"]
    context.log.info(f"{version}: {len(table)} rows ({by_origin}) from {len(inputs.included)} passed batch(es)")
    skew = distribution.assign(gap=(distribution["version_share"] - distribution["real_share"]).abs())
    return publish(
        lake,
        "training_set",
        version,
        table,
        training_set_schema(task.labels),
        {
            "real_rows": by_origin.get("real", 0),
            "synthetic_rows": by_origin.get("synthetic", 0),
            "mix_policy": mix_summary["mix_policy"],
            "synthetic_weight_share": mix_summary["synthetic_share_actual"],
            "accepted_rows_used": f"{mix_summary['synthetic_rows_used']} of {len(inputs.pool)}",
            "synthetic_share_chosen_by": chosen_by,
            **({"validation_by_share": dg.MetadataValue.md(markdown_table(_validation_table(validation)))} if validation else {}),
            "balance": task.mix.balance,
            "label_distribution_total_variation": version_manifest["label_distribution_total_variation"],
            "labels_furthest_from_real_prior": dg.MetadataValue.md(
                markdown_table(skew.sort_values(["gap", "label"], ascending=[False, True]).drop(columns="gap").round(4), 5)
            ),
            "batches_included": ", ".join(inputs.included) or "none",
            "batches_excluded": ", ".join(inputs.excluded) or "none",
            "content_hash": version_manifest["content_hash"],
            "cost_usd": version_manifest["generation_cost_usd"],
            "labels_short_of_synthetic": len(mix_summary["synthetic_shortfall_by_label"]),
            "rows_by_batch": counts_table(version_manifest["counts"]["by_batch"], "batch"),
            "manifest": dg.MetadataValue.path(str(manifest_path)),
            **{f"export_{kind}": dg.MetadataValue.path(str(path)) for kind, path in exports.items()},
        },
        sample=table.sample(n=min(len(table), 10), random_state=0) if len(table) else table,
        audit=("version_published", _publication_audit(version_manifest, manifest_path, exports)),
    )


def _publication_audit(version_manifest: dict, manifest_path: Path, exports: dict[str, Path]) -> dict:
    """The audit trail's ``version_published`` entry: what the version holds and the hashes of what trainers take."""
    return {
        "content_hash": version_manifest["content_hash"],
        "counts_by_origin": version_manifest["counts"]["by_origin"],
        "counts_by_batch": version_manifest["counts"]["by_batch"],
        "synthetic_share_target": version_manifest["synthetic_share_target"],
        "synthetic_share_chosen_by": version_manifest["synthetic_share_chosen_by"],
        "batches_included": version_manifest["batches_included"],
        "batches_excluded": version_manifest["batches_excluded"],
        "manifest_sha256": file_sha256(manifest_path),
        "exports_sha256": {kind: file_sha256(path) for kind, path in sorted(exports.items())},
    }
