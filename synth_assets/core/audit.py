"""An append-only, hash-chained audit trail: what the factory asked, got, decided and published.

One JSON Lines file per task, ``<lake root>/_audit/<task>.jsonl``, one entry per line::

    {"seq":0,"time":"2026-05-04T09:12:01.123456+00:00","kind":"generation","batch":"home-b1",
     "payload":{...},"prev":"0000...0000","hash":"9f2c..."}

``hash`` is the sha256 of the canonical JSON (sorted keys, no whitespace; :func:`canonical_json`)
of the six other fields, and ``prev`` is the hash of the entry before it (:data:`GENESIS` for the
first). Editing, removing or reordering any line therefore breaks the chain at that line, and
:func:`verify` names the first bad one. What the chain alone cannot see is its own last lines cut
off: every Dagster materialization that appends records the head it left (``audit_chain_head``,
``"<seq>:<first 16 hex of hash>"``), and ``verify(path, expected_head=...)`` checks that this
entry is still in the file, unchanged.

The trail is a history, not a state: re-materializing a partition appends new entries and never
rewrites old ones, so a batch built twice appears twice. Writers (Dagster runs in several
processes, sensors, the command line) take an exclusive ``flock`` on the file, read its last entry
and append in one write followed by fsync, so they never interleave lines or fork the chain.

Payloads are small JSON objects (ids, counts, content hashes): never secrets, never whole tables.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from synth_assets.core.hashing import canonical_json

AUDIT_DIR = "_audit"  # lake folder of the trails, one <task>.jsonl each
GENESIS = "0" * 64  # ``prev`` of the first entry
FIELDS = ("seq", "time", "kind", "batch", "payload", "prev", "hash")  # the order lines are written in
KINDS = (
    "llm_request",  # one LLM request of a batch: its key, outcome and a digest of the answer
    "generation",  # a batch's generation attempts: generator, model, rows, table hash, cost
    "gate_decision",  # a batch's gate: accepted / rejected by reason, verdict, failures, decisions hash
    "review_verdict",  # a human review of a batch's sample, ingested
    "version_published",  # a dataset version: content hash, counts, batches included and excluded
)
_BODY = FIELDS[:-1]  # what the hash covers
_SORTED_BODY = sorted(_BODY)
HEAD_HEX = 16  # hex digits of the hash shown in a head ("<seq>:<hex>")
MAX_PAYLOAD_CHARS = 64_000  # a payload is a summary; anything larger is a table that belongs in the lake
_TAIL_BLOCK = 1 << 16
BACKUP = "compare it with a backup of the file"  # the first step of every investigation


class AuditError(RuntimeError):
    """The trail cannot be extended or read safely (its last line is cut off or unreadable)."""


def trail_path(lake_root: Path | str, task: str) -> Path:
    """Where the audit trail of ``task`` lives."""
    return Path(lake_root) / AUDIT_DIR / f"{task}.jsonl"


@dataclass(frozen=True)
class AuditHead:
    """The last entry of a trail (or an entry recorded as the head at some point): its seq and hash.

    A head read back from metadata holds only the first :data:`HEAD_HEX` hex digits of the hash.
    """

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash[:HEAD_HEX]}"

    @classmethod
    def parse(cls, text: str) -> AuditHead:
        """The head written by ``str(head)``, e.g. ``"41:9f2c03aa1b7d4e10"``."""
        seq, _, digest = str(text).partition(":")
        if not seq.isdigit() or len(digest) < 8 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"{text!r} is not an audit chain head; expected <seq>:<hex digits of the entry's hash>")
        return cls(int(seq), digest)

    def matches(self, seq: int, entry_hash: str) -> bool:
        return seq == self.seq and entry_hash.startswith(self.hash)


def _encoded(entry: dict) -> dict[str, str]:
    """Each field but ``hash`` in canonical JSON, encoded once for both the hash and the line."""
    return {name: canonical_json(entry[name]) for name in _BODY}


def _digest(encoded: dict[str, str]) -> str:
    # Equal to sha256 of canonical_json(entry without hash): the keys are joined in sorted order.
    body = "{" + ",".join(f'"{name}":{encoded[name]}' for name in _SORTED_BODY) + "}"
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _line(encoded: dict[str, str], entry_hash_value: object) -> str:
    fields = ",".join(f'"{name}":{encoded[name]}' for name in _BODY)
    return "{" + fields + f',"hash":{canonical_json(entry_hash_value)}' + "}"


def entry_hash(entry: dict) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace) of every field of ``entry`` except ``hash``."""
    return _digest(_encoded(entry))


