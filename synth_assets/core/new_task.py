"""Make a task folder from a labelled dataset's train and test splits (the ``new-task`` command).

The dataset is two labelled files (CSV or JSON Lines with ``text`` and ``label``), e.g. a folder
holding ``train.csv``, ``test.csv`` and ``SOURCE.md``. What the task gets:

* ``heldout.csv``: the test split, the only data a version is scored on; never seen by generation.
* ``seeds.csv``: ``seeds_per_label`` rows per label drawn from the train split
  (``train.groupby("label").sample(n, random_state=draw)``, the protocol of the published
  few-shot baselines), all the generator and the versions' real part see.
* ``real_pool.csv``: the whole train split, which trains only the all-real reference score.
* ``task.yaml``: every label of the data, with a description made from its name (edit them: the
  LLM backend puts them in its prompts), and length bounds for the gate that every real text of
  the dataset fits in.

Cleaning is reported, never silent: rows whose text is empty or has no letters or digits are
left out (their lines listed), repeated texts within a split keep their first row, and train texts
that also appear in the test split leave the train split so nothing scored on was trained on. A
test label without train rows or a label without a usable name is an error that names the file,
line and fix (:mod:`synth_assets.core.labelled_data`).
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from synth_assets.core.labelled_data import read_labelled_file
from synth_assets.core.task_config import TASK_FILE, TASK_NAME_PATTERN, TaskConfigError, load_task
from synth_assets.core.text import normalize_text

SPLIT_FILES = (("train.csv", "train.jsonl"), ("test.csv", "test.jsonl"))
SOURCE_FILES = ("SOURCE.md", "LICENSE", "LICENSE.md", "LICENSE.txt", "README.md")
DEFAULT_MAX_CHARS = 500
LENGTH_HEADROOM = 1.25  # synthetic rows may run a little longer than the longest real one


class NewTaskError(ValueError):
    """The dataset cannot become a task; the message says what is wrong and how to fix it."""


@dataclass
class NewTask:
    """What :func:`create_task` wrote and what it cleaned."""

    task_dir: Path
    labels: list[str]
    rows: dict[str, int]  # seeds / heldout / real_pool
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    smallest_label: tuple[str, int] = ("", 0)  # the label with the fewest train rows
    max_chars: int = DEFAULT_MAX_CHARS
    license: str | None = None
    copied: list[str] = field(default_factory=list)


def split_files(folder: Path) -> tuple[Path, Path]:
    """The train and test files of a dataset folder (``train.csv``/``.jsonl``, ``test.csv``/``.jsonl``)."""
    found = []
    for names in SPLIT_FILES:
        paths = [folder / name for name in names if (folder / name).is_file()]
        if not paths:
            raise NewTaskError(f"{folder}: no {' or '.join(names)}; give the splits with --train and --test instead")
        found.append(paths[0])
    return found[0], found[1]


def describe_label(label: str) -> str:
    """A first description from a label's name (``alarm_set`` -> ``alarm set``)."""
    return re.sub(r"[_\s]+", " ", label).strip()


LICENSE_LINE = re.compile(r"^[\s>*_-]*licen[cs]e[*_]*\s*:[*_\s]*(?P<license>\S.*)$", re.IGNORECASE)


def license_from_source(text: str) -> str | None:
    """The licence the source notes name first: the first sentence under a heading that mentions a
    licence, or what follows ``License:`` on a line of its own."""

    def first_sentence(line: str) -> str:
        return re.split(r"(?<=[).])\s", line.strip(), maxsplit=1)[0].rstrip(".")

    lines = text.splitlines()
    for number, line in enumerate(lines):
        if match := LICENSE_LINE.match(line):
            return first_sentence(match["license"])
        if line.lstrip().startswith("#") and re.search(r"licen[cs]e", line, re.IGNORECASE):
            for following in lines[number + 1 :]:
                if following.lstrip().startswith("#"):
                    break
                if following.strip():
                    return first_sentence(following)
    return None


def _usable(path: Path) -> tuple[pd.DataFrame, list[int]]:
    """A split without rows whose text has no letters or digits, and those rows' lines."""
    rows = read_labelled_file(path, None, reject_duplicates=False, drop_textless=True)
    return rows, rows.attrs["textless_lines"]


