"""Human review of a batch: ingesting the filled sheet and the check that gates on it.

``gated`` exports each batch's review sheet (lake ``review_requests/<batch>.csv``). A person fills
it in; ``python -m synth_assets ingest-review --batch <key> --file <sheet>`` records the verdicts
(lake ``review/<batch>.parquet`` + ``.json``) and runs the check ``reviewed_acceptance``. Dataset
versions added after the ingestion leave out a batch that failed review, drop the rows a reviewer
rejected and take the labels they corrected; versions made before stay as they were.
"""

from pathlib import Path

import dagster as dg

from synth_assets.core.batches import task_of
from synth_assets.core.hashing import file_sha256
from synth_assets.core.lake import Lake
from synth_assets.core.review import read_review, review_verdict
from synth_assets.core.task_config import TaskConfig
from synth_assets.defs.gated import REVIEW_REQUESTS, gated
from synth_assets.defs.partitions import batches, task_batches
from synth_assets.defs.publishing import AUDIT_HEAD, record_audit
from synth_assets.defs.resources import FactoryResource

REVIEWS = "review"
REVIEW_CHECK = "reviewed_acceptance"
REVIEW_NUMBERS = ("judged", "accepted", "rejected", "relabelled", "acceptance")  # shown on the check


def ingest_review(instance: dg.DagsterInstance, lake: Lake, task: TaskConfig, batch: str, sheet: Path) -> dict:
    """Validate a filled review sheet and record its verdicts for ``batch``; returns the review verdict."""
    sample = lake.read_csv(REVIEW_REQUESTS, batch, dtype=str, keep_default_na=False)
    reviewed = read_review(sheet, sample, task.labels)
    verdict = review_verdict(reviewed, len(sample), task.gate.review_min_acceptance)
    reviewed_path = lake.write_table(REVIEWS, batch, reviewed)
    # Versions added from now on apply the review; rebuilding an older one gives the same bytes.
    record = verdict | {"ingested_after": task_batches(instance, task.name)[-1], "sheet": str(sheet)}
    evidence = {"sheet_sha256": file_sha256(sheet), "reviewed_sha256": file_sha256(reviewed_path)}
    head = record_audit(lake, batch, "review_verdict", verdict | {"ingested_after": record["ingested_after"]} | evidence)
    record[AUDIT_HEAD] = str(head)
    lake.write_json(REVIEWS, batch, record)
    return record


def reviews_for_version(instance: dg.DagsterInstance, lake: Lake, version: str, batches_so_far: list[str]) -> dict[str, dict]:
    """The review verdicts (with their rows) that dataset version ``version`` applies."""
    order = {key: position for position, key in enumerate(task_batches(instance, task_of(version)))}
    applied = {}
    for batch in batches_so_far:
        if lake.sidecar_path(REVIEWS, batch).is_file():
            record = lake.read_json(REVIEWS, batch)
            if order.get(record["ingested_after"], len(order)) < order[version]:
                applied[batch] = record | {"rows": lake.read_table(REVIEWS, batch)}
    return applied


def review_outcome(lake: Lake, batch: str) -> tuple[bool, str, dict]:
    """(passed, description, metadata) of ``batch``'s review: passed while it awaits review."""
    sheet = lake.csv_path(REVIEW_REQUESTS, batch)
    if not lake.sidecar_path(REVIEWS, batch).is_file():
        return True, f"awaiting review of {sheet}", {"review_sheet": dg.MetadataValue.path(str(sheet))}
    record = lake.read_json(REVIEWS, batch)
    description = "; ".join(record["failures"]) or f"reviewed acceptance {record['acceptance']:.3f}"
    return (
        record["passed"],
        description,
        {name: record[name] for name in (*REVIEW_NUMBERS, AUDIT_HEAD) if name in record},
    )


@dg.asset_check(
    asset=gated,
    partitions_def=batches,
    blocking=True,
    description="Gates the batch on the human review of its sample: passes while awaiting review.",
)
def reviewed_acceptance(context: dg.AssetCheckExecutionContext, factory: FactoryResource) -> dg.AssetCheckResult:
    passed, description, metadata = review_outcome(factory.lake(), context.partition_key)
    return dg.AssetCheckResult(passed=passed, description=description, metadata=metadata)


def report_review(instance: dg.DagsterInstance, lake: Lake, batch: str) -> None:
    """Record the check's new outcome for ``batch`` in the instance, without a run (the UI shows it)."""
    passed, description, metadata = review_outcome(lake, batch)
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=gated.key,
            check_name=REVIEW_CHECK,
            passed=passed,
            metadata=metadata,
            description=description,
            partition=batch,
        )
    )
