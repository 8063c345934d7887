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


def stored_signatures(
    row_ids: list[str], texts: list[str], stored: pd.DataFrame, num_perm: int, shingle_chars: int
) -> np.ndarray:
    """Signatures of ``row_ids`` from ``stored`` (a signature table), computed from ``texts`` where none is stored.

    A batch written before signatures were kept, or one whose settings changed, costs a
    recomputation instead of a wrong index. A row id stored twice counts with its last signature.
    """
    usable = stored[stored["settings"] == signature_settings(num_perm, shingle_chars)].drop_duplicates("row_id", keep="last")
    usable = usable[usable["signature"].map(len) == num_perm * np.dtype(np.uint32).itemsize]
    position = pd.Index(usable["row_id"]).get_indexer(pd.Index(row_ids, dtype=object))
    found = position >= 0
    result = np.zeros((len(row_ids), num_perm), dtype=np.uint32)
    if found.any():
        result[found] = np.frombuffer(b"".join(usable["signature"].to_numpy()[position[found]]), dtype=np.uint32).reshape(
            -1, num_perm
        )
    missing = np.flatnonzero(~found)
    if len(missing):
        result[missing] = minhash.signatures([normalize_text(texts[i]) for i in missing.tolist()], num_perm, shingle_chars)
    return result


class _ReferenceRows:
    """All references as one row space (``ids``, band ``keys``, which reference a row is from).

    A signature and a normalised text are fetched only for the rows a candidate points at: an
    index of a million earlier rows with stored signatures is never normalised or copied whole.
    """

    def __init__(self, references: list[Reference], num_perm: int, shingle_chars: int, bands: int, rows: int):
        self.ids = [row_id for ref in references for row_id in ref.ids]
        self._texts = [text for ref in references for text in ref.texts]
        self.verdicts = [ref.verdict for ref in references]
        sizes = [len(ref.ids) for ref in references]
        self._starts = np.cumsum([0, *sizes])
        self.reference_of = np.repeat(np.arange(len(references)), sizes)
        self._normalized: dict[int, str] = {}
        self._signatures: list[np.ndarray] = []
        for ref, start in zip(references, self._starts.tolist()):
            sigs = ref.signatures
            if sigs is None:
                texts = [normalize_text(text) for text in ref.texts]
                self._normalized.update(zip(range(start, start + len(texts)), texts))
                sigs = minhash.signatures(texts, num_perm, shingle_chars)
            self._signatures.append(sigs)
        self.keys = np.concatenate(
            [minhash.band_keys(sigs, bands, rows) for sigs in self._signatures] or [np.zeros((0, bands), dtype=np.uint64)]
        )
        self._num_perm = num_perm

    def normalized(self, row: int) -> str:
        if row not in self._normalized:
            self._normalized[row] = normalize_text(self._texts[row])
        return self._normalized[row]

    def signatures(self, rows: np.ndarray) -> np.ndarray:
        result = np.empty((len(rows), self._num_perm), dtype=np.uint32)
        which = np.searchsorted(self._starts, rows, side="right") - 1
        for k, sigs in enumerate(self._signatures):
            mine = which == k
            result[mine] = sigs[rows[mine] - self._starts[k]]
        return result


def _by_owner(owner: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, starts, lengths): entries sorted by ``owner`` (stable) and where each owner's run is."""
    order = np.argsort(owner, kind="stable")
    lengths = np.bincount(owner, minlength=count)
    starts = np.cumsum(lengths) - lengths
    return order, starts, lengths


