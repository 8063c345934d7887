"""Exact and near-duplicate verdicts for one batch against everything that came before it.

Order of precedence (first match wins, and the verdict names the row matched):
1. ``contaminates_heldout``: the row copies or nearly copies a held-out text. Keeping it would
   inflate the evaluation, so it is counted apart from ordinary duplicates.
2. ``copies_seed``: copies or nearly copies a real seed (it teaches nothing new).
3. ``exact_dup`` / ``near_dup``: repeats a unique row of an earlier batch or an earlier row of
   this batch (first occurrence in partition order wins).

Exact: equal normalised text (see :mod:`synth_assets.core.text`). Near: MinHash over character
k-shingles of the normalised text and band-sort LSH for candidates (the vectorised engine of
:mod:`synth_assets.core.minhash`, whose signatures are bit-identical to datasketch's), each
candidate verified with the exact Jaccard of the shingle sets before a row is rejected, so LSH
false positives never reject a row. Signatures of each batch's unique rows are kept in the lake
(``dedup_signatures/<batch>.parquet``), so later batches load the cross-batch index instead of
hashing earlier text again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synth_assets.core import minhash
from synth_assets.core.text import normalize_text


@dataclass(frozen=True)
class Reference:
    """Texts a batch is compared against, each with a stable id and the verdict a match earns."""

    ids: list[str]
    texts: list[str]
    verdict: str  # contaminates_heldout | copies_seed | exact_dup (near matches become near_dup)
    labels: list[str] | None = None  # needed by the semantic pass, which compares within a label only
    signatures: np.ndarray | None = None  # stored MinHash rows of ``texts``; computed when absent


_PRIORITY = {"contaminates_heldout": 0, "copies_seed": 1, "exact_dup": 2}


def signature_settings(num_perm: int, shingle_chars: int) -> str:
    """What a stored signature was made with; a signature made otherwise is never reused."""
    return f"perm{num_perm}-shingle{shingle_chars}-seed{minhash.MINHASH_SEED}"


def signature_table(row_ids, signatures: np.ndarray, shingle_chars: int) -> pd.DataFrame:
    """Signatures as a lake table: ``row_id``, the row's MinHash values as bytes, and their settings."""
    return pd.DataFrame(
        {
            "row_id": list(row_ids),
            "signature": pd.Series([row.tobytes() for row in np.ascontiguousarray(signatures)], dtype=object),
            "settings": signature_settings(signatures.shape[1], shingle_chars),
        }
    )


def signatures_of(table: pd.DataFrame, num_perm: int) -> np.ndarray:
    """The inverse of :func:`signature_table`: an ``(n, num_perm)`` uint32 array."""
    if table.empty:
        return np.zeros((0, num_perm), dtype=np.uint32)
    return np.frombuffer(b"".join(table["signature"]), dtype=np.uint32).reshape(len(table), num_perm)


def stored_signatures(
    row_ids: list[str], texts: list[str], stored: pd.DataFrame, num_perm: int, shingle_chars: int
) -> np.ndarray:
    """Signatures of ``row_ids`` from ``stored`` (a signature table), computed from ``texts`` where none is stored.

    A batch written before signatures were kept, or one whose settings changed, costs a
    recomputation instead of a wrong index.
    """
    usable = stored[stored["settings"] == signature_settings(num_perm, shingle_chars)]
    by_id = dict(zip(usable["row_id"], usable["signature"]))
    width = num_perm * np.dtype(np.uint32).itemsize
    missing = [i for i, row_id in enumerate(row_ids) if len(by_id.get(row_id, b"")) != width]
    result = np.zeros((len(row_ids), num_perm), dtype=np.uint32)
    present = [i for i in range(len(row_ids)) if i not in set(missing)]
    if present:
        result[present] = np.frombuffer(b"".join(by_id[row_ids[i]] for i in present), dtype=np.uint32).reshape(
            len(present), num_perm
        )
    if missing:
        result[missing] = minhash.signatures([normalize_text(texts[i]) for i in missing], num_perm, shingle_chars)
    return result


def _matches(pairs: np.ndarray, similarity: np.ndarray, count: int) -> list[list[tuple[int, float]]]:
    """Per left row, its verified (right row, similarity) partners."""
    found: list[list[tuple[int, float]]] = [[] for _ in range(count)]
    for (left, right), value in zip(pairs.tolist(), similarity.tolist()):
        found[left].append((right, value))
    return found


