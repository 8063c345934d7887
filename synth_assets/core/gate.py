"""The quality gate: row verdicts from small filters, and a batch verdict from the rows.

Each filter answers one question about every row and names its reason; :func:`apply_filters`
is the one place that records verdicts, so nothing is dropped unseen and the first failing
filter (in the order below: cheapest and most certain first) is the reason a row carries.
A row is kept when ``accepted`` is True; otherwise ``reject_reason`` is a machine-readable
code and ``reject_detail`` says, for a person, what was wrong.

The batch verdict is the write-audit-publish decision: it is stored with the partition and
``training_set`` includes only batches whose verdict passed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

from synth_assets.core.hashing import derive_seed
from synth_assets.core.label_check import LabelChecker
from synth_assets.core.probes import PROBES, SeedProfile, probe
from synth_assets.core.schemas import GENERATION_FAILURES
from synth_assets.core.task_config import GateConfig
from synth_assets.core.too_easy import decide

GATE_VERSION = "2026.12.1"
# Leftovers of a template or prompt: {slot}, [[slot]], <SLOT>, ${var}.
_TEMPLATE_MARKER = re.compile(r"\{[^{}]{0,40}\}|\[\[|\]\]|<[A-Z_]{2,}>|\$\{")


@dataclass(frozen=True)
class RowFilter:
    """One question about every row: ``rejects(rows)`` is True where the row must go."""

    reason: str
    rejects: Callable[[pd.DataFrame], pd.Series]
    detail: Callable[[pd.Series], str]


def _status_filter(status: str) -> RowFilter:
    return RowFilter(reason=status, rejects=lambda rows: rows["status"] == status, detail=lambda row: row["error"] or status)


def _dup_filter(status: str, what: str, measure: str = "Jaccard") -> RowFilter:
    return RowFilter(
        reason=status,
        rejects=lambda rows: rows["dup_status"] == status,
        detail=lambda row: f"{what} {row['dup_of']} ({measure} {row['dup_similarity']:.2f})",
    )


def _probe_filter(name: str, profile: SeedProfile) -> RowFilter:
    found: dict[int, str] = {}

    def rejects(rows: pd.DataFrame) -> pd.Series:
        evidence = probe(name, rows["text"], profile)
        found.update(evidence[evidence != ""].to_dict())
        return evidence != ""

    return RowFilter(reason=name, rejects=rejects, detail=lambda row: found.get(row.name, name))


# Filters for artefacts of generation. Where real seeds of the task look like that too (code with
# braces, a chatbot's "I'm sorry, but"), the pattern is part of the task and the filter stays off.
# PII is not among them: a task whose texts carry e-mails opts out of it by name (gate.skip_probes).
ARTEFACT_FILTERS = ("template_marker", *(name for name in PROBES if name != "pii"))


def row_filters(config: GateConfig, profile: SeedProfile | None = None, off: Iterable[str] = ()) -> list[RowFilter]:
    """The gate's filters for a task, in the order their reasons take precedence; the ones named in ``off`` left out."""
    off = set(off)
    length = lambda rows: rows["text"].str.len()  # noqa: E731 - shared by the two length filters
    filters = [
        *(_status_filter(status) for status in GENERATION_FAILURES),
        RowFilter("empty_text", lambda rows: rows["norm_key"].str.len() == 0, lambda row: "no letters or digits in the text"),
        RowFilter(
            "too_short",
            lambda rows: length(rows) < config.min_chars,
            lambda row: f"{len(row['text'])} characters, below gate.min_chars={config.min_chars}",
        ),
        RowFilter(
            "too_long",
            lambda rows: length(rows) > config.max_chars,
            lambda row: f"{len(row['text'])} characters, above gate.max_chars={config.max_chars}",
        ),
        RowFilter(
            "template_marker",
            lambda rows: rows["text"].str.contains(_TEMPLATE_MARKER),
            lambda row: f"leftover template marker {_TEMPLATE_MARKER.search(row['text']).group(0)!r}",
        ),
        *(_probe_filter(name, profile) for name in PROBES if profile is not None and name not in config.skip_probes),
        _dup_filter("contaminates_heldout", "copies the held-out row"),
        _dup_filter("copies_seed", "copies the seed"),
        _dup_filter("exact_dup", "exact duplicate of"),
        _dup_filter("near_dup", "near duplicate of"),
        _dup_filter("semantic_dup", "says the same as", "cosine"),
    ]
    return [row_filter for row_filter in filters if row_filter.reason not in off]


