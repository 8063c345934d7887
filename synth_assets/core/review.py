"""Human review: a stratified sample of each batch for a person to judge, and reading their verdicts back.

The sample is drawn from the batch's accepted rows (what would be trained on): ``share`` of them,
at least ``min_rows`` and at most ``max_rows``, split across labels in proportion to the batch
(every label seen when there is room), seeded from the batch so a re-run exports the same rows.
The exported CSV has ``row_id, label, text`` and three columns to fill in: ``verdict``
(``accept`` / ``reject``), ``corrected_label`` (a task label, when the label is wrong) and
``comment``. Reading it back checks every line and records the verdicts with the rows they judge.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth_assets.core.hashing import derive_seed
from synth_assets.core.labelled_data import InputFileError
from synth_assets.core.mix import label_quotas

REVIEW_COLUMNS = ["row_id", "label", "text", "verdict", "corrected_label", "comment"]
VERDICTS = ("accept", "reject")


def review_sample(gated: pd.DataFrame, batch: str, share: float, min_rows: int, max_rows: int) -> pd.DataFrame:
    """The rows of ``gated`` a person should review, as an empty review sheet."""
    accepted = gated[gated["accepted"]]
    size = min(len(accepted), max(min_rows, min(max_rows, round(share * len(accepted)))))
    if size == 0:
        return pd.DataFrame(columns=REVIEW_COLUMNS)
    rng = np.random.default_rng(derive_seed(batch, "review"))
    picked = []
    for label, quota in label_quotas(accepted["label"], size).items():
        rows = accepted[accepted["label"] == label]
        picked.append(rows.iloc[np.sort(rng.choice(len(rows), size=min(quota, len(rows)), replace=False))])
    sample = pd.concat(picked)
    return pd.DataFrame(
        {
            "row_id": sample["row_id"],
            "label": sample["label"],
            "text": sample["text"],
            "verdict": "",
            "corrected_label": "",
            "comment": "",
        }
    )[REVIEW_COLUMNS].reset_index(drop=True)


def read_review(path, sample: pd.DataFrame, labels) -> pd.DataFrame:
    """The judged rows of a filled review sheet (``row_id, label, verdict, corrected_label, comment``).

    Raises :class:`InputFileError` naming every bad line: an unknown row id, a verdict other than
    accept/reject, a corrected label that is not a task label. Lines left blank are not judged.
    """
    try:
        filled = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise InputFileError(f"{path}: cannot be read as CSV ({error}); export it again and fill it in") from None
    missing = [column for column in ("row_id", "verdict", "corrected_label") if column not in filled.columns]
    if missing:
        raise InputFileError(f"{path}: missing column(s) {', '.join(missing)}; keep the exported header")
    known = dict(zip(sample["row_id"], sample["label"]))
    problems = []
    for line, row in zip(range(2, len(filled) + 2), filled.itertuples(index=False)):
        verdict, corrected = row.verdict.strip().lower(), row.corrected_label.strip()
        if row.row_id not in known:
            problems.append(f"line {line}: row {row.row_id!r} is not in this batch's review sample")
        if verdict and verdict not in VERDICTS:
            problems.append(f"line {line}: verdict {row.verdict!r}; write accept or reject (or leave it blank)")
        if corrected and corrected not in set(labels):
            problems.append(f"line {line}: corrected_label {corrected!r} is not a label of the task")
        if corrected and not verdict:
            problems.append(f"line {line}: a corrected_label needs a verdict (accept, with the new label)")
    if problems:
        raise InputFileError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems[:20]))
    judged = filled[filled["verdict"].str.strip() != ""]
    return pd.DataFrame(
        {
            "row_id": judged["row_id"],
            "label": judged["row_id"].map(known),
            "verdict": judged["verdict"].str.strip().str.lower(),
            "corrected_label": judged["corrected_label"].str.strip(),
            "comment": judged.get("comment", pd.Series("", index=judged.index)).astype(str),
        }
    ).reset_index(drop=True)


def review_verdict(reviewed: pd.DataFrame, sample_size: int, min_acceptance: float) -> dict:
    """Whether the batch passes review: the share of judged rows accepted must reach ``min_acceptance``."""
    accepted = int((reviewed["verdict"] == "accept").sum())
    acceptance = accepted / len(reviewed) if len(reviewed) else 0.0
    failures = []
    if not len(reviewed):
        failures.append("no row of the sample was judged")
    elif acceptance < min_acceptance:
        failures.append(f"reviewed acceptance {acceptance:.3f} is below gate.review_min_acceptance={min_acceptance}")
    return {
        "passed": not failures,
        "failures": failures,
        "sample_rows": sample_size,
        "judged": len(reviewed),
        "accepted": accepted,
        "rejected": len(reviewed) - accepted,
        "relabelled": int((reviewed["corrected_label"] != "").sum()),
        "acceptance": round(acceptance, 4),
    }


def apply_review(pool: pd.DataFrame, reviewed: pd.DataFrame) -> pd.DataFrame:
    """``pool`` without the rows a reviewer rejected and with the labels they corrected."""
    rejected = set(reviewed.loc[reviewed["verdict"] == "reject", "row_id"])
    corrected = dict(zip(*reviewed.loc[reviewed["corrected_label"] != "", ["row_id", "corrected_label"]].T.to_numpy()))
    kept = pool[~pool["row_id"].isin(rejected)]
    return kept.assign(label=kept["row_id"].map(corrected).fillna(kept["label"]))
