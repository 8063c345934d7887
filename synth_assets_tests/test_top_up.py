"""Top-up rounds (core/top_up.py): labels the gate left without an accepted row get more attempts inside the batch.

The batch here is real: template attempts of the small home task, deduplicated against real
references and gated by the real gate. Its ``lights_off`` attempts are made to repeat an earlier
batch's text, as happens when a label's seeds leave the generator little room, so that label has
no accepted row after the first pass.
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from synth_assets.core.attempts import TOP_UP_TABLE, query_attempts
from synth_assets.core.dedup import dedup_batch, references_for_batch
from synth_assets.core.gate import batch_verdict, gate_rows
from synth_assets.core.generation import BudgetError, generate_batch, spent_by_batches
from synth_assets.core.labelled_data import read_labelled_file
from synth_assets.core.lake import Lake
from synth_assets.core.prompts import TOP_UP_NOTE, build_requests
from synth_assets.core.task_config import GateConfig, load_task
from synth_assets.core.top_up import dedup_top_up, gate_with_top_up, texts_to_avoid

BATCH = "home-b2"
STARVED = "lights_off"


@pytest.fixture
def first_pass(task, seed_rows):
    """The batch's first pass, deduplicated: every ``lights_off`` attempt repeats a unique row of an earlier batch."""
    generated = generate_batch(task, BATCH, seed_rows).table
    earlier = generated.loc[generated["label"] == STARVED, ["row_id", "text", "label"]]
    earlier = earlier.assign(row_id="home-b1:" + earlier["row_id"])
    heldout = read_labelled_file(task.heldout_path, task.labels, reject_duplicates=False)
    references = references_for_batch(heldout, seed_rows, earlier)
    rows, _signatures = dedup_batch(generated, references, **task.dedup.minhash_settings())
    return rows, references


def _steps(task, seed_rows, references):
    """The real gate, template generator and dedup of the batch, as ``gated`` wires them."""

    def gate(rows, config):
        return gate_rows(rows, config, task.labels, seed_rows)

    def generate(attempts, number, rows):
        avoid = texts_to_avoid(attempts, references, rows)
        return generate_batch(task, BATCH, seed_rows, attempts=attempts, top_up_round=number, avoid=avoid).table

    def dedup(attempts, rows):
        return dedup_top_up(attempts, references, rows, task.dedup)

    return gate, generate, dedup


def test_a_label_without_an_accepted_row_is_topped_up_inside_the_batch(task, seed_rows, first_pass):
    rows, references = first_pass
    outcome = gate_with_top_up(rows, task.gate, *_steps(task, seed_rows, references))
    assert outcome.missing_before == [STARVED] and outcome.missing_after == []
    [round_one] = outcome.rounds
    assert round_one.labels == [STARVED] and round_one.filled == [STARVED]
    assert round_one.attempts == task.gate.top_up_attempts_per_label and round_one.accepted > 0
    assert outcome.stopped == "every attempted label has an accepted row"
    table = outcome.table
    topped_up = table[table["top_up_round"] == 1]
    assert len(table) == len(rows) + round_one.attempts and set(topped_up["label"]) == {STARVED}
    assert table["row_id"].is_unique and not set(topped_up["request_key"]) & set(rows["request_key"])
    verdict = batch_verdict(table, task.gate)
    assert verdict["attempted"] == verdict["accepted"] + verdict["rejected"] == len(table)
    assert (table.loc[~table["accepted"], "reject_reason"] != "").all()
    assert verdict["missing_labels"] == [] and verdict["label_coverage"] == 1.0


def test_a_top_up_leaves_the_first_pass_verdicts_and_the_batch_level_decision_as_they_were(task, seed_rows, first_pass):
    rows, references = first_pass
    gate, generate, dedup = _steps(task, seed_rows, references)
    alone = gate(rows.assign(top_up_round=0), task.gate)
    outcome = gate_with_top_up(rows, task.gate, gate, generate, dedup)
    verdicts = ["row_id", "accepted", "reject_reason", "reject_detail"]
    pd.testing.assert_frame_equal(outcome.table.loc[outcome.table["top_up_round"] == 0, verdicts], alone[verdicts])
    assert outcome.table.attrs == alone.attrs and "too_easy" in outcome.table.attrs


