"""Build the third development dataset: BSD ``fortune`` quotations and jokes labelled by their file.

A labelled set of longer, multi-sentence text (quotations, jokes, definitions, poems: 20 to over
1,000 characters), to check the factory on text that is not a short utterance. It is made from
Debian's ``fortunes`` and ``fortunes-min`` packages (the fortune-mod data files, BSD licence): every entry of a topic
file (entries are separated by ``%`` lines) becomes a row ``text,label`` with the file's name as
label. Whitespace is collapsed, exact repeats keep their first row, entries over
``MAX_CHARS`` characters are left out, and the rows are split 70/30, stratified, with
random_state 0. The folder it writes (``train.csv``, ``test.csv``, ``SOURCE.md``) is what
``new-task --from`` reads::

    .venv/bin/python scripts/fortunes_dataset.py /tmp/fortunes
    .venv/bin/python -m synth_assets new-task fortunes --from /tmp/fortunes --text-kind "quotation or joke"
    .venv/bin/python -m synth_assets demo --task fortunes

It needs Debian's package archive (``apt-get download``), nothing else; results are in docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
from dataset_splits import TEST_SHARE, write_splits

PACKAGES = ("fortunes", "fortunes-min")  # the topic files are split between the two
DATA = Path("usr/share/games/fortunes")
# Topic files; the mixed bags (fortunes, miscellaneous, cookie, zippy, knghtbrd...) and ASCII art are left out.
TOPICS = [
    "art",
    "computers",
    "definitions",
    "drugs",
    "education",
    "food",
    "humorists",
    "kids",
    "law",
    "linux",
    "literature",
    "love",
    "medicine",
    "men-women",
    "people",
    "platitudes",
    "politics",
    "riddles",
    "science",
    "songs-poems",
    "sports",
    "startrek",
    "wisdom",
    "work",
]
MAX_CHARS = 1200


def unpack(folder: Path) -> Path:
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=folder, check=True, capture_output=True)
    for package in folder.glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(package), str(folder / "root")], check=True)
    return folder / "root" / DATA


def entries(data: Path) -> pd.DataFrame:
    rows = []
    for topic in TOPICS:
        content = (data / topic).read_text(encoding="utf-8", errors="replace")
        for entry in content.split("\n%\n"):
            text = " ".join(entry.replace("\t", " ").split())
            if text and text != "%" and len(text) <= MAX_CHARS:
                rows.append((text, topic))
    return pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates("text")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="where train.csv, test.csv and SOURCE.md go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        frame = entries(unpack(Path(scratch)))
    train, test = write_splits(frame, args.folder)
    counts = frame["label"].value_counts()
    lengths = frame["text"].str.len()
    (args.folder / "SOURCE.md").write_text(
        "# fortunes: quotations and jokes labelled by topic file\n\n"
        f"Made by `scripts/fortunes_dataset.py` from Debian's `{'` and `'.join(PACKAGES)}` packages (fortune-mod data files):\n"
        f"every entry of `{DATA}/<topic>` for {len(TOPICS)} topics, labelled with the topic; whitespace\n"
        f"collapsed, exact repeats dropped, entries over {MAX_CHARS} characters left out, split "
        f"{1 - TEST_SHARE:.0%}/{TEST_SHARE:.0%} stratified (random_state 0).\n\n"
        f"{len(frame)} rows ({len(train)} train, {len(test)} test), {counts.min()} to {counts.max()} per topic, "
        f"{lengths.min()} to {lengths.max()} characters (median {int(lengths.median())}).\n\n"
        "## License\n\nBSD licence (the fortune-mod package, see /usr/share/doc/fortunes/copyright in Debian).\n",
        encoding="utf-8",
    )
    print(f"{args.folder}: {len(train)} train, {len(test)} test rows, {len(counts)} topics")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
