"""The gate's LLM tier against the fake server: unsure rows are judged, off-topic ones rejected with the reason."""

from __future__ import annotations

import pandas as pd
import pytest

from synth_assets.core.gate import gate_rows
from synth_assets.core.judge import judge_requests, judgements
from synth_assets.core.llm_cache import ResponseCache
from synth_assets.core.llm_client import run_requests
from synth_assets.core.pricing import price_for
from synth_assets.core.task_config import GateConfig
from synth_assets_tests.test_llm_generation import API_KEY, write_llm_task


def _judge_with(task, cache, counts):
    def judge(rows):
        requests = judge_requests(task, rows)
        results, summary = run_requests(
            requests, task.generation.llm, cache, price_for("gpt-4o-mini"), api_key=API_KEY, budget_usd=1.0, replay=False
        )
        counts.update(summary)
        return judgements(requests, results)

    return judge


def test_the_judge_keeps_rows_that_belong_and_rejects_the_others_with_a_reason(server, data_dir, tmp_path):
    server.reset()
    task = write_llm_task(data_dir, server.base_url)
    rows = pd.DataFrame(
        {
            "row_id": ["a", "b", "c"],
            "text": ["switch the lights off", "play some jazz", "set an alarm for six"],
            "label": "lights_off",
        }
    )
    counts: dict = {}
    verdicts = _judge_with(task, ResponseCache(tmp_path / "c.sqlite"), counts)(rows)
    assert verdicts == {"a": "", "b": "LLM judge: off topic", "c": "LLM judge: off topic"}
    assert counts["sent"] == 1 and counts["spent_usd"] > 0


def test_an_unreadable_judgement_leaves_the_rows_unjudged(server, data_dir, tmp_path):
    server.reset()
    server.set_faults(malformed={})
    task = write_llm_task(data_dir, server.base_url)
    rows = pd.DataFrame({"row_id": ["a"], "text": ["play some jazz"], "label": "lights_off"})
    assert _judge_with(task, ResponseCache(tmp_path / "c.sqlite"), {})(rows) == {"a": None}


def test_only_rows_the_classifier_is_unsure_about_reach_the_judge(server, data_dir, seed_rows, tmp_path):
    server.reset()
    task = write_llm_task(data_dir, server.base_url)
    rows = pd.DataFrame(
        {
            "row_id": ["sure", "unsure"],
            "text": ["turn off the lights in the hallway", "put the kitchen music off"],
            "label": ["lights_off", "lights_off"],
            "status": "ok",
            "error": "",
            "norm_key": ["turn off the lights in the hallway", "put the kitchen music off"],
            "dup_status": "unique",
            "dup_of": "",
            "dup_similarity": 0.0,
        }
    )
    seen: list = []
    judge = _judge_with(task, ResponseCache(tmp_path / "c.sqlite"), {})
    config = GateConfig(llm_judge=True, label_dispute_rank=4, label_dispute_ratio=1000.0)
    gated = gate_rows(
        rows, config, task.labels, seed_rows, lambda doubtful: seen.append(list(doubtful["row_id"])) or judge(doubtful)
    )
    assert seen == [["unsure"]], "a row the classifier ranks first is not sent"
    assert gated.set_index("row_id").loc["unsure", "reject_reason"] == "judge_rejected"
    assert gated.set_index("row_id").loc["sure", "accepted"]


def test_a_judge_needs_a_model_to_judge_with(data_dir):
    import yaml

    from synth_assets.core.task_config import TaskConfigError, load_task

    task_file = data_dir / "tasks" / "home" / "task.yaml"
    config = yaml.safe_load(task_file.read_text())
    config["gate"]["llm_judge"] = True
    task_file.write_text(yaml.safe_dump(config))
    with pytest.raises(TaskConfigError, match="gate.llm_judge needs generation.llm"):
        load_task(data_dir / "tasks" / "home")


def test_the_factory_runs_the_judge_tier_and_reports_it(server, data_dir, monkeypatch, instance):
    import dagster as dg
    import yaml

    from synth_assets_tests.factory_harness import build_factory

    server.reset()
    write_llm_task(data_dir, server.base_url)
    task_file = data_dir / "tasks" / "home" / "task.yaml"
    config = yaml.safe_load(task_file.read_text())
    config["gate"].update(llm_judge=True, label_dispute_ratio=1000.0, label_dispute_rank=4)
    task_file.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("FAKE_OPENAI_KEY", API_KEY)
    factory = build_factory(data_dir, monkeypatch, instance)
    key = factory.open("b1")
    assert factory.run(key).success
    metadata = instance.get_latest_materialization_event(dg.AssetKey("gated")).asset_materialization.metadata
    assert "| LLM judge |" in metadata["rows_by_tier"].value