def test_a_top_up_attempt_repeating_the_batch_is_a_duplicate_of_the_row_it_repeats(task, seed_rows, first_pass):
    rows, references = first_pass
    kept = rows[(rows["dup_status"] == "unique") & (rows["label"] == "alarm_set")].iloc[0]
    attempts = generate_batch(task, BATCH, seed_rows, attempts={"alarm_set": 2}, top_up_round=1).table
    attempts.loc[0, "text"] = kept["text"].upper() + "!"
    verdicts = dedup_top_up(attempts, references, rows, task.dedup)
    assert verdicts.loc[0, "dup_status"] == "exact_dup" and verdicts.loc[0, "dup_of"] == kept["row_id"]
    assert list(verdicts.columns) == list(rows.columns)


def test_the_template_top_up_draws_new_text_under_keys_of_its_round(task, seed_rows, first_pass):
    rows, references = first_pass
    attempts = {STARVED: 10}
    avoid = texts_to_avoid(attempts, references, rows)
    round_one = generate_batch(task, BATCH, seed_rows, attempts=attempts, top_up_round=1, avoid=avoid).table
    again = generate_batch(task, BATCH, seed_rows, attempts=attempts, top_up_round=1, avoid=avoid).table
    round_two = generate_batch(task, BATCH, seed_rows, attempts=attempts, top_up_round=2, avoid=avoid).table
    pd.testing.assert_frame_equal(round_one, again)
    assert not set(round_one["request_key"]) & set(round_two["request_key"])
    assert not set(round_one["request_key"]) & set(rows["request_key"])
    assert not set(round_one["text"].str.lower()) & {text.lower() for text in avoid}


def test_rounds_stop_when_a_round_brings_no_new_text(task, seed_rows, first_pass):
    rows, references = first_pass
    gate, _generate, dedup = _steps(task, seed_rows, references)

    def repeat_the_batch(attempts, number, so_far):
        """A generator stuck on what it wrote before: the round's attempts are the batch's own texts again."""
        again = so_far[so_far["label"].isin(attempts)].drop(columns=["norm_key", "dup_status", "dup_of", "dup_similarity"])
        return again.drop(columns="top_up_round").assign(row_id=again["row_id"] + f":again{number}")

    outcome = gate_with_top_up(rows, task.gate, gate, repeat_the_batch, dedup)
    assert len(outcome.rounds) == 1 and outcome.rounds[0].new_texts == 0
    assert outcome.stopped == "round 1 brought no new text" and outcome.missing_after == [STARVED]


def test_rounds_stop_at_the_configured_limit(task, seed_rows, first_pass):
    rows, references = first_pass
    gate, generate, dedup = _steps(task, seed_rows, references)

    def too_long(attempts, number, so_far):
        """New text every round, all of it past gate.max_chars."""
        made = generate(attempts, number, so_far)
        return made.assign(text=made["text"] + " " + "and then some more words " * 10)

    config = task.gate.model_copy(update={"top_up_rounds": 2, "top_up_attempts_per_label": 3})
    outcome = gate_with_top_up(rows, config, gate, too_long, dedup)
    assert [done.number for done in outcome.rounds] == [1, 2] and [done.attempts for done in outcome.rounds] == [3, 3]
    assert outcome.stopped == "gate.top_up_rounds=2 reached" and outcome.missing_after == [STARVED]
    assert set(outcome.table.loc[outcome.table["top_up_round"] > 0, "reject_reason"]) == {"too_long"}
    summary = outcome.summary()
    assert summary["attempts_by_round"] == {"1": 3, "2": 3} and summary["labels_topped_up"] == [STARVED]
    assert summary["labels_still_missing"] == [STARVED] and len(outcome.top_up_attempts()) == 6


def test_a_round_over_budget_ends_the_top_up_not_the_batch(task, seed_rows, first_pass):
    rows, references = first_pass
    gate, _generate, dedup = _steps(task, seed_rows, references)

    def over_budget(attempts, number, so_far):
        raise BudgetError("batch home-b2 would cost about $0.0100 for 4 requests, more than the $0.0000 left")

    outcome = gate_with_top_up(rows, task.gate, gate, over_budget, dedup)
    assert outcome.rounds == [] and outcome.stopped.startswith("round 1 not run: batch home-b2 would cost")
    assert len(outcome.table) == len(rows) and outcome.missing_after == [STARVED]


def test_no_round_runs_when_every_label_has_an_accepted_row(task, seed_rows):
    generated = generate_batch(task, BATCH, seed_rows).table
    references = references_for_batch(read_labelled_file(task.heldout_path, task.labels), seed_rows, generated.iloc[0:0])
    rows, _signatures = dedup_batch(generated, references, **task.dedup.minhash_settings())
    outcome = gate_with_top_up(rows, task.gate, *_steps(task, seed_rows, references))
    assert outcome.rounds == [] and outcome.missing_before == [] and outcome.top_up_attempts().empty
    assert (outcome.table["top_up_round"] == 0).all()


