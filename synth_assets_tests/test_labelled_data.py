"""Bad input gets an error naming the file, the line and the fix; good input loads whole."""

from pathlib import Path

import pytest

from synth_assets.core.labelled_data import InputFileError, read_labelled_file
from synth_assets_tests.conftest import write_csv

LABELS = ["alarm_set", "weather_query"]


def test_valid_csv_loads_with_line_numbers(tmp_path):
    path = write_csv(tmp_path / "ok.csv", [("set an alarm", "alarm_set"), ("is it raining", "weather_query")])
    rows = read_labelled_file(path, LABELS)
    assert rows.to_dict("records") == [
        {"text": "set an alarm", "label": "alarm_set", "line": 2},
        {"text": "is it raining", "label": "weather_query", "line": 3},
    ]


def test_jsonl_loads(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text('{"text": "set an alarm", "label": "alarm_set"}\n\n{"text": "rain?", "label": "weather_query"}\n')
    assert list(read_labelled_file(path, LABELS)["line"]) == [1, 3]


def test_missing_column_names_the_file_and_the_header(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [("set an alarm", "alarm_set")], header=("utterance", "label"))
    with pytest.raises(InputFileError, match=r"bad\.csv: missing column\(s\) text.*found: utterance, label"):
        read_labelled_file(path, LABELS)


def test_empty_text_names_the_line(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [("set an alarm", "alarm_set"), ("   ", "alarm_set")])
    with pytest.raises(InputFileError, match=r"line 3: empty text"):
        read_labelled_file(path, LABELS)


def test_unknown_label_names_the_line_and_the_known_labels(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [("set an alarm", "alarm_sett")])
    with pytest.raises(
        InputFileError, match=r"line 2: unknown label 'alarm_sett'; use a label from task.yaml \(alarm_set, weather_query\)"
    ):
        read_labelled_file(path, LABELS)


def test_duplicate_rows_name_both_lines(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [("Set an alarm!", "alarm_set"), ("set an  alarm", "alarm_set")])
    with pytest.raises(InputFileError, match=r"line 3: duplicate of line 2"):
        read_labelled_file(path, LABELS)


def test_duplicates_allowed_when_asked(tmp_path):
    path = write_csv(tmp_path / "ok.csv", [("set an alarm", "alarm_set"), ("set an alarm", "alarm_set")])
    assert len(read_labelled_file(path, LABELS, reject_duplicates=False)) == 2


def test_wrong_encoding_names_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\nset an alarm,alarm_set\ncaf\xe9 weather,weather_query\n".encode("latin-1"))
    with pytest.raises(InputFileError, match=r"latin1\.csv: line 3 is not valid UTF-8.*re-save the file as UTF-8"):
        read_labelled_file(path, LABELS)


def test_unreadable_file_says_so(tmp_path):
    with pytest.raises(InputFileError, match=r"missing\.csv: cannot be read"):
        read_labelled_file(tmp_path / "missing.csv", LABELS)


def test_malformed_jsonl_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "set an alarm", "label": "alarm_set"}\n{"text": "trunc\n')
    with pytest.raises(InputFileError, match=r"line 2 is not valid JSON"):
        read_labelled_file(path, LABELS)


def test_unsupported_suffix_is_rejected(tmp_path):
    path = tmp_path / "seeds.xlsx"
    path.write_bytes(b"")
    with pytest.raises(InputFileError, match=r"unsupported file type '.xlsx'"):
        read_labelled_file(path, LABELS)


def test_file_without_rows_is_rejected(tmp_path):
    path = write_csv(tmp_path / "empty.csv", [])
    with pytest.raises(InputFileError, match="no examples found"):
        read_labelled_file(Path(path), LABELS)


def test_all_problems_are_listed_at_once(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [("", "alarm_set"), ("ok text", "nope"), ("fine", "alarm_set")])
    with pytest.raises(InputFileError, match=r"2 problem\(s\)") as error:
        read_labelled_file(path, LABELS)
    assert "line 2" in str(error.value) and "line 3" in str(error.value)


def test_jsonl_numbers_and_booleans_are_the_labels_they_spell(tmp_path):
    path = tmp_path / "numbers.jsonl"
    path.write_text('{"text": "awful film", "label": 0}\n{"text": "loved it", "label": 1.0}\n{"text": "sure", "label": true}\n')
    assert list(read_labelled_file(path, None)["label"]) == ["0", "1", "true"]