def artefacts_in_seeds(config: GateConfig, profile: SeedProfile, seed_texts: pd.Series) -> dict[str, float]:
    """The artefact filters that reject more than ``gate.max_seed_hit_share`` of the real seeds, with that share.

    Those are left out of the batch's gate: they would reject the task's own kind of text.
    """
    seeds = pd.DataFrame({"text": seed_texts.astype(str).to_numpy()})
    shares = {}
    for row_filter in row_filters(config, profile):
        if row_filter.reason in ARTEFACT_FILTERS and len(seeds):
            share = float(row_filter.rejects(seeds).fillna(True).astype(bool).mean())
            if share > config.max_seed_hit_share:
                shares[row_filter.reason] = round(share, 4)
    return shares


def apply_filters(
    rows: pd.DataFrame,
    config: GateConfig,
    profile: SeedProfile | None = None,
    label_checker: LabelChecker | None = None,
    judge: Callable[[pd.DataFrame], dict[str, str | None]] | None = None,
    off: Iterable[str] = (),
) -> pd.DataFrame:
    """``rows`` with ``accepted, reject_reason, reject_detail``; every row gets a verdict.

    With a ``profile`` of the task's labels and seeds, the probes of :mod:`synth_assets.core.probes`
    run too (all but ``gate.skip_probes`` and the filters named in ``off``). With a ``label_checker``,
    the expensive tier runs last and only on the rows every cheap filter kept: ``label_disputed``
    rows. With a ``judge`` too
    (the LLM tier, :mod:`synth_assets.core.judge`), the rows the classifier kept but was unsure
    about are judged, and those it rejects become ``judge_rejected``.
    """
    rows = rows.astype({"text": str, "norm_key": str})
    reasons = pd.Series("", index=rows.index, dtype=object)
    details = pd.Series("", index=rows.index, dtype=object)
    for row_filter in row_filters(config, profile, off):
        hit = row_filter.rejects(rows).fillna(True).astype(bool) & (reasons == "")
        if hit.any():
            reasons[hit] = row_filter.reason
            details[hit] = rows[hit].apply(row_filter.detail, axis=1)
    if label_checker is not None:
        survivors = reasons == ""
        disputes, unsure = label_checker.assess(rows.loc[survivors, "text"], rows.loc[survivors, "label"])
        hit = disputes[disputes != ""].index
        reasons[hit], details[hit] = "label_disputed", disputes[hit]
        if judge is not None and unsure.any():
            doubtful = rows.loc[unsure[unsure].index]
            verdicts = judge(doubtful[["row_id", "text", "label"]])
            rejected = [index for index, row_id in zip(doubtful.index, doubtful["row_id"]) if verdicts.get(row_id)]
            reasons[rejected] = "judge_rejected"
            details[rejected] = [verdicts[row_id] for row_id in rows.loc[rejected, "row_id"]]
    return rows.assign(accepted=(reasons == "").to_numpy(), reject_reason=reasons.astype(str), reject_detail=details.astype(str))


