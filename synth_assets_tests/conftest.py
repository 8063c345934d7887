"""Fixtures that build small real tasks on disk: real files, real parquet, real Dagster."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

SEEDS = {
    "alarm_set": [
        "set an alarm for seven tomorrow morning",
        "wake me up at six thirty",
        "please set my alarm for nine pm",
        "i need an alarm at five am on monday",
        "create an alarm for half past eight",
        "alarm for noon please",
        "can you wake me at 7 am",
        "set a wake up call for ten",
    ],
    "weather_query": [
        "what is the weather like today",
        "will it rain tomorrow in london",
        "is it going to be sunny this weekend",
        "how cold is it outside right now",
        "do i need an umbrella today",
        "what's the forecast for friday",
        "tell me the temperature in paris",
        "is there snow expected tonight",
    ],
    "play_music": [
        "play some jazz",
        "put on my workout playlist",
        "i want to hear the beatles",
        "play the latest album by adele",
        "start playing relaxing piano music",
        "can you play something upbeat",
        "shuffle my favourite songs",
        "play rock music in the kitchen",
    ],
    "lights_off": [
        "turn off the lights",
        "switch the bedroom light off",
        "lights off in the living room please",
        "kill the lights",
        "can you turn the kitchen lights off",
        "shut off all the lamps",
        "turn the hallway light off now",
        "power down the lights upstairs",
    ],
}
HELDOUT = {
    "alarm_set": ["set an alarm for eight", "wake me up at five tomorrow", "i want an alarm at nine thirty"],
    "weather_query": ["what's the weather in berlin", "is it windy today", "will it be hot tomorrow"],
    "play_music": ["play some classical music", "put on a song by queen", "play my chill playlist"],
    "lights_off": ["turn the lights off in the bathroom", "switch off the lamp", "no more lights please"],
}


def write_csv(path: Path, rows: list[tuple[str, str]], header=("text", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def rows_of(examples: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(text, label) for label, texts in examples.items() for text in texts]


def write_task(data_dir: Path, name: str = "home", **overrides) -> Path:
    """A small home-assistant task under ``data_dir/tasks/<name>`` (4 labels, 8 seeds each)."""
    task_dir = data_dir / "tasks" / name
    write_csv(task_dir / "seeds.csv", rows_of(SEEDS))
    write_csv(task_dir / "heldout.csv", rows_of(HELDOUT))
    config = {
        "name": name,
        "text_kind": "short request to a home assistant",
        "labels": {
            "alarm_set": "the user wants to set an alarm",
            "weather_query": "the user asks about the weather",
            "play_music": "the user wants music played",
            "lights_off": "the user wants the lights turned off",
        },
        "generation": {"backend": "template", "per_label": 12},
        "gate": {"min_chars": 3, "max_chars": 200, "yield_floor": 0.1, "max_near_dup_rate": 0.9},
        # A fixed share with synthetic rows always in: most pipeline tests follow those rows through every stage.
        "mix": {"synthetic_share": 0.75, "do_no_harm": False},
    }
    for key, value in overrides.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) and key != "labels" else value
    (task_dir / "task.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return task_dir


@pytest.fixture
def seed_rows():
    """The task's seeds as the generators see them: ``seed_id, text, label``."""
    import pandas as pd

    rows = [(f"s:{label}:{i}", text, label) for label, texts in SEEDS.items() for i, text in enumerate(texts)]
    return pd.DataFrame(rows, columns=["seed_id", "text", "label"])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_task(root)
    return root


@pytest.fixture
def task(data_dir: Path):
    from synth_assets.core.task_config import load_task

    return load_task(data_dir / "tasks" / "home")


@pytest.fixture
def instance():
    """A real in-memory Dagster instance, disposed after the test.

    Disposal matters: every instance registers itself as the current definitions-state storage,
    and a later ``defs()`` load would otherwise find a dead one.
    """
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as live:
        yield live


@pytest.fixture
def home(tmp_path, data_dir, monkeypatch):
    """A persistent Dagster instance in a temporary DAGSTER_HOME, for the command line."""
    from synth_assets.defs.resources import DATA_DIR_VARIABLE

    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(data_dir))
    monkeypatch.chdir(tmp_path)
    return dagster_home


@pytest.fixture(scope="module")
def fake_llm_settings():
    """Settings of the module's fake OpenAI server; a test module overrides this fixture to change them."""
    return None


@pytest.fixture(scope="module")
def fake_llm(fake_llm_settings):
    """The project's fake OpenAI server, one per test module (a real uvicorn on 127.0.0.1)."""
    from synth_assets_tests.fake_server import running_fake_openai

    with running_fake_openai(fake_llm_settings) as running:
        yield running


@pytest.fixture
def server(fake_llm):
    """The module's fake server, back in its start state for this test."""
    fake_llm.reset()
    return fake_llm