def _entries_of(owners: np.ndarray, order: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``owners`` (repeats allowed), its entries: (position in ``owners``, entry), flattened."""
    counts = lengths[owners]
    return np.repeat(np.arange(len(owners)), counts), order[minhash.concatenated_ranges(starts[owners], counts)]


def dedup_batch(
    candidates: pd.DataFrame, references: list[Reference], *, threshold: float, num_perm: int, shingle_chars: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``candidates`` with ``norm_key, dup_status, dup_of, dup_similarity``, signatures of its unique rows).

    ``candidates`` needs ``row_id, text, status`` in partition order; rows whose generation
    failed, or whose text normalises to nothing, are ``not_checked``. ``references`` are earlier
    texts (held-out, seeds, unique rows of earlier batches); later candidates are also compared
    with earlier unique candidates.

    Per checked row, first match wins: an equal normalised reference text (the first such
    reference row); an equal earlier unique row (``exact_dup``); else, among the verified near
    matches (reference rows, and earlier rows of the batch that stayed unique), the highest
    precedence, then the highest Jaccard, then the smallest id; else ``unique``. Each distinct
    normalised text is signed, banded and verified once; exact reference matches are the
    reference rows with an equal signature whose normalised text is equal, so only those rows
    and the near candidates' rows of a large reference are ever normalised.
    """
    normalized = [normalize_text(text) for text in candidates["text"]]
    nonempty = np.fromiter(map(bool, normalized), dtype=bool, count=len(normalized))
    checkable = np.flatnonzero((candidates["status"] == "ok").to_numpy() & nonempty)
    row_ids = candidates["row_id"].to_numpy()[checkable]
    # Distinct texts numbered in order of first occurrence: ``codes[k]`` is row k's text.
    codes, distinct = pd.factorize(pd.Series([normalized[i] for i in checkable], dtype=object), sort=False)
    texts = list(distinct)
    count = len(texts)
    first = np.zeros(count, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    sigs = minhash.signatures(texts, num_perm, shingle_chars)
    bands, rows = minhash.lsh_bands(threshold, num_perm)
    keys = minhash.band_keys(sigs, bands, rows)
    index = _ReferenceRows(references, num_perm, shingle_chars, bands, rows)
    priority = np.array([_PRIORITY[verdict] for verdict in index.verdicts], dtype=np.int64)[index.reference_of]

    # Exact reference matches: equal signatures first, then equal text; the first reference row wins.
    same = minhash.equal_key_pairs(minhash.fingerprints(keys), minhash.fingerprints(index.keys))
    same = same[np.array([texts[d] == index.normalized(j) for d, j in same.tolist()], dtype=bool).reshape(-1)]
    same = same[np.lexsort((same[:, 1], same[:, 0]))]
    exact_reference = np.full(count, -1, dtype=np.int64)
    leading = np.r_[True, same[1:, 0] != same[:-1, 0]] if len(same) else np.zeros(0, dtype=bool)
    exact_reference[same[leading, 0]] = same[leading, 1]

    # Near reference matches of the texts without an exact one, verified (reference rows compacted).
    pairs = minhash.query_pairs(index.keys, keys)
    pairs = pairs[exact_reference[pairs[:, 0]] < 0]
    ref_rows, local = np.unique(pairs[:, 1], return_inverse=True)
    ref_pairs, ref_similarity = minhash.verify_pairs(
        np.stack([pairs[:, 0], local.reshape(-1)], axis=1),
        sigs,
        texts,
        shingle_chars,
        threshold,
        right_sigs=index.signatures(ref_rows),
        right_texts=[index.normalized(j) for j in ref_rows.tolist()],
    )
    ref_pairs[:, 1] = ref_rows[ref_pairs[:, 1]]
    batch_pairs, batch_similarity = minhash.verify_pairs(minhash.lsh_candidate_pairs(keys), sigs, texts, shingle_chars, threshold)

    # A text stays unique unless it matches a reference or an earlier text that stayed unique.
    kept = bytearray((exact_reference < 0).astype(np.uint8).tobytes())
    for text in np.unique(ref_pairs[:, 0]).tolist():
        kept[text] = 0
    for earlier, later in batch_pairs[np.lexsort((batch_pairs[:, 0], batch_pairs[:, 1]))].tolist():
        if kept[later] and kept[earlier]:
            kept[later] = 0
    kept = np.frombuffer(bytes(kept), dtype=np.uint8).astype(bool)

    statuses = np.full(len(candidates), "not_checked", dtype=object)
    dup_of = np.full(len(candidates), "", dtype=object)
    scores = np.zeros(len(candidates), dtype="float64")
    positions = np.arange(len(codes))
    # Exact matches with a reference row, with an earlier unique row of the batch, unique rows.
    exact = np.flatnonzero(exact_reference[codes] >= 0)
    matched = exact_reference[codes[exact]]
    statuses[checkable[exact]] = [index.verdicts[r] for r in index.reference_of[matched].tolist()]
    dup_of[checkable[exact]] = [index.ids[j] for j in matched.tolist()]
    scores[checkable[exact]] = 1.0
    copies = np.flatnonzero(kept[codes] & (first[codes] != positions))
    statuses[checkable[copies]], scores[checkable[copies]] = "exact_dup", 1.0
    dup_of[checkable[copies]] = row_ids[first[codes[copies]]]
    statuses[checkable[kept[codes] & (first[codes] == positions)]] = "unique"

    # Near duplicates: row k's candidates are its text's verified reference matches and its text's
    # verified batch partners that stayed unique and first occur before k.
    near = np.flatnonzero(~kept[codes] & (exact_reference[codes] < 0))
    if len(near):
        seen = np.maximum.accumulate(codes) + 1  # distinct texts up to and including row k
        limit = np.r_[0, seen[:-1]][near]
        owner = np.concatenate([batch_pairs[:, 1], batch_pairs[:, 0]])
        partner = np.concatenate([batch_pairs[:, 0], batch_pairs[:, 1]])
        similarity = np.concatenate([batch_similarity, batch_similarity])
        usable = kept[partner]
        owner, partner, similarity = owner[usable], partner[usable], similarity[usable]
        row_b, entry_b = _entries_of(codes[near], *_by_owner(owner, count))
        inside = partner[entry_b] < limit[row_b]
        row_b, entry_b = row_b[inside], entry_b[inside]
        row_r, entry_r = _entries_of(codes[near], *_by_owner(ref_pairs[:, 0], count))
        row = np.concatenate([row_b, row_r])
        rank = np.concatenate([np.full(len(row_b), _PRIORITY["exact_dup"]), priority[ref_pairs[entry_r, 1]]])
        value = np.concatenate([similarity[entry_b], ref_similarity[entry_r]])
        from_reference = np.concatenate([np.zeros(len(row_b), dtype=bool), np.ones(len(row_r), dtype=bool)])
        target = np.concatenate([partner[entry_b], ref_pairs[entry_r, 1]])
        order = np.lexsort((-value, rank, row))
        row, rank, value, from_reference, target = row[order], rank[order], value[order], from_reference[order], target[order]
        leading = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])

        def described(e: int) -> tuple[int, float, object, str]:
            """The ranking of candidate ``e``: precedence, -similarity, matched id, verdict class."""
            if from_reference[e]:
                j = int(target[e])
                return int(rank[e]), -float(value[e]), index.ids[j], index.verdicts[index.reference_of[j]]
            return int(rank[e]), -float(value[e]), row_ids[first[target[e]]], "exact_dup"

        best = leading.tolist()
        # Equal precedence and similarity: the smallest id decides (then the class), as a tuple order.
        stops = np.r_[leading[1:], len(row)]
        second = np.minimum(leading + 1, len(row) - 1)
        tied = (stops - leading > 1) & (rank[second] == rank[leading]) & (value[second] == value[leading])
        for t in np.flatnonzero(tied).tolist():
            best[t] = min(range(leading[t], stops[t]), key=described)
        ranked = [described(e) for e in best]
        statuses[checkable[near]] = ["near_dup" if verdict == "exact_dup" else verdict for *_, verdict in ranked]
        dup_of[checkable[near]] = [matched for _, _, matched, _ in ranked]
        scores[checkable[near]] = [round(-negative, 4) for _, negative, _, _ in ranked]
    table = candidates.assign(
        norm_key=normalized, dup_status=statuses.astype(str), dup_of=dup_of.astype(str), dup_similarity=scores
    )
    del keys, batch_pairs, ref_pairs
    # The unique rows' signatures moved to the front in place (unique[i] >= i): no second copy of them.
    unique = np.flatnonzero(kept)
    step = 1 << 16
    for start in range(0, len(unique), step):
        part = unique[start : start + step]
        sigs[start : start + len(part)] = sigs[part]
    return table, signature_table(row_ids[first[unique]], sigs[: len(unique)], shingle_chars)


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
