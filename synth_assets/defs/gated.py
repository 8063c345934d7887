"""Stage 4: row verdicts with reasons, and the batch verdict that decides publication.

Write, audit, publish: the rows are written whatever the verdict (rejected rows stay
inspectable), the verdict is stored beside them, and the blocking check ``gate_passed`` stops
this run's downstream steps. ``training_set`` reads the stored verdict, so a failed batch stays
out of every later version too, not only this run.

Before the verdict, labels the gate left without an accepted row get top-up rounds inside the
batch (core/top_up.py): their attempts are rows of this partition with their ``top_up_round``,
and are also written to ``top_up/<batch>.parquet`` as ``deduplicated`` would hold them, which is
where later batches' dedup, the task's spend and the synthetic-text registry find them.
"""

import functools

import dagster as dg
import pandas as pd

from synth_assets.core import prompts, template_generator
from synth_assets.core.attempts import TOP_UP_TABLE
from synth_assets.core.embeddings import load_static_model
from synth_assets.core.gate import GATE_VERSION, batch_verdict, gate_rows
from synth_assets.core.generation import generate_batch
from synth_assets.core.hashing import stable_hash
from synth_assets.core.judge import judge_requests, judgements
from synth_assets.core.llm_client import run_requests
from synth_assets.core.pricing import price_for
from synth_assets.core.probes import PROBES, opening_phrases
from synth_assets.core.report import markdown_table
from synth_assets.core.review import review_sample
from synth_assets.core.schemas import gated_schema, top_up_schema, validate
from synth_assets.core.task_config import GateConfig
from synth_assets.core.top_up import TopUpOutcome, dedup_top_up, gate_with_top_up, texts_to_avoid
from synth_assets.defs.automation import FACTORY_CONDITION, LLM_POOL
from synth_assets.defs.deduplicated import deduplicated, references_so_far
from synth_assets.defs.generated import llm_session
from synth_assets.defs.partitions import batches
from synth_assets.defs.publishing import counts_table, publish, record_llm_requests, stage_code_version
from synth_assets.defs.resources import FactoryResource

GATE_CHECK = "gate_passed"
REVIEW_REQUESTS = "review_requests"  # lake folder of the review sheets, one CSV per batch


def _judge(context, factory: FactoryResource, batch: str, task, spent_usd: float, numbers: dict):
    """The gate's LLM tier for ``batch``: judges rows through the task's model, within what the batch budget has left.

    ``spent_usd`` is what the batch already cost (its generation attempts, earlier judging); what
    this judge sees, leaves unjudged and spends is added to ``numbers``.
    """
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
                budget_usd=max(llm.budget_usd_per_batch - spent_usd, 0.0),
                replay=session.replay,
                progress=session.progress,
            )
        finally:
            session.cache.close()
        verdicts = judgements(requests, results)
        seen = {"rows": len(rows), "unjudged": sum(v is None for v in verdicts.values()), "spent_usd": summary["spent_usd"]}
        numbers.update({name: numbers.get(name, 0) + value for name, value in seen.items()})
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
    # The top-up rounds generate and deduplicate too: the generation and dedup settings change what gated writes.
    code_version=stage_code_version(
        f"{GATE_VERSION}/{template_generator.TEMPLATE_VERSION}/{prompts.PROMPT_VERSION}", "gate", "generation", "dedup"
    ),
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
    description=(
        "Deduplicated rows, plus top-up rounds for labels left without an accepted row, with accepted / reject_reason / "
        "reject_detail; the batch verdict is stored beside them."
    ),
)
def gated(context: dg.AssetExecutionContext, factory: FactoryResource) -> dg.MaterializeResult:
    batch = context.partition_key
    task = factory.task_for_batch(batch)
    lake = factory.lake()
    seeds = lake.read_table("seeds", batch)
    judged: dict = {}
    generation_cost = 0.0  # of the rows gated so far: the LLM judge may spend what the batch budget has left

    def gate(rows: pd.DataFrame, config: GateConfig) -> pd.DataFrame:
        nonlocal generation_cost
        generation_cost += float(rows["cost_usd"].sum())
        spent = generation_cost + judged.get("spent_usd", 0.0)
        judge = _judge(context, factory, batch, task, spent, judged) if config.llm_judge else None
        return gate_rows(rows, config, task.labels, seeds, judge)

    top_up_requests: list[dict] = []
    generate, dedup = _top_up_steps(context, factory, batch, seeds, top_up_requests)
    outcome = gate_with_top_up(lake.read_table("deduplicated", batch), task.gate, gate, generate, dedup)
    table = outcome.table
    top_up = outcome.summary()
    for done in outcome.rounds:
        context.log.info(
            f"{batch}: top-up round {done.number}: {done.attempts} attempts for {', '.join(done.labels)}; "
            f"{done.new_texts} new texts, {done.accepted} accepted; filled: {', '.join(done.filled) or 'none'}"
        )
    if outcome.missing_before:
        context.log.info(f"{batch}: top-up stopped: {outcome.stopped}")
    lake.write_table(TOP_UP_TABLE, batch, validate(outcome.top_up_attempts(), top_up_schema(task.labels)))
    record_llm_requests(lake, batch, top_up_requests)
    disputed = int((table["reject_reason"] == "label_disputed").sum())
    # Rows the later tiers (classifier, judge, too-easy filter) rejected got past the cheap filters too.
    cheap_survivors = int(table["reject_reason"].isin(["", "label_disputed", "judge_rejected", "too_easy"]).sum())
    verdict = batch_verdict(table, task.gate) | {"top_up": top_up}
    for name, share in table.attrs["off_by_seeds"].items():
        context.log.info(f"{batch}: filter {name} is off: it rejects {share:.1%} of the real seeds (gate.max_seed_hit_share)")
    verdict_path = lake.write_json("gated", batch, verdict)
    context.log.info(
        f"{batch}: {verdict['accepted']}/{verdict['attempted']} accepted (yield {verdict['yield']:.2%}); "
        f"gate {'passed' if verdict['passed'] else 'FAILED: ' + '; '.join(verdict['failures'])}"
    )
    if verdict["missing_labels"]:
        context.log.warning(
            f"{batch}: no accepted row for {', '.join(verdict['missing_labels'])} after {len(outcome.rounds)} top-up round(s) "
            f"(label coverage {verdict['label_coverage']:.3f}, gate.min_label_coverage={task.gate.min_label_coverage})"
        )
    summary = {
        "attempted": verdict["attempted"],
        "accepted": verdict["accepted"],
        "rejected": verdict["rejected"],
        "yield": verdict["yield"],
        "label_coverage": verdict["label_coverage"],
        "labels_still_missing": ", ".join(verdict["missing_labels"]) or "none",
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
            "top_up_rounds_run": top_up["rounds_run"],
            "top_up_attempts_by_round": dg.MetadataValue.md(markdown_table(_rounds_table(outcome))),
            "labels_topped_up": ", ".join(top_up["labels_topped_up"]) or "none",
            "top_up_stopped": outcome.stopped,
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
        audit=(
            "gate_decision",
            verdict
            | {
                "llm_judge": judged,
                "decisions_sha256": _decisions_sha256(table),
                "top_up_llm_requests": len(top_up_requests),
            },
        ),
    )


