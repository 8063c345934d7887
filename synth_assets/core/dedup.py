"""Exact and near-duplicate verdicts for one batch against everything that came before it.

Order of precedence (first match wins, and the verdict names the row matched):
1. ``contaminates_heldout``: the row copies or nearly copies a held-out text. Keeping it would
   inflate the evaluation, so it is counted apart from ordinary duplicates.
2. ``copies_seed``: copies or nearly copies a real seed (it teaches nothing new).
3. ``exact_dup`` / ``near_dup``: repeats a unique row of an earlier batch or an earlier row of
   this batch (first occurrence in partition order wins).

Exact: equal normalised text (see :mod:`synth_assets.core.text`). Near: MinHash over character
k-shingles of the normalised text with datasketch's LSH for candidates, each candidate verified
with the exact Jaccard of the shingle sets before a row is rejected, so LSH false positives never
reject a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from datasketch import MinHash, MinHashLSH

from synth_assets.core.text import normalize_text

# Fixed so that signatures, and therefore verdicts, are identical across processes and machines.
MINHASH_SEED = 1
# LSH only proposes candidates and every candidate is verified exactly, so a false positive costs
# one set intersection while a false negative lets a duplicate through: tune for recall.
LSH_TARGET_RECALL = 0.99


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Chance that two texts of this Jaccard similarity share at least one LSH band."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def lsh_bands(threshold: float, num_perm: int, target_recall: float = LSH_TARGET_RECALL) -> tuple[int, int]:
    """(bands, rows per band) that reach ``target_recall`` at ``threshold`` with the fewest false candidates.

    More rows per band make a band harder to share, so the largest ``rows`` that still reaches the
    recall target generates the fewest candidates below the threshold.
    """
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if candidate_probability(threshold, bands, rows) >= target_recall:
            return bands, rows
    return num_perm, 1


@dataclass(frozen=True)
class Reference:
    """Texts a batch is compared against, each with a stable id and the verdict a match earns."""

    ids: list[str]
    texts: list[str]
    verdict: str  # contaminates_heldout | copies_seed | exact_dup (near matches become near_dup)
    labels: list[str] | None = None  # needed by the semantic pass, which compares within a label only


def shingles(normalized: str, size: int) -> set[str]:
    """Character k-shingles; a text shorter than ``size`` is its own single shingle."""
    if len(normalized) <= size:
        return {normalized}
    return {normalized[start : start + size] for start in range(len(normalized) - size + 1)}


def jaccard(left: set[str], right: set[str]) -> float:
    return len(left & right) / len(left | right) if left or right else 1.0


def _signatures(shingle_sets: list[set[str]], num_perm: int) -> list[MinHash]:
    encoded = [[shingle.encode("utf-8") for shingle in sorted(item)] for item in shingle_sets]
    return list(MinHash.bulk(encoded, num_perm=num_perm, seed=MINHASH_SEED)) if encoded else []


class _Index:
    """Exact keys and an LSH over every text accepted as unique so far, with its verdict class."""

    def __init__(self, threshold: float, num_perm: int, shingle_chars: int):
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_chars = shingle_chars
        self.lsh = MinHashLSH(num_perm=num_perm, params=lsh_bands(threshold, num_perm))
        self.exact: dict[str, str] = {}
        self.entries: dict[str, tuple[set[str], str]] = {}

    def add_many(self, ids: list[str], normalized: list[str], verdict: str) -> None:
        sets = [shingles(text, self.shingle_chars) for text in normalized]
        for row_id, text, shingle_set, signature in zip(ids, normalized, sets, _signatures(sets, self.num_perm)):
            self.add(row_id, text, shingle_set, signature, verdict)

    def add(self, row_id: str, text: str, shingle_set: set[str], signature: MinHash, verdict: str) -> None:
        if row_id in self.entries:
            return
        self.exact.setdefault(text, row_id)
        self.entries[row_id] = (shingle_set, verdict)
        self.lsh.insert(row_id, signature)

    def match(self, text: str, shingle_set: set[str], signature: MinHash) -> tuple[str, str, float] | None:
        """(verdict, matched id, similarity) of the strongest earlier match, or None."""
        if text in self.exact:
            matched = self.exact[text]
            return self.entries[matched][1], matched, 1.0
        best: tuple[int, float, str, str] | None = None
        for candidate in self.lsh.query(signature):
            candidate_set, verdict = self.entries[candidate]
            similarity = jaccard(shingle_set, candidate_set)
            if similarity >= self.threshold:
                rank = (_PRIORITY[verdict], -similarity, candidate, verdict)
                if best is None or rank < best:
                    best = rank
        if best is None:
            return None
        _, negative_similarity, matched, verdict = best
        return ("near_dup" if verdict == "exact_dup" else verdict), matched, -negative_similarity


_PRIORITY = {"contaminates_heldout": 0, "copies_seed": 1, "exact_dup": 2}


def find_duplicates(
    candidates: pd.DataFrame,
    references: list[Reference],
    *,
    threshold: float,
    num_perm: int,
    shingle_chars: int,
) -> pd.DataFrame:
    """``candidates`` with ``norm_key, dup_status, dup_of, dup_similarity`` added.

    ``candidates`` needs ``row_id, text, status`` in partition order; rows whose generation
    failed are ``not_checked``. ``references`` are earlier texts (held-out, seeds, unique rows
    of earlier batches); later candidates are also compared with earlier unique candidates.
    """
    index = _Index(threshold, num_perm, shingle_chars)
    for reference in references:
        index.add_many(reference.ids, [normalize_text(text) for text in reference.texts], reference.verdict)

    normalized = [normalize_text(text) for text in candidates["text"]]
    checkable = (candidates["status"] == "ok").to_numpy() & np.array([bool(text) for text in normalized], dtype=bool)
    sets = [shingles(text, shingle_chars) for text in normalized]
    checkable_positions = np.flatnonzero(checkable)
    signatures = dict(zip(checkable_positions, _signatures([sets[i] for i in checkable_positions], num_perm)))

    statuses, dup_of, similarity = [], [], []
    for position, row_id in enumerate(candidates["row_id"]):
        if not checkable[position]:
            statuses.append("not_checked"), dup_of.append(""), similarity.append(0.0)
            continue
        found = index.match(normalized[position], sets[position], signatures[position])
        if found is None:
            index.add(row_id, normalized[position], sets[position], signatures[position], "exact_dup")
            statuses.append("unique"), dup_of.append(""), similarity.append(0.0)
        else:
            statuses.append(found[0]), dup_of.append(found[1]), similarity.append(round(float(found[2]), 4))
    return candidates.assign(
        norm_key=normalized, dup_status=statuses, dup_of=dup_of, dup_similarity=np.array(similarity, dtype="float64")
    )


def references_for_batch(heldout: pd.DataFrame, seeds: pd.DataFrame, earlier_unique: pd.DataFrame) -> list[Reference]:
    """What a batch is compared against: held-out rows, real seeds so far, unique rows of earlier batches.

    Each frame has ``text`` and ``label`` plus its id (``line``, ``seed_id``, ``row_id``).
    """
    return [
        Reference(
            [f"heldout:{line}" for line in heldout["line"]], list(heldout["text"]), "contaminates_heldout", list(heldout["label"])
        ),
        Reference(list(seeds["seed_id"]), list(seeds["text"]), "copies_seed", list(seeds["label"])),
        Reference(list(earlier_unique["row_id"]), list(earlier_unique["text"]), "exact_dup", list(earlier_unique["label"])),
    ]


def semantic_duplicates(verdicts: pd.DataFrame, references: list[Reference], encode, threshold: float) -> pd.DataFrame:
    """Rows still ``unique`` whose meaning repeats an earlier text of the same label (cosine >= ``threshold``).

    ``encode`` maps texts to unit vectors (:class:`synth_assets.core.embeddings.StaticModel`).
    Only texts of the same label are compared: "turn the lights on" and "... off" are close in
    meaning space and must both stay. A paraphrase of a held-out row is ``contaminates_heldout``,
    any other match ``semantic_dup``; ``dup_of`` names the row and ``dup_similarity`` is the cosine.
    """
    known = [(row_id, text, label, ref.verdict) for ref in references if ref.labels for row_id, text, label in zip(ref.ids, ref.texts, ref.labels)]
    ref_vectors = encode([text for _, text, _, _ in known]) if known else None
    unique = np.flatnonzero((verdicts["dup_status"] == "unique").to_numpy())
    vectors = encode([verdicts["text"].iat[i] for i in unique]) if len(unique) else None
    statuses, dup_of, similarity = verdicts["dup_status"].copy(), verdicts["dup_of"].copy(), verdicts["dup_similarity"].copy()
    for label in sorted(set(verdicts["label"].iloc[unique])):
        ref_rows = [j for j, (_, _, ref_label, _) in enumerate(known) if ref_label == label]
        kept: list[int] = []  # positions in ``unique`` of this label's rows that stayed unique
        for position in (p for p in range(len(unique)) if verdicts["label"].iat[unique[p]] == label):
            vector = vectors[position]
            best, best_id, best_verdict = -1.0, "", ""
            if ref_rows:
                scores = ref_vectors[ref_rows] @ vector
                top = int(np.argmax(scores))
                best, best_id, best_verdict = float(scores[top]), known[ref_rows[top]][0], known[ref_rows[top]][3]
            if kept:
                scores = vectors[kept] @ vector
                top = int(np.argmax(scores))
                if scores[top] > best:
                    best, best_id, best_verdict = float(scores[top]), verdicts["row_id"].iat[unique[kept[top]]], ""
            row = verdicts.index[unique[position]]
            if best >= threshold:
                statuses[row] = "contaminates_heldout" if best_verdict == "contaminates_heldout" else "semantic_dup"
                dup_of[row], similarity[row] = best_id, round(min(best, 1.0), 4)
            else:
                kept.append(position)
    return verdicts.assign(dup_status=statuses, dup_of=dup_of, dup_similarity=similarity)


def synthetic_copies(texts: list[str], synthetic: pd.DataFrame, *, threshold: float, num_perm: int, shingle_chars: int) -> pd.DataFrame:
    """For each of ``texts``, the earlier synthetic row it copies or nearly copies: ``synthetic_match, synthetic_similarity``.

    ``synthetic`` has ``row_id, text`` of rows the factory generated. A match is the signal of a
    model-collapse loop: synthetic output coming back as "real" input. No match: empty id, 0.0.
    """
    candidates = pd.DataFrame({"row_id": [f"incoming:{i}" for i in range(len(texts))], "text": texts, "status": "ok"})
    reference = Reference(list(synthetic["row_id"]), list(synthetic["text"]), "exact_dup")
    verdicts = find_duplicates(candidates, [reference], threshold=threshold, num_perm=num_perm, shingle_chars=shingle_chars)
    hit = verdicts["dup_of"].isin(set(reference.ids))
    return pd.DataFrame(
        {
            "synthetic_match": verdicts["dup_of"].where(hit, ""),
            "synthetic_similarity": verdicts["dup_similarity"].where(hit, 0.0).astype("float64"),
        }
    )


# A batch's duplicate rate is a collapse signal when it rises above the task's history by more
# than COLLAPSE_SDS standard deviations and at least COLLAPSE_MIN_RISE, once there is enough history.
COLLAPSE_MIN_HISTORY = 3
COLLAPSE_SDS = 3.0
COLLAPSE_MIN_RISE = 0.1


def collapse_signal(rate: float, history: list[float]) -> tuple[bool, str]:
    """(looks normal, why): is this batch's duplicate rate in line with the task's earlier batches?"""
    if len(history) < COLLAPSE_MIN_HISTORY:
        return True, f"{len(history)} earlier batch(es); {COLLAPSE_MIN_HISTORY} are needed to judge a rise"
    mean = float(np.mean(history))
    ceiling = mean + max(COLLAPSE_SDS * float(np.std(history, ddof=1)), COLLAPSE_MIN_RISE)
    verdict = "within" if rate <= ceiling else "above"
    return rate <= ceiling, (
        f"duplicate rate {rate:.3f} is {verdict} the task's history (mean {mean:.3f} over {len(history)} batches, "
        f"ceiling {ceiling:.3f}){'' if rate <= ceiling else ': the generator may be collapsing onto repeats'}"
    )


def duplicate_pairs(verdicts: pd.DataFrame, references: list[Reference], limit: int) -> pd.DataFrame:
    """Rejected rows side by side with the text they duplicate, for a person to eyeball."""
    text_of = {row_id: text for reference in references for row_id, text in zip(reference.ids, reference.texts)}
    text_of.update(zip(verdicts["row_id"], verdicts["text"]))
    rejected = verdicts[~verdicts["dup_status"].isin(["unique", "not_checked"])].head(limit)
    return pd.DataFrame(
        {
            "verdict": rejected["dup_status"],
            "text": rejected["text"],
            "duplicates": [text_of.get(row_id, "") for row_id in rejected["dup_of"]],
            "matched_id": rejected["dup_of"],
            "jaccard": rejected["dup_similarity"],
        }
    )
