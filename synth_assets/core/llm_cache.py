"""Content-addressed store of LLM answers: a paid response is never paid for twice.

Keyed by the request key (hash of model, messages, params, prompt version and request index).
SQLite in WAL mode under ``data/cache/``: each answer is committed the moment it arrives, so a
crash loses at most the requests still in flight, and a re-run, a resume or a backfill of the
partition reads the answer back instead of calling out. Answers that came back from the
endpoint are stored whatever their content (truncated, refused, malformed): they were billed,
and replaying them gives the same rejected rows. Transport failures (429, 500, timeouts) are
not answers and are not stored.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    content TEXT,
    refusal TEXT,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    billing TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class CachedAnswer:
    key: str
    model: str
    content: str | None
    refusal: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    billing: str  # "sync" or "batch": the price it was booked at


class ResponseCache:
    """One SQLite file; safe to share between the threads of one process and between processes."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.execute(SCHEMA)

    def get_many(self, keys: list[str]) -> dict[str, CachedAnswer]:
        found: dict[str, CachedAnswer] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self._con.execute(
                    "SELECT key, model, content, refusal, finish_reason, prompt_tokens, completion_tokens, cost_usd, billing "
                    f"FROM responses WHERE key IN ({marks})",
                    chunk,
                ):
                    found[row[0]] = CachedAnswer(*row)
        return found

    def put(self, answer: CachedAnswer) -> None:
        with self._lock:
            self._con.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    answer.key,
                    answer.model,
                    answer.content,
                    answer.refusal,
                    answer.finish_reason,
                    answer.prompt_tokens,
                    answer.completion_tokens,
                    answer.cost_usd,
                    answer.billing,
                    datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._con.execute("SELECT count(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._con.close()