def render(entry: dict) -> str:
    """The line an entry is written as: its fields in :data:`FIELDS` order, each in canonical JSON."""
    return _line(_encoded(entry), entry["hash"])


def _plain(value: object) -> object:
    if hasattr(value, "item") and not hasattr(value, "__len__"):
        return value.item()
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"an audit payload holds JSON values (ids, counts, hashes), not {type(value).__name__}")


def _new_entry(seq: int, time: str, kind: str, batch: str, payload: dict, prev: str) -> tuple[str, str]:
    """(hash, line) of a new entry."""
    if kind not in KINDS:
        raise ValueError(f"audit entry kind {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(payload, dict):
        raise TypeError(f"an audit payload is a dict of ids, counts and hashes, not {type(payload).__name__}")
    try:
        encoded = _encoded({"seq": seq, "time": time, "kind": kind, "batch": batch, "payload": payload, "prev": prev})
    except TypeError:  # numpy scalars from pandas sums and counts: stored as the plain numbers they are
        payload = json.loads(json.dumps(payload, default=_plain))
        encoded = _encoded({"seq": seq, "time": time, "kind": kind, "batch": batch, "payload": payload, "prev": prev})
    if len(encoded["payload"]) > MAX_PAYLOAD_CHARS:
        raise ValueError(
            f"audit payload of {kind} for {batch} is {len(encoded['payload'])} characters (limit {MAX_PAYLOAD_CHARS}): "
            "record a content hash and counts, keep tables in the lake"
        )
    digest = _digest(encoded)
    return digest, _line(encoded, digest)


def _last_line(handle) -> bytes:
    """The last line of the open binary file (with its newline if it has one), reading only the tail."""
    position = handle.seek(0, os.SEEK_END)
    data = b""
    while position > 0:
        step = min(_TAIL_BLOCK, position)
        position -= step
        handle.seek(position)
        data = handle.read(step) + data
        cut = data.rfind(b"\n", 0, len(data) - 1)
        if cut >= 0:
            return data[cut + 1 :]
    return data


def _head_of(path: Path, line: bytes) -> AuditHead | None:
    if not line:
        return None
    try:
        if not line.endswith(b"\n"):
            raise ValueError("it does not end with a newline (a write was cut off)")
        entry = json.loads(line)
        head = AuditHead(entry["seq"], entry["hash"])
        if not isinstance(head.seq, int) or not isinstance(head.hash, str) or len(head.hash) != 64:
            raise ValueError("its seq or hash is malformed")
    except (ValueError, KeyError, TypeError) as error:
        raise AuditError(
            f"the last line of {path} is unreadable ({error}); nothing more can be chained to it: "
            "run `python -m synth_assets verify-audit` to see where the trail breaks"
        ) from error
    return head


def head(path: Path | str) -> AuditHead | None:
    """(seq, hash) of the trail's last entry, reading only the end of the file; None when there is none yet."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        return _head_of(path, _last_line(handle))


def append_many(path: Path | str, records: Iterable[tuple[str, str, dict]]) -> AuditHead | None:
    """Append one entry per ``(kind, batch, payload)``, chained, in one locked write; returns the new head.

    The exclusive lock is held from reading the last entry to the fsync, so concurrent writers each
    extend the chain in turn. With no records nothing is written and the current head is returned.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the file is closed
        last = _head_of(path, _last_line(handle))
        seq, prev = (last.seq + 1, last.hash) if last else (0, GENESIS)
        time = datetime.now(UTC).isoformat(timespec="microseconds")
        lines = []
        for kind, batch, payload in records:
            digest, line = _new_entry(seq, time, kind, batch, payload, prev)
            lines.append(line)
            seq, prev = seq + 1, digest
        if not lines:
            return last
        handle.write(("\n".join(lines) + "\n").encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
    return AuditHead(seq - 1, prev)


def append(path: Path | str, kind: str, batch: str, payload: dict) -> AuditHead:
    """Append one entry; returns the new head."""
    return append_many(path, [(kind, batch, payload)])


def read_entries(path: Path | str) -> Iterator[dict]:
    """The entries of a trail in file order, streamed (unverified: use :func:`verify` for that)."""
    with open(path, "rb") as handle:
        for line in handle:
            yield json.loads(line)


@dataclass(frozen=True)
class Problem:
    """The first bad entry of a trail: where, what, and how to look into it."""

    line: int | None  # 1-based line number in the file; None when the problem is the file as a whole
    seq: int | None  # the seq the line claims, None when it cannot be read
    what: str
    investigate: str
    earlier_intact: bool = True  # whether every line before ``line`` is known to be as written


@dataclass(frozen=True)
class VerifyResult:
    path: Path
    entries: int  # entries read and found good (every entry when ``ok``, those before the problem otherwise)
    head: AuditHead | None  # the last good entry
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        if self.ok:
            return f"OK {self.path}: {self.entries} entries, chain intact, head {self.head or 'none (empty)'}"
        problem = self.problem
        where = "the file" if problem.line is None else f"line {problem.line}"
        if problem.seq is not None:
            where += f" (seq {problem.seq})"
        text = f"BAD {self.path}: first bad entry at {where}: {problem.what}\n  investigate: {problem.investigate}"
        if problem.line is not None and problem.earlier_intact:
            text += f"\n  the {problem.line - 1} line(s) before it are intact"
        return text


def _entries(count: int) -> str:
    return f"{count} entr{'y' if count == 1 else 'ies'}"


def _read_line(raw: bytes, number: int) -> tuple[dict | None, Problem | None]:
    """The entry on line ``number`` if the line is whole, parses, and is exactly what the writer wrote."""
    if not raw.endswith(b"\n"):
        what = "cut off: the line does not end with a newline"
        return None, Problem(number, None, what, f"a write was interrupted (crash, full disk) or the file truncated; {BACKUP}")
    try:
        entry = json.loads(raw)
    except ValueError as error:
        return None, Problem(number, None, f"unreadable: the line is not JSON ({error})", f"the line was damaged; {BACKUP}")
    if not isinstance(entry, dict) or set(entry) != set(FIELDS):
        found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        what = f"edited: the entry has fields {found}, expected {list(FIELDS)}"
        return None, Problem(number, None, what, f"the line was edited by hand; {BACKUP}")
    seq = entry["seq"] if isinstance(entry["seq"], int) else None
    encoded = _encoded(entry)
    if _digest(encoded) != entry["hash"]:
        return entry, Problem(
            number,
            seq,
            "edited: the entry's hash does not match its contents",
            f"{BACKUP}, and with what the lake and the Dagster materializations of batch {entry['batch']!r} "
            "record (the payload's content hashes, the data version)",
        )
    if _line(encoded, entry["hash"]).encode("utf-8") + b"\n" != raw:
        return entry, Problem(
            number,
            seq,
            "edited: the contents hash correctly but the line is not byte for byte what the writer wrote "
            "(whitespace, key order or escaping changed)",
            f"the line was rewritten by a tool or by hand; {BACKUP}",
        )
    return entry, None


def _out_of_sequence(handle, number: int, seq: int | None, expected: int, prev: str, entry_prev: str) -> Problem | None:
    """Why a well-formed line does not continue the chain, or None when it does.

    A seq ahead of the expected one is a removal unless the missing seq turns up further down
    (lines reordered), so the rest of the file is scanned then (only when the trail is broken).
    """
    if seq == expected:
        if entry_prev == prev:
            return None
        before = "the genesis value" if number == 1 else f"the hash of line {number - 1}"
        return Problem(
            number,
            seq,
            f"chain broken: its prev is not {before}",
            f"line {number - 1} was replaced by an entry with a recomputed hash, or this line's prev was edited; {BACKUP}",
            earlier_intact=False,
        )
    if seq is not None and seq > expected:
        for later, raw in enumerate(handle, start=number + 1):
            try:
                if json.loads(raw).get("seq") == expected:
                    what = (
                        f"reordered: seq {seq} where seq {expected} was expected; seq {expected} is further down, at line {later}"
                    )
                    return Problem(number, seq, what, f"lines were moved; {BACKUP}")
            except (ValueError, AttributeError):
                continue
        missing = seq - expected
        span = f"seq {expected}" if missing == 1 else f"seq {expected} to {seq - 1}"
        what = f"removed: {_entries(missing)} ({span}) missing before this line"
        return Problem(number, seq, what, "lines were deleted; restore them from a backup of the file")
    what = f"reordered: seq {seq} where seq {expected} was expected (an earlier line moved down, or a line was duplicated)"
    return Problem(number, seq, what, f"lines were moved or copied; {BACKUP}")


def verify(path: Path | str, expected_head: AuditHead | str | None = None) -> VerifyResult:
    """Walk the trail line by line (streamed) and report the first entry that breaks the chain.

    With ``expected_head`` (a head recorded elsewhere, e.g. in Dagster metadata) the entry it names
    must still be in the file, unchanged: that catches the last lines being removed, which the
    chain alone cannot see.
    """
    path = Path(path)
    if isinstance(expected_head, str):
        expected_head = AuditHead.parse(expected_head)
    if not path.is_file():
        if expected_head is None:
            return VerifyResult(path, 0, None)
        what = f"missing: the trail does not exist, but head {expected_head} was recorded"
        return VerifyResult(path, 0, None, Problem(None, None, what, "the file was deleted or moved; restore it from a backup"))
    prev, good, last, recorded = GENESIS, 0, None, None
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            entry, problem = _read_line(raw, number)
            if problem is None:
                seq = entry["seq"] if isinstance(entry["seq"], int) else None
                problem = _out_of_sequence(handle, number, seq, good, prev, entry["prev"])
            if problem is not None:
                return VerifyResult(path, good, last, problem)
            if expected_head is not None and entry["seq"] == expected_head.seq:
                recorded = (number, entry["hash"])
            prev, good, last = entry["hash"], good + 1, AuditHead(entry["seq"], entry["hash"])
    problem = _against_recorded(expected_head, recorded, last, good) if expected_head is not None else None
    return VerifyResult(path, good, last, problem)


def _against_recorded(
    expected: AuditHead, recorded: tuple[int, str] | None, last: AuditHead | None, entries: int
) -> Problem | None:
    """Whether the entry a recorded head names is still in the (otherwise intact) trail, unchanged."""
    if recorded is None:
        ends = f"seq {last.seq}" if last else "no entry"
        missing = expected.seq - (last.seq if last else -1)
        return Problem(
            entries + 1,
            expected.seq,
            f"removed at the end: the trail ends at {ends}, but head {expected} was recorded ({_entries(missing)} missing)",
            "the last lines were cut off; restore them from a backup of the file",
        )
    number, found = recorded
    if expected.matches(expected.seq, found):
        return None
    return Problem(
        number,
        expected.seq,
        f"rewritten: the entry's hash starts {found[:HEAD_HEX]}, but head {expected} was recorded for it",
        f"the trail was rebuilt with recomputed hashes from this entry or an earlier one; {BACKUP}",
        earlier_intact=False,
    )
