"""Run ``dagster dev`` in the background, wait until its GraphQL API serves the code location, stop it cleanly.

Shared by the UI smoke test (``synth_assets_tests/test_ui_smoke.py``) and ``scripts/ui_screenshots.py``::

    with dagster_dev(dagster_home, log_path=home / "dagster_dev.log") as server:
        server.location["assets"]          # asset keys of the loaded code location
        server.query("{ version }")        # any GraphQL query

``daemon=False`` starts only the webserver ``dagster dev`` would start (``dagster-webserver``, same
workspace and instance): the UI without the daemon, so no sensor, schedule or automation tick
launches a run on the instance, e.g. while screenshots of a user's instance are taken.

Two things make a background ``dagster dev`` hard to stop, and both are handled here:

* ``dagster dev`` maps SIGTERM onto its SIGINT handler, and a process started in the background by
  a non-interactive shell (``make test &``, CI runners) inherits SIGINT *ignored*, so it would
  ignore SIGTERM as well. The child resets SIGINT to its default before ``dagster dev`` starts.
* It spawns the webserver, the daemon, code servers and run workers. It runs in its own session
  (process group), which is signalled as a whole; whatever is still alive after the grace period is
  killed, and :func:`stop` reports it by pid and command.

The grace period (60 s) is not arbitrary: a code server that is asked to stop first lets the RPCs
in flight finish for up to ``DAGSTER_GRPC_SHUTDOWN_GRACE_PERIOD`` seconds (Dagster's default is 60),
and one whose parent is gone stops on its own after its 30-45 s heartbeat timeout. Usually
everything is gone within a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from synth_assets.defs.resources import PROJECT_ROOT

WORKSPACE = PROJECT_ROOT / "workspace.yaml"
LOCATION = "synth_assets"

# Runs in the child, then execs ``dagster dev``: SIG_IGN would survive the exec (and Python would keep it),
# SIG_DFL lets ``dagster dev`` install its KeyboardInterrupt handler, which its SIGTERM handler is.
_EXEC_WITH_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)

LOCATION_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation {
            repositories { name jobs { name } assetNodes { assetKey { path } groupName } }
          }
          ... on PythonError { message stack }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


class DevServerError(RuntimeError):
    """``dagster dev`` did not come up, its code location failed to load, or a query failed."""


def executable(name: str = "dagster") -> str:
    """A command of the running interpreter's environment (``.venv/bin/dagster``), not whatever is on PATH."""
    return str(Path(sys.executable).with_name(name))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 30.0) -> dict:
    """POST one GraphQL query and return its ``data``; GraphQL errors raise :class:`DevServerError`."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise DevServerError(f"GraphQL errors from {url}: {answer['errors']}")
    return answer["data"]


def log_tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc; on other systems, the leader if it exists."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after the last ")".
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return sorted(members)


def command_line(pid: int) -> str:
    """``pid: the command`` from /proc, so a process left behind can be named; the bare pid where that is unknown."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return str(pid)
    return f"{pid}: {' '.join(part.decode(errors='replace') for part in argv if part)[:300]}"


