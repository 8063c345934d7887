"""The parquet lake: the system of record, one file per asset partition.

Layout: ``<root>/<asset>/<batch>.parquet`` plus an optional ``<root>/<asset>/<batch>.json``
sidecar (manifests, verdicts, metrics). Every write goes to a temporary file in the same folder
and is renamed into place, so a crash never leaves half a partition. Reads across batches go
through an in-memory DuckDB over the exact list of files wanted, in partition order: there is no
``.duckdb`` file to lock, so any number of processes can read while one writes.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd


class LakeError(RuntimeError):
    """A partition the caller needs is missing or unreadable."""


def atomic_write(target: Path, write) -> None:
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
    """Reads and writes partitions of the lake rooted at ``root``."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def table_path(self, asset: str, batch: str) -> Path:
        return self.root / asset / f"{batch}.parquet"

    def sidecar_path(self, asset: str, batch: str) -> Path:
        return self.root / asset / f"{batch}.json"

    def has_table(self, asset: str, batch: str) -> bool:
        return self.table_path(asset, batch).is_file()

    def write_table(self, asset: str, batch: str, frame: pd.DataFrame) -> Path:
        """Write one partition atomically; identical frames give identical bytes."""
        target = self.table_path(asset, batch)
        atomic_write(target, lambda temp: frame.to_parquet(temp, index=False, engine="pyarrow", compression="zstd"))
        return target

    def read_table(self, asset: str, batch: str) -> pd.DataFrame:
        path = self.table_path(asset, batch)
        if not path.is_file():
            raise LakeError(f"{path} does not exist: materialize {asset} for partition {batch} first")
        return pd.read_parquet(path, engine="pyarrow")

    def csv_path(self, asset: str, batch: str) -> Path:
        return self.root / asset / f"{batch}.csv"

    def write_csv(self, asset: str, batch: str, frame: pd.DataFrame) -> Path:
        """A partition as CSV, for people to open and fill in (written atomically like every file)."""
        target = self.csv_path(asset, batch)
        atomic_write(target, lambda temp: frame.to_csv(temp, index=False, lineterminator="\n"))
        return target

    def write_text(self, asset: str, name: str, text: str) -> Path:
        """A file ``<asset>/<name>`` of text (exports, cards), written atomically."""
        target = self.root / asset / name
        atomic_write(target, lambda temp: temp.write_text(text, encoding="utf-8"))
        return target

    def read_text(self, asset: str, name: str) -> str:
        """The text file ``<asset>/<name>`` (written by :meth:`write_text`)."""
        path = self.root / asset / name
        if not path.is_file():
            raise LakeError(f"{path} does not exist")
        return path.read_text(encoding="utf-8")

    def write_json(self, asset: str, batch: str, payload: dict) -> Path:
        target = self.sidecar_path(asset, batch)
        text = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
        atomic_write(target, lambda temp: temp.write_text(text, encoding="utf-8"))
        return target

    def read_json(self, asset: str, batch: str) -> dict:
        path = self.sidecar_path(asset, batch)
        if not path.is_file():
            raise LakeError(f"{path} does not exist: materialize {asset} for partition {batch} first")
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
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            raise LakeError(f"missing {asset} partitions: {', '.join(missing)}; materialize them first")
        if not paths:
            return pd.DataFrame(columns=list(empty_columns))
        order = pd.DataFrame({"filename": [str(path) for path in paths], "batch_order": range(len(paths))})
        with duckdb.connect() as con:
            con.register("batch_files", order)
            con.read_parquet([str(path) for path in paths], filename=True, file_row_number=True, union_by_name=True).create_view(
                "raw_rows"
            )
            con.execute(
                "CREATE VIEW rows AS SELECT r.* EXCLUDE (filename), f.batch_order "
                "FROM raw_rows r JOIN batch_files f USING (filename)"
            )
            return con.execute(sql).fetchdf()
