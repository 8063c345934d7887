"""How every stage writes its partition and describes it: one writer, one metadata shape."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from synth_assets.core.audit import AuditHead, append, append_many, trail_path
from synth_assets.core.batches import task_of
from synth_assets.core.hashing import file_sha256, stable_hash
from synth_assets.core.lake import Lake
from synth_assets.core.report import markdown_table
from synth_assets.core.schemas import validate
from synth_assets.core.task_config import loadable_tasks
from synth_assets.defs.partitions import task_batches
from synth_assets.defs.resources import default_data_dir

SAMPLE_ROWS = 10
AUDIT_HEAD = "audit_chain_head"  # metadata key: the audit trail's head after this materialization's entry
AUDITED_ASSETS = ("generated", "gated", "training_set")  # the materializations that record AUDIT_HEAD


def stage_code_version(stage_version: str, *task_sections: str) -> str:
    """Code version of a stage: its core module version plus the task settings it reads.

    Editing a prompt template, generator setting, gate threshold or mixing ratio in any
    ``task.yaml`` therefore marks the stage stale in the UI. A task that fails to load is left
    out here; its error surfaces, with the key named, when the stage runs.
    """
    settings = {}
    if task_sections:
        tasks = loadable_tasks(Path(default_data_dir(), "tasks"))
        settings = {name: [task.settings_fingerprint()[section] for section in task_sections] for name, task in tasks.items()}
    return stable_hash(stage_version, settings, length=12)


def publish(
    lake: Lake,
    asset: str,
    batch: str,
    table: pd.DataFrame,
    schema: pa.DataFrameSchema,
    metadata: dict,
    sample: pd.DataFrame | None = None,
    check_results: list[dg.AssetCheckResult] | None = None,
    audit: tuple[str, dict] | None = None,
    rows_are_records: bool = True,
) -> dg.MaterializeResult:
    """Validate ``table`` against its schema, write it atomically, and describe it for the UI.

    With ``audit=(kind, payload)`` an entry is appended to the task's audit trail once the file is
    written (the payload plus the file's sha256 and row count), and the trail's new head is the
    metadata ``audit_chain_head``. ``rows_are_records=False`` leaves out ``dagster/row_count`` for a
    table of metrics, whose row count the UI would show as if it were a data size.
    """
    path = lake.write_table(asset, batch, validate(table, schema))
    shown = table if sample is None else sample
    digest = file_sha256(path)
    if audit is not None:
        kind, payload = audit
        head = record_audit(lake, batch, kind, payload | {"table_rows": len(table), "table_sha256": digest})
        metadata = metadata | {AUDIT_HEAD: str(head)}
    return dg.MaterializeResult(
        metadata={
            **({"dagster/row_count": len(table)} if rows_are_records else {}),
            "path": dg.MetadataValue.path(str(path)),
            "sample": dg.MetadataValue.md(markdown_table(shown, SAMPLE_ROWS)),
            **metadata,
        },
        data_version=dg.DataVersion(digest[:16]),
        check_results=check_results or [],
    )


def record_audit(lake: Lake, batch: str, kind: str, payload: dict) -> AuditHead:
    """Append one entry about ``batch`` to its task's audit trail (core/audit.py); returns the new head."""
    return append(trail_path(lake.local_root, task_of(batch)), kind, batch, payload)


def record_llm_requests(lake: Lake, batch: str, requests: list[dict]) -> AuditHead | None:
    """One ``llm_request`` entry per request record of a batch, appended in one locked write."""
    return append_many(trail_path(lake.local_root, task_of(batch)), [("llm_request", batch, record) for record in requests])


def recorded_audit_head(instance: dg.DagsterInstance, lake: Lake, task: str) -> AuditHead | None:
    """The furthest head of ``task``'s trail recorded outside it: materialization metadata and ingested reviews.

    One query per audited asset (its latest materialization over the task's partitions) plus the
    review records in the lake, so it stays cheap however long the trail is.
    """
    from synth_assets.defs.review import REVIEWS  # review.py builds on gated.py, which publishes through here

    keys = task_batches(instance, task)
    heads = []
    for asset in AUDITED_ASSETS if keys else ():
        records = instance.fetch_materializations(dg.AssetRecordsFilter(dg.AssetKey(asset), asset_partitions=keys), limit=1)
        for record in records.records:
            value = record.asset_materialization.metadata.get(AUDIT_HEAD)
            if value is not None:
                heads.append(AuditHead.parse(value.value))
    for batch in keys:
        if lake.sidecar_path(REVIEWS, batch).is_file() and AUDIT_HEAD in (review := lake.read_json(REVIEWS, batch)):
            heads.append(AuditHead.parse(review[AUDIT_HEAD]))
    return max(heads, key=lambda head: head.seq, default=None)


def counts_table(counts: dict, key_name: str, value_name: str = "rows") -> dg.MetadataValue:
    frame = pd.DataFrame(sorted(counts.items()), columns=[key_name, value_name])
    return dg.MetadataValue.md(markdown_table(frame, max_rows=100))
