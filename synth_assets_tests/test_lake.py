"""The lake writes whole partitions atomically and reads across batches in partition order."""

import pandas as pd
import pytest

from synth_assets.core.lake import Lake, LakeError


def test_write_then_read_round_trips(tmp_path):
    lake = Lake(tmp_path)
    frame = pd.DataFrame({"text": ["a", "b"], "ids": [["x"], ["y", "z"]]})
    lake.write_table("generated", "t-1", frame)
    back = lake.read_table("generated", "t-1")
    assert back["text"].tolist() == ["a", "b"] and [list(v) for v in back["ids"]] == [["x"], ["y", "z"]]


def test_identical_frames_give_identical_bytes(tmp_path):
    lake = Lake(tmp_path)
    frame = pd.DataFrame({"text": ["a", "b"], "n": [1, 2]})
    first = lake.write_table("seeds", "t-1", frame).read_bytes()
    assert lake.write_table("seeds", "t-1", frame).read_bytes() == first


def test_a_failed_write_leaves_the_old_partition_and_no_temp_file(tmp_path):
    lake = Lake(tmp_path)
    lake.write_table("seeds", "t-1", pd.DataFrame({"text": ["kept"]}))
    unserialisable = pd.DataFrame({"text": [object()]})
    with pytest.raises(ValueError, match="object"):
        lake.write_table("seeds", "t-1", unserialisable)
    assert lake.read_table("seeds", "t-1")["text"].tolist() == ["kept"]
    assert [p.name for p in (tmp_path / "seeds").iterdir()] == ["t-1.parquet"]


def test_query_keeps_partition_order_not_name_order(tmp_path):
    lake = Lake(tmp_path)
    lake.write_table("seeds", "t-b", pd.DataFrame({"text": ["first"]}))
    lake.write_table("seeds", "t-a", pd.DataFrame({"text": ["second", "third"]}))
    rows = lake.query("seeds", ["t-b", "t-a"], "SELECT text FROM rows ORDER BY batch_order, file_row_number")
    assert rows["text"].tolist() == ["first", "second", "third"]


def test_query_of_a_missing_partition_is_an_error(tmp_path):
    lake = Lake(tmp_path)
    with pytest.raises(LakeError, match="missing seeds partitions"):
        lake.query("seeds", ["t-1"])


def test_query_of_no_batches_is_empty_with_the_asked_columns(tmp_path):
    assert Lake(tmp_path).query("seeds", [], empty_columns=["row_id", "text"]).columns.tolist() == ["row_id", "text"]


def test_missing_partition_read_says_what_to_materialize(tmp_path):
    with pytest.raises(LakeError, match="materialize gated for partition t-9"):
        Lake(tmp_path).read_json("gated", "t-9")
