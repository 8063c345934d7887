"""Two batches built once on a real Dagster instance, then read by every test here: lake contents,
provenance, dedup across batches, the version's manifest, exports, evaluation and report.

Building them takes about 7 s; sharing them across this module's tests keeps the suite short. The
tests only read: a test that re-runs or changes the factory belongs in ``test_pipeline.py``, which
builds its own.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from synth_assets.defs.jobs import FACTORY_STAGES
from synth_assets_tests.conftest import write_task
from synth_assets_tests.factory_harness import build_factory, run_batches

SIDECAR_STAGES = ("gated", "training_set", "heldout_eval")


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("two_batches") / "data"
    write_task(data_dir)
    with pytest.MonkeyPatch.context() as monkeypatch, dg.DagsterInstance.ephemeral() as instance:
        yield build_factory(data_dir, monkeypatch, instance)


@pytest.fixture(scope="module")
def two_batches(factory):
    return run_batches(factory, ["b1", "b2"])


def test_two_batches_write_every_stage_to_the_lake(factory, two_batches):
    for key in two_batches:
        for stage in FACTORY_STAGES:
            assert factory.lake.table_path(stage, key).is_file(), f"{stage}/{key} missing"
        for stage in SIDECAR_STAGES:
            assert factory.lake.sidecar_path(stage, key).is_file()


def test_generated_rows_carry_provenance(factory, two_batches):
    key = two_batches[0]
    generated = factory.lake.read_table("generated", key)
    seed_ids = set(factory.lake.read_table("seeds", key)["seed_id"])
    assert len(generated) == 4 * 12
    assert generated["request_key"].is_unique
    assert (generated["generator"] == "template").all() and (generated["template_version"] != "").all()
    assert (generated["template_id"] != "").all()
    assert all(len(ids) > 0 and set(ids) <= seed_ids for ids in generated["seed_ids"])
    assert set(generated["label"]) == {"alarm_set", "weather_query", "play_music", "lights_off"}


def test_every_attempt_ends_accepted_or_rejected_with_a_reason(factory, two_batches):
    for key in two_batches:
        gated = factory.lake.read_table("gated", key)
        verdict = factory.lake.read_json("gated", key)
        attempts = len(factory.lake.read_table("generated", key)) + len(factory.lake.read_table("top_up", key))
        assert len(gated) == attempts == verdict["attempted"]
        assert verdict["accepted"] + verdict["rejected"] == verdict["attempted"]
        assert (gated.loc[~gated["accepted"], "reject_reason"] != "").all()
        assert (gated.loc[gated["accepted"], "reject_reason"] == "").all()


def test_second_batch_is_deduplicated_against_the_first(factory, two_batches):
    first, second = two_batches
    second_rows = factory.lake.read_table("deduplicated", second)
    first_ids = set(factory.lake.read_table("deduplicated", first)["row_id"])
    matched_earlier = second_rows[second_rows["dup_of"].isin(first_ids)]
    unique_first = factory.lake.read_table("deduplicated", first).query("dup_status == 'unique'")
    overlap = set(second_rows["norm_key"]) & set(unique_first["norm_key"])
    # every exact repeat of an earlier unique text must be caught, pointing at the earlier row
    assert all(second_rows[second_rows["norm_key"] == key]["dup_status"].ne("unique").all() for key in overlap)
    assert len(overlap) == 0 or len(matched_earlier) > 0


def test_training_set_mixes_real_and_accepted_synthetic_with_a_manifest(factory, two_batches):
    version = two_batches[1]
    table = factory.lake.read_table("training_set", version)
    manifest = factory.lake.read_json("training_set", version)
    accepted = pd.concat([factory.lake.read_table("gated", key).query("accepted") for key in two_batches])
    synthetic = table[table["origin"] == "synthetic"]
    assert set(synthetic["row_id"]) <= set(accepted["row_id"])
    assert manifest["batches_included"] == two_batches
    assert manifest["counts"]["by_origin"] == table["origin"].value_counts().to_dict()
    assert len(manifest["content_hash"]) == 64
    assert manifest["counts"]["by_origin"]["real"] == 32


def test_heldout_eval_reports_version_and_seeds_only_baseline(factory, two_batches):
    summary = factory.lake.read_json("heldout_eval", two_batches[1])
    assert {"version", "seeds_only", "delta_macro_f1_vs_seeds_only"} <= set(summary)
    assert summary["heldout_rows"] == 12
    metrics = factory.lake.read_table("heldout_eval", two_batches[1])
    assert set(metrics["trained_on"]) == {"version", "seeds_only"}


def test_materializations_carry_the_numbers_users_look_at(factory, two_batches):
    def metadata(stage):
        import dagster as dg

        event = factory.instance.get_latest_materialization_event(dg.AssetKey(stage))
        return event.asset_materialization.metadata

    assert {"yield", "accepted", "rejects_by_reason", "gate_passed", "sample"} <= set(metadata("gated"))
    assert {"macro_f1", "seeds_only_macro_f1", "delta_macro_f1_vs_seeds_only"} <= set(metadata("heldout_eval"))
    assert {"near_dup_rate", "exact_dup_rate", "contaminates_heldout"} <= set(metadata("deduplicated"))
    assert {"real_rows", "synthetic_rows", "content_hash"} <= set(metadata("training_set"))


def test_the_second_batch_loads_the_first_batchs_signatures_instead_of_hashing_its_text(factory, two_batches):
    import dagster as dg

    first, second = two_batches
    stored = factory.lake.read_table("dedup_signatures", first)
    unique_first = factory.lake.read_table("deduplicated", first).query("dup_status == 'unique'")
    assert list(stored["row_id"]) == list(unique_first["row_id"])
    event = factory.instance.get_latest_materialization_event(dg.AssetKey("deduplicated"))
    assert event.dagster_event.partition == second
    assert event.asset_materialization.metadata["signatures_loaded"].value == len(stored) > 0


def test_each_version_is_exported_for_training_with_a_dataset_card(factory, two_batches):
    import json

    version = two_batches[1]
    table = factory.lake.read_table("training_set", version)
    exported = pd.read_csv(factory.lake.csv_path("exports", version), keep_default_na=False)
    assert exported[["text", "label"]].equals(table[["text", "label"]])
    lines = (factory.lake.root / "exports" / f"{version}.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(table)
    for line, (text, label) in zip(lines, zip(table["text"], table["label"])):
        messages = json.loads(line)["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant"]
        assert messages[1]["content"] == text and messages[2]["content"] == label and "Labels:" in messages[0]["content"]
    card = (factory.lake.root / "exports" / f"{version}.md").read_text(encoding="utf-8")
    manifest = factory.lake.read_json("training_set", version)
    assert manifest["content_hash"] in card and "## Filters" in card and "| reject_reason | rows |" in card
    heldout_texts = set(pd.read_csv(factory.lake.root.parent / "tasks" / "home" / "heldout.csv")["text"])
    assert not heldout_texts & set(table["text"]), "the held-out split never enters a training set"


def test_a_version_is_checked_against_the_previous_one_with_the_numbers(factory, two_batches):
    import dagster as dg

    first, second = two_batches
    check = dg.AssetCheckKey(dg.AssetKey("heldout_eval"), "not_below_previous_version")
    latest = factory.instance.event_log_storage.get_asset_check_execution_history(check, limit=1)[0]
    evaluation = latest.event.dagster_event.event_specific_data
    versus = factory.lake.read_json("heldout_eval", second)["versus_previous"]
    assert versus["version"] == first and versus["ci_low"] <= versus["delta_macro_f1"] <= versus["ci_high"]
    assert evaluation.passed == (versus["verdict"] != "hurt")
    assert evaluation.metadata["verdict"].value == versus["verdict"]
    assert first in evaluation.description and versus["verdict"] in evaluation.description


def test_each_version_has_a_report_with_plots_readable_without_dagster(factory, two_batches):
    import re

    import dagster as dg

    from synth_assets.core.verdict import sentence

    version = two_batches[1]
    summary = factory.lake.read_json("heldout_eval", version)
    report = factory.lake.root / "reports" / version / "report.md"
    assert summary["report"] == str(report)
    text = report.read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"ratio_curve.png", "per_class_f1.png", "confusion.png", "label_distribution.png", "over_versions.png"} <= set(images)
    for image in images:
        assert (report.parent / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Against the previous version `{two_batches[0]}`" in text and summary["leakage"]["heldout_copies_in_version"] == 0
    event = factory.instance.get_latest_materialization_event(dg.AssetKey("heldout_eval"))
    assert event.asset_materialization.metadata["report"].value == str(report)
    assert "dagster/row_count" not in event.asset_materialization.metadata, "a metrics table is no data size"
    assert event.asset_materialization.metadata["verdict"].value == sentence(summary["versus_seeds_only"])


def test_heldout_eval_reports_curve_draws_shift_and_leakage(factory, two_batches):
    summary = factory.lake.read_json("heldout_eval", two_batches[1])
    assert [point["synthetic_share"] for point in summary["ratio_curve"]] == [0.0, 0.25, 0.5, 0.75, 0.9, 1.0]
    assert summary["version_draws"]["draws"] == 3
    assert 0.0 <= summary["shift"]["discriminator_auc"] <= 1.0
    assert summary["diversity"]["distinct_2"] > 0 and summary["batch_diversity"]["rows"] > 0
    assert summary["leakage"]["dcr_p50"] is not None and summary["leakage"]["real_baseline_dcr_p50"] is not None
    assert {row["kind"] for row in summary["attribution"]} <= {"batch", "generator", "template"}
    assert any(row["kind"] == "batch" for row in summary["attribution"]), "two batches: each is left out once"


def test_the_next_batch_is_weighted_by_the_last_versions_validation_f1(factory, two_batches):
    first, second = two_batches
    validation = factory.lake.read_json("training_set", first)["validation"]
    assert validation["folds"] == 3 and set(validation["per_label_f1"]) == {
        "alarm_set",
        "lights_off",
        "play_music",
        "weather_query",
    }
    registered = factory.lake.read_json("_batches", second)
    assert registered["quota_feedback"] == {"version": first, "per_label_f1": validation["per_label_f1"]}
    attempts = factory.lake.read_json("generated", second)["attempts_by_label"]
    generated = factory.lake.read_table("generated", second)["label"].value_counts().to_dict()
    assert generated == attempts and sum(attempts.values()) == 4 * 12
    f1 = validation["per_label_f1"]
    weakest, strongest = min(f1, key=f1.get), max(f1, key=f1.get)
    assert attempts[weakest] >= attempts[strongest]
    assert factory.lake.read_json("_batches", first)["quota_feedback"] is None


def test_synthetic_rows_point_at_the_kept_seed_rows_so_validation_cannot_leak(factory, two_batches):
    from synth_assets.defs.training_set import version_inputs

    inputs = version_inputs(factory.instance, factory.lake, two_batches[1])
    second_batch_rows = inputs.pool[inputs.pool["batch"] == two_batches[1]]
    assert len(second_batch_rows), "the second batch was generated from the same seed file under new seed ids"
    assert set(inputs.pool["seed_ids"].explode().dropna()) <= set(inputs.real["seed_id"])
