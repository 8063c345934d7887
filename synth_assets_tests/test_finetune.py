"""The fine-tuning handoff, with the real ``openai`` client against the fake server and real Dagster for the asset."""

from __future__ import annotations

import json

import dagster as dg
import openai
import pandas as pd
import pytest
import yaml
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

from synth_assets.cli import main
from synth_assets.core.export import finetune_jsonl
from synth_assets.core.finetune import FinetuneError, check_training_file, hand_off, load_jobs, record_path, refresh
from synth_assets.core.lake import Lake
from synth_assets.core.task_config import FinetuneConfig, TaskConfigError, load_task
from synth_assets.defs.jobs import FACTORY_STAGES
from synth_assets.defs.resources import DATA_DIR_VARIABLE
from synth_assets.fake_openai import FakeSettings
from synth_assets_tests.conftest import SEEDS
from synth_assets_tests.factory_harness import build_factory
from synth_assets_tests.fake_server import running_fake_openai

API_KEY = "sk-finetune-test-never-recorded-0123456789"
KEY_VARIABLE = "FAKE_FINETUNE_KEY"
BASE_MODEL = "gpt-4o-mini-2024-07-18"
VERSION = "home-v1"
CONTENT_HASH = "a" * 64
STATUSES_TO_SUCCESS = ["queued", "running", "succeeded"]  # one per retrieve after validating_files
UP_TO_TRAINING_SET = [dg.AssetKey(stage) for stage in FACTORY_STAGES[: FACTORY_STAGES.index("training_set") + 1]]


@pytest.fixture
def settings(server) -> FinetuneConfig:
    return FinetuneConfig(model=BASE_MODEL, base_url=server.base_url, api_key_env=KEY_VARIABLE, suffix="home", n_epochs=2)


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture
def jsonl(task) -> str:
    """The task's 32 seeds in the export format ``training_set`` writes."""
    table = pd.DataFrame([(text, label) for label, texts in SEEDS.items() for text in texts], columns=["text", "label"])
    return finetune_jsonl(table, task)


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)


def _posts(server) -> dict[str, int]:
    hits = server.stats()["hits"]
    return {path: hits.get(f"POST {path}", 0) for path in ("/v1/files", "/v1/fine_tuning/jobs")}


def _start_job(client, content: str | bytes, purpose: str = "fine-tune") -> FineTuningJob:
    uploaded = client.files.create(file=("train.jsonl", content), purpose=purpose)
    return client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=uploaded.id)


# The fake server's fine-tuning API, as the real client sees it.


def test_fake_jobs_parse_strictly_and_move_one_status_per_retrieve(client, jsonl):
    job = _start_job(client, jsonl)
    statuses = [job.status] + [client.fine_tuning.jobs.retrieve(job.id).status for _ in STATUSES_TO_SUCCESS]
    raw = client.fine_tuning.jobs.with_raw_response.retrieve(job.id).http_response.json()

    assert statuses == ["validating_files", *STATUSES_TO_SUCCESS]
    done = FineTuningJob.model_validate(raw)  # every field the client's type requires, with valid values
    assert done.fine_tuned_model.startswith(f"ft:{BASE_MODEL}:") and done.trained_tokens > 0 and done.finished_at
    assert done.hyperparameters.n_epochs == 3, "auto epochs resolve to a number"


def test_fake_lists_jobs_and_events_newest_first_with_cursor_pages(client, jsonl):
    first, second = _start_job(client, jsonl), _start_job(client, jsonl)
    for _ in STATUSES_TO_SUCCESS:
        client.fine_tuning.jobs.retrieve(first.id)

    page = client.fine_tuning.jobs.list(limit=1)
    events = client.fine_tuning.jobs.list_events(first.id, limit=50)

    assert [job.id for job in page.data] == [second.id] and page.has_more
    assert [job.id for job in client.fine_tuning.jobs.list(after=second.id).data] == [first.id]
    assert [job.id for job in client.fine_tuning.jobs.list()] == [second.id, first.id]
    assert all(FineTuningJobEvent.model_validate(event.to_dict()) for event in events.data)
    assert events.data[0].message == "The job has successfully completed"
    assert events.data[-1].message == f"Created fine-tuning job: {first.id}"


def test_fake_fails_an_invalid_training_file_at_validation_with_the_line(client, jsonl):
    lines = jsonl.splitlines()
    lines[2] = json.dumps({"messages": [{"role": "user", "content": "only a question"}]})
    job = _start_job(client, "\n".join(lines) + "\n")

    failed = client.fine_tuning.jobs.retrieve(job.id)

    assert failed.status == "failed" and failed.fine_tuned_model is None
    assert failed.error.code == "invalid_training_file" and failed.error.param == "training_file"
    assert failed.error.line == 3 and "Line 3: an example needs at least one assistant message" in failed.error.message


