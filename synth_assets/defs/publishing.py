"""How every stage writes its partition and describes it: one writer, one metadata shape."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from synth_assets.core.hashing import file_sha256, stable_hash
from synth_assets.core.lake import Lake
from synth_assets.core.report import markdown_table
from synth_assets.core.schemas import validate
from synth_assets.core.task_config import load_tasks
from synth_assets.defs.resources import default_data_dir

SAMPLE_ROWS = 10


def stage_code_version(stage_version: str, task_section: str | None = None) -> str:
    """Code version of a stage: its core module version plus the task settings it reads.

    Editing a prompt template, generator setting, gate threshold or mixing ratio in any
    ``task.yaml`` therefore marks the stage stale in the UI. A task that fails to load is left
    out here; its error surfaces, with the key named, when the stage runs.
    """
    settings = {}
    if task_section:
        try:
            tasks = load_tasks(f"{default_data_dir()}/tasks")
        except ValueError:
            tasks = {}
        settings = {name: task.settings_fingerprint()[task_section] for name, task in tasks.items()}
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
) -> dg.MaterializeResult:
    """Validate ``table`` against its schema, write it atomically, and describe it for the UI."""
    path = lake.write_table(asset, batch, validate(table, schema))
    shown = table if sample is None else sample
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(table),
            "path": dg.MetadataValue.path(str(path)),
            "sample": dg.MetadataValue.md(markdown_table(shown, SAMPLE_ROWS)),
            **metadata,
        },
        data_version=dg.DataVersion(file_sha256(path)[:16]),
        check_results=check_results or [],
    )


def counts_table(counts: dict, key_name: str, value_name: str = "rows") -> dg.MetadataValue:
    frame = pd.DataFrame(sorted(counts.items()), columns=[key_name, value_name])
    return dg.MetadataValue.md(markdown_table(frame, max_rows=100))