def _without_repeats(rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    kept = rows[~rows["text"].map(normalize_text).duplicated()]
    return kept, len(rows) - len(kept)


def _lines(numbers: list[int], shown: int = 5) -> str:
    return ", ".join(map(str, numbers[:shown])) + (", ..." if len(numbers) > shown else "")


def _draw_seeds(train: pd.DataFrame, per_label: int, draw: int) -> pd.DataFrame:
    """``per_label`` rows of each label, as the published few-shot baselines draw them (row for row the same).

    A label with fewer rows gives all of them; the draw then differs from the baselines' (which cannot be made).
    """
    if int(train["label"].value_counts().min()) >= per_label:
        return train.groupby("label").sample(n=per_label, random_state=draw)
    state = np.random.RandomState(draw)
    return pd.concat(group.sample(n=min(per_label, len(group)), random_state=state) for _, group in train.groupby("label"))


def _write_split(rows: pd.DataFrame, path: Path) -> None:
    rows[["text", "label"]].to_csv(path, index=False)


def _task_yaml(name: str, text_kind: str, license: str | None, labels: list[str], max_chars: int, min_chars: int) -> str:
    config = {
        "name": name,
        "text_kind": text_kind,
        "license": license,
        "seeds": "seeds.csv",
        "heldout": "heldout.csv",
        "real_pool": "real_pool.csv",
        "labels": {label: describe_label(label) for label in labels},
        "generation": {"backend": "template", "per_label": 50},
        "gate": {"min_chars": min_chars, "max_chars": max_chars},
        "mix": {"synthetic_share": "auto"},
    }
    if license is None:
        del config["license"]
    header = (
        f"# Made by `python -m synth_assets new-task {name}` (docs/tasks.md). Every key not written here has\n"
        "# its default. The label descriptions were made from the label names: say what each label means,\n"
        "# the LLM backend puts them in its prompts. The gate's length bounds fit every real text.\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=120)


def create_task(
    name: str,
    train_path: Path,
    test_path: Path,
    tasks_root: Path,
    *,
    seeds_per_label: int = 10,
    draw: int = 0,
    text_kind: str = "text",
    license: str | None = None,
    source_folder: Path | None = None,
    overwrite: bool = False,
    drop_unseen_test_labels: bool = False,
) -> NewTask:
    """Write ``tasks_root/<name>/`` from the splits (see the module docstring); the task loads before this returns."""
    if not TASK_NAME_PATTERN.match(name):
        raise NewTaskError(f"task name {name!r} must be 1-40 characters of a-z, 0-9 and _ (it prefixes batch keys)")
    if seeds_per_label < 2:
        raise NewTaskError(
            f"--seeds-per-label must be at least 2 (validation folds need two seeds of a label); got {seeds_per_label}"
        )
    task_dir = Path(tasks_root) / name
    if (task_dir / TASK_FILE).exists() and not overwrite:
        raise NewTaskError(f"{task_dir} already holds a task; choose another name or pass --overwrite to replace its files")

    given, train_textless = _usable(train_path)
    test, test_textless = _usable(test_path)
    test, test_repeats = _without_repeats(test)
    train, train_repeats = _without_repeats(given)
    test_keys = set(test["text"].map(normalize_text))
    in_test = train["text"].map(normalize_text).isin(test_keys)
    train = train[~in_test]

    unseen = sorted(set(test["label"]) - set(train["label"]))
    if unseen and not drop_unseen_test_labels:
        raise NewTaskError(
            f"{test_path}: label(s) {', '.join(unseen)} have no rows in {train_path}, so no seed can teach them; "
            "add train rows for them, remove them from the test split, or pass --drop-unseen-test-labels"
        )
    unlearnable = test["label"].isin(unseen)
    test = test[~unlearnable]
    counts = train["label"].value_counts()
    if counts.size < 2:
        raise NewTaskError(f"{train_path}: {counts.size} label(s); a classification task needs at least 2")

    # Drawn from the split as given, so a dataset's published few-shot draw s is reproduced row for row;
    # the seeds the cleaning above removed leave afterwards.
    seeds = _draw_seeds(given[given["label"].isin(counts.index)], seeds_per_label, draw)
    seeds = seeds[seeds.index.isin(train.index)]
    lengths = pd.concat([train["text"], test["text"]]).str.len()
    max_chars = max(DEFAULT_MAX_CHARS, int(math.ceil(lengths.max() * LENGTH_HEADROOM / 100.0)) * 100)
    min_chars = int(max(1, min(3, lengths.min())))

    copied = []
    if source_folder is not None:
        for source_name in SOURCE_FILES:
            if (source_folder / source_name).is_file():
                copied.append(source_name)
    if license is None and "SOURCE.md" in copied:
        license = license_from_source((source_folder / "SOURCE.md").read_text(encoding="utf-8", errors="replace"))

    task_dir.mkdir(parents=True, exist_ok=True)
    for source_name in copied:
        shutil.copyfile(source_folder / source_name, task_dir / source_name)
    _write_split(seeds, task_dir / "seeds.csv")
    _write_split(test, task_dir / "heldout.csv")
    _write_split(train, task_dir / "real_pool.csv")
    labels = sorted(counts.index)
    (task_dir / TASK_FILE).write_text(_task_yaml(name, text_kind, license, labels, max_chars, min_chars), encoding="utf-8")
    try:
        load_task(task_dir)
    except TaskConfigError as exc:  # a bug here, not in the data: say so rather than leave a broken task behind
        raise NewTaskError(f"the task written to {task_dir} does not load: {exc}") from exc
    dropped = {
        f"text without letters or digits in the train split (lines {_lines(train_textless)})": len(train_textless),
        f"text without letters or digits in the test split (lines {_lines(test_textless)})": len(test_textless),
        "repeated text in the train split": train_repeats,
        "repeated text in the test split": test_repeats,
        "train text also in the test split": int(in_test.sum()),
        f"test rows of labels with no train rows ({', '.join(unseen)})": int(unlearnable.sum()),
    }
    return NewTask(
        task_dir=task_dir,
        labels=labels,
        rows={"seeds": len(seeds), "heldout": len(test), "real_pool": len(train)},
        dropped={reason: rows for reason, rows in dropped.items() if rows},
        smallest_label=(str(counts.idxmin()), int(counts.min())),
        max_chars=max_chars,
        license=license,
        copied=copied,
    )
