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
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from synth_assets.fake_openai import FakeSettings, serving_in_background


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
    """Serve ``create_app(settings)`` on a free 127.0.0.1 port until the block ends, then stop it cleanly."""
    with serving_in_background(settings, start_timeout_s=start_timeout_s) as root_url:
        yield FakeOpenAIServer(root_url)
