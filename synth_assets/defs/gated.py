"""Stage 4: row verdicts with reasons, and the batch verdict that decides publication.

Write, audit, publish: the rows are written whatever the verdict (rejected rows stay
inspectable), the verdict is stored beside them, and the blocking check ``gate_passed`` stops
this run's downstream steps. ``training_set`` reads the stored verdict, so a failed batch stays
out of every later version too, not only this run.
"""

import dagster as dg
import pandas as pd

from synth_assets.core.gate import GATE_VERSION, batch_verdict, gate_rows
from synth_assets.core.hashing import stable_hash
from synth_assets.core.judge import judge_requests, judgements
from synth_assets.core.llm_client import run_requests
from synth_assets.core.pricing import price_for
from synth_assets.core.probes import PROBES, opening_phrases
from synth_assets.core.report import markdown_table
from synth_assets.core.review import review_sample
from synth_assets.core.schemas import gated_schema
from synth_assets.defs.automation import FACTORY_CONDITION, LLM_POOL
from synth_assets.defs.deduplicated import deduplicated
from synth_assets.defs.generated import llm_session
from synth_assets.defs.partitions import batches
from synth_assets.defs.publishing import counts_table, publish, stage_code_version
from synth_assets.defs.resources import FactoryResource

GATE_CHECK = "gate_passed"
REVIEW_REQUESTS = "review_requests"  # lake folder of the review sheets, one CSV per batch


def _judge(context, factory: FactoryResource, batch: str, task, generation_cost: float, numbers: dict):
    """The gate's LLM tier for ``batch``: judges rows through the task's model, within what the batch budget has left."""
    llm = task.generation.llm
    price = price_for(llm.model, llm.price_per_million_tokens)

    def judge(rows: pd.DataFrame) -> dict:
        session = llm_session(context, factory, batch)
        requests = judge_requests(task, rows)
        try:
            results, summary = run_requests(
                requests,
                llm,
                session.cache,
                price,
                api_key=session.api_key,
                budget_usd=max(llm.budget_usd_per_batch - generation_cost, 0.0),
                replay=session.replay,
                progress=session.progress,
            )
        finally:
            session.cache.close()
        verdicts = judgements(requests, results)
        numbers.update(rows=len(rows), unjudged=sum(v is None for v in verdicts.values()), spent_usd=summary["spent_usd"])
        context.log.info(f"{batch}: LLM judge saw {len(rows)} rows the classifier was unsure about ({numbers})")
        return verdicts

    return judge