def _verdict_with_one_label_missing(labels: int, config: GateConfig) -> dict:
    names = [f"label_{number:02d}" for number in range(labels)]
    table = pd.DataFrame(
        {
            "label": names,
            "accepted": [name != "label_00" for name in names],
            "reject_reason": ["exact_dup" if name == "label_00" else "" for name in names],
            "dup_status": ["exact_dup" if name == "label_00" else "unique" for name in names],
        }
    )
    return batch_verdict(table, config)


def test_coverage_at_the_default_threshold_passes_and_names_the_label_still_missing():
    config = GateConfig(max_near_dup_rate=1.0)
    assert config.min_label_coverage == 0.9 and config.top_up_rounds == 2
    verdict = _verdict_with_one_label_missing(20, config)
    assert verdict["label_coverage"] == 0.95 and verdict["passed"] and verdict["missing_labels"] == ["label_00"]


def test_coverage_below_the_threshold_fails_naming_every_missing_label():
    config = GateConfig(max_near_dup_rate=1.0, yield_floor=0.0)
    table = pd.DataFrame(
        {
            "label": [f"label_{number:02d}" for number in range(12)],
            "accepted": [number >= 11 for number in range(12)],
            "reject_reason": ["exact_dup"] * 11 + [""],
            "dup_status": ["exact_dup"] * 11 + ["unique"],
        }
    )
    verdict = batch_verdict(table, config)
    missing = [f"label_{number:02d}" for number in range(11)]
    assert not verdict["passed"] and verdict["missing_labels"] == missing
    assert verdict["failures"] == [
        f"label coverage 0.083 is below gate.min_label_coverage=0.9 (no accepted row for: {', '.join(missing)})"
    ]


def test_llm_top_up_requests_have_keys_of_their_round_and_say_why(data_dir, seed_rows):
    task_file = data_dir / "tasks" / "home" / "task.yaml"
    config = yaml.safe_load(task_file.read_text())
    config["generation"] = {"backend": "openai", "per_label": 6, "llm": {"model": "gpt-4o-mini", "examples_per_request": 3}}
    task_file.write_text(yaml.safe_dump(config))
    task = load_task(task_file.parent)
    attempts = {STARVED: 6}
    first = build_requests(task, BATCH, seed_rows, "json_schema", attempts)
    round_one = build_requests(task, BATCH, seed_rows, "json_schema", attempts, top_up_round=1)
    assert [r.key for r in round_one] == [r.key for r in build_requests(task, BATCH, seed_rows, "json_schema", attempts, 1)]
    assert not {r.key for r in round_one} & {r.key for r in first}
    assert not {r.key for r in round_one} & {r.key for r in build_requests(task, BATCH, seed_rows, "json_schema", attempts, 2)}
    assert all(TOP_UP_NOTE in r.messages[-1]["content"] for r in round_one)
    assert not any(TOP_UP_NOTE in r.messages[-1]["content"] for r in first)
    assert "Examples:\n- " in first[0].messages[-1]["content"] and "\n\nWrite as " in first[0].messages[-1]["content"]


def test_later_readers_count_a_batchs_top_up_attempts_after_its_first_pass(tmp_path, task, seed_rows):
    lake = Lake(tmp_path / "lake")
    for batch in ("home-b1", "home-b2"):
        rows = generate_batch(task, batch, seed_rows, attempts={"alarm_set": 2}).table.assign(
            cost_usd=0.5, norm_key="", dup_status="unique", dup_of="", dup_similarity=0.0
        )
        lake.write_table("generated", batch, rows[rows.columns[:-4]])
        lake.write_table("deduplicated", batch, rows)
    top_up = generate_batch(task, "home-b1", seed_rows, attempts={"weather_query": 1}, top_up_round=1).table
    top_up = top_up.assign(cost_usd=0.25, norm_key="", dup_status="unique", dup_of="", dup_similarity=0.0, top_up_round=1)
    lake.write_table(TOP_UP_TABLE, "home-b1", top_up)
    rows = query_attempts(lake, ["home-b1", "home-b2"], ["row_id", "label"], "dup_status = 'unique'")
    assert list(rows["label"]) == ["alarm_set", "alarm_set", "weather_query", "alarm_set", "alarm_set"]
    assert spent_by_batches(lake, ["home-b1", "home-b2"]) == pytest.approx(4 * 0.5 + 0.25)
