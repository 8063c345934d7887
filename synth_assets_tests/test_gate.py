"""Every row gets a verdict with a reason; the batch verdict names what failed."""

import pandas as pd
import pytest

from synth_assets.core.gate import apply_filters, batch_verdict, gate_rows
from synth_assets.core.task_config import GateConfig
from synth_assets_tests.conftest import SEEDS

CONFIG = GateConfig(min_chars=5, max_chars=40, yield_floor=0.5, min_label_coverage=1.0, max_near_dup_rate=0.3)


def _rows(*specs):
    """specs: (text, label, status, dup_status)."""
    return pd.DataFrame(
        {
            "text": [s[0] for s in specs],
            "label": [s[1] for s in specs],
            "status": [s[2] for s in specs],
            "error": ["timeout" if s[2] != "ok" else "" for s in specs],
            "norm_key": [s[0].lower().strip("!") for s in specs],
            "dup_status": [s[3] for s in specs],
            "dup_of": ["x1" if s[3] not in ("unique", "not_checked") else "" for s in specs],
            "dup_similarity": [0.9 if s[3] not in ("unique", "not_checked") else 0.0 for s in specs],
        }
    )


@pytest.mark.parametrize(
    ("text", "status", "dup_status", "reason"),
    [
        ("set an alarm for nine", "request_failed", "not_checked", "request_failed"),
        ("set an alarm for nine", "off_label", "not_checked", "off_label"),
        ("!", "ok", "unique", "empty_text"),
        ("hey", "ok", "unique", "too_short"),
        ("set an alarm " * 10, "ok", "unique", "too_long"),
        ("set an alarm for {time}", "ok", "unique", "template_marker"),
        ("set an alarm for nine", "ok", "contaminates_heldout", "contaminates_heldout"),
        ("set an alarm for nine", "ok", "copies_seed", "copies_seed"),
        ("set an alarm for nine", "ok", "exact_dup", "exact_dup"),
        ("set an alarm for nine", "ok", "near_dup", "near_dup"),
        ("set an alarm for nine", "ok", "unique", ""),
    ],
)
def test_each_filter_names_its_reason(text, status, dup_status, reason):
    rows = _rows((text, "alarm_set", status, dup_status))
    if reason == "empty_text":
        rows["norm_key"] = ""
    gated = apply_filters(rows, CONFIG)
    assert gated["reject_reason"].tolist() == [reason]
    assert gated["accepted"].tolist() == [reason == ""]
    assert (gated["reject_detail"].str.len() > 0).tolist() == [reason != ""]


def test_details_say_what_was_wrong():
    gated = apply_filters(_rows(("hey", "a", "ok", "unique"), ("set an alarm for nine", "a", "ok", "near_dup")), CONFIG)
    assert gated["reject_detail"].tolist() == ["3 characters, below gate.min_chars=5", "near duplicate of x1 (Jaccard 0.90)"]


def test_counts_reconcile():
    rows = _rows(
        *[("set an alarm for nine", "a", "ok", "unique")] * 3,
        ("hey", "a", "ok", "unique"),
        ("x y z w v", "a", "truncated", "not_checked"),
    )
    verdict = batch_verdict(apply_filters(rows, CONFIG), CONFIG)
    assert verdict["attempted"] == verdict["accepted"] + verdict["rejected"] == 5
    assert sum(verdict["rejects_by_reason"].values()) == verdict["rejected"] == 2


def test_batch_fails_below_the_yield_floor_and_says_why():
    rows = _rows(("set an alarm for nine", "a", "ok", "unique"), ("hey", "a", "ok", "unique"), ("yo", "a", "ok", "unique"))
    verdict = batch_verdict(apply_filters(rows, CONFIG), CONFIG)
    assert not verdict["passed"]
    assert verdict["failures"] == ["yield 0.333 is below gate.yield_floor=0.5"]


def test_batch_fails_when_a_label_has_no_accepted_row():
    rows = _rows(
        ("set an alarm for nine", "a", "ok", "unique"),
        ("set an alarm for ten", "a", "ok", "unique"),
        ("hey", "b", "ok", "unique"),
    )
    verdict = batch_verdict(apply_filters(rows, CONFIG), CONFIG)
    assert verdict["failures"] == ["label coverage 0.500 is below gate.min_label_coverage=1.0 (no accepted row for: b)"]


def test_batch_fails_above_the_duplicate_ceiling():
    rows = _rows(("set an alarm for nine", "a", "ok", "unique"), *[("set an alarm for nine", "a", "ok", "exact_dup")] * 1)
    config = GateConfig(min_chars=5, max_chars=40, yield_floor=0.0, max_near_dup_rate=0.3)
    verdict = batch_verdict(apply_filters(rows, config), config)
    assert verdict["failures"] == ["duplicate rate 0.500 is above gate.max_near_dup_rate=0.3"]


def test_empty_batch_fails():
    verdict = batch_verdict(apply_filters(_rows(), CONFIG), CONFIG)
    assert not verdict["passed"] and "no generation attempts" in verdict["failures"][0]


def test_an_artefact_filter_the_real_seeds_trip_is_left_out_and_named(seed_rows):
    # A task whose real texts carry code: braces are its language, not a leftover template slot.
    code = pd.DataFrame(
        {
            "seed_id": ["c1", "c2", "c3"],
            "text": ["def f(x): return {x: 1}", "use {name} in an f-string", "the dict {a: 1} is empty"],
            "label": ["lights_off", "lights_off", "play_music"],
        }
    )
    seeds = pd.concat([seed_rows, code], ignore_index=True)
    rows = _rows(
        ("print the dict {b: 2} please", "lights_off", "ok", "unique"),
        ("turn the lights off in the hall", "lights_off", "ok", "unique"),
    )
    config = GateConfig(label_check=False, too_easy=False)
    gated = gate_rows(rows, config, list(SEEDS), seeds)
    assert gated["accepted"].all(), gated["reject_detail"].tolist()
    assert gated.attrs["off_by_seeds"] == {"template_marker": round(3 / len(seeds), 4)}

    strict = GateConfig(label_check=False, too_easy=False, max_seed_hit_share=0.2)
    gated = gate_rows(rows, strict, list(SEEDS), seeds)
    assert gated["reject_reason"].tolist() == ["template_marker", ""] and gated.attrs["off_by_seeds"] == {}
