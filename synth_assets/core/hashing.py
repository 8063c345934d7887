"""The one place that turns content into stable identifiers and derives random seeds.

Python's built-in ``hash()`` is salted per process, so it can never key a cache, name a row or
seed a random draw that must be the same tomorrow. Everything here is sha256 over a canonical
JSON encoding.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def _encode_path(value: Any) -> str:
    # Only values with a stable text form may be hashed; anything else (a generator, an object
    # whose str() holds a memory address) would give a different hash in every process.
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"cannot hash {type(value).__name__} stably; pass lists, dicts, strings or numbers")


# One encoder for every call: json.dumps with options would build a new one each time.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=_encode_path, ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON: sorted keys, no whitespace, UTF-8 text kept as it is."""
    return _CANONICAL.encode(value)


def stable_hash(*parts: Any, length: int = 16) -> str:
    """Hex digest of ``parts`` encoded as canonical JSON (sorted keys, no whitespace)."""
    return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()[:length]


def derive_seed(*parts: Any) -> int:
    """A 32-bit random seed derived from (task, batch, stage, ...) so every draw is reproducible."""
    return int(stable_hash(*parts, length=8), 16)


def file_sha256(path: Path | str) -> str:
    """sha256 of a file's bytes; ``path`` may also be a ``UPath`` in an object store (the lake on S3)."""
    digest = hashlib.sha256()
    with (path if hasattr(path, "open") else Path(path)).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
