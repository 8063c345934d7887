"""``new-task``: a task folder from a labelled dataset's train and test splits, then the whole factory on it."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from synth_assets.cli import main
from synth_assets.core.new_task import NewTaskError, create_task, license_from_source
from synth_assets.core.task_config import load_task
from synth_assets_tests.conftest import HELDOUT, SEEDS, rows_of, write_csv

SOURCE_NOTES = """# tiny: home-assistant intents

## License and attribution

Creative Commons Attribution 4.0 International (CC BY 4.0). The authors ask for a citation.
"""
LONG_REVIEW = "this speaker sounds great in the kitchen and the alarm is loud enough " * 12  # 852 characters


@pytest.fixture
def dataset(tmp_path):
    """A dataset folder as in ../shared/datasets: train.csv, test.csv and SOURCE.md, with the usual mess."""
    folder = tmp_path / "tiny"
    train = rows_of(SEEDS) + [
        ("Set an alarm for seven tomorrow morning!", "alarm_set"),  # a repeat of a train text (case, punctuation)
        ("play some classical music", "play_music"),  # also in the test split
        (LONG_REVIEW, "play_music"),
        ("?", "weather_query"),  # a stray row with no words (line 37)
    ]
    write_csv(folder / "train.csv", train)
    write_csv(folder / "test.csv", rows_of(HELDOUT) + [("what's the weather in Berlin", "weather_query")])
    (folder / "SOURCE.md").write_text(SOURCE_NOTES, encoding="utf-8")
    return folder


def test_a_dataset_becomes_a_task_with_seeds_drawn_per_label_and_cleaning_reported(dataset, tmp_path):
    made = create_task(
        "tiny", dataset / "train.csv", dataset / "test.csv", tmp_path / "tasks", seeds_per_label=3, source_folder=dataset
    )
    task = load_task(made.task_dir)
    assert sorted(task.labels) == sorted(SEEDS) and task.labels["alarm_set"] == "alarm set"
    assert task.mix.synthetic_share == "auto" and task.real_pool == "real_pool.csv"

    seeds = pd.read_csv(task.seeds_path, keep_default_na=False)
    pool = pd.read_csv(task.real_pool_path, keep_default_na=False)
    heldout = pd.read_csv(task.heldout_path, keep_default_na=False)
    assert seeds["label"].value_counts().to_dict() == dict.fromkeys(SEEDS, 3)
    given = pd.read_csv(dataset / "train.csv", keep_default_na=False).query("text != '?'")
    published_draw = given.groupby("label").sample(n=3, random_state=0)
    assert list(seeds["text"]) == list(published_draw["text"]), "the few-shot baselines' draw, row for row"
    assert set(seeds["text"]) <= set(pool["text"]), "seeds are drawn from the train split"
    assert not set(pool["text"]) & set(heldout["text"]), "nothing scored on is trained on"
    assert len(heldout) == len(rows_of(HELDOUT)), "the repeated test text keeps its first row"
    assert made.dropped == {
        "text without letters or digits in the train split (lines 37)": 1,
        "repeated text in the train split": 1,
        "repeated text in the test split": 1,
        "train text also in the test split": 1,
    }
    assert made.rows == {"seeds": 12, "heldout": len(heldout), "real_pool": len(pool)}
    assert task.gate.max_chars >= len(LONG_REVIEW) and task.gate.max_chars % 100 == 0
    assert task.license == "Creative Commons Attribution 4.0 International (CC BY 4.0)"
    assert (made.task_dir / "SOURCE.md").read_text(encoding="utf-8") == SOURCE_NOTES

    again = create_task(
        "tiny", dataset / "train.csv", dataset / "test.csv", tmp_path / "tasks", seeds_per_label=3, draw=1, overwrite=True
    )
    assert set(pd.read_csv(again.task_dir / "seeds.csv", keep_default_na=False)["text"]) != set(seeds["text"]), "another draw"


def test_what_cannot_become_a_task_is_named(dataset, tmp_path):
    tasks = tmp_path / "tasks"
    write_csv(tmp_path / "test_unseen.csv", [("order me a taxi", "transport_taxi"), ("set an alarm", "alarm_set")])
    with pytest.raises(NewTaskError, match="label\\(s\\) transport_taxi have no rows in .*train.csv.*--drop-unseen-test-labels"):
        create_task("tiny", dataset / "train.csv", tmp_path / "test_unseen.csv", tasks)
    kept = create_task("unseen", dataset / "train.csv", tmp_path / "test_unseen.csv", tasks, drop_unseen_test_labels=True)
    assert kept.dropped["test rows of labels with no train rows (transport_taxi)"] == 1 and kept.rows["heldout"] == 1
    assert "transport_taxi" not in set(pd.read_csv(kept.task_dir / "heldout.csv")["label"])
    write_csv(tmp_path / "tabbed.csv", [("wake me at six", "set\talarm"), ("is it raining", "weather")])
    with pytest.raises(ValueError, match="line 2: label 'set\\\\talarm' holds a line break, tab .*; rename it"):
        create_task("tiny", tmp_path / "tabbed.csv", dataset / "test.csv", tasks)
    with pytest.raises(NewTaskError, match="must be 1-40 characters"):
        create_task("Tiny-Task", dataset / "train.csv", dataset / "test.csv", tasks)
    create_task("tiny", dataset / "train.csv", dataset / "test.csv", tasks)
    with pytest.raises(NewTaskError, match="already holds a task; .*--overwrite"):
        create_task("tiny", dataset / "train.csv", dataset / "test.csv", tasks)
    assert not (tasks / "Tiny-Task").exists()


def test_a_licence_is_read_from_the_first_sentence_under_its_heading():
    assert license_from_source(SOURCE_NOTES) == "Creative Commons Attribution 4.0 International (CC BY 4.0)"
    assert license_from_source("# data\n\nno licence heading here\n") is None
    assert license_from_source("# data\n\n- **Licence:** CC BY-SA 3.0. Attribute the authors.\n") == "CC BY-SA 3.0"


# Labels as public datasets spell them: capitals and spaces, accents, punctuation, a quote.
DISPLAY_LABELS = {"alarm_set": "Set Alarm", "weather_query": "météo", "play_music": "play/music", "lights_off": 'lights "off"'}


def _relabel(path, names):
    table = pd.read_csv(path, keep_default_na=False)
    table.assign(label=table["label"].map(names)).to_csv(path, index=False)


def test_new_task_then_demo_runs_the_whole_factory_on_the_new_task(home, data_dir, dataset, capsys):
    for split in ("train.csv", "test.csv"):
        _relabel(dataset / split, DISPLAY_LABELS)
    assert main(["new-task", "tiny", "--from", str(dataset), "--seeds-per-label", "6", "--text-kind", "voice command"]) == 0
    out = capsys.readouterr().out
    seeds = len(pd.read_csv(data_dir / "tasks" / "tiny" / "seeds.csv"))
    assert "task tiny written to" in out and f"seeds {seeds} (up to 6 per label, draw 0)" in out and seeds > 20
    assert "dropped 1 row(s): train text also in the test split" in out and "demo --task tiny" in out
    assert yaml.safe_load((data_dir / "tasks" / "tiny" / "task.yaml").read_text())["text_kind"] == "voice command"

    assert main(["demo", "--task", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "[2/2] batch tiny-demo_2: 6/6 stages" in out and "seeds + synthetic (this)" in out
    version = pd.read_parquet(data_dir / "lake" / "training_set" / "tiny-demo_2.parquet")
    assert set(version["label"]) == set(DISPLAY_LABELS.values()), "every label kept as the dataset spells it"
    gated = pd.read_parquet(data_dir / "lake" / "gated" / "tiny-demo_2.parquet")
    assert gated["accepted"].mean() > 0.5 and not gated["reject_reason"].eq("label_leak").any()

    assert main(["new-task", "tiny", "--from", str(dataset)]) == 2
    assert "already holds a task" in capsys.readouterr().err
    assert main(["new-task", "other"]) == 2
    assert "--from <folder with train.csv and test.csv>" in capsys.readouterr().err
