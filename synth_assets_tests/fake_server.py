"""Runs the fake OpenAI server for a test: a real uvicorn on a free local port, in a thread.

    with running_fake_openai(FakeSettings(latency_ms=50)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        server.set_faults(rate_limit={"first": 2, "retry_after": 0.05})
        ...
        assert server.stats()["chat"]["rate_limit"] == 2

A pytest fixture is three lines: ``with running_fake_openai() as server: yield server``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from synth_assets.fake_openai import FakeSettings, create_app


class FakeOpenAIServer:
    """Handle on a running fake server: its URLs and its control endpoints."""

    def __init__(self, root_url: str):
        self.root_url = root_url
        self.base_url = f"{root_url}/v1"

    def set_faults(self, **faults: dict[str, Any]) -> dict[str, Any]:
        """Replace the active faults, e.g. ``set_faults(server_error={"every": 5})``; none clears them."""
        return self._call("POST", "/_control/faults", faults)["faults"]

    def stats(self) -> dict[str, Any]:
        """Hits per endpoint, chat and batch-item outcomes, peak concurrency, active faults."""
        return self._call("GET", "/_control/stats")

    def reset(self) -> None:
        """Back to the start state: the settings' faults, zero counters, no files or batches."""
        self._call("POST", "/_control/reset")

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.root_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.load(response)
        except urllib.error.HTTPError as refused:
            # A typo in a fault name is a 422 with the reason; surface it, not a bare status code.
            raise ValueError(f"fake server refused {method} {path}: {refused.read().decode()}") from None


@contextmanager
def running_fake_openai(settings: FakeSettings | None = None, start_timeout_s: float = 10.0) -> Iterator[FakeOpenAIServer]:
    """Serve ``create_app(settings)`` on 127.0.0.1 until the block ends, then stop it cleanly."""
    # Binding port 0 here and handing the socket over leaves no window for another process to take it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"fake-openai-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the fake OpenAI server did not start on port {port}")
            time.sleep(0.01)
        yield FakeOpenAIServer(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
