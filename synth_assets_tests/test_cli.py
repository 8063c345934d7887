"""The command line adds batches, runs the factory on a persistent instance and reports clearly."""

from __future__ import annotations

import re

from synth_assets.cli import main
from synth_assets_tests.conftest import write_csv


def test_add_batch_from_a_file_runs_all_stages_and_prints_the_evaluation(home, data_dir, tmp_path, capsys):
    seed_file = write_csv(tmp_path / "extra seeds.csv", [("wake me at four", "alarm_set"), ("is it icy out", "weather_query")])
    assert main(["add-batch", "--task", "home", "--file", str(seed_file)]) == 0
    out = capsys.readouterr().out
    assert "6/6 stages" in out
    assert "seeds only (real)" in out and "seeds + synthetic (this)" in out
    verdict = re.search(r"synthetic data: (helped|no measurable difference|hurt): [+-]\d+\.\d points macro-F1 \(95%", out)
    assert verdict or "synthetic data: not used. Validation found no evidence" in out, out
    if not verdict or verdict.group(1) != "helped":  # the warning check says so on the command line, not only in the UI
        assert "check synthetic_data_helped (warn):" in out
    assert "with tfidf_logreg: seeds only" in out, "the comparison model is reported beside the task's"
    assert "make ui" in out
    assert main(["status", "--task", "home"]) == 0
    status = capsys.readouterr().out
    assert "home-extra_seeds-" in status and "passed" in status


def test_rebuilding_a_template_task_reproduces_its_versions(home, capsys):
    assert main(["add-batch", "--task", "home"]) == 0
    capsys.readouterr()
    assert main(["rebuild", "--task", "home"]) == 0
    out = capsys.readouterr().out
    assert "rebuilt 1 version(s): 1 identical, 0 changed" in out and "LLM:" not in out


def test_bad_seed_file_is_refused_with_the_reason_and_no_batch(home, tmp_path, capsys):
    bad = write_csv(tmp_path / "bad.csv", [("", "alarm_set")])
    assert main(["add-batch", "--task", "home", "--file", str(bad), "--no-run"]) == 2
    assert "bad.csv: 1 problem(s):\n  line 2: empty text" in capsys.readouterr().err
    assert main(["status"]) == 0
    assert "no batches yet" in capsys.readouterr().out


def test_unknown_task_is_named(home, capsys):
    assert main(["add-batch", "--task", "nope", "--no-run"]) == 2
    assert "nope/task.yaml does not exist" in capsys.readouterr().err


def test_a_batch_api_task_is_submitted_waited_for_and_run(home, data_dir, monkeypatch, capsys):
    from synth_assets.fake_openai import FakeSettings
    from synth_assets_tests.fake_server import running_fake_openai
    from synth_assets_tests.test_llm_generation import API_KEY, write_llm_task

    with running_fake_openai(FakeSettings(batch_delay_s=0.2)) as server:
        write_llm_task(data_dir, server.base_url)
        task_file = data_dir / "tasks" / "home" / "task.yaml"
        task_file.write_text(task_file.read_text().replace("backend: openai", "backend: openai-batch"))
        monkeypatch.setenv("FAKE_OPENAI_KEY", API_KEY)
        assert main(["add-batch", "--task", "home", "--wait", "--interval", "0.1"]) == 0
        assert server.stats()["hits"].get("POST /v1/chat/completions", 0) == 0
    out = capsys.readouterr().out
    assert ": submitted (validating)" in out and ": done (completed)" in out and "6/6 stages" in out
    assert main(["poll-batches"]) == 0
    assert "no Batch API jobs are waiting" in capsys.readouterr().out