def test_fake_needs_ten_examples_and_a_fine_tune_file(client, jsonl):
    too_few = _start_job(client, "".join(jsonl.splitlines(keepends=True)[:9]))
    assert client.fine_tuning.jobs.retrieve(too_few.id).error.code == "invalid_n_examples"
    with pytest.raises(openai.BadRequestError, match="fine-tuning needs purpose 'fine-tune'"):
        _start_job(client, jsonl, purpose="batch")
    with pytest.raises(openai.BadRequestError, match="Invalid value for 'purpose'"):
        client.files.create(file=("train.jsonl", jsonl), purpose="training")


def test_fake_cancels_open_jobs_only(client, jsonl):
    job = _start_job(client, jsonl)
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.cancel(job.id)


def test_fake_fine_tuning_failure_fault_fails_the_chosen_jobs_while_running(server, client, jsonl):
    server.set_faults(fine_tuning_failure={"first": 1})
    failing, passing = _start_job(client, jsonl), _start_job(client, jsonl)

    ends = {job.id: [client.fine_tuning.jobs.retrieve(job.id).status for _ in STATUSES_TO_SUCCESS] for job in (failing, passing)}

    assert ends[failing.id] == ["queued", "running", "failed"] and ends[passing.id] == STATUSES_TO_SUCCESS
    assert client.fine_tuning.jobs.retrieve(failing.id).error.code == "internal_error"
    assert server.stats()["fine_tuning"] == {"internal_error": 1, "succeeded": 1}


def test_fake_serves_files_for_fine_tuning_without_the_batch_api_and_can_turn_fine_tuning_off(jsonl):
    with running_fake_openai(FakeSettings(batch_api=False)) as fine_tuning_only:
        client = openai.OpenAI(base_url=fine_tuning_only.base_url, api_key="test-key", max_retries=0)
        assert _start_job(client, jsonl).status == "validating_files"
        with pytest.raises(openai.NotFoundError):
            client.batches.list()
    with running_fake_openai(FakeSettings(fine_tuning=False)) as batch_only:
        client = openai.OpenAI(base_url=batch_only.base_url, api_key="test-key", max_retries=0)
        with pytest.raises(openai.NotFoundError):
            _start_job(client, jsonl)


# core/finetune.py: check, submit once, refresh.


def test_a_handoff_uploads_starts_and_records_the_job(server, settings, lake, jsonl):
    job, submitted = hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)

    assert submitted and job.status == "validating_files" and job.examples == len(jsonl.splitlines())
    assert load_jobs(lake, VERSION) == [job]
    recorded = json.loads(record_path(lake, VERSION).read_text())["jobs"][0]
    assert recorded["job_id"] == job.job_id and recorded["file_id"] == job.file_id
    assert recorded["content_hash"] == CONTENT_HASH and recorded["model"] == BASE_MODEL
    assert set(recorded) >= {"status", "fine_tuned_model", "error", "created_at", "updated_at"}
    assert _posts(server) == {"/v1/files": 1, "/v1/fine_tuning/jobs": 1}


def test_the_job_is_started_with_the_task_settings(server, client, settings, lake, jsonl):
    job, _ = hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)

    remote = client.fine_tuning.jobs.list().data[0]

    assert remote.id == job.job_id and remote.model == BASE_MODEL and remote.hyperparameters.n_epochs == 2
    assert remote.metadata == {"synth_assets_version": VERSION}
    assert client.files.content(remote.training_file).text == jsonl


def test_handing_off_again_refreshes_the_job_instead_of_submitting_another(server, settings, lake, jsonl):
    first, _ = hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)

    statuses = [hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY) for _ in STATUSES_TO_SUCCESS]

    assert [(job.job_id, submitted) for job, submitted in statuses] == [(first.job_id, False)] * len(STATUSES_TO_SUCCESS)
    assert [job.status for job, _ in statuses] == STATUSES_TO_SUCCESS
    done = load_jobs(lake, VERSION)
    assert len(done) == 1 and done[0].fine_tuned_model.startswith(f"ft:{BASE_MODEL}:org-fake:home:")
    assert done[0].trained_tokens > 0
    assert _posts(server) == {"/v1/files": 1, "/v1/fine_tuning/jobs": 1}


def test_a_finished_job_is_not_asked_for_again(server, settings, lake, jsonl):
    hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)
    for _ in STATUSES_TO_SUCCESS:
        hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)
    asked = server.stats()["hits"]["GET /v1/fine_tuning/jobs/{job_id}"]

    job, submitted = hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)

    assert not submitted and job.status == "succeeded"
    assert server.stats()["hits"]["GET /v1/fine_tuning/jobs/{job_id}"] == asked


