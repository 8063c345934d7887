"""Stage 1: the real examples of a batch, validated, with their file and line."""

import dagster as dg

from synth_assets.core.batches import load_batch, seed_table, synthetic_registry
from synth_assets.core.report import markdown_table
from synth_assets.core.schemas import seeds_schema
from synth_assets.defs.partitions import batches, batches_up_to
from synth_assets.defs.publishing import counts_table, publish, stage_code_version
from synth_assets.defs.resources import FactoryResource

SEEDS_VERSION = "2026.11.1"


@dg.asset(
    partitions_def=batches,
    group_name="factory",
    kinds={"parquet"},
    code_version=stage_code_version(SEEDS_VERSION),
    description="Validated real examples of the batch (text, label, source file, line).",
)
def seeds(context: dg.AssetExecutionContext, factory: FactoryResource) -> dg.MaterializeResult:
    batch = context.partition_key
    task = factory.task_for_batch(batch)
    lake = factory.lake()
    record = load_batch(lake, batch)
    table = seed_table(task, record, synthetic_registry(lake, batches_up_to(context.instance, batch, inclusive=False)))
    copies = table[table["synthetic_match"] != ""]
    context.log.info(f"{batch}: {len(table)} real seed rows over {table['label'].nunique()} labels from {record.source}")
    if len(copies):
        context.log.warning(f"{batch}: {len(copies)} seed row(s) copy text the factory generated earlier (a collapse loop?)")
    return publish(
        factory.lake(),
        "seeds",
        batch,
        table,
        seeds_schema(task.labels),
        {
            "task": task.name,
            "batch_kind": record.kind,
            "source_file": record.source,
            "source_sha256": record.sha256,
            "labels": table["label"].nunique(),
            "rows_by_label": counts_table(table["label"].value_counts().to_dict(), "label"),
            "rows_copying_synthetic": len(copies),
            "rows_copying_synthetic_sample": dg.MetadataValue.md(
                markdown_table(copies[["line", "text", "synthetic_match", "synthetic_similarity"]])
            ),
        },
    )
