"""task.yaml errors name the file and the key."""

import pytest
import yaml

from synth_assets.core.task_config import MixConfig, TaskConfigError, load_task, load_tasks, loadable_tasks
from synth_assets_tests.conftest import write_task


def _edit(task_dir, change):
    path = task_dir / "task.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config))


def test_valid_task_loads_with_defaults(data_dir):
    task = load_task(data_dir / "tasks" / "home")
    assert task.name == "home"
    assert task.evaluation.model == "embedding_logreg" and task.evaluation.compare_models == ["tfidf_logreg"]
    assert task.generation.per_label == 12
    assert task.seeds_path.is_file()


def test_mixing_defaults_choose_on_validation_and_do_no_harm():
    mix = MixConfig()
    assert mix.synthetic_share == "auto" and mix.do_no_harm and mix.candidate_shares == [0.5, 0.75, 0.9]
    assert MixConfig(synthetic_share="unweighted").synthetic_share == "unweighted"


def test_unknown_key_is_named(data_dir):
    task_dir = data_dir / "tasks" / "home"
    _edit(task_dir, lambda c: c["gate"].update(min_char=3))
    with pytest.raises(TaskConfigError, match=r"gate\.min_char: unknown key"):
        load_task(task_dir)


def test_wrong_type_is_named_with_the_value(data_dir):
    task_dir = data_dir / "tasks" / "home"
    _edit(
        task_dir, lambda c: c["mix"].update(synthetic_share="lots") if "mix" in c else c.update(mix={"synthetic_share": "lots"})
    )
    with pytest.raises(TaskConfigError, match=r"mix\.synthetic_share: .*'lots'"):
        load_task(task_dir)


def test_contradictory_bounds_are_rejected(data_dir):
    task_dir = data_dir / "tasks" / "home"
    _edit(task_dir, lambda c: c["gate"].update(min_chars=50, max_chars=10))
    with pytest.raises(TaskConfigError, match=r"min_chars \(50\) is larger than max_chars \(10\)"):
        load_task(task_dir)


def test_missing_data_file_is_named(data_dir):
    task_dir = data_dir / "tasks" / "home"
    (task_dir / "heldout.csv").unlink()
    with pytest.raises(TaskConfigError, match=r"heldout names .*heldout\.csv, which does not exist"):
        load_task(task_dir)


def test_name_must_match_folder(tmp_path):
    task_dir = write_task(tmp_path, name="home")
    _edit(task_dir, lambda c: c.update(name="other"))
    with pytest.raises(TaskConfigError, match="make them equal"):
        load_task(task_dir)


def test_task_names_cannot_contain_dashes(tmp_path):
    task_dir = write_task(tmp_path, name="home")
    _edit(task_dir, lambda c: c.update(name="my-task"))
    with pytest.raises(TaskConfigError, match="a-z, 0-9 and _"):
        load_task(task_dir)


def test_label_without_description_is_rejected(data_dir):
    task_dir = data_dir / "tasks" / "home"
    _edit(task_dir, lambda c: c["labels"].update(play_music=""))
    with pytest.raises(TaskConfigError, match="needs a one-line description"):
        load_task(task_dir)


def test_invalid_yaml_is_reported(data_dir):
    task_dir = data_dir / "tasks" / "home"
    (task_dir / "task.yaml").write_text("name: [unclosed\n")
    with pytest.raises(TaskConfigError, match="is not valid YAML"):
        load_task(task_dir)


def test_load_tasks_finds_every_task_folder(data_dir):
    write_task(data_dir, name="second")
    assert sorted(load_tasks(data_dir / "tasks")) == ["home", "second"]


def test_loadable_tasks_leave_out_a_broken_task_and_follow_edits(data_dir):
    write_task(data_dir, name="second")
    write_task(data_dir, name="broken")
    (data_dir / "tasks" / "broken" / "task.yaml").write_text("name: broken\nlabels: [", encoding="utf-8")
    tasks = loadable_tasks(data_dir / "tasks")
    assert sorted(tasks) == ["home", "second"]
    assert loadable_tasks(data_dir / "tasks")["home"] is tasks["home"], "an unchanged task.yaml is not parsed again"

    _edit(data_dir / "tasks" / "home", lambda c: c.update(mix={"synthetic_share": 0.5}))
    assert loadable_tasks(data_dir / "tasks")["home"].mix.synthetic_share == 0.5


def test_labels_keep_the_names_real_datasets_give_them(data_dir):
    task_dir = data_dir / "tasks" / "home"
    names = {"alarm_set": "Set Alarm", "weather_query": "météo", "play_music": "Sci/Tech", "lights_off": 0}
    _edit(task_dir, lambda c: c.update(labels={names[label]: text for label, text in c["labels"].items()}))
    assert sorted(load_task(task_dir).labels) == ["0", "Sci/Tech", "Set Alarm", "météo"], "YAML's 0 is the label '0'"


def test_a_label_yaml_reads_as_a_boolean_is_named_with_the_fix(data_dir):
    task_dir = data_dir / "tasks" / "home"
    path = task_dir / "task.yaml"
    path.write_text(path.read_text().replace("alarm_set:", "yes:", 1))
    with pytest.raises(TaskConfigError, match=r"label True was read by YAML as a boolean; quote the label"):
        load_task(task_dir)
