"""The audit trail: a hash chain that names the first edited, removed, reordered or cut-off line."""

from __future__ import annotations

import hashlib
import json
import multiprocessing

import pandas as pd
import pytest

from synth_assets.core import audit
from synth_assets.core.audit import GENESIS, AuditError, AuditHead, append, head, verify
from synth_assets.core.hashing import canonical_json, file_sha256
from synth_assets_tests.factory_harness import build_factory

ENTRIES = [
    ("generation", "home-b1", {"rows": 48, "table_sha256": "ab" * 32, "cost_usd": 0.0}),
    ("gate_decision", "home-b1", {"accepted": 40, "rejected": 8, "rejects_by_reason": {"near_dup": 8}}),
    ("version_published", "home-b1", {"content_hash": "cd" * 32, "batches_included": ["home-b1"]}),
    ("generation", "home-b2", {"rows": 48, "table_sha256": "ef" * 32, "cost_usd": 0.0}),
    ("gate_decision", "home-b2", {"accepted": 41, "rejected": 7, "rejects_by_reason": {"near_dup": 7}}),
]


@pytest.fixture
def trail(tmp_path):
    path = audit.trail_path(tmp_path / "lake", "home")
    for kind, batch, payload in ENTRIES:
        append(path, kind, batch, payload)
    return path


