"""Batches: the unit of work and the dataset version.

A batch key is ``<task>-<name>``; task names never contain ``-``, so the task is everything
before the first dash. Keys made from file names keep only ``[a-z0-9_]`` and end with a hash of
the file's bytes, so a path trick (``../``, spaces, unicode look-alikes) cannot reach the key and
the same file dropped twice maps to the same batch.

Registering a batch validates its input completely, then copies the input into the lake
(``<lake>/_batches/<key>.<ext>``) with a JSON record, so a backfill months later reads the
same bytes even if the incoming file was moved or edited.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from synth_assets.core.attempts import query_attempts
from synth_assets.core.dedup import synthetic_copies
from synth_assets.core.hashing import file_sha256
from synth_assets.core.labelled_data import SUPPORTED_SUFFIXES, InputFileError, read_labelled_file
from synth_assets.core.lake import Lake, LakePath, atomic_write
from synth_assets.core.task_config import TaskConfig
from synth_assets.core.text import normalize_text

REGISTRY = "_batches"
_SLUG_UNSAFE = re.compile(r"[^a-z0-9_]+")
BATCH_KEY_PATTERN = re.compile(r"^[a-z0-9_]{1,40}-[a-z0-9_-]{1,80}$")


class BatchKeyError(ValueError):
    """A partition key that no batch of this factory could have."""


@dataclass(frozen=True)
class BatchRecord:
    key: str
    task: str
    kind: str  # "seed_file" (dropped or given on the CLI) or "refresh" (schedule / CLI, task seeds again)
    source: str
    sha256: str
    input_path: LakePath  # the copy in the lake (local, or in the object store the lake is in)
    quota_feedback: dict | None = None  # the version whose validation F1 weights this batch's quotas


def task_of(batch_key: str) -> str:
    if not BATCH_KEY_PATTERN.match(batch_key):
        raise BatchKeyError(f"{batch_key!r} is not a batch key; expected <task>-<name> of a-z, 0-9, _ and -")
    return batch_key.split("-", 1)[0]


def slugify(name: str, max_chars: int = 30) -> str:
    slug = _SLUG_UNSAFE.sub("_", name.lower()).strip("_")[:max_chars].strip("_")
    return slug or "file"


def key_for_file(task: str, path: Path) -> str:
    return f"{task}-{slugify(Path(path).stem)}-{file_sha256(path)[:8]}"


def key_for_refresh(task: str, when: datetime) -> str:
    return f"{task}-refresh_{when.astimezone(UTC):%Y%m%d_%H%M}"


def synthetic_registry(lake: Lake, batches: list[str]) -> pd.DataFrame:
    """Every text the factory generated in ``batches`` (``row_id, text``, top-up rounds too), except near-copies of real text.

    Rows that copy a seed or the held-out split are real text coming back, not synthetic text,
    so they are left out: a refresh batch of the same seeds must not flag itself.
    """
    written = [batch for batch in batches if lake.has_table("deduplicated", batch)]
    return query_attempts(
        lake,
        written,
        ["row_id", "text"],
        "status = 'ok' AND dup_status NOT IN ('copies_seed', 'contaminates_heldout', 'not_checked')",
    )


def with_synthetic_copies(task: TaskConfig, rows: pd.DataFrame, synthetic: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with ``synthetic_match, synthetic_similarity``; refused whole when the task says so."""
    settings = task.dedup
    matches = synthetic_copies(
        list(rows["text"]),
        synthetic,
        **settings.minhash_settings(),
    )
    rows = pd.concat([rows.reset_index(drop=True), matches], axis=1)
    copies = rows[rows["synthetic_match"] != ""]
    if len(copies) and settings.synthetic_in_seeds == "reject":
        shown = "; ".join(
            f"line {line} copies {match} (Jaccard {sim:.2f})"
            for line, match, sim in copies[["line", "synthetic_match", "synthetic_similarity"]].head(10).itertuples(index=False)
        )
        raise InputFileError(
            f"{len(copies)} row(s) copy text this factory generated for task {task.name} ({shown}): synthetic output must "
            "not come back as real data; remove those rows, or set dedup.synthetic_in_seeds: flag to keep them flagged"
        )
    return rows


