"""Content-addressed store of LLM answers: a paid response is never paid for twice.

Keyed by the request key (hash of model, messages, params, prompt version and request index).
SQLite in WAL mode under ``data/cache/`` (:class:`ResponseCache`), or one object per answer in an
object store such as S3 (:class:`ObjectStoreResponseCache`); both are an :class:`AnswerCache` and
:func:`open_response_cache` picks one from the location. Each answer is stored the moment it
arrives, so a crash loses at most the requests still in flight, and a re-run, a resume or a
backfill of the partition reads the answer back instead of calling out. Answers that came back from the
endpoint are stored whatever their content (truncated, refused, malformed): they were billed,
and replaying them gives the same rejected rows. Transport failures (429, 500, timeouts) are
not answers and are not stored.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from synth_assets.core.hashing import canonical_json
from synth_assets.core.lake import LakePath, as_path, is_local

SQLITE_FILE = "llm_responses.sqlite"  # the local cache's file in its folder
OBJECT_PREFIX = "llm"  # the object store cache's answers: <folder>/llm/<key[:2]>/<key>.json

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


class AnswerCache(Protocol):
    """What generation, the LLM judge and the Batch API need of a response cache, whatever stores it."""

    path: LakePath  # where the answers are, for messages

    def get_many(self, keys: list[str]) -> dict[str, CachedAnswer]:
        """The cached answers among ``keys`` (missing keys are simply absent)."""
        ...

    def put(self, answer: CachedAnswer) -> None:
        """Store ``answer`` durably before returning (a later ``get_many`` in any process sees it)."""
        ...

    def close(self) -> None: ...


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


class CacheError(RuntimeError):
    """The cache could not be read (anything but a missing answer: no permission, no bucket, a broken object)."""


class ObjectStoreResponseCache:
    """One JSON object per answer, ``<folder>/llm/<key[:2]>/<key>.json``, in S3 or any fsspec store.

    SQLite cannot live in an object store, and this cache needs none of what it gives: an answer
    is written once with a single PUT (applied whole or not at all), under the key of the request
    it answers, so concurrent writers on any number of machines cannot corrupt it, and the object
    holds only the answer (no write time), so writing a key twice writes the same bytes.
    ``get_many`` fetches every key concurrently (fsspec's asynchronous ``cat``).
    """

    def __init__(self, folder: LakePath | str, storage_options: dict | None = None):
        self.path = as_path(folder, storage_options)
        self._fs = self.path.fs

    def _location(self, key: str) -> str:
        return f"{self.path.path}/{OBJECT_PREFIX}/{key[:2]}/{key}.json"

    def get_many(self, keys: list[str]) -> dict[str, CachedAnswer]:
        if not keys:
            return {}
        locations = {key: self._location(key) for key in keys}
        fetched = self._fs.cat(list(locations.values()), on_error="return")
        found: dict[str, CachedAnswer] = {}
        for key, location in locations.items():
            value = fetched.get(location, FileNotFoundError(location))
            if isinstance(value, FileNotFoundError):
                continue
            if isinstance(value, BaseException):
                raise CacheError(f"cannot read the cached answer {location}: {value!r}") from value
            found[key] = CachedAnswer(**json.loads(value))
        return found

    def put(self, answer: CachedAnswer) -> None:
        self._fs.pipe_file(self._location(answer.key), canonical_json(asdict(answer)).encode("utf-8"))

    def __len__(self) -> int:
        return len(self._fs.find(f"{self.path.path}/{OBJECT_PREFIX}"))

    def close(self) -> None:
        """Nothing to release: every answer is stored when ``put`` returns."""


def open_response_cache(folder: LakePath | str, storage_options: dict | None = None) -> AnswerCache:
    """The cache in ``folder``: SQLite (``<folder>/llm_responses.sqlite``) when it is local, objects when it is a URL."""
    location = as_path(folder, storage_options)
    if is_local(location):
        return ResponseCache(location / SQLITE_FILE)
    return ObjectStoreResponseCache(location)