def _lines(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _write(path, lines: list[str]) -> None:
    path.write_text("".join(lines), encoding="utf-8")


def _edit(path, number: int, change) -> None:
    """Apply ``change`` to the entry on line ``number`` (1-based) and write it back as the writer would."""
    lines = _lines(path)
    entry = json.loads(lines[number - 1])
    change(entry)
    lines[number - 1] = audit.render(entry) + "\n"
    _write(path, lines)


def test_an_intact_trail_verifies_and_its_head_is_the_last_entry(trail):
    result = verify(trail)
    assert result.ok and result.entries == len(ENTRIES)
    assert result.head == head(trail) == AuditHead(4, json.loads(_lines(trail)[-1])["hash"])
    assert result.describe().startswith(f"OK {trail}: 5 entries, chain intact, head 4:")


def test_each_hash_is_sha256_of_the_other_fields_and_chains_to_the_one_before(trail):
    entries = [json.loads(line) for line in _lines(trail)]
    assert [entry["seq"] for entry in entries] == [0, 1, 2, 3, 4]
    assert entries[0]["prev"] == GENESIS
    for before, entry in zip([None, *entries], entries):
        body = {name: value for name, value in entry.items() if name != "hash"}
        assert entry["hash"] == hashlib.sha256(canonical_json(body).encode()).hexdigest()
        assert before is None or entry["prev"] == before["hash"]


def test_editing_a_payload_names_that_line(trail):
    _edit(trail, 3, lambda entry: entry["payload"].update(content_hash="00" * 32))
    result = verify(trail)
    assert not result.ok and (result.problem.line, result.problem.seq) == (3, 2)
    assert "edited: the entry's hash does not match its contents" in result.problem.what
    assert "home-b1" in result.problem.investigate
    assert result.entries == 2 and result.head.seq == 1
    assert "first bad entry at line 3 (seq 2)" in result.describe()


def test_editing_a_hash_names_that_line(trail):
    _edit(trail, 2, lambda entry: entry.update(hash="f" * 64))
    problem = verify(trail).problem
    assert (problem.line, problem.seq) == (2, 1) and problem.what.startswith("edited")


def test_an_entry_rewritten_with_a_recomputed_hash_breaks_the_chain_at_the_next_line(trail):
    def forge(entry):
        entry["payload"]["accepted"] = 48
        entry["hash"] = audit.entry_hash(entry)

    _edit(trail, 2, forge)
    problem = verify(trail).problem
    assert (problem.line, problem.seq) == (3, 2)
    assert problem.what == "chain broken: its prev is not the hash of line 2"
    assert "line 2 was replaced" in problem.investigate


def test_a_whitespace_only_edit_is_an_edit(trail):
    lines = _lines(trail)
    lines[3] = json.dumps(json.loads(lines[3]), indent=None) + "\n"  # same contents, ", " and ": " separators
    _write(trail, lines)
    problem = verify(trail).problem
    assert problem.line == 4 and "not byte for byte what the writer wrote" in problem.what


def test_removing_a_middle_line_names_the_line_after_the_gap(trail):
    lines = _lines(trail)
    _write(trail, lines[:2] + lines[3:])
    result = verify(trail)
    assert (result.problem.line, result.problem.seq) == (3, 3)
    assert result.problem.what == "removed: 1 entry (seq 2) missing before this line"


def test_removing_the_first_line_is_named(trail):
    _write(trail, _lines(trail)[1:])
    problem = verify(trail).problem
    assert (problem.line, problem.seq) == (1, 1) and problem.what.startswith("removed: 1 entry (seq 0)")


def test_removing_the_last_line_is_seen_only_against_the_recorded_head(trail):
    recorded = str(head(trail))  # what the materialization's metadata holds
    _write(trail, _lines(trail)[:-1])
    assert verify(trail).ok, "a chain cut at its end is still a valid chain"
    result = verify(trail, expected_head=recorded)
    assert not result.ok and (result.problem.line, result.problem.seq) == (5, 4)
    expected = f"removed at the end: the trail ends at seq 3, but head {recorded} was recorded (1 entry missing)"
    assert result.problem.what == expected


def test_a_trail_rebuilt_with_new_hashes_does_not_match_the_recorded_head(trail):
    recorded = head(trail)
    _edit(trail, 5, lambda entry: entry["payload"].update(accepted=48) or entry.update(hash=audit.entry_hash(entry)))
    assert verify(trail).ok
    problem = verify(trail, expected_head=recorded).problem
    assert (problem.line, problem.seq) == (5, 4) and problem.what.startswith("rewritten:")


def test_a_head_recorded_earlier_still_matches_a_trail_that_grew(trail):
    recorded = str(head(trail))
    append(trail, "generation", "home-b3", {"rows": 48})
    assert verify(trail, expected_head=recorded).ok


def test_swapping_two_lines_names_the_first_moved_line(trail):
    lines = _lines(trail)
    lines[1], lines[2] = lines[2], lines[1]
    _write(trail, lines)
    problem = verify(trail).problem
    assert (problem.line, problem.seq) == (2, 2)
    assert problem.what == "reordered: seq 2 where seq 1 was expected; seq 1 is further down, at line 3"


def test_a_duplicated_line_is_named(trail):
    lines = _lines(trail)
    _write(trail, lines[:3] + [lines[1]] + lines[3:])
    problem = verify(trail).problem
    assert (problem.line, problem.seq) == (4, 1) and problem.what.startswith("reordered: seq 1 where seq 3 was expected")


def test_a_cut_off_line_is_named_and_nothing_more_is_chained_to_it(trail):
    data = trail.read_bytes()
    trail.write_bytes(data[: len(data) - 40])
    result = verify(trail)
    assert (result.problem.line, result.problem.seq) == (5, None)
    assert result.problem.what == "cut off: the line does not end with a newline"
    assert result.entries == 4
    with pytest.raises(AuditError, match="last line of .* is unreadable .*verify-audit"):
        append(trail, "generation", "home-b3", {"rows": 1})


def test_a_line_that_is_not_json_is_named(trail):
    lines = _lines(trail)
    lines[0] = "{not json\n"
    _write(trail, lines)
    problem = verify(trail).problem
    assert problem.line == 1 and problem.what.startswith("unreadable: the line is not JSON")


def test_a_deleted_trail_is_caught_by_the_recorded_head(trail):
    recorded = head(trail)
    trail.unlink()
    assert verify(trail).ok and verify(trail).entries == 0
    result = verify(trail, expected_head=recorded)
    assert not result.ok and "the trail does not exist, but head" in result.problem.what


def test_unknown_kinds_and_table_sized_payloads_are_refused(tmp_path):
    path = tmp_path / "t.jsonl"
    with pytest.raises(ValueError, match="kind 'llm_reply' is not one of"):
        append(path, "llm_reply", "home-b1", {})
    with pytest.raises(ValueError, match="keep tables in the lake"):
        append(path, "generation", "home-b1", {"rows": ["x" * 100] * 1000})
    assert not path.exists() or path.read_bytes() == b""


def test_a_head_round_trips_through_its_metadata_text():
    full = AuditHead(41, "9f2c03aa1b7d4e10" + "0" * 48)
    assert str(full) == "41:9f2c03aa1b7d4e10"
    assert AuditHead.parse(str(full)).matches(41, full.hash)
    with pytest.raises(ValueError, match="not an audit chain head"):
        AuditHead.parse("41-9f2c")


def _append_from_worker(path: str, worker: int, count: int) -> None:
    for number in range(count):
        append(path, "generation", f"home-w{worker}", {"worker": worker, "number": number})


def test_concurrent_appends_from_several_processes_form_one_chain(tmp_path):
    path = tmp_path / "lake" / "_audit" / "home.jsonl"
    workers, each = 4, 25
    processes = [multiprocessing.Process(target=_append_from_worker, args=(str(path), worker, each)) for worker in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    result = verify(path)
    assert result.ok and result.entries == workers * each
    written = {(entry["payload"]["worker"], entry["payload"]["number"]) for entry in audit.read_entries(path)}
    assert written == {(worker, number) for worker in range(workers) for number in range(each)}


def test_an_llm_batch_yields_one_request_record_per_request_with_a_digest_of_its_answer(data_dir, seed_rows, tmp_path):
    from synth_assets.core.generation import LlmSession, generate_batch
    from synth_assets.core.lake import Lake
    from synth_assets.core.llm_cache import ResponseCache
    from synth_assets.defs.publishing import record_llm_requests
    from synth_assets.fake_openai import FakeSettings
    from synth_assets_tests.fake_server import running_fake_openai
    from synth_assets_tests.test_llm_generation import API_KEY, write_llm_task

    cache = ResponseCache(tmp_path / "cache" / "llm.sqlite")
    with running_fake_openai(FakeSettings()) as server:
        task = write_llm_task(data_dir, server.base_url, concurrency=1, refine_max_share=0.5)
        server.set_faults(truncate={"first": 1})
        result = generate_batch(task, "home-b1", seed_rows, LlmSession(cache=cache, api_key=API_KEY, replay=False))
    cache.close()
    records = result.requests
    assert [record["request_key"] for record in records] == list(dict.fromkeys(result.table["request_key"]))
    refined = [record for record in records if "refines" in record]
    assert len(refined) == 1 and refined[0]["refines"] in {record["request_key"] for record in records}
    assert {record["finish_reason"] for record in records} == {"stop", "length"}
    assert all(len(record["response_sha256"]) == 64 and record["outcome"] == "answered" for record in records)
    assert sum(record["cost_usd"] for record in records) == pytest.approx(result.table["cost_usd"].sum())

    lake = Lake(tmp_path / "lake")
    record_llm_requests(lake, "home-b1", records)
    entries = list(audit.read_entries(audit.trail_path(lake.local_root, "home")))
    assert [entry["kind"] for entry in entries] == ["llm_request"] * len(records)
    assert verify(audit.trail_path(lake.local_root, "home")).ok
    assert API_KEY not in audit.trail_path(lake.local_root, "home").read_text()


# The trail written by the factory itself.


def test_a_factory_run_writes_its_decisions_to_the_trail_and_records_the_head(data_dir, monkeypatch, instance):
    import dagster as dg

    from synth_assets.defs.publishing import AUDIT_HEAD, recorded_audit_head

    factory = build_factory(data_dir, monkeypatch, instance)
    key = factory.open("b1")
    assert factory.run(key).success
    path = audit.trail_path(factory.lake.local_root, "home")
    entries = list(audit.read_entries(path))
    assert [entry["kind"] for entry in entries] == ["generation", "gate_decision", "version_published"]
    assert {entry["batch"] for entry in entries} == {key}
    generation, gate, published = (entry["payload"] for entry in entries)
    assert generation["table_sha256"] == file_sha256(factory.lake.table_path("generated", key))
    assert generation["attempts"] == generation["table_rows"] == 48 and generation["llm_requests"] == 0
    verdict = factory.lake.read_json("gated", key)
    assert gate["accepted"] == verdict["accepted"] and gate["passed"] == verdict["passed"]
    assert len(gate["decisions_sha256"]) == 64
    assert published["content_hash"] == factory.lake.read_json("training_set", key)["content_hash"]
    assert published["batches_included"] == [key]

    def recorded(asset: str) -> str:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        return event.asset_materialization.metadata[AUDIT_HEAD].value

    assert [recorded(asset) for asset in ("generated", "gated", "training_set")] == [
        str(AuditHead(entry["seq"], entry["hash"])) for entry in entries
    ]
    assert recorded("training_set") == str(head(path)) == str(recorded_audit_head(instance, factory.lake, "home"))
    assert verify(path, expected_head=recorded("training_set")).ok


def test_review_ingestion_is_an_entry_and_rebuilding_a_partition_appends(data_dir, monkeypatch, instance, tmp_path):
    from synth_assets.defs.review import ingest_review

    factory = build_factory(data_dir, monkeypatch, instance)
    key = factory.open("b1")
    assert factory.run(key).success
    sheet = pd.read_csv(factory.lake.csv_path("review_requests", key), dtype=str, keep_default_na=False)
    sheet["verdict"] = "accept"
    sheet.to_csv(tmp_path / "filled.csv", index=False)
    record = ingest_review(factory.instance, factory.lake, factory.resource.task("home"), key, tmp_path / "filled.csv")
    path = audit.trail_path(factory.lake.local_root, "home")
    review = list(audit.read_entries(path))[-1]
    assert review["kind"] == "review_verdict" and review["payload"]["accepted"] == 20
    assert review["payload"]["sheet_sha256"] == file_sha256(tmp_path / "filled.csv")
    assert record["audit_chain_head"] == str(head(path))
    assert factory.run(key).success  # the trail is a history: a rebuild is recorded again, never rewritten
    kinds = [entry["kind"] for entry in audit.read_entries(path)]
    built = ["generation", "gate_decision", "version_published"]
    assert kinds == [*built, "review_verdict", *built]
    assert verify(path).ok


def test_verify_audit_command_checks_the_chain_and_the_recorded_head(tmp_path, data_dir, monkeypatch, capsys):
    from synth_assets.cli import main
    from synth_assets.defs.resources import DATA_DIR_VARIABLE

    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(data_dir))
    monkeypatch.chdir(tmp_path)
    assert main(["add-batch", "--task", "home"]) == 0
    capsys.readouterr()
    assert main(["verify-audit"]) == 0
    out = capsys.readouterr().out
    assert "home: OK" in out and "3 entries, chain intact" in out and "the head Dagster recorded last (2:" in out

    path = audit.trail_path(data_dir / "lake", "home")
    _write(path, _lines(path)[:-1])
    assert main(["verify-audit", "--task", "home"]) == 1
    out = capsys.readouterr().out
    assert "first bad entry at line 3 (seq 2): removed at the end" in out
    assert main(["verify-audit", "--task", "home", "--chain-only"]) == 0