def _top_up_steps(context: dg.AssetExecutionContext, factory: FactoryResource, batch: str, seeds: pd.DataFrame, requests: list):
    """(generate, dedup) of the batch's top-up rounds (core/top_up.py); each LLM request's record goes on ``requests``.

    A round generates with the batch's own backend (``openai-batch`` through the live endpoint: a
    round is a few requests, not worth a Batch API day) and is compared with the references the
    batch's first pass was, which are read only when a round runs.
    """
    task = factory.task_for_batch(batch)
    references = functools.cache(lambda: references_so_far(context.instance, factory, batch)[0])

    def generate(attempts: dict[str, int], number: int, rows: pd.DataFrame) -> pd.DataFrame:
        if task.generation.backend == "template":
            avoid = texts_to_avoid(attempts, references(), rows)
            return generate_batch(task, batch, seeds, attempts=attempts, top_up_round=number, avoid=avoid).table
        session = llm_session(context, factory, batch, spent_by_batch_usd=float(rows["cost_usd"].sum()))
        try:
            result = generate_batch(task, batch, seeds, session, attempts, top_up_round=number)
        finally:
            session.cache.close()
        requests.extend(result.requests)
        return result.table

    def dedup(attempts: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
        settings = task.dedup
        encode = load_static_model(str(factory.semantic_model_dir)).encode if settings.semantic_threshold is not None else None
        return dedup_top_up(attempts, references(), rows, settings, encode)

    return generate, dedup


def _rounds_table(outcome: TopUpOutcome) -> pd.DataFrame:
    """One line per top-up round: what it asked for and what it brought."""
    return pd.DataFrame(
        {
            "round": [done.number for done in outcome.rounds],
            "labels": [", ".join(done.labels) for done in outcome.rounds],
            "attempts": [done.attempts for done in outcome.rounds],
            "new_texts": [done.new_texts for done in outcome.rounds],
            "accepted": [done.accepted for done in outcome.rounds],
            "filled": [", ".join(done.filled) for done in outcome.rounds],
        }
    )


def _decisions_sha256(table: pd.DataFrame) -> str:
    """One digest of every row's verdict (row id, accepted, reject reason), for the audit trail."""
    return stable_hash(table["row_id"].tolist(), table["accepted"].tolist(), table["reject_reason"].tolist(), length=64)
