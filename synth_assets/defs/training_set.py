"""Stage 5: dataset version k = real seeds + accepted synthetic rows of passed batches <= k."""

import dagster as dg

from synth_assets.core.export import EXPORT_COLUMNS, dataset_card, finetune_jsonl
from synth_assets.core.mix import MIX_VERSION, manifest, mix_version, unique_real_rows
from synth_assets.core.review import apply_review
from synth_assets.core.schemas import training_set_schema
from synth_assets.defs.gated import gated
from synth_assets.defs.partitions import batches, batches_up_to
from synth_assets.defs.publishing import counts_table, publish, stage_code_version
from synth_assets.defs.resources import FactoryResource
from synth_assets.defs.review import reviews_for_version

EXPORTS = "exports"  # lake folder of each version's CSV, fine-tuning JSONL and dataset card
POOL_SQL = (
    "SELECT row_id, text, label, batch, batch_order, generator, model, template_id, template_version "
    "FROM rows WHERE accepted ORDER BY batch_order, file_row_number"
)


@dg.asset(
    partitions_def=batches,
    deps=[gated],
    group_name="factory",
    kinds={"parquet", "duckdb"},
    code_version=stage_code_version(MIX_VERSION, "mix"),
    description=(
        "Dataset version k: real seeds of batches <= k plus accepted synthetic rows of passed "
        "batches <= k, mixed at the task's ratio, with a manifest."
    ),
)
def training_set(context: dg.AssetExecutionContext, factory: FactoryResource) -> dg.MaterializeResult:
    version = context.partition_key
    task = factory.task_for_batch(version)
    lake = factory.lake()
    so_far = batches_up_to(context.instance, version)
    verdicts = {batch: lake.read_json("gated", batch) for batch in so_far}
    reviews = reviews_for_version(context.instance, lake, version, so_far)
    failures = {batch: verdicts[batch]["failures"] + reviews.get(batch, {}).get("failures", []) for batch in so_far}
    included = [batch for batch in so_far if not failures[batch]]
    excluded = {batch: failures[batch] for batch in so_far if failures[batch]}
    real = unique_real_rows(lake.query("seeds", so_far, "SELECT seed_id, text, label, batch, line, batch_order FROM rows"))
    pool = lake.query("gated", so_far, POOL_SQL).query("batch in @included").reset_index(drop=True)
    for review in reviews.values():
        pool = apply_review(pool, review["rows"])
    cost_by_batch = lake.query("generated", so_far, "SELECT batch, sum(cost_usd) AS cost FROM rows GROUP BY batch")
    cost = float(cost_by_batch.loc[cost_by_batch["batch"].isin(included), "cost"].sum())
    table, mix_summary = mix_version(task.name, version, real, pool, task.mix.synthetic_share)
    version_manifest = manifest(task.name, version, table, mix_summary, included, excluded, pool, cost, task.gate.model_dump())
    manifest_path = lake.write_json("training_set", version, version_manifest)
    rejects = lake.query(
        "gated",
        included,
        "SELECT reject_reason, count(*) AS n FROM rows WHERE NOT accepted GROUP BY reject_reason",
        empty_columns=["reject_reason", "n"],
    )
    exports = {
        "csv": lake.write_csv(EXPORTS, version, table[EXPORT_COLUMNS]),
        "finetune_jsonl": lake.write_text(EXPORTS, f"{version}.jsonl", finetune_jsonl(table, task)),
        "dataset_card": lake.write_text(
            EXPORTS,
            f"{version}.md",
            dataset_card(task, version_manifest, dict(zip(rejects["reject_reason"], rejects["n"].astype(int)))),
        ),
    }
    for batch, failures in excluded.items():
        context.log.warning(f"{version}: batch {batch} left out, its gate failed: {'; '.join(failures)}")
    by_origin = version_manifest["counts"]["by_origin"]
    context.log.info(f"{version}: {len(table)} rows ({by_origin}) from {len(included)} passed batch(es)")
    return publish(
        lake,
        "training_set",
        version,
        table,
        training_set_schema(task.labels),
        {
            "real_rows": by_origin.get("real", 0),
            "synthetic_rows": by_origin.get("synthetic", 0),
            "synthetic_share": mix_summary["synthetic_share_actual"],
            "synthetic_share_target": task.mix.synthetic_share,
            "batches_included": ", ".join(included) or "none",
            "batches_excluded": ", ".join(excluded) or "none",
            "content_hash": version_manifest["content_hash"],
            "cost_usd": version_manifest["generation_cost_usd"],
            "labels_short_of_synthetic": len(mix_summary["synthetic_shortfall_by_label"]),
            "rows_by_batch": counts_table(version_manifest["counts"]["by_batch"], "batch"),
            "manifest": dg.MetadataValue.path(str(manifest_path)),
            **{f"export_{kind}": dg.MetadataValue.path(str(path)) for kind, path in exports.items()},
        },
        sample=table.sample(n=min(len(table), 10), random_state=0) if len(table) else table,
    )