@dg.asset(
    partitions_def=batches,
    automation_condition=FACTORY_CONDITION,
    pool=LLM_POOL,
    deps=[deduplicated],
    group_name="factory",
    kinds={"parquet"},
    code_version=stage_code_version(GATE_VERSION, "gate"),
    check_specs=[
        dg.AssetCheckSpec(
            GATE_CHECK,
            asset="gated",
            blocking=True,
            description=(
                "Yield floor, label coverage and duplicate ceiling of task.yaml's gate; "
                "a failure keeps the batch out of every training set."
            ),
        )
    ],
    description="Deduplicated rows with accepted / reject_reason / reject_detail; the batch verdict is stored beside them.",
)
def gated(context: dg.AssetExecutionContext, factory: FactoryResource) -> dg.MaterializeResult:
    batch = context.partition_key
    task = factory.task_for_batch(batch)
    lake = factory.lake()
    rows = lake.read_table("deduplicated", batch)
    judged: dict = {}
    judge = _judge(context, factory, batch, task, float(rows["cost_usd"].sum()), judged) if task.gate.llm_judge else None
    table = gate_rows(rows, task.gate, task.labels, lake.read_table("seeds", batch), judge)
    disputed = int((table["reject_reason"] == "label_disputed").sum())
    # Rows the later tiers (classifier, judge, too-easy filter) rejected got past the cheap filters too.
    cheap_survivors = int(table["reject_reason"].isin(["", "label_disputed", "judge_rejected", "too_easy"]).sum())
    verdict = batch_verdict(table, task.gate)
    for name, share in table.attrs["off_by_seeds"].items():
        context.log.info(f"{batch}: filter {name} is off: it rejects {share:.1%} of the real seeds (gate.max_seed_hit_share)")
    verdict_path = lake.write_json("gated", batch, verdict)
    context.log.info(
        f"{batch}: {verdict['accepted']}/{verdict['attempted']} accepted (yield {verdict['yield']:.2%}); "
        f"gate {'passed' if verdict['passed'] else 'FAILED: ' + '; '.join(verdict['failures'])}"
    )
    summary = {
        "attempted": verdict["attempted"],
        "accepted": verdict["accepted"],
        "rejected": verdict["rejected"],
        "yield": verdict["yield"],
        "label_coverage": verdict["label_coverage"],
        "near_dup_rate": verdict["near_dup_rate"],
    }
    check = dg.AssetCheckResult(
        check_name=GATE_CHECK,
        passed=verdict["passed"],
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(verdict["failures"]) or "all gate thresholds met",
        metadata={
            **summary,
            "failures": "; ".join(verdict["failures"]) or "none",
            "thresholds": dg.MetadataValue.json(verdict["thresholds"]),
        },
    )
    review_sheet = lake.write_csv(
        REVIEW_REQUESTS,
        batch,
        review_sample(table, batch, task.gate.review_share, task.gate.review_min_rows, task.gate.review_max_rows),
    )
    rejected = table[~table["accepted"]]
    cost = float(table["cost_usd"].sum())
    return publish(
        lake,
        "gated",
        batch,
        table,
        gated_schema(task.labels, task.gate.min_chars, task.gate.max_chars),
        {
            **summary,
            "gate_passed": verdict["passed"],
            "gate_failures": "; ".join(verdict["failures"]) or "none",
            "rejects_by_reason": counts_table(verdict["rejects_by_reason"], "reject_reason"),
            "probe_hits": counts_table(
                {name: int((table["reject_reason"] == name).sum()) for name in PROBES if name not in task.gate.skip_probes},
                "probe",
            ),
            "rows_by_tier": dg.MetadataValue.md(
                markdown_table(
                    pd.DataFrame(
                        {
                            "tier": ["cheap filters (format, probes, duplicates)", "label consistency classifier", "LLM judge"],
                            "rows_in": [len(table), cheap_survivors if task.gate.label_check else 0, judged.get("rows", 0)],
                            "rejected": [
                                len(table) - cheap_survivors,
                                disputed,
                                int((table["reject_reason"] == "judge_rejected").sum()),
                            ],
                            "cost_usd": [0.0, 0.0, judged.get("spent_usd", 0.0)],
                        }
                    )
                )
            ),
            "filters_off_by_seeds": dg.MetadataValue.json(table.attrs["off_by_seeds"]),
            "too_easy_filter": dg.MetadataValue.json(table.attrs.get("too_easy", {"applied": False, "enabled": False})),
            "common_openings": dg.MetadataValue.md(markdown_table(opening_phrases(table.loc[table["status"] == "ok", "text"]))),
            "rejected_sample": dg.MetadataValue.md(markdown_table(rejected[["text", "label", "reject_reason", "reject_detail"]])),
            "thresholds": dg.MetadataValue.json(verdict["thresholds"]),
            "cost_usd": round(cost, 6),
            "cost_per_accepted_example_usd": round(cost / verdict["accepted"], 8) if verdict["accepted"] else None,
            "verdict": dg.MetadataValue.path(str(verdict_path)),
            "review_sheet": dg.MetadataValue.path(str(review_sheet)),
        },
        sample=table[table["accepted"]][["text", "label", "template_id"]],
        check_results=[check],
        audit=("gate_decision", verdict | {"llm_judge": judged, "decisions_sha256": _decisions_sha256(table)}),
    )


def _decisions_sha256(table: pd.DataFrame) -> str:
    """One digest of every row's verdict (row id, accepted, reject reason), for the audit trail."""
    return stable_hash(table["row_id"].tolist(), table["accepted"].tolist(), table["reject_reason"].tolist(), length=64)