def dedup_batch(
    candidates: pd.DataFrame, references: list[Reference], *, threshold: float, num_perm: int, shingle_chars: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``candidates`` with ``norm_key, dup_status, dup_of, dup_similarity``, signatures of its unique rows).

    ``candidates`` needs ``row_id, text, status`` in partition order; rows whose generation
    failed, or whose text normalises to nothing, are ``not_checked``. ``references`` are earlier
    texts (held-out, seeds, unique rows of earlier batches); later candidates are also compared
    with earlier unique candidates.
    """
    normalized = [normalize_text(text) for text in candidates["text"]]
    checkable = np.flatnonzero((candidates["status"] == "ok").to_numpy() & np.array([bool(t) for t in normalized], dtype=bool))
    texts = [normalized[i] for i in checkable]
    row_ids = candidates["row_id"].to_numpy()[checkable]
    sigs = minhash.signatures(texts, num_perm, shingle_chars)

    ref_ids = [row_id for ref in references for row_id in ref.ids]
    ref_texts = [normalize_text(text) for ref in references for text in ref.texts]
    ref_class = [ref.verdict for ref in references for _ in ref.ids]
    ref_sigs = np.concatenate(
        [
            ref.signatures
            if ref.signatures is not None
            else minhash.signatures([normalize_text(t) for t in ref.texts], num_perm, shingle_chars)
            for ref in references
        ]
        or [np.zeros((0, num_perm), dtype=np.uint32)]
    )
    exact_reference: dict[str, int] = {}
    for index, text in enumerate(ref_texts):
        exact_reference.setdefault(text, index)

    bands, rows = minhash.lsh_bands(threshold, num_perm)
    pairs = minhash.query_pairs(ref_sigs, sigs, bands, rows) if len(ref_ids) and len(texts) else np.zeros((0, 2), np.int64)
    pairs, similarity = minhash.verify_pairs(
        pairs, sigs, texts, shingle_chars, threshold, right_sigs=ref_sigs, right_texts=ref_texts
    )
    reference_matches = _matches(pairs, similarity, len(texts))
    pairs, similarity = minhash.verify_pairs(
        minhash.lsh_candidate_pairs(sigs, bands, rows), sigs, texts, shingle_chars, threshold
    )
    # Within the batch a row can only repeat an earlier one: keep (later, earlier) pairs.
    batch_matches = _matches(np.sort(pairs, axis=1)[:, ::-1], similarity, len(texts))

    statuses = np.full(len(candidates), "not_checked", dtype=object)
    dup_of = np.full(len(candidates), "", dtype=object)
    scores = np.zeros(len(candidates), dtype="float64")
    exact_batch: dict[str, int] = {}
    kept = np.zeros(len(texts), dtype=bool)
    for k, position in enumerate(checkable):
        text = texts[k]
        if text in exact_reference:
            index = exact_reference[text]
            statuses[position], dup_of[position], scores[position] = ref_class[index], ref_ids[index], 1.0
            continue
        if text in exact_batch:
            statuses[position], dup_of[position], scores[position] = "exact_dup", row_ids[exact_batch[text]], 1.0
            continue
        ranked = [(_PRIORITY[ref_class[j]], -value, ref_ids[j], ref_class[j]) for j, value in reference_matches[k]]
        ranked += [(_PRIORITY["exact_dup"], -value, row_ids[j], "exact_dup") for j, value in batch_matches[k] if kept[j]]
        if ranked:
            _, negative, matched, verdict = min(ranked)
            statuses[position] = "near_dup" if verdict == "exact_dup" else verdict
            dup_of[position], scores[position] = matched, round(-negative, 4)
            continue
        statuses[position] = "unique"
        exact_batch[text] = k
        kept[k] = True
    table = candidates.assign(
        norm_key=normalized, dup_status=statuses.astype(str), dup_of=dup_of.astype(str), dup_similarity=scores
    )
    return table, signature_table(row_ids[kept], sigs[kept], shingle_chars)


def find_duplicates(
    candidates: pd.DataFrame, references: list[Reference], *, threshold: float, num_perm: int, shingle_chars: int
) -> pd.DataFrame:
    """The verdicts of :func:`dedup_batch` without the signatures."""
    return dedup_batch(candidates, references, threshold=threshold, num_perm=num_perm, shingle_chars=shingle_chars)[0]


def references_for_batch(
    heldout: pd.DataFrame, seeds: pd.DataFrame, earlier_unique: pd.DataFrame, earlier_signatures: np.ndarray | None = None
) -> list[Reference]:
    """What a batch is compared against: held-out rows, real seeds so far, unique rows of earlier batches.

    Each frame has ``text`` and ``label`` plus its id (``line``, ``seed_id``, ``row_id``);
    ``earlier_signatures`` are the stored signatures of ``earlier_unique``, row for row.
    """
    return [
        Reference(
            [f"heldout:{line}" for line in heldout["line"]], list(heldout["text"]), "contaminates_heldout", list(heldout["label"])
        ),
        Reference(list(seeds["seed_id"]), list(seeds["text"]), "copies_seed", list(seeds["label"])),
        Reference(
            list(earlier_unique["row_id"]),
            list(earlier_unique["text"]),
            "exact_dup",
            list(earlier_unique["label"]),
            earlier_signatures,
        ),
    ]


def semantic_duplicates(verdicts: pd.DataFrame, references: list[Reference], encode, threshold: float) -> pd.DataFrame:
    """Rows still ``unique`` whose meaning repeats an earlier text of the same label (cosine >= ``threshold``).

    ``encode`` maps texts to unit vectors (:class:`synth_assets.core.embeddings.StaticModel`).
    Only texts of the same label are compared: "turn the lights on" and "... off" are close in
    meaning space and must both stay. A paraphrase of a held-out row is ``contaminates_heldout``,
    any other match ``semantic_dup``; ``dup_of`` names the row and ``dup_similarity`` is the cosine.
    """
    known = [
        (row_id, text, label, ref.verdict)
        for ref in references
        if ref.labels
        for row_id, text, label in zip(ref.ids, ref.texts, ref.labels)
    ]
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


def synthetic_copies(
    texts: list[str], synthetic: pd.DataFrame, *, threshold: float, num_perm: int, shingle_chars: int
) -> pd.DataFrame:
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
