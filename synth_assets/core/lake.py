"""The parquet lake: the system of record, one file per asset partition.

Layout: ``<root>/<asset>/<batch>.parquet`` plus an optional ``<root>/<asset>/<batch>.json``
sidecar (manifests, verdicts, metrics). Every write goes to a temporary file in the same folder
and is renamed into place, so a crash never leaves half a partition. Reads across batches go
through an in-memory DuckDB over the exact list of files wanted, in partition order: there is no
``.duckdb`` file to lock, so any number of processes can read while one writes.

The root is a local folder (a :class:`pathlib.Path`, the default) or an fsspec URL such as
``s3://bucket/prefix`` (a :class:`upath.UPath`, which has the same path API). On an object store
a write is made in a local temporary file and uploaded with a single PUT, which S3 applies whole
or not at all; a read is one GET. A query fetches its partitions concurrently (one GET each) into
a private temporary folder and runs DuckDB there: DuckDB reading through fsspec instead made about
eight metadata requests per file per query, and its S3 extension would have to be downloaded.
The bytes written are the same on both.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd
from upath import UPath

LakePath = Path | UPath  # a local path, or a path in an object store (``UPath("s3://bucket/key")``)
FETCH_CHUNK = 64  # partitions a query downloads at once (concurrently), bounding the bytes held in memory


class LakeError(RuntimeError):
    """A partition the caller needs is missing or unreadable."""


def as_path(location: LakePath | str, storage_options: dict | None = None) -> LakePath:
    """A :class:`Path` for a local file or folder, a :class:`UPath` for a URL such as ``s3://bucket/key``.

    ``storage_options`` (endpoint, region, profile...) configure the filesystem of a URL; a path
    already given as a ``Path`` or ``UPath`` is returned as it is.
    """
    if isinstance(location, Path | UPath):
        return location
    text = str(location)
    if "://" in text and not text.startswith("file://"):
        return UPath(text, **(storage_options or {}))
    return Path(text.removeprefix("file://"))


def is_local(path: LakePath) -> bool:
    return isinstance(path, Path)


def atomic_write(target: LakePath, write) -> None:
    """Make ``target`` appear whole or not at all; ``write(temp)`` fills a local temporary file.

    Locally the temporary file sits next to ``target`` and is renamed onto it. In an object store
    it is uploaded with one PUT (a multipart upload above 100 MiB, equally all or nothing), so a
    reader never sees a partial object and a failed write leaves the previous object in place.
    """
    if not is_local(target):
        handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp")
        os.close(handle)
        try:
            write(Path(temp_name))
            target.fs.put_file(temp_name, target.path)
        finally:
            Path(temp_name).unlink(missing_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        write(Path(temp_name))
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


class Lake:
    """Reads and writes partitions of the lake rooted at ``root`` (a local folder or an fsspec URL).

    ``local_root`` is where the files that need a POSIX filesystem live (the audit trail: appends
    under ``flock``, which no object store has): the root itself for a local lake; for a lake in
    an object store, a local folder the caller chooses.
    """

    def __init__(self, root: LakePath | str, storage_options: dict | None = None, local_root: Path | str | None = None):
        self.root = as_path(root, storage_options)
        self._local_root = self.root if is_local(self.root) else (Path(local_root) if local_root else None)

    @property
    def local_root(self) -> Path:
        if self._local_root is None:
            raise LakeError(f"the lake at {self.root} is in an object store; give Lake a local_root for its audit trail")
        return self._local_root

    def table_path(self, asset: str, batch: str) -> LakePath:
        return self.root / asset / f"{batch}.parquet"

    def sidecar_path(self, asset: str, batch: str) -> LakePath:
        return self.root / asset / f"{batch}.json"

    def has_table(self, asset: str, batch: str) -> bool:
        return self.table_path(asset, batch).is_file()

    def write_table(self, asset: str, batch: str, frame: pd.DataFrame) -> LakePath:
        """Write one partition atomically; identical frames give identical bytes."""
        target = self.table_path(asset, batch)
        atomic_write(target, lambda temp: frame.to_parquet(temp, index=False, engine="pyarrow", compression="zstd"))
        return target

    def _fetch(self, path: LakePath, missing: str) -> bytes:
        """The bytes of a file in the object store with one GET; ``missing`` is the LakeError's message."""
        try:
            return path.fs.cat_file(path.path)
        except FileNotFoundError:
            raise LakeError(missing) from None

    def read_table(self, asset: str, batch: str) -> pd.DataFrame:
        path = self.table_path(asset, batch)
        missing = f"{path} does not exist: materialize {asset} for partition {batch} first"
        if not is_local(path):
            return pd.read_parquet(io.BytesIO(self._fetch(path, missing)), engine="pyarrow")
        if not path.is_file():
            raise LakeError(missing)
        return pd.read_parquet(path, engine="pyarrow")

    def csv_path(self, asset: str, batch: str) -> LakePath:
        return self.root / asset / f"{batch}.csv"

    def read_csv(self, asset: str, batch: str, **options) -> pd.DataFrame:
        """The CSV partition written by :meth:`write_csv` (``options`` go to :func:`pandas.read_csv`)."""
        path = self.csv_path(asset, batch)
        missing = f"{path} does not exist: materialize {asset} for partition {batch} first"
        if not is_local(path):
            return pd.read_csv(io.BytesIO(self._fetch(path, missing)), **options)
        if not path.is_file():
            raise LakeError(missing)
        return pd.read_csv(path, **options)

    def write_csv(self, asset: str, batch: str, frame: pd.DataFrame) -> LakePath:
        """A partition as CSV, for people to open and fill in (written atomically like every file)."""
        target = self.csv_path(asset, batch)
        atomic_write(target, lambda temp: frame.to_csv(temp, index=False, lineterminator="\n"))
        return target

    def write_text(self, asset: str, name: str, text: str) -> LakePath:
        """A file ``<asset>/<name>`` of text (exports, cards), written atomically."""
        target = self.root / asset / name
        atomic_write(target, lambda temp: temp.write_text(text, encoding="utf-8"))
        return target

    def read_text(self, asset: str, name: str) -> str:
        """The text file ``<asset>/<name>`` (written by :meth:`write_text`)."""
        path = self.root / asset / name
        if not is_local(path):
            return self._fetch(path, f"{path} does not exist").decode("utf-8")
        if not path.is_file():
            raise LakeError(f"{path} does not exist")
        return path.read_text(encoding="utf-8")

    def write_json(self, asset: str, batch: str, payload: dict) -> LakePath:
        target = self.sidecar_path(asset, batch)
        text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
        atomic_write(target, lambda temp: temp.write_text(text, encoding="utf-8"))
        return target

    def read_json(self, asset: str, batch: str) -> dict:
        path = self.sidecar_path(asset, batch)
        missing = f"{path} does not exist: materialize {asset} for partition {batch} first"
        if not is_local(path):
            return json.loads(self._fetch(path, missing).decode("utf-8"))
        if not path.is_file():
            raise LakeError(missing)
        return json.loads(path.read_text(encoding="utf-8"))

    def query(
        self, asset: str, batches: Sequence[str], sql: str = "SELECT * FROM rows", empty_columns: Sequence[str] = ()
    ) -> pd.DataFrame:
        """Run ``sql`` over the partitions ``batches`` of ``asset``, exposed as the view ``rows``.

        The view carries ``batch_order`` (position of the row's batch in ``batches``) and
        ``file_row_number`` so callers can keep partition and row order. Missing partitions are an error, never silently skipped.
        With no batches there is nothing to read: the result is an empty frame of ``empty_columns``.
        """
        paths = [self.table_path(asset, batch) for batch in batches]
        remote = not is_local(self.root)
        with tempfile.TemporaryDirectory(prefix="lake-query-") if remote else contextlib.nullcontext() as scratch:
            files = self._readable_files(asset, paths, Path(scratch) if remote else None)
            if not files:
                return pd.DataFrame(columns=list(empty_columns))
            order = pd.DataFrame({"filename": files, "batch_order": range(len(files))})
            with duckdb.connect() as con:
                con.register("batch_files", order)
                con.read_parquet(files, filename=True, file_row_number=True, union_by_name=True).create_view("raw_rows")
                con.execute(
                    "CREATE VIEW rows AS SELECT r.* EXCLUDE (filename), f.batch_order "
                    "FROM raw_rows r JOIN batch_files f USING (filename)"
                )
                return con.execute(sql).fetchdf()

    def _readable_files(self, asset: str, paths: list[LakePath], scratch: Path | None) -> list[str]:
        """Local files DuckDB reads for ``paths``, in order: the files themselves, or copies in ``scratch``.

        Partitions in an object store are fetched ``FETCH_CHUNK`` at a time, concurrently, one GET
        each; a missing one is reported with the others, like a missing local file.
        """
        if is_local(self.root):
            files, missing = [str(path) for path in paths], [str(path) for path in paths if not path.is_file()]
        else:
            files, missing = [], []
            for start in range(0, len(paths), FETCH_CHUNK):
                chunk = paths[start : start + FETCH_CHUNK]
                fetched = self.root.fs.cat([path.path for path in chunk], on_error="return")
                for number, path in enumerate(chunk, start):
                    body = fetched.get(path.path, FileNotFoundError(path.path))
                    if isinstance(body, FileNotFoundError):
                        missing.append(str(path))
                    elif isinstance(body, BaseException):
                        raise LakeError(f"cannot read {path}: {body!r}") from body
                    else:
                        copy = scratch / f"{number}.parquet"
                        copy.write_bytes(body)
                        files.append(str(copy))
        if missing:
            raise LakeError(f"missing {asset} partitions: {', '.join(missing)}; materialize them first")
        return files
