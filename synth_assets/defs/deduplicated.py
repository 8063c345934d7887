"""Stage 3: exact and near-duplicate verdicts against this batch, earlier batches, seeds and held-out."""

import dagster as dg
import pandas as pd

from synth_assets.core.attempts import query_attempts
from synth_assets.core.dedup import (
    Reference,
    collapse_signal,
    dedup_batch,
    duplicate_pairs,
    references_for_batch,
    semantic_duplicates,
    signature_settings,
    stored_signatures,
)
from synth_assets.core.embeddings import load_static_model
from synth_assets.core.labelled_data import read_labelled_file
from synth_assets.core.schemas import dedup_signatures_schema, deduplicated_schema, validate
from synth_assets.defs.automation import CROSS_BATCH_POOL, FACTORY_CONDITION
from synth_assets.defs.generated import generated
from synth_assets.defs.partitions import batches, batches_up_to
from synth_assets.defs.publishing import counts_table, publish, stage_code_version
from synth_assets.defs.resources import FactoryResource

DEDUP_VERSION = "2026.12.1"
COLLAPSE_CHECK = "duplicate_rate_within_history"
SIGNATURES = "dedup_signatures"  # lake folder of the MinHash signatures of each batch's unique rows
DUPLICATE_STATUSES = ("exact_dup", "near_dup", "semantic_dup")
HISTORY_SQL = (
    "SELECT batch, avg(CASE WHEN dup_status IN ('exact_dup', 'near_dup', 'semantic_dup') THEN 1.0 ELSE 0.0 END) AS rate "
    "FROM rows GROUP BY batch, batch_order ORDER BY batch_order"
)
PAIRS_SHOWN = 20


def references_so_far(instance: dg.DagsterInstance, factory: FactoryResource, batch: str) -> tuple[list[Reference], pd.DataFrame]:
    """What ``batch``'s attempts are compared with, and the stored signatures of earlier batches that were loaded for it.

    The held-out split, the seeds of batches <= ``batch`` and the unique rows of earlier batches
    (their first pass and top-up rounds, core/attempts.py). ``gated`` compares its top-up rounds with the same.
    """
    task = factory.task_for_batch(batch)
    lake = factory.lake()
    so_far = batches_up_to(instance, batch)
    settings = task.dedup
    earlier = query_attempts(lake, so_far[:-1], ["row_id", "text", "label"], "dup_status = 'unique'")
    stored = lake.query(
        SIGNATURES,
        [key for key in so_far[:-1] if lake.has_table(SIGNATURES, key)],
        "SELECT row_id, signature, settings FROM rows",
        empty_columns=["row_id", "signature", "settings"],
    )
    references = references_for_batch(
        heldout=read_labelled_file(task.heldout_path, task.labels, reject_duplicates=False),
        seeds=lake.query("seeds", so_far, "SELECT seed_id, text, label FROM rows ORDER BY batch_order, file_row_number"),
        earlier_unique=earlier,
        earlier_signatures=stored_signatures(
            list(earlier["row_id"]), list(earlier["text"]), stored, settings.num_perm, settings.shingle_chars
        ),
    )
    return references, stored


@dg.asset(
    partitions_def=batches,
    automation_condition=FACTORY_CONDITION,
    pool=CROSS_BATCH_POOL,
    deps=[generated],
    group_name="factory",
    kinds={"parquet", "duckdb"},
    code_version=stage_code_version(DEDUP_VERSION, "dedup"),
    check_specs=[
        dg.AssetCheckSpec(
            COLLAPSE_CHECK,
            asset="deduplicated",
            description="Warns when a batch's duplicate rate rises well above the task's earlier batches (collapse).",
        )
    ],
    description="Generated rows with exact/near-duplicate verdicts (dup_status, dup_of, dup_similarity).",
)
def deduplicated(context: dg.AssetExecutionContext, factory: FactoryResource) -> dg.MaterializeResult:
    batch = context.partition_key
    task = factory.task_for_batch(batch)
    lake = factory.lake()
    so_far = batches_up_to(context.instance, batch)
    settings = task.dedup
    references, stored = references_so_far(context.instance, factory, batch)
    candidates = lake.read_table("generated", batch)
    table, signatures = dedup_batch(
        candidates,
        references,
        **settings.minhash_settings(),
    )
    lake.write_table(SIGNATURES, batch, validate(signatures, dedup_signatures_schema()))
    if settings.semantic_threshold is not None:
        model = load_static_model(str(factory.semantic_model_dir))
        table = semantic_duplicates(table, references, model.encode, settings.semantic_threshold)
    statuses = table["dup_status"].value_counts().to_dict()
    attempted = max(len(table), 1)
    context.log.info(f"{batch}: {statuses} against {sum(len(r.ids) for r in references)} earlier texts")
    duplicate_rate = sum(statuses.get(status, 0) for status in DUPLICATE_STATUSES) / attempted
    history = lake.query("deduplicated", so_far[:-1], HISTORY_SQL, empty_columns=["batch", "rate"])
    in_line, why = collapse_signal(duplicate_rate, [float(rate) for rate in history["rate"]])
    collapse_check = dg.AssetCheckResult(
        check_name=COLLAPSE_CHECK,
        passed=in_line,
        severity=dg.AssetCheckSeverity.WARN,
        description=why,
        metadata={"duplicate_rate": round(duplicate_rate, 4), "history_batches": len(history)},
    )
    return publish(
        lake,
        "deduplicated",
        batch,
        table,
        deduplicated_schema(task.labels),
        {
            "exact_dup_rate": round(statuses.get("exact_dup", 0) / attempted, 4),
            "near_dup_rate": round(statuses.get("near_dup", 0) / attempted, 4),
            "semantic_dup_rate": round(statuses.get("semantic_dup", 0) / attempted, 4),
            "copies_seed": statuses.get("copies_seed", 0),
            "contaminates_heldout": statuses.get("contaminates_heldout", 0),
            "unique": statuses.get("unique", 0),
            "index_size": sum(len(r.ids) for r in references) + statuses.get("unique", 0),
            "signatures_loaded": int(stored["settings"].eq(signature_settings(settings.num_perm, settings.shingle_chars)).sum()),
            "signatures": dg.MetadataValue.path(str(lake.table_path(SIGNATURES, batch))),
            "earlier_batches": len(so_far) - 1,
            "near_dup_threshold": settings.near_dup_threshold,
            "verdicts": counts_table(statuses, "dup_status"),
        },
        sample=duplicate_pairs(table, references, PAIRS_SHOWN),
        check_results=[collapse_check],
    )
