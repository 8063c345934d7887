"""The factory on a PostgreSQL-backed instance (deploy/postgres/dagster.yaml) against a real local server.

The server is PostgreSQL from Debian packages (``/usr/lib/postgresql/<version>/bin``). When it is
missing, the test installs it with apt-get if it runs as root (bounded by INSTALL_TIMEOUT seconds)
and is skipped, with the reason, when that is not possible. Each run makes a throwaway cluster in a
temporary folder, on a free port on 127.0.0.1 with its socket in that folder, as the ``postgres``
system user when the test runs as root (the server refuses to run as root), and stops it and
deletes it afterwards, whatever happened.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from synth_assets.defs.jobs import FACTORY_STAGES
from synth_assets.defs.partitions import BATCHES
from synth_assets_tests.factory_harness import build_factory

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PG_INSTANCE_CONFIG = PROJECT_ROOT / "deploy" / "postgres" / "dagster.yaml"
INSTALL_TIMEOUT = 300  # seconds for apt-get update + install, all told
SERVER_USER = "postgres"  # the system user the Debian package creates
DB_USER = "synth_assets"
DB_NAME = "synth_assets_dagster"


def _server_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb, pg_ctl and postgres."""

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", Path(path).parts[-3]))

    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True):
        bin_dir = Path(initdb).parent
        if all(os.access(bin_dir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bin_dir
    return None


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


def _install_server() -> str | None:
    """apt-get install postgresql as root, within INSTALL_TIMEOUT; None on success, else why not."""
    if os.geteuid() != 0:
        return "the server binaries are missing and installing them needs root (apt-get install postgresql)"
    apt_get = shutil.which("apt-get")
    if not apt_get:
        return "the server binaries are missing and apt-get is not available"
    deadline = time.monotonic() + INSTALL_TIMEOUT
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt_get, "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=60", "postgresql"]
    # The package index may be missing or stale: install, and on failure update the index once and retry.
    steps = [install, [apt_get, "update", "-q", "-o", "DPkg::Lock::Timeout=60"], install]
    reason = "apt-get did not run"
    for step in steps:
        remaining = deadline - time.monotonic()
        if remaining <= 1:
            return f"apt-get did not finish within {INSTALL_TIMEOUT} s ({reason})"
        try:
            done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=remaining)
        except subprocess.TimeoutExpired:
            return f"`{shlex.join(step[:2])}` did not finish within {INSTALL_TIMEOUT} s"
        if done.returncode == 0 and step is install:
            _stop_package_clusters()
            return None if _server_bin_dir() else "apt-get installed postgresql but no server binaries were found"
        if done.returncode != 0:
            reason = f"`{shlex.join(step[:2])}` exited {done.returncode}: {_tail(done.stderr or done.stdout)}"
    return reason


def _stop_package_clusters() -> None:
    """Stop the ``main`` cluster the package's install may have started (only called right after installing)."""
    if not shutil.which("pg_lsclusters"):
        return
    listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, timeout=30)
    for line in listing.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "online":
            subprocess.run(["pg_ctlcluster", fields[0], fields[1], "stop"], capture_output=True, timeout=60)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LocalPostgres:
    """A running throwaway cluster and how to reach it."""

    host: str
    port: int
    user: str
    password: str
    db_name: str

    def instance_env(self) -> dict[str, str]:
        """The variables deploy/postgres/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db_name,
        }

    def connect(self, db_name: str | None = None):
        import psycopg2

        return psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=db_name or self.db_name
        )


def _as_server_user(command: list[str]) -> list[str]:
    """The command as the ``postgres`` user when we are root (the server refuses to run as root)."""
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser"):
        return ["runuser", "-u", SERVER_USER, "--", *command]
    return ["su", "-s", "/bin/sh", SERVER_USER, "-c", shlex.join(command)]


def _run(command: list[str], what: str, timeout: float, cwd: Path) -> None:
    done = subprocess.run(_as_server_user(command), capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {_tail(done.stderr or done.stdout, 10)}")


def _stop(bin_dir: Path, data: Path, root: Path) -> None:
    """pg_ctl stop; if that fails, signal the postmaster this test started (its pid file), then wait."""
    with contextlib.suppress(Exception):
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"], "pg_ctl stop", 90, root)
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return
    with contextlib.suppress(Exception):
        pid = int(pid_file.read_text().splitlines()[0])
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            os.kill(pid, sig)
            for _ in range(50):
                os.kill(pid, 0)  # raises once the process is gone
                time.sleep(0.1)


@pytest.fixture
def postgres_server() -> Iterator[LocalPostgres]:
    pytest.importorskip("dagster_postgres", reason="dagster-postgres is not installed: pip install -e '.[postgres]'")
    bin_dir = _server_bin_dir()
    if bin_dir is None:
        reason = _install_server()
        bin_dir = _server_bin_dir()
        if bin_dir is None:
            pytest.skip(f"PostgreSQL server not installable here: {reason}")
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"PostgreSQL server not usable here: running as root and there is no {SERVER_USER!r} user to run it as")

    # Under /tmp (short: a unix socket path is limited to ~100 bytes) and owned by the server's user.
    root = Path(tempfile.mkdtemp(prefix="synth-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    password = secrets.token_hex(16)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    if os.geteuid() == 0:
        for path in (root, sockets, pwfile):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    started = False
    try:
        _run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", DB_USER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            "initdb", 120, root,
        )  # fmt: skip
        port = _free_port()
        # durability off: the cluster is thrown away after the test
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off -c synchronous_commit=off"
        options += " -c full_page_writes=off"
        started = True
        _run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "-t", "60", "start"],
            "pg_ctl start", 90, root,
        )  # fmt: skip
        server = LocalPostgres("127.0.0.1", port, DB_USER, password, DB_NAME)
        with contextlib.closing(server.connect("postgres")) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {DB_NAME}")
        yield server
    finally:
        if started:
            _stop(bin_dir, data, root)
        shutil.rmtree(root, ignore_errors=True)


def _query(server: LocalPostgres, sql: str, *params) -> list[tuple]:
    with contextlib.closing(server.connect()) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_factory_runs_on_a_postgres_instance(postgres_server, data_dir, monkeypatch, tmp_path):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PG_INSTANCE_CONFIG, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in postgres_server.instance_env().items():
        monkeypatch.setenv(name, value)

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        factory = build_factory(data_dir, monkeypatch, instance)
        key = factory.open("b1")
        result = factory.run(key)
        assert result.success, [event.message for event in result.all_events if event.is_failure]
        run_id = result.run_id

    # A new instance from the same file sees the run, the materializations and the partition:
    # the state is in the database, not in the process or under DAGSTER_HOME.
    with dg.DagsterInstance.get() as again:
        assert again.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        assert again.get_dynamic_partitions(BATCHES) == [key]
        for stage in FACTORY_STAGES:
            event = again.get_latest_materialization_event(dg.AssetKey(stage))
            assert event is not None and event.run_id == run_id and event.asset_materialization.partition == key

    assert _query(postgres_server, "SELECT status FROM runs WHERE run_id = %s", run_id) == [("SUCCESS",)]
    [(events,)] = _query(postgres_server, "SELECT count(*) FROM event_logs WHERE run_id = %s", run_id)
    assert events > 20
    materialized = _query(
        postgres_server,
        "SELECT DISTINCT asset_key, partition FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        run_id,
    )
    assert sorted(partition for _, partition in materialized) == [key] * len(FACTORY_STAGES)
    assert _query(postgres_server, "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s", BATCHES) == [(key,)]
    assert not list(home.rglob("*.db")), "no SQLite storage may be created next to a postgres instance"