@dataclass
class DevServer:
    process: subprocess.Popen
    host: str
    port: int
    log_path: Path | None = None
    name: str = "dagster dev"
    location: dict = field(default_factory=dict)
    """Set by :func:`wait_for_location`: ``name``, ``repository``, ``assets`` (user strings), ``jobs``, ``groups``."""
    killed: list[str] | None = None
    """Set by :func:`stop`: the processes it had to SIGKILL, as ``pid: command`` (empty after a clean shutdown)."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    def query(self, query: str, variables: dict | None = None, timeout: float = 30.0) -> dict:
        return graphql(self.graphql_url, query, variables, timeout)


def start(
    dagster_home: Path,
    *,
    env: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    workspace: Path = WORKSPACE,
    log_path: Path | None = None,
    daemon: bool = True,
) -> DevServer:
    """Start ``dagster dev`` on ``dagster_home`` (also its working directory) in a new session.

    ``env`` is added to this process's environment. Output goes to ``log_path`` (or is discarded).
    ``daemon=False``: only its webserver, no daemon (see the module docstring).
    """
    port = port or free_port(host)
    command = [executable("dagster"), "dev"] if daemon else [executable("dagster-webserver")]
    command += ["-w", str(workspace), "-h", host, "-p", str(port)]
    environment = {**os.environ, **(env or {}), "DAGSTER_HOME": str(dagster_home)}
    output = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the child holds it
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", _EXEC_WITH_DEFAULT_SIGINT, *command],
            cwd=dagster_home,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log_path:
            output.close()
    return DevServer(process, host, port, log_path, "dagster dev" if daemon else "dagster-webserver")


def wait_for_location(server: DevServer, name: str = LOCATION, timeout: float = 120.0, interval: float = 0.5) -> dict:
    """Poll GraphQL until code location ``name`` is loaded; return (and keep on ``server``) what it holds.

    Raises :class:`DevServerError` when ``dagster dev`` exits, the location fails to load, or time runs out.
    """
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise DevServerError(f"{server.name} exited with {server.process.returncode}:\n{log_tail(server.log_path)}")
        try:
            data = server.query(LOCATION_QUERY, timeout=10.0)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(interval)
            continue
        workspace = data["workspaceOrError"]
        if workspace["__typename"] != "Workspace":
            raise DevServerError(f"workspace failed to load: {workspace.get('message')}")
        entry = next((entry for entry in workspace["locationEntries"] if entry["name"] == name), None)
        if entry is None:
            raise DevServerError(f"no code location {name!r}; found {[e['name'] for e in workspace['locationEntries']]}")
        loaded = entry["locationOrLoadError"]
        if entry["loadStatus"] == "LOADED" and loaded is not None:
            if loaded["__typename"] != "RepositoryLocation":
                raise DevServerError(f"code location {name!r} failed to load: {loaded.get('message')}\n{loaded.get('stack')}")
            repository = loaded["repositories"][0]
            server.location = {
                "name": name,
                "repository": repository["name"],
                "assets": sorted("/".join(node["assetKey"]["path"]) for node in repository["assetNodes"]),
                "groups": {"/".join(node["assetKey"]["path"]): node["groupName"] for node in repository["assetNodes"]},
                "jobs": sorted(job["name"] for job in repository["jobs"]),
            }
            return server.location
        last = f"location {name!r} is {entry['loadStatus']}"
        time.sleep(interval)
    raise DevServerError(f"{server.name} at {server.url} not ready after {timeout:.0f}s ({last}):\n{log_tail(server.log_path)}")


def stop(server: DevServer, timeout: float = 60.0) -> list[str]:
    """SIGTERM the process group, wait up to ``timeout`` s for it to empty, then SIGKILL what is left.

    Returns the processes that had to be killed as ``pid: command`` (empty after a clean shutdown).
    """
    pgid = server.process.pid  # the session leader: start_new_session makes its pid the group id
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is None:
            with suppress(subprocess.TimeoutExpired):
                server.process.wait(timeout=0.2)
        elif not group_members(pgid):  # the leader is gone; code servers and run workers may still be exiting
            server.killed = []
            return server.killed
        else:
            time.sleep(0.2)
    server.killed = [command_line(pid) for pid in group_members(pgid)]
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    server.process.wait()
    return server.killed


@contextmanager
def dagster_dev(
    dagster_home: Path,
    *,
    env: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    workspace: Path = WORKSPACE,
    log_path: Path | None = None,
    location: str = LOCATION,
    ready_timeout: float = 120.0,
    stop_timeout: float = 60.0,
    daemon: bool = True,
) -> Iterator[DevServer]:
    """``dagster dev`` running with ``location`` loaded for the block; stopped (never left behind) after it."""
    server = start(dagster_home, env=env, host=host, port=port, workspace=workspace, log_path=log_path, daemon=daemon)
    try:
        wait_for_location(server, location, timeout=ready_timeout)
        yield server
    finally:
        killed = stop(server, timeout=stop_timeout)
        if killed:
            print(f"{server.name} did not stop within {stop_timeout:.0f}s; killed {killed}", file=sys.stderr)