def validate_seed_file(task: TaskConfig, path: Path, synthetic: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows of a seed file, or :class:`InputFileError` if it is malformed or copies held-out text.

    With ``synthetic`` (the task's earlier generated rows), rows that copy them are flagged in
    ``synthetic_match`` / ``synthetic_similarity``, or refused (``dedup.synthetic_in_seeds: reject``).
    """
    rows = read_labelled_file(path, task.labels)
    heldout = read_labelled_file(task.heldout_path, task.labels, reject_duplicates=False)
    heldout_keys = set(heldout["text"].map(normalize_text))
    leaking = rows[rows["text"].map(normalize_text).isin(heldout_keys)]
    if len(leaking):
        lines = ", ".join(str(line) for line in leaking["line"].head(10))
        raise InputFileError(
            f"{path}: {len(leaking)} row(s) copy the held-out split of task {task.name} (lines {lines}); "
            "held-out text must never be a seed: remove those rows"
        )
    if synthetic is None:
        return rows
    try:
        return with_synthetic_copies(task, rows, synthetic)
    except InputFileError as error:
        raise InputFileError(f"{path}: {error}") from None


def register_batch(
    lake: Lake, task: TaskConfig, key: str, source: Path, kind: str, earlier: list[str] | None = None
) -> BatchRecord:
    """Validate ``source`` and copy it into the lake as the input of batch ``key`` (idempotent).

    ``earlier`` are the task's batches so far: their synthetic rows are what a seed row must not copy.
    """
    if task_of(key) != task.name:
        raise BatchKeyError(f"batch {key!r} does not belong to task {task.name!r}")
    source = Path(source)
    if source.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise InputFileError(f"{source}: unsupported file type {source.suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    validate_seed_file(task, source, synthetic_registry(lake, earlier or []))
    input_path = lake.root / REGISTRY / f"{key}{source.suffix.lower()}"
    digest = file_sha256(source)
    if lake.sidecar_path(REGISTRY, key).is_file():
        existing = load_batch(lake, key)
        if existing.sha256 != digest:
            raise BatchKeyError(f"batch {key} is already registered from different bytes ({existing.source}); use a new key")
        return existing
    atomic_write(input_path, lambda temp: shutil.copyfile(source, temp))
    lake.write_json(
        REGISTRY,
        key,
        {
            "key": key,
            "task": task.name,
            "kind": kind,
            "source": str(source),
            "sha256": digest,
            "input_file": input_path.name,
            "registered_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "quota_feedback": latest_validation(lake, earlier or []),
        },
    )
    return load_batch(lake, key)


def load_batch(lake: Lake, key: str) -> BatchRecord:
    record = lake.read_json(REGISTRY, key)
    return BatchRecord(
        key=record["key"],
        task=record["task"],
        kind=record["kind"],
        source=record["source"],
        sha256=record["sha256"],
        input_path=lake.root / REGISTRY / record["input_file"],
        quota_feedback=record.get("quota_feedback"),
    )


def latest_validation(lake: Lake, earlier: list[str]) -> dict | None:
    """The newest earlier version's per-label validation F1, fixed when a batch registers so reruns reuse it."""
    for key in reversed(earlier):
        if lake.sidecar_path("training_set", key).is_file():
            validation = lake.read_json("training_set", key).get("validation")
            if validation:
                return {"version": key, "per_label_f1": validation["per_label_f1"]}
    return None


def seed_table(task: TaskConfig, batch: BatchRecord, synthetic: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``seeds`` partition of a registered batch: its validated rows with provenance.

    ``synthetic``: the generated rows of the batches before this one, to flag seed rows copying them.
    """
    rows = validate_seed_file(
        task, batch.input_path, synthetic if synthetic is not None else pd.DataFrame(columns=["row_id", "text"])
    )
    return pd.DataFrame(
        {
            "seed_id": [f"{batch.key}:{line}" for line in rows["line"]],
            "batch": batch.key,
            "text": rows["text"],
            "label": rows["label"],
            "source_file": Path(batch.source).name,
            "line": rows["line"],
            "synthetic_match": rows["synthetic_match"],
            "synthetic_similarity": rows["synthetic_similarity"],
        }
    )


def incoming_files(incoming_root: Path) -> list[tuple[str, Path]]:
    """(task name, file) for every seed file waiting in ``<incoming_root>/<task>/``, in name order.

    Hidden files and files still being written by common tools (``.tmp``, ``.part``) are ignored.
    """
    root = Path(incoming_root)
    if not root.is_dir():
        return []
    found = []
    for task_dir in sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")):
        for path in sorted(task_dir.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in SUPPORTED_SUFFIXES:
                found.append((task_dir.name, path))
    return found
