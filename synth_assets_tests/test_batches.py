"""Batch keys are safe and stable; registration validates fully and is idempotent."""

from datetime import UTC, datetime

import pytest

from synth_assets.core.batches import (
    REGISTRY,
    BatchKeyError,
    incoming_files,
    key_for_file,
    key_for_refresh,
    load_batch,
    register_batch,
    seed_table,
    slugify,
    task_of,
)
from synth_assets.core.labelled_data import InputFileError
from synth_assets.core.lake import Lake
from synth_assets_tests.conftest import write_csv


def test_key_from_a_file_name_keeps_only_safe_characters(tmp_path):
    path = write_csv(tmp_path / "../Weird Name;rm -rf ~.csv", [("x", "alarm_set")])
    key = key_for_file("home", path)
    assert key.startswith("home-weird_name_rm_rf-") and "/" not in key and "." not in key
    assert task_of(key) == "home"


def test_same_bytes_give_the_same_key_and_new_bytes_a_new_one(tmp_path):
    path = write_csv(tmp_path / "new.csv", [("set an alarm", "alarm_set")])
    first = key_for_file("home", path)
    assert key_for_file("home", path) == first
    write_csv(path, [("set two alarms", "alarm_set")])
    assert key_for_file("home", path) != first


def test_slug_of_an_unusable_name_falls_back():
    assert slugify("../..//") == "file"


def test_refresh_keys_come_from_the_time():
    assert key_for_refresh("home", datetime(2026, 11, 23, 6, 0, tzinfo=UTC)) == "home-refresh_20261123_0600"


def test_task_of_rejects_keys_the_factory_never_makes():
    with pytest.raises(BatchKeyError, match="not a batch key"):
        task_of("../etc/passwd")


def test_register_copies_the_input_and_is_idempotent(tmp_path, task):
    lake = Lake(tmp_path / "lake")
    record = register_batch(lake, task, "home-b1", task.seeds_path, "refresh")
    assert record.input_path.read_bytes() == task.seeds_path.read_bytes()
    assert lake.sidecar_path(REGISTRY, "home-b1").is_file()
    assert register_batch(lake, task, "home-b1", task.seeds_path, "refresh") == record
    assert load_batch(lake, "home-b1").sha256 == record.sha256


def test_register_refuses_different_bytes_under_an_existing_key(tmp_path, task):
    lake = Lake(tmp_path / "lake")
    register_batch(lake, task, "home-b1", task.seeds_path, "refresh")
    other = write_csv(tmp_path / "other.csv", [("wake me at noon", "alarm_set")])
    with pytest.raises(BatchKeyError, match="already registered from different bytes"):
        register_batch(lake, task, "home-b1", other, "seed_file")


def test_a_bad_file_creates_no_batch(tmp_path, task):
    lake = Lake(tmp_path / "lake")
    bad = write_csv(tmp_path / "bad.csv", [("wake me at noon", "not_a_label")])
    with pytest.raises(InputFileError, match="unknown label"):
        register_batch(lake, task, "home-bad", bad, "seed_file")
    assert not lake.sidecar_path(REGISTRY, "home-bad").is_file()
    assert not (lake.root / "_batches").exists()


def test_seed_rows_copying_the_heldout_split_are_refused(tmp_path, task):
    lake = Lake(tmp_path / "lake")
    leaking = write_csv(tmp_path / "leak.csv", [("Switch off the lamp.", "lights_off")])
    with pytest.raises(InputFileError, match="copy the held-out split"):
        register_batch(lake, task, "home-leak", leaking, "seed_file")


def test_seed_table_carries_file_and_line(tmp_path, task):
    lake = Lake(tmp_path / "lake")
    record = register_batch(lake, task, "home-b1", task.seeds_path, "refresh")
    table = seed_table(task, record)
    assert list(table.columns) == [
        "seed_id",
        "batch",
        "text",
        "label",
        "source_file",
        "line",
        "synthetic_match",
        "synthetic_similarity",
    ]
    assert table.iloc[0]["seed_id"] == "home-b1:2" and table.iloc[0]["source_file"] == "seeds.csv"


def test_incoming_files_are_found_per_task(tmp_path):
    write_csv(tmp_path / "home" / "b.csv", [("x", "y")])
    write_csv(tmp_path / "home" / "a.jsonl", [("x", "y")])
    (tmp_path / "home" / ".hidden.csv").write_text("text,label\n")
    (tmp_path / "home" / "notes.txt").write_text("ignored")
    assert [(task, path.name) for task, path in incoming_files(tmp_path)] == [("home", "a.jsonl"), ("home", "b.csv")]
