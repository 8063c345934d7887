"""Rebuilding past versions (a backfill): identical when nothing changed, no LLM calls, the change named when it did."""

from __future__ import annotations

import yaml

from synth_assets.cli import main
from synth_assets_tests.conftest import SEEDS, write_csv
from synth_assets_tests.fake_server import running_fake_openai
from synth_assets_tests.test_llm_generation import API_KEY, write_llm_task

CHAT = "POST /v1/chat/completions"


def test_rebuilding_versions_reproduces_them_without_llm_calls_and_names_what_changed(
    home,
    data_dir,
    tmp_path,
    monkeypatch,
    capsys,
):
    with running_fake_openai() as server:
        write_llm_task(data_dir, server.base_url)
        monkeypatch.setenv("FAKE_OPENAI_KEY", API_KEY)
        for number in (1, 2):
            rows = [(f"{text} please {number}", label) for label, texts in SEEDS.items() for text in texts[:3]]
            assert main(["add-batch", "--task", "home", "--file", str(write_csv(tmp_path / f"seeds_{number}.csv", rows))]) == 0
        calls = server.stats()["hits"][CHAT]
        capsys.readouterr()

        assert main(["rebuild", "--task", "home"]) == 0
        out = capsys.readouterr().out
        assert out.count("identical: content hash") == 2 and "rebuilt 2 version(s): 2 identical, 0 changed" in out
        assert server.stats()["hits"][CHAT] == calls, "every answer comes from the cache"
        assert "requests, " in out and "answered from the cache" in out

        task_file = data_dir / "tasks" / "home" / "task.yaml"
        config = yaml.safe_load(task_file.read_text())
        config["mix"] = {"synthetic_share": 0.5, "do_no_harm": False}
        task_file.write_text(yaml.safe_dump(config))
        batches = [line.split()[2] for line in out.splitlines() if line.startswith("[")]
        assert main(["rebuild", "--task", "home", "--from", batches[-1].rstrip(":")]) == 0
        out = capsys.readouterr().out
        assert "rebuilt 1 version(s): 0 identical, 1 changed" in out
        # A new weighting of the same rows: the hash changes, no row is added or removed.
        assert "0 rows added, 0 removed" in out and "settings changed: synthetic_share_target" in out
        assert server.stats()["hits"][CHAT] == calls


def test_an_unknown_bound_is_named(home, capsys):
    assert main(["rebuild", "--task", "home", "--from", "home-nope"]) == 2
    assert "home-nope is not a batch of task home" in capsys.readouterr().err
