"""The factory re-run or changed on a real Dagster instance: determinism, the gate, seed copies, review, GE, auto share.

Each test builds its own batches; read-only checks of two built batches are in ``test_two_batches.py``.
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from synth_assets.defs.jobs import FACTORY_STAGES
from synth_assets_tests.conftest import write_csv
from synth_assets_tests.factory_harness import build_factory, run_batches

SIDECAR_STAGES = ("gated", "training_set", "heldout_eval")


@pytest.fixture
def factory(data_dir, monkeypatch, instance):
    return build_factory(data_dir, monkeypatch, instance)


@pytest.fixture
def two_batches(factory):
    return run_batches(factory, ["b1", "b2"])


def _materialized(result) -> list[str]:
    return sorted(event.asset_key.to_user_string() for event in result.get_asset_materialization_events())


def test_rematerializing_a_partition_gives_identical_bytes(factory, two_batches):
    first = two_batches[0]
    paths = [factory.lake.table_path(stage, first) for stage in FACTORY_STAGES]
    paths += [factory.lake.sidecar_path(stage, first) for stage in SIDECAR_STAGES]
    paths.append(factory.lake.table_path("dedup_signatures", first))
    before = {path: path.read_bytes() for path in paths}
    # batch 2 exists now; rebuilding batch 1 must still read only what batch 1 read the first time
    assert factory.run(first).success
    assert {path: path.read_bytes() for path in paths} == before


def test_a_batch_failing_the_gate_never_reaches_a_training_set(factory, data_dir):
    task_file = data_dir / "tasks" / "home" / "task.yaml"
    original = task_file.read_text()
    assert factory.run(factory.open("b1")).success

    strict = yaml.safe_load(original)
    strict["gate"]["max_chars"] = 4  # every generated utterance is longer: yield 0
    task_file.write_text(yaml.safe_dump(strict))
    failing = factory.open("b2")
    result = factory.run(failing)
    gate_check = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert gate_check == {"duplicate_rate_within_history": True, "gate_passed": False}
    assert _materialized(result) == ["deduplicated", "gated", "generated", "seeds"], "blocking check must stop the run"
    verdict = factory.lake.read_json("gated", failing)
    assert not verdict["passed"] and "yield 0.000 is below gate.yield_floor" in verdict["failures"][0]
    assert not factory.lake.read_table("gated", failing)["accepted"].any()  # rejected rows stay inspectable

    task_file.write_text(original)
    later = factory.open("b3")
    assert factory.run(later).success
    table = factory.lake.read_table("training_set", later)
    manifest = factory.lake.read_json("training_set", later)
    assert failing not in set(table["source_batch"])
    assert failing in manifest["batches_excluded"] and manifest["batches_included"] == ["home-b1", "home-b3"]


def _synthetic_comeback_file(factory, tmp_path, first):
    unique = factory.lake.read_table("deduplicated", first).query("dup_status == 'unique'").head(3)
    rows = [(text, label) for text, label in zip(unique["text"], unique["label"])] + [
        ("wake me at a quarter past six", "alarm_set")
    ]
    return write_csv(tmp_path / "comeback.csv", rows), list(unique["row_id"])


def test_seed_rows_copying_earlier_synthetic_rows_are_flagged(factory, tmp_path):
    first = factory.open("b1")
    assert factory.run(first).success
    comeback, synthetic_ids = _synthetic_comeback_file(factory, tmp_path, first)
    second = factory.open("b2", comeback)
    assert factory.run(second).success
    seeds = factory.lake.read_table("seeds", second)
    assert seeds["synthetic_match"].tolist() == [*synthetic_ids, ""]
    assert (seeds["synthetic_similarity"].iloc[:3] == 1.0).all()
    refresh = factory.open("b3")
    assert factory.run(refresh).success
    assert (factory.lake.read_table("seeds", refresh)["synthetic_match"] == "").all(), "the task's own seeds are not synthetic"


def test_a_task_can_refuse_seed_files_that_copy_synthetic_rows(factory, data_dir, tmp_path):
    from synth_assets.core.labelled_data import InputFileError

    first = factory.open("b1")
    assert factory.run(first).success
    comeback, synthetic_ids = _synthetic_comeback_file(factory, tmp_path, first)
    task_file = data_dir / "tasks" / "home" / "task.yaml"
    config = yaml.safe_load(task_file.read_text())
    config["dedup"] = {"synthetic_in_seeds": "reject"}
    task_file.write_text(yaml.safe_dump(config))
    with pytest.raises(
        InputFileError, match=rf"comeback.csv: 3 row\(s\) copy text this factory generated .*line 2 copies {synthetic_ids[0]}"
    ):
        factory.open("b2", comeback)
    assert not factory.instance.has_dynamic_partition("batches", "home-b2")


def test_the_great_expectations_suite_runs_on_every_batch_with_its_results(factory):
    key = factory.open("b1")
    result = factory.run(key)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {
        "duplicate_rate_within_history",
        "gate_passed",
        "gated_expectations",
        "reviewed_acceptance",
        "synthetic_data_helped",
        "not_below_previous_version",
        "diversity_not_collapsing",
    }
    expectations = evaluations["gated_expectations"]
    assert expectations.passed and expectations.metadata["expectations"].value == 9
    assert "expect_column_distinct_values_to_contain_set" in expectations.metadata["results"].value


def test_a_review_round_trip_gates_later_versions_and_relabels_rows(factory, tmp_path):
    import dagster as dg

    from synth_assets.defs.review import ingest_review, report_review

    first = factory.open("b1")
    assert factory.run(first).success
    sheet = pd.read_csv(factory.lake.csv_path("review_requests", first), dtype=str, keep_default_na=False)
    assert len(sheet) == 20 and set(sheet["label"]) == {"alarm_set", "weather_query", "play_music", "lights_off"}
    sheet["verdict"] = "accept"
    sheet.loc[0, "verdict"] = "reject"
    relabelled = sheet.loc[1, "row_id"]
    sheet.loc[1, "corrected_label"] = "play_music" if sheet.loc[1, "label"] != "play_music" else "lights_off"
    filled = tmp_path / "filled.csv"
    sheet.to_csv(filled, index=False)
    verdict = ingest_review(factory.instance, factory.lake, factory.resource.task("home"), first, filled)
    assert verdict["passed"] and verdict["judged"] == 20 and verdict["rejected"] == 1 and verdict["relabelled"] == 1

    before = factory.lake.read_table("training_set", first)
    assert factory.run(first).success
    assert factory.lake.read_table("training_set", first).equals(before), "a version made before the review stays as it was"
    second = factory.open("b2")
    assert factory.run(second).success
    pool = factory.lake.read_table("training_set", second)
    assert sheet.loc[0, "row_id"] not in set(pool["row_id"])
    if relabelled in set(pool["row_id"]):
        assert pool.set_index("row_id").loc[relabelled, "label"] == sheet.loc[1, "corrected_label"]
    report_review(factory.instance, factory.lake, first)
    check = dg.AssetCheckKey(dg.AssetKey("gated"), "reviewed_acceptance")
    latest = factory.instance.event_log_storage.get_asset_check_execution_history(check, limit=1)[0]
    evaluation = latest.event.dagster_event.event_specific_data
    assert evaluation.partition == first and evaluation.passed
    assert evaluation.metadata["acceptance"] == dg.MetadataValue.float(0.95)


def test_a_failed_review_keeps_the_batch_out_of_later_versions(factory, tmp_path):
    from synth_assets.defs.review import ingest_review

    first = factory.open("b1")
    assert factory.run(first).success
    sheet = pd.read_csv(factory.lake.csv_path("review_requests", first), dtype=str, keep_default_na=False)
    sheet["verdict"] = ["reject" if i % 2 else "accept" for i in range(len(sheet))]
    sheet.to_csv(tmp_path / "filled.csv", index=False)
    verdict = ingest_review(factory.instance, factory.lake, factory.resource.task("home"), first, tmp_path / "filled.csv")
    assert not verdict["passed"] and "reviewed acceptance 0.500 is below" in verdict["failures"][0]
    second = factory.open("b2")
    factory.run(second)
    manifest = factory.lake.read_json("training_set", second)
    assert first in manifest["batches_excluded"] and manifest["batches_included"] == [second]


def test_a_review_sheet_with_bad_lines_is_refused_naming_them(factory, tmp_path):
    from synth_assets.core.labelled_data import InputFileError
    from synth_assets.defs.review import ingest_review

    first = factory.open("b1")
    assert factory.run(first).success
    sheet = pd.read_csv(factory.lake.csv_path("review_requests", first), dtype=str, keep_default_na=False)
    sheet.loc[0, "verdict"] = "maybe"
    sheet.loc[1, ["verdict", "corrected_label"]] = ["accept", "no_such_label"]
    sheet.to_csv(tmp_path / "filled.csv", index=False)
    with pytest.raises(InputFileError, match=r"line 2: verdict 'maybe'.*\n.*line 3: corrected_label 'no_such_label'"):
        ingest_review(factory.instance, factory.lake, factory.resource.task("home"), first, tmp_path / "filled.csv")
    assert not factory.lake.sidecar_path("review", first).is_file()


def test_auto_policy_is_chosen_on_validation_and_recorded(factory, data_dir):
    task_file = data_dir / "tasks" / "home" / "task.yaml"
    config = yaml.safe_load(task_file.read_text())
    config["mix"] = {"synthetic_share": "auto", "candidate_shares": [0.5], "balance": "balanced"}
    task_file.write_text(yaml.safe_dump(config))
    key = factory.open("b1")
    assert factory.run(key).success
    manifest = factory.lake.read_json("training_set", key)
    validation = manifest["validation"]
    assert set(validation["macro_f1_by_share"]) == {"0", "unweighted", "0.5"}
    assert validation["chosen_share"] == manifest["synthetic_share_target"]
    assert manifest["synthetic_share_chosen_by"].startswith("validation over 3 folds of the seeds")
    evidence = validation["versus_seeds_only"]
    table = factory.lake.read_table("training_set", key)
    if evidence["delta_macro_f1"] > evidence["se"]:
        assert (table["origin"] == "synthetic").sum() == len(factory.lake.read_table("gated", key).query("accepted"))
    else:
        assert manifest["mix_policy"] == "seeds only" and (table["origin"] == "real").all()
        assert "no evidence the synthetic rows help" in manifest["synthetic_share_chosen_by"]
    assert manifest["balance"] == "balanced" and set(manifest["label_distribution"]) == {
        "alarm_set",
        "lights_off",
        "play_music",
        "weather_query",
    }