def test_a_new_content_hash_or_model_starts_a_new_job_and_keeps_the_old(server, settings, lake, jsonl):
    first, _ = hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)
    rebuilt, rebuilt_submitted = hand_off(settings, VERSION, "b" * 64, jsonl, lake, API_KEY)
    other_model, _ = hand_off(settings.model_copy(update={"model": "gpt-4.1-mini"}), VERSION, "b" * 64, jsonl, lake, API_KEY)

    assert rebuilt_submitted and len({first.job_id, rebuilt.job_id, other_model.job_id}) == 3
    assert [job.job_id for job in load_jobs(lake, VERSION)] == [first.job_id, rebuilt.job_id, other_model.job_id]
    assert _posts(server)["/v1/fine_tuning/jobs"] == 3


def test_an_invalid_line_fails_locally_naming_it_and_uploads_nothing(server, settings, lake, jsonl):
    lines = jsonl.splitlines()
    lines[4] = lines[4][:-1]  # a truncated line

    with pytest.raises(FinetuneError, match=r"home-v1\.jsonl line 5: not valid JSON .*nothing was uploaded"):
        hand_off(settings, VERSION, CONTENT_HASH, "\n".join(lines), lake, API_KEY)
    assert _posts(server) == {"/v1/files": 0, "/v1/fine_tuning/jobs": 0}
    assert load_jobs(lake, VERSION) == []


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ({"prompt": "x", "completion": "y"}, "not a JSON object with a non-empty 'messages' list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "message 1 has no role of system, user, assistant"),
        ({"messages": [{"role": "assistant", "content": None}]}, "message 1 \\(assistant\\) has no text 'content'"),
        ({"messages": [{"role": "user", "content": "x"}]}, "no assistant message"),
    ],
)
def test_the_local_check_names_what_is_wrong_with_a_line(jsonl, line, problem):
    lines = jsonl.splitlines()
    lines[0] = json.dumps(line)
    with pytest.raises(FinetuneError, match=f"train.jsonl line 1: {problem}"):
        check_training_file("\n".join(lines), "train.jsonl")


def test_fewer_than_ten_examples_fail_locally(jsonl):
    with pytest.raises(FinetuneError, match="has 9 example.*at least 10"):
        check_training_file("".join(jsonl.splitlines(keepends=True)[:9]), "train.jsonl")


def test_a_server_side_failure_is_recorded_with_its_error(server, settings, lake, jsonl):
    server.set_faults(fine_tuning_failure={})
    hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)

    statuses = [hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)[0].status for _ in STATUSES_TO_SUCCESS]

    assert statuses == ["queued", "running", "failed"]
    [failed] = load_jobs(lake, VERSION)
    assert failed.error == {"code": "internal_error", "message": "The job failed due to an internal error.", "param": None}
    assert failed.fine_tuned_model is None


def test_a_failed_job_is_submitted_again_only_when_asked(server, settings, lake, jsonl):
    server.set_faults(fine_tuning_failure={"first": 1})
    first, _ = hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)
    for _ in STATUSES_TO_SUCCESS:
        hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)

    kept, kept_submitted = hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)
    retried, retried_submitted = hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY, resubmit_failed=True)

    assert (kept.job_id, kept.status, kept_submitted) == (first.job_id, "failed", False)
    assert retried_submitted and retried.job_id != first.job_id
    assert [job.status for job in load_jobs(lake, VERSION)] == ["failed", "validating_files"]


def test_refresh_updates_open_jobs_without_submitting(server, settings, lake, jsonl):
    hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)

    [job] = refresh(settings, VERSION, lake, API_KEY)

    assert job.status == "queued" and load_jobs(lake, VERSION) == [job]
    assert refresh(settings, "home-never-handed-off", lake, API_KEY) == []
    assert _posts(server) == {"/v1/files": 1, "/v1/fine_tuning/jobs": 1}


def test_a_missing_key_names_the_variable_and_calls_nothing(server, settings, lake, jsonl):
    with pytest.raises(FinetuneError, match=f"the API key variable {KEY_VARIABLE} is not set"):
        hand_off(settings, VERSION, CONTENT_HASH, jsonl, lake, None)
    assert server.stats()["hits"] == {}


def test_an_api_error_names_the_step_and_never_the_key(settings, lake, jsonl):
    # The fake echoes the URL it cannot serve, so a key in it stands for a server echoing the key it refused.
    echoing = settings.model_copy(update={"base_url": f"{settings.base_url}/{API_KEY}"})

    with pytest.raises(FinetuneError, match=r"uploading home-v1\.jsonl at .* failed: Error code: 404") as refused:
        hand_off(echoing, VERSION, CONTENT_HASH, jsonl, lake, API_KEY)

    assert API_KEY not in str(refused.value) and "***" in str(refused.value)


