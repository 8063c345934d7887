"""Build the second development dataset: chatterbot-corpus conversation turns labelled by topic.

A labelled set unlike the demo's, to check that nothing in the factory is tuned to HWU64. It is
made from the ``chatterbot-corpus`` wheel on PyPI (BSD-3-Clause): every turn of every
conversation in ``data/<language>/<topic>.yml`` becomes a row ``text,label`` with the topic file's
name as label. Whitespace is collapsed, exact repeats keep their first row, topics with fewer than
12 turns are left out, and the rows are split 70/30, stratified, with random_state 0. The folder
it writes (``train.csv``, ``test.csv``, ``SOURCE.md``) is what ``new-task --from`` reads::

    .venv/bin/python scripts/chatterbot_dataset.py /tmp/chat_en             # English, 20 topics
    .venv/bin/python -m synth_assets new-task chat_en --from /tmp/chat_en --text-kind "chatbot conversation turn"
    .venv/bin/python -m synth_assets demo --task chat_en

It needs the package index (``pip download``), nothing else; results are in docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
import yaml
from dataset_splits import TEST_SHARE, write_splits

PACKAGE = "chatterbot-corpus==1.3.3"
MIN_TURNS = 12


def download_wheel(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:", "-d", str(folder), PACKAGE],
        check=True,
    )
    return next(folder.glob("chatterbot_corpus-*.whl"))


def turns(wheel: Path, language: str) -> pd.DataFrame:
    rows = []
    with zipfile.ZipFile(wheel) as archive:
        names = sorted(name for name in archive.namelist() if re.match(rf"chatterbot_corpus/data/{language}/[^/]+\.yml$", name))
        if not names:
            raise SystemExit(f"{wheel.name} has no data/{language}/ topics")
        for name in names:
            label = re.sub(r"[^a-z0-9_]", "_", Path(name).stem.lower())
            corpus = yaml.safe_load(archive.read(name).decode("utf-8")) or {}
            for conversation in corpus.get("conversations") or []:
                for turn in conversation:
                    text = " ".join(str(turn).split()) if isinstance(turn, str) else ""
                    if text:
                        rows.append((text, label))
    frame = pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates("text")
    counts = frame["label"].value_counts()
    return frame[frame["label"].isin(counts[counts >= MIN_TURNS].index)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="where train.csv, test.csv and SOURCE.md go")
    parser.add_argument("--language", default="english", help="a folder of the corpus's data/ (default english)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        frame = turns(download_wheel(Path(scratch)), args.language)
    train, test = write_splits(frame, args.folder)
    counts = frame["label"].value_counts()
    (args.folder / "SOURCE.md").write_text(
        f"# chatterbot-corpus {args.language}: conversation turns labelled by topic\n\n"
        f"Made by `scripts/chatterbot_dataset.py` from the PyPI wheel `{PACKAGE}`: every turn of every\n"
        f"conversation in `data/{args.language}/<topic>.yml`, labelled with the topic; whitespace collapsed, exact\n"
        f"repeats dropped, topics with fewer than {MIN_TURNS} turns left out, split {1 - TEST_SHARE:.0%}/{TEST_SHARE:.0%} "
        "stratified (random_state 0).\n\n"
        f"{len(train)} train and {len(test)} test rows, {counts.size} topics, {counts.min()} to {counts.max()} turns each.\n\n"
        "## License\n\nBSD 3-Clause License (chatterbot-corpus, Gunther Cox).\n",
        encoding="utf-8",
    )
    print(f"{args.folder}: {len(train)} train, {len(test)} test rows, {counts.size} topics")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
