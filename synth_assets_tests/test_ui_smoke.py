"""UI smoke test: the real ``dagster dev`` loads the project, runs one batch through GraphQL and stops cleanly.

It starts ``dagster dev`` (webserver, daemon, code server) on 127.0.0.1 in a fresh DAGSTER_HOME
against a small task, asks its GraphQL API for the code location, opens a batch with the project's
own code, launches the ``factory`` job for that partition the way the UI's "Materialize" button
does, and waits for the run to succeed. Shutdown is SIGTERM to the process group, and nothing of
that group may be left alive after the grace period (``synth_assets.dev_server``, shared with ``scripts/ui_screenshots.py``).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from synth_assets.defs.jobs import FACTORY_STAGES
from synth_assets.defs.resources import DATA_DIR_VARIABLE
from synth_assets.dev_server import DevServer, dagster_dev, group_members, log_tail

pytestmark = [
    pytest.mark.slow,  # 70-90 s on the 2-CPU machine here: start, a run of every stage, stop
    pytest.mark.skipif(sys.platform == "win32", reason="process groups and signals are POSIX"),
]

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on Error { message }
    ... on PythonError { stack }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      status
      tags { key value }
      assetMaterializations { assetKey { path } partition }
      eventConnection(afterCursor: null) {
        events { __typename ... on ExecutionStepFailureEvent { stepKey error { message } } }
      }
    }
    ... on Error { message }
  }
}
"""

BACKFILL = """
mutation Backfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

BACKFILL_STATUS = """
query BackfillStatus($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { status }
    ... on Error { message }
  }
}
"""
BACKFILL_RUNNING = {"REQUESTED", "CANCELING", "FAILING"}


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    """A fresh instance: default sqlite storage under the folder, the repository's run queue, no telemetry."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n"
        "  module: dagster._core.run_coordinator\n"
        "  class: QueuedRunCoordinator\n"
        "  config:\n"
        "    max_concurrent_runs: 2\n"
        "telemetry:\n"
        "  enabled: false\n",
        encoding="utf-8",
    )
    return home


def open_refresh_batch(dagster_home: Path, data_dir: Path, monkeypatch) -> str:
    """Register a batch of the ``home`` task and add its partition, as ``add-batch --no-run`` does."""
    import dagster as dg

    from synth_assets.core.batches import key_for_refresh
    from synth_assets.defs.partitions import open_batch
    from synth_assets.defs.resources import FactoryResource

    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    factory = FactoryResource(data_dir=str(data_dir))
    task = factory.task("home")
    with dg.DagsterInstance.get() as instance:
        return open_batch(instance, factory.lake(), task, key_for_refresh("home", datetime.now(UTC)), task.seeds_path, "refresh")


def launch_factory_run(server: DevServer, partition: str) -> str:
    params = {
        "selector": {
            "repositoryLocationName": server.location["name"],
            "repositoryName": server.location["repository"],
            "jobName": "factory",
        },
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
    }
    result = server.query(LAUNCH, {"executionParams": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def backfill_and_wait(server: DevServer, partitions: list[str], timeout: float) -> str:
    """Launch a backfill of the factory over ``partitions`` as the UI does, let the daemon run it, return its status."""
    params = {
        "selector": {
            "partitionSetName": "factory_partition_set",
            "repositorySelector": {
                "repositoryLocationName": server.location["name"],
                "repositoryName": server.location["repository"],
            },
        },
        "partitionNames": partitions,
    }
    launched = server.query(BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    deadline = time.monotonic() + timeout
    while True:
        backfill = server.query(BACKFILL_STATUS, {"backfillId": launched["backfillId"]})["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        if backfill["status"] not in BACKFILL_RUNNING or time.monotonic() > deadline:
            return backfill["status"]
        time.sleep(1.0)


def wait_for_run(server: DevServer, run_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = server.query(RUN, {"runId": run_id})["runOrError"]
        assert run["__typename"] == "Run", run
        if run["status"] in TERMINAL or time.monotonic() > deadline:
            return run
        time.sleep(1.0)


def test_dagster_dev_loads_the_factory_runs_and_backfills_a_partition_and_stops_cleanly(
    dagster_home, data_dir, tmp_path, monkeypatch
):
    log = tmp_path / "dagster_dev.log"
    # An RPC in flight at SIGTERM (a sensor tick, say) may hold the code server for this long, inside stop's 60 s.
    env = {DATA_DIR_VARIABLE: str(data_dir), "DAGSTER_GRPC_SHUTDOWN_GRACE_PERIOD": "20"}
    with dagster_dev(dagster_home, env=env, log_path=log, ready_timeout=120) as server:
        assert server.location["repository"] == "__repository__"
        assert set(FACTORY_STAGES) | {"finetune_job"} <= set(server.location["assets"])
        assert {server.location["groups"][stage] for stage in FACTORY_STAGES} == {"factory"}
        assert "factory" in server.location["jobs"]

        partition = open_refresh_batch(dagster_home, data_dir, monkeypatch)
        run_id = launch_factory_run(server, partition)
        run = wait_for_run(server, run_id, timeout=180)

        failures = [event for event in run["eventConnection"]["events"] if event["__typename"] == "ExecutionStepFailureEvent"]
        assert run["status"] == "SUCCESS", f"run {run_id} is {run['status']}: {failures}\n{log_tail(log)}"
        assert {"key": "dagster/partition", "value": partition} in run["tags"]
        materialized = {("/".join(event["assetKey"]["path"]), event["partition"]) for event in run["assetMaterializations"]}
        assert materialized == {(stage, partition) for stage in FACTORY_STAGES}
        assert (data_dir / "lake" / "heldout_eval" / f"{partition}.parquet").exists()

        # Rebuilding the version through a UI backfill (the daemon runs it) reproduces it exactly.
        manifest = data_dir / "lake" / "training_set" / f"{partition}.json"
        version_hash = json.loads(manifest.read_text())["content_hash"]
        written = manifest.stat().st_mtime_ns
        assert backfill_and_wait(server, [partition], timeout=240) in {"COMPLETED", "COMPLETED_SUCCESS"}, log_tail(log)
        assert manifest.stat().st_mtime_ns > written, "the backfill rebuilt the version"
        assert json.loads(manifest.read_text())["content_hash"] == version_hash

    assert server.killed == [], f"processes left after SIGTERM had to be killed: {server.killed}\n{log_tail(log)}"
    assert server.process.returncode == 0, log_tail(log)
    assert group_members(server.process.pid) == []
    assert "Dagster services shut down." in log.read_text(encoding="utf-8", errors="replace")