def test_the_finetune_status_command_refreshes_and_prints_the_jobs(server, data_dir, monkeypatch, instance, jsonl, capsys):
    _add_finetune_section(data_dir, server.base_url)
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(data_dir))
    monkeypatch.setenv(KEY_VARIABLE, API_KEY)
    job, _ = hand_off(
        FinetuneConfig(model=BASE_MODEL, base_url=server.base_url, api_key_env=KEY_VARIABLE),
        VERSION,
        CONTENT_HASH,
        jsonl,
        Lake(data_dir / "lake"),
        API_KEY,
    )

    assert main(["finetune-status", VERSION]) == 0
    assert main(["finetune-status", "home-other"]) == 1

    out = capsys.readouterr().out
    assert f"{job.job_id}  queued" in out and f"content {CONTENT_HASH[:12]}" in out
    assert "home-other has no fine-tuning job yet" in out and API_KEY not in out


def test_the_finetune_section_needs_a_model_and_names_unknown_keys(data_dir):
    task_dir = data_dir / "tasks" / "home"
    _add_finetune_section(data_dir, "http://127.0.0.1:9/v1")
    assert load_task(task_dir).finetune.model == BASE_MODEL
    config = yaml.safe_load((task_dir / "task.yaml").read_text())
    config["finetune"] = {"epochs": 2}
    (task_dir / "task.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(TaskConfigError, match=r"finetune\.model: Field required(.|\n)*finetune\.epochs: unknown key"):
        load_task(task_dir)


# The Dagster asset.


@pytest.fixture
def factory(server, data_dir, monkeypatch, instance):
    monkeypatch.setenv(KEY_VARIABLE, API_KEY)
    return build_factory(data_dir, monkeypatch, instance)


def _add_finetune_section(data_dir, base_url: str) -> None:
    task_file = data_dir / "tasks" / "home" / "task.yaml"
    config = yaml.safe_load(task_file.read_text())
    config["finetune"] = {"model": BASE_MODEL, "base_url": base_url, "api_key_env": KEY_VARIABLE, "suffix": "home"}
    task_file.write_text(yaml.safe_dump(config))


def _version_with_training_set(factory) -> str:
    key = factory.open("b1")
    result = factory.defs.resolve_job_def("factory").execute_in_process(
        partition_key=key, instance=factory.instance, asset_selection=UP_TO_TRAINING_SET
    )
    assert result.success
    return key


def _materialize_handoff(factory, key: str) -> dg.ExecuteInProcessResult:
    return factory.defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=key, instance=factory.instance, asset_selection=[dg.AssetKey("finetune_job")], raise_on_error=False
    )


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    [materialization] = result.asset_materializations_for_node("finetune_job")
    return {name: getattr(value, "value", value) for name, value in materialization.metadata.items()}


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return next(event for event in result.all_events if event.is_step_failure).step_failure_data.error.message


def test_the_asset_hands_off_then_refreshes_until_the_fine_tuned_model(server, data_dir, factory):
    _add_finetune_section(data_dir, server.base_url)
    key = _version_with_training_set(factory)

    runs = [_materialize_handoff(factory, key) for _ in range(1 + len(STATUSES_TO_SUCCESS))]

    assert all(run.success for run in runs)
    first, last = _metadata(runs[0]), _metadata(runs[-1])
    manifest = factory.lake.read_json("training_set", key)
    assert first["status"] == "validating_files" and first["base_model"] == BASE_MODEL
    assert first["training_examples"] == manifest["counts"]["rows"] and first["content_hash"] == manifest["content_hash"]
    assert first["record"] == str(record_path(factory.lake, key))
    assert (last["job_id"], last["file_id"]) == (first["job_id"], first["file_id"])
    assert last["status"] == "succeeded" and last["fine_tuned_model"].startswith(f"ft:{BASE_MODEL}:org-fake:home:")
    assert _posts(server) == {"/v1/files": 1, "/v1/fine_tuning/jobs": 1}
    assert API_KEY not in record_path(factory.lake, key).read_text()


def test_the_asset_fails_clearly_when_the_task_has_no_finetune_section(server, factory):
    key = factory.open("b1")  # the section is looked for before anything is read

    result = _materialize_handoff(factory, key)

    assert not result.success
    message = _failure(result)
    assert "task home has no finetune section" in message and "docs/finetuning.md" in message
    assert server.stats()["hits"] == {}


def test_the_asset_fails_with_the_server_error_of_a_failed_job(server, data_dir, factory):
    _add_finetune_section(data_dir, server.base_url)
    key = _version_with_training_set(factory)
    server.set_faults(fine_tuning_failure={})

    results = [_materialize_handoff(factory, key) for _ in range(1 + len(STATUSES_TO_SUCCESS))]

    assert [result.success for result in results] == [True, True, True, False]
    assert "failed: The job failed due to an internal error." in _failure(results[-1])
    assert load_jobs(factory.lake, key)[0].error["code"] == "internal_error"
