"""Checks that read a written partition back from the lake (the gate's own checks live on their assets)."""

import dagster as dg

from synth_assets.core.expectations import validate_batch
from synth_assets.core.report import markdown_table
from synth_assets.defs.gated import gated
from synth_assets.defs.partitions import batches
from synth_assets.defs.resources import FactoryResource


@dg.asset_check(
    asset=gated,
    partitions_def=batches,
    blocking=False,
    description=(
        "Great Expectations suite over the accepted rows: row count, label set, coverage and balance, nulls, "
        "length bounds, uniqueness, mean length within the seeds' range."
    ),
)
def gated_expectations(context: dg.AssetCheckExecutionContext, factory: FactoryResource) -> dg.AssetCheckResult:
    batch = context.partition_key
    task = factory.task_for_batch(batch)
    lake = factory.lake()
    success, results = validate_batch(
        lake.read_table("gated", batch), task.labels, task.gate, lake.read_table("seeds", batch)["text"]
    )
    failed = results[~results["success"]]
    return dg.AssetCheckResult(
        passed=success,
        severity=dg.AssetCheckSeverity.WARN,
        description="all expectations met"
        if success
        else f"{len(failed)} expectation(s) not met: {', '.join(failed['expectation'])}",
        metadata={
            "expectations": len(results),
            "failed": len(failed),
            "results": dg.MetadataValue.md(markdown_table(results, max_rows=20)),
        },
    )
