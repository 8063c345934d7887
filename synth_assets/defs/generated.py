"""Stage 2: every generation attempt for the batch, with provenance and cost."""

import dagster as dg

from synth_assets.core import template_generator
from synth_assets.core.generation import generate_batch, generator_version
from synth_assets.core.schemas import generated_schema
from synth_assets.defs.partitions import batches
from synth_assets.defs.publishing import counts_table, publish, stage_code_version
from synth_assets.defs.resources import FactoryResource
from synth_assets.defs.seeds import seeds


@dg.asset(
    partitions_def=batches,
    deps=[seeds],
    group_name="factory",
    kinds={"parquet"},
    code_version=stage_code_version(template_generator.TEMPLATE_VERSION, "generation"),
    description=(
        "Every generation attempt: text, label, generator, template id and version, seed ids, request key, tokens, cost, status."
    ),
)
def generated(context: dg.AssetExecutionContext, factory: FactoryResource) -> dg.MaterializeResult:
    batch = context.partition_key
    task = factory.task_for_batch(batch)
    lake = factory.lake()
    seed_rows = lake.read_table("seeds", batch)
    table = generate_batch(task, batch, seed_rows)
    failed = int((table["status"] != "ok").sum())
    context.log.info(f"{batch}: {len(table)} attempts ({failed} failed) for {table['label'].nunique()} labels")
    return publish(
        lake,
        "generated",
        batch,
        table,
        generated_schema(task.labels),
        {
            "attempts": len(table),
            "failed_attempts": failed,
            "generator": task.generation.backend,
            "generator_version": generator_version(task),
            "template_version": template_generator.TEMPLATE_VERSION,
            "per_label": task.generation.per_label,
            "cost_usd": float(table["cost_usd"].sum()),
            "attempts_by_template": counts_table(table["template_id"].value_counts().to_dict(), "template_id"),
        },
        sample=table[["text", "label", "template_id", "seed_ids", "request_key"]],
    )