def gate_rows(rows: pd.DataFrame, config: GateConfig, labels, seeds: pd.DataFrame, judge=None) -> pd.DataFrame:
    """Every tier of the gate for a batch whose real seeds are ``seeds`` (``seed_id, text, label``).

    The artefact filters that would reject the seeds themselves are left out, named with their share
    of the seeds in ``table.attrs["off_by_seeds"]``. The last tier is the "too easy" filter
    (:mod:`synth_assets.core.too_easy`), decided on folds of the seeds; its decision is in
    ``table.attrs["too_easy"]``.
    """
    checker = (
        LabelChecker.fit(seeds["text"], seeds["label"], config.label_dispute_rank, config.label_dispute_ratio)
        if config.label_check and seeds["label"].nunique() > 1
        else None
    )
    profile = SeedProfile.of(labels, seeds["text"])
    off = artefacts_in_seeds(config, profile, seeds["text"])
    table = apply_filters(rows, config, profile, checker, judge if config.llm_judge else None, off)
    table.attrs["off_by_seeds"] = off
    if not config.too_easy:
        return table
    accepted = table[table["accepted"]]
    decision = decide(seeds, accepted, config.too_easy_threshold, "tfidf_logreg", derive_seed(list(seeds["seed_id"]), "too_easy"))
    if decision.applied:
        dropped = decision.flagged[decision.flagged].index
        table.loc[dropped, ["accepted", "reject_reason"]] = [False, "too_easy"]
        table.loc[dropped, "reject_detail"] = (
            f"a real-vs-synthetic discriminator calls it synthetic (p >= {config.too_easy_threshold}); dropping such rows "
            f"raised validation macro-F1 {decision.validation_macro_f1_without:.3f} -> {decision.validation_macro_f1_with:.3f}"
        )
    table.attrs["too_easy"] = decision.summary()
    return table


def missing_labels(gated: pd.DataFrame) -> list[str]:
    """The attempted labels without an accepted row, sorted."""
    return sorted(set(gated["label"]) - set(gated.loc[gated["accepted"], "label"]))


def batch_verdict(gated: pd.DataFrame, config: GateConfig) -> dict:
    """The batch-level decision and the numbers behind it (stored beside the partition).

    Label coverage is measured on every attempt, top-up rounds included (core/top_up.py); the
    labels still without an accepted row are named in ``missing_labels`` whether the batch passes or not.
    """
    attempted = len(gated)
    accepted = int(gated["accepted"].sum())
    attempted_labels = sorted(gated["label"].unique())
    missing = missing_labels(gated)
    duplicates = int(gated["dup_status"].isin(["exact_dup", "near_dup", "semantic_dup"]).sum())
    yield_rate = accepted / attempted if attempted else 0.0
    coverage = (len(attempted_labels) - len(missing)) / len(attempted_labels) if attempted_labels else 0.0
    near_dup_rate = duplicates / attempted if attempted else 0.0
    failures = []
    if attempted == 0:
        failures.append("the batch has no generation attempts")
    if yield_rate < config.yield_floor:
        failures.append(f"yield {yield_rate:.3f} is below gate.yield_floor={config.yield_floor}")
    if coverage < config.min_label_coverage:
        failures.append(
            f"label coverage {coverage:.3f} is below gate.min_label_coverage={config.min_label_coverage} "
            f"(no accepted row for: {', '.join(missing)})"
        )
    if near_dup_rate > config.max_near_dup_rate:
        failures.append(f"duplicate rate {near_dup_rate:.3f} is above gate.max_near_dup_rate={config.max_near_dup_rate}")
    return {
        "passed": not failures,
        "failures": failures,
        "attempted": attempted,
        "accepted": accepted,
        "rejected": attempted - accepted,
        "yield": round(yield_rate, 4),
        "label_coverage": round(coverage, 4),
        "missing_labels": missing,
        "near_dup_rate": round(near_dup_rate, 4),
        "rejects_by_reason": {
            k: int(v) for k, v in gated.loc[~gated["accepted"], "reject_reason"].value_counts().sort_index().items()
        },
        "thresholds": config.model_dump(),
        "gate_version": GATE_VERSION,
    }
