"""Near-duplicate detection at scale: the product path (``synth_assets.core.dedup.dedup_batch``) against datasketch.

A reproducible corpus of short texts (5-20 words from a fixed pseudo-word vocabulary, seeded RNG)
with planted near-duplicates of earlier rows: one word substituted, inserted or deleted, two
adjacent words swapped, an exact copy up to case/punctuation, and a three-word rewrite (usually
below the threshold), plus unrelated texts. Every planted pair's Jaccard of character shingles
is measured with plain Python sets of shingle strings (``reference_dedup.shingles`` /
``jaccard``: independent of our hashing).

Per size, in a fresh subprocess (so peak RSS is that size's alone):
- end to end: ``dedup_batch`` on a DataFrame of the corpus (``row_id, text, status='ok'``) with
  no references, exactly as the dedup stage calls it (normalisation, exact keys, signatures,
  band-sort LSH, verification, a verdict per row, the signature table of the unique rows);
  docs/s and peak RSS;
- signatures alone (ours, of the normalised texts), docs/s;
- precision / recall of the rows flagged as duplicates against the planted truth (first
  occurrence wins over the planted pairs whose exact Jaccard >= threshold), and at <= 20k rows
  against exact all-pairs Jaccard (scipy sparse products over shingle sets);
- at the largest size: adding a batch of 10k rows, i.e. ``dedup_batch`` of the batch against
  ``Reference(ids, texts, "exact_dup", signatures=...)`` of the corpus's unique rows, with the
  signatures loaded from the signature table the end-to-end run returned (``stored_signatures``,
  as the stage loads them from the lake); precision / recall against the batch's exact truth
  (``batch_truth``: a batch row is a duplicate when it reaches the threshold with an index row or
  with an earlier batch row that is not itself a duplicate), and why the planted variants at
  Jaccard >= threshold to their source that are not flagged are not.
In the parent, on a subsample: datasketch per document (``MinHash.update`` shingle by shingle)
and ``MinHash.bulk``, docs/s extrapolated to each size.

    .venv/bin/python bench/dedup_scale.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from synth_assets.core.dedup import Reference, dedup_batch, stored_signatures
from synth_assets.core.minhash import lsh_bands, signatures
from synth_assets.core.text import normalize_text
from synth_assets_tests.reference_dedup import jaccard, shingles

THRESHOLD, NUM_PERM, SHINGLE = 0.8, 128, 5
KINDS = ["substitute", "insert", "delete", "swap", "copy", "rewrite3"]


def _vocabulary(rng: np.random.Generator, size: int = 3000) -> list[str]:
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["the", "and", "for", "ing", "er"]
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables, rng.integers(1, 4))))
    return sorted(words)


def build_corpus(n: int, seed: int = 7, variant_share: float = 0.3):
    """``texts`` plus, per row, the row it was derived from (-1 for originals) and the edit kind."""
    rng = np.random.default_rng(seed)
    vocab = np.array(_vocabulary(rng))
    lengths = rng.integers(5, 21, n)
    words = rng.integers(0, len(vocab), lengths.sum())
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    is_variant = rng.random(n) < variant_share
    is_variant[:10] = False
    source = np.full(n, -1, dtype=np.int64)
    kind = np.full(n, -1, dtype=np.int64)
    texts: list[str] = []
    for i in range(n):
        if not is_variant[i]:
            texts.append(" ".join(vocab[words[bounds[i] : bounds[i + 1]]]))
            continue
        # A variant of a recent earlier row (clusters stay near each other, like batches).
        j = int(rng.integers(max(0, i - 5000), i))
        base = texts[j].split(" ")
        k = int(rng.integers(len(KINDS)))
        position = int(rng.integers(len(base)))
        if KINDS[k] == "substitute":
            base[position] = str(vocab[rng.integers(len(vocab))])
        elif KINDS[k] == "insert":
            base.insert(position, str(vocab[rng.integers(len(vocab))]))
        elif KINDS[k] == "delete" and len(base) > 5:
            del base[position]
        elif KINDS[k] == "swap" and position + 1 < len(base):
            base[position], base[position + 1] = base[position + 1], base[position]
        elif KINDS[k] == "copy":
            base[0] = base[0].upper() + "!"
        elif KINDS[k] == "rewrite3":
            for p in rng.choice(len(base), min(3, len(base)), replace=False):
                base[p] = str(vocab[rng.integers(len(vocab))])
        texts.append(" ".join(base))
        source[i], kind[i] = j, k
    return texts, source, kind


def planted_truth(normalized: list[str], source: np.ndarray):
    """Exact Jaccard (Python sets of shingle strings) of every planted pair, and the pairs >= threshold.

    Pairs are the row with its source and with every other row derived from the same source chain
    (clusters are small, so this is cheap)."""
    root = np.arange(len(source))
    for i in np.flatnonzero(source >= 0):
        root[i] = root[source[i]]
    order = np.argsort(root, kind="stable")
    roots = root[order]
    starts = np.flatnonzero(np.r_[True, roots[1:] != roots[:-1]])
    ends = np.r_[starts[1:], len(order)]
    cache: dict[int, set[str]] = {}

    def sh(i: int) -> set[str]:
        if i not in cache:
            cache[i] = shingles(normalized[i], SHINGLE)
        return cache[i]

    left, right, sims = [], [], []
    for s, e in zip(starts, ends):
        if e - s < 2:
            continue
        members = sorted(order[s:e].tolist())
        for a_pos, a in enumerate(members):
            for b in members[a_pos + 1 :]:
                left.append(a), right.append(b), sims.append(jaccard(sh(a), sh(b)))
    pairs = np.array([left, right], dtype=np.int64).T.reshape(-1, 2)
    sims = np.array(sims)
    direct = {(int(source[i]), int(i)): None for i in np.flatnonzero(source >= 0)}
    direct_sim = np.full(len(source), np.nan)
    for (a, b), s in zip(pairs.tolist(), sims.tolist()):
        if (a, b) in direct:
            direct_sim[b] = s
    return pairs, sims, direct_sim


def exact_all_pairs(normalized: list[str]):
    """All pairs with exact Jaccard >= threshold, by sparse products of shingle-set incidence rows."""
    from scipy import sparse

    vocabulary: dict[str, int] = {}
    indptr, indices = [0], []
    for text in normalized:
        indices.extend(vocabulary.setdefault(s, len(vocabulary)) for s in shingles(text, SHINGLE))
        indptr.append(len(indices))
    matrix = sparse.csr_matrix((np.ones(len(indices), dtype=np.int32), indices, indptr), shape=(len(normalized), len(vocabulary)))
    sizes = np.diff(matrix.indptr)
    left, right, sims = [], [], []
    for start in range(0, matrix.shape[0], 2000):
        inter = (matrix[start : start + 2000] @ matrix.T).tocoo()
        rows, cols = inter.row + start, inter.col
        keep = rows < cols
        rows, cols, values = rows[keep], cols[keep], inter.data[keep]
        jac = values / (sizes[rows] + sizes[cols] - values)
        ok = jac >= THRESHOLD
        left.append(rows[ok]), right.append(cols[ok]), sims.append(jac[ok])
    return np.stack([np.concatenate(left), np.concatenate(right)], axis=1).astype(np.int64), np.concatenate(sims)


def truth_flags(n: int, pairs: np.ndarray, sims: np.ndarray) -> np.ndarray:
    """Rows a first-occurrence-wins dedup must flag, given every pair ``(i < j)`` and its exact Jaccard:
    row j is flagged when it reaches the threshold with an earlier row that is itself not flagged."""
    keep = sims >= THRESHOLD
    pairs = pairs[keep]
    flagged = np.zeros(n, dtype=bool)
    for earlier, later in pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))].tolist():
        if not flagged[earlier]:
            flagged[later] = True
    return flagged


def batch_truth(texts: list[str], source: np.ndarray, index_rows: np.ndarray, first: int, matched: np.ndarray) -> np.ndarray:
    """Rows ``first:`` of ``texts`` (a batch added to an index of ``index_rows``) a first-occurrence-wins dedup must flag.

    A batch row is a duplicate when it reaches the threshold with an index row or with an earlier batch
    row that is not itself a duplicate. Exact Jaccard (Python sets of shingle strings) of each batch row
    with its candidates: every index row and earlier batch row of its planted cluster (the rows sharing
    its source chain's root; exhaustive for the planted clusters), plus the row the product matched it
    with (``matched``, -1 for none), so a flag outside the clusters is judged by its exact Jaccard too."""
    n = len(texts)
    root = np.arange(n)
    for i in np.flatnonzero(source >= 0):  # a source precedes its variants
        root[i] = root[source[i]]
    eligible = np.zeros(n, dtype=bool)
    eligible[index_rows] = True
    eligible[first:] = True
    members: dict[int, list[int]] = {}
    for i in np.flatnonzero(eligible & np.isin(root, np.unique(root[first:]))).tolist():
        members.setdefault(int(root[i]), []).append(i)  # ascending
    cache: dict[int, set[str]] = {}

    def sh(i: int) -> set[str]:
        if i not in cache:
            cache[i] = shingles(normalize_text(texts[i]), SHINGLE)
        return cache[i]

    duplicate = np.zeros(n - first, dtype=bool)
    for g in range(first, n):
        candidates = [i for i in members[int(root[g])] if i < g]
        other = int(matched[g - first])
        if 0 <= other < g and eligible[other]:
            candidates.append(other)
        duplicate[g - first] = any(
            (i < first or not duplicate[i - first]) and jaccard(sh(g), sh(i)) >= THRESHOLD for i in candidates
        )
    return duplicate


def precision_recall(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hits = int((predicted & truth).sum())
    return hits / max(int(predicted.sum()), 1), hits / max(int(truth.sum()), 1)


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _frame(texts: list[str], first: int) -> pd.DataFrame:
    return pd.DataFrame({"row_id": [f"row{first + i}" for i in range(len(texts))], "text": texts, "status": "ok"})


def worker(n: int, batch: int) -> dict:
    texts, source, kind = build_corpus(n + (batch if batch else 0))
    corpus = _frame(texts[:n], 0)
    gc.collect()
    rss_corpus = maxrss_mib()

    start = time.perf_counter()
    table, stored = dedup_batch(corpus, [], threshold=THRESHOLD, num_perm=NUM_PERM, shingle_chars=SHINGLE)
    e2e = time.perf_counter() - start
    rss_e2e = maxrss_mib()

    normalized = list(table["norm_key"])
    start = time.perf_counter()
    signatures(normalized, NUM_PERM, SHINGLE)
    sig_time = time.perf_counter() - start

    status = table["dup_status"].to_numpy()
    predicted = status != "unique"
    pairs, sims, direct_sim = planted_truth(normalized, source[:n])
    planted = truth_flags(n, pairs, sims)
    p_planted, r_planted = precision_recall(predicted, planted)
    result = {
        "n": n,
        "e2e_s": e2e,
        "e2e_docs_s": n / e2e,
        "sig_s": sig_time,
        "sig_docs_s": n / sig_time,
        "rss_corpus_mib": rss_corpus,
        "rss_peak_mib": rss_e2e,
        "flagged": int(predicted.sum()),
        "exact_dup": int((status == "exact_dup").sum()),
        "near_dup": int((status == "near_dup").sum()),
        "stored_signatures": len(stored),
        "planted_dups": int(planted.sum()),
        "precision_planted": p_planted,
        "recall_planted": r_planted,
        "kinds": {},
    }
    for k, name in enumerate(KINDS):
        rows = np.flatnonzero(kind[:n] == k)
        js = direct_sim[rows]
        above = rows[planted[rows]]
        result["kinds"][name] = {
            "rows": len(rows),
            "jaccard_mean": float(np.nanmean(js)) if len(rows) else 0.0,
            "share_above": float(np.mean(js >= THRESHOLD)) if len(rows) else 0.0,
            "recall": float(predicted[above].mean()) if len(above) else float("nan"),
        }
    if n <= 20000:
        exact_pairs, exact_sims = exact_all_pairs(normalized)
        exact = truth_flags(n, exact_pairs, exact_sims)
        result["exact_dups"] = int(exact.sum())
        result["precision_exact"], result["recall_exact"] = precision_recall(predicted, exact)

    if batch:
        # The index holds the unique rows only (as the stage's references do), with the signatures
        # the end-to-end run stored for them.
        unique = np.flatnonzero(status == "unique")
        index_ids = table["row_id"].to_numpy()[unique].tolist()
        index_texts = [texts[i] for i in unique.tolist()]
        del table, normalized
        gc.collect()
        result.update(add_batch(unique, index_ids, index_texts, stored, texts, source, n))
    return result


def add_batch(index_rows, index_ids, index_texts, stored, texts, source, first) -> dict:
    """``dedup_batch`` of the rows ``first:`` of ``texts`` against a reference of the earlier unique rows
    ``index_rows`` and their stored signatures."""
    batch_texts = texts[first:]
    start = time.perf_counter()
    loaded = stored_signatures(index_ids, index_texts, stored, NUM_PERM, SHINGLE)
    load = time.perf_counter() - start
    reference = Reference(index_ids, index_texts, "exact_dup", signatures=loaded)
    frame = _frame(batch_texts, first)
    start = time.perf_counter()
    verdicts, _ = dedup_batch(frame, [reference], threshold=THRESHOLD, num_perm=NUM_PERM, shingle_chars=SHINGLE)
    elapsed = time.perf_counter() - start
    m = len(batch_texts)
    status = verdicts["dup_status"].to_numpy()
    flagged = status != "unique"
    batch_source = source[first:]
    planted = batch_source >= 0
    above = np.array(
        [
            jaccard(shingles(normalize_text(batch_texts[i]), SHINGLE), shingles(normalize_text(texts[batch_source[i]]), SHINGLE))
            >= THRESHOLD
            if planted[i]
            else False
            for i in range(m)
        ]
    )
    against_index = verdicts["dup_of"].isin(set(index_ids)).to_numpy()
    # Row ids are "row<position>", so the matched id is the matched row's position in ``texts``.
    matched = np.array([int(row_id[3:]) if row_id else -1 for row_id in verdicts["dup_of"]], dtype=np.int64)
    truth = batch_truth(texts, source, index_rows, first, matched)
    precision, recall = precision_recall(flagged, truth)
    # Planted variants at >= threshold to their source and not flagged: truth says unique because the
    # source is not in the index (a duplicate in the corpus) or is a flagged batch row, or the engine missed.
    missed = np.flatnonzero(above & ~flagged)
    missed_engine = missed[truth[missed]]
    missed_ok = missed[~truth[missed]]
    return {
        "batch_planted_above": int(above.sum()),
        "batch_recall_above": float(flagged[above].mean()) if above.any() else float("nan"),
        "batch_truth": int(truth.sum()),
        "batch_precision": precision,
        "batch_recall": recall,
        "batch_missed_above": len(missed),
        "batch_missed_source_not_indexed": int((batch_source[missed_ok] < first).sum()),
        "batch_missed_source_flagged": int((batch_source[missed_ok] >= first).sum()),
        "batch_missed_engine": len(missed_engine),
        "batch": m,
        "index_rows": len(index_ids),
        "batch_load_s": load,
        "batch_s": elapsed,
        "batch_flagged": int(flagged.sum()),
        "batch_flagged_index": int((flagged & against_index).sum()),
        "batch_exact": int((status == "exact_dup").sum()),
        "batch_near": int((status == "near_dup").sum()),
        "batch_planted_variants": int(planted.sum()),
        "batch_flagged_planted": int((flagged & planted).sum()),
        "batch_flagged_unplanted": int((flagged & ~planted).sum()),
    }


def datasketch_rates(sample: int = 2000) -> dict:
    from datasketch import MinHash

    texts, _, _ = build_corpus(sample, seed=11)
    sets = [sorted(shingles(normalize_text(t), SHINGLE)) for t in texts]
    encoded = [[s.encode("utf-8") for s in item] for item in sets]
    start = time.perf_counter()
    for item in encoded:
        minhash = MinHash(num_perm=NUM_PERM, seed=1)
        for shingle in item:
            minhash.update(shingle)
    per_doc = sample / (time.perf_counter() - start)
    start = time.perf_counter()
    MinHash.bulk(encoded, num_perm=NUM_PERM, seed=1)
    bulk = sample / (time.perf_counter() - start)
    normalized = [normalize_text(t) for t in texts]
    start = time.perf_counter()
    signatures(normalized, NUM_PERM, SHINGLE)
    ours = sample / (time.perf_counter() - start)
    return {"sample": sample, "per_doc": per_doc, "bulk": bulk, "ours_sample": ours}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--batch", type=int, default=10000, help="rows added to an index of the largest size")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-batch", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.worker_batch)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    bands, rows = lsh_bands(THRESHOLD, NUM_PERM)
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}; threshold {THRESHOLD}, {NUM_PERM} perms, {SHINGLE}-char shingles, {bands} bands x {rows} rows"
    )
    ds = datasketch_rates()
    print(
        f"datasketch on a {ds['sample']}-doc subsample: per-doc update {ds['per_doc']:,.0f} docs/s, "
        f"MinHash.bulk {ds['bulk']:,.0f} docs/s; ours on the same docs {ds['ours_sample']:,.0f} docs/s"
    )
    results = []
    for n in sizes:
        command = [sys.executable, __file__, "--worker", str(n)]
        if n == max(sizes) and args.batch:
            command += ["--worker-batch", str(args.batch)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(f"done {n}", file=sys.stderr)

    print()
    print(
        "| texts | signatures ours docs/s | datasketch per-doc docs/s (extrap. s) | datasketch bulk docs/s (extrap. s) "
        "| ours / per-doc | dedup_batch end to end docs/s (s) | peak RSS MiB (corpus alone) "
        "| flagged (exact / near) | P / R planted | P / R exact all-pairs |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        exact = f"{r['precision_exact']:.4f} / {r['recall_exact']:.4f}" if "precision_exact" in r else "n/a"
        print(
            f"| {r['n']:,} | {r['sig_docs_s']:,.0f} | {ds['per_doc']:,.0f} ({r['n'] / ds['per_doc']:,.0f} s) "
            f"| {ds['bulk']:,.0f} ({r['n'] / ds['bulk']:,.0f} s) | {r['sig_docs_s'] / ds['per_doc']:,.0f}x "
            f"| {r['e2e_docs_s']:,.0f} ({r['e2e_s']:.1f} s) | {r['rss_peak_mib']:,.0f} ({r['rss_corpus_mib']:,.0f}) "
            f"| {r['flagged']:,} ({r['exact_dup']:,} / {r['near_dup']:,}) "
            f"| {r['precision_planted']:.4f} / {r['recall_planted']:.4f} | {exact} |"
        )
    print()
    print(
        "Planted variants (largest size): kind, rows, mean exact Jaccard to their source, share >= threshold, "
        "recall on the rows of this kind the planted truth flags"
    )
    print()
    print("| kind | rows | mean Jaccard | share >= 0.8 | recall |")
    print("|---|---:|---:|---:|---:|")
    for name, k in results[-1]["kinds"].items():
        print(f"| {name} | {k['rows']:,} | {k['jaccard_mean']:.3f} | {k['share_above']:.3f} | {k['recall']:.4f} |")
    last = results[-1]
    if "batch" in last:
        print()
        print(
            f"Add {last['batch']:,} rows to an index of the {last['index_rows']:,} unique rows of {last['n']:,}: "
            f"loading their stored signatures (stored_signatures) {last['batch_load_s']:.2f} s, "
            f"then dedup_batch {last['batch_s']:.2f} s; total {last['batch_load_s'] + last['batch_s']:.2f} s. "
            f"Flagged {last['batch_flagged']:,} ({last['batch_exact']:,} exact, {last['batch_near']:,} near; "
            f"{last['batch_flagged_index']:,} against the index; "
            f"{last['batch_flagged_planted']:,} of {last['batch_planted_variants']:,} planted variants, "
            f"{last['batch_flagged_unplanted']:,} unplanted). Against the exact truth ({last['batch_truth']:,} duplicates: "
            f"Jaccard >= {THRESHOLD} with an index row or an earlier unique batch row): precision "
            f"{last['batch_precision']:.4f}, recall {last['batch_recall']:.4f}. Recall on the {last['batch_planted_above']:,} "
            f"planted variants at Jaccard >= {THRESHOLD} to their source: {last['batch_recall_above']:.4f}; of the "
            f"{last['batch_missed_above']:,} not flagged, {last['batch_missed_source_not_indexed']:,} have their source "
            f"outside the index (a corpus duplicate) and {last['batch_missed_source_flagged']:,} a flagged batch row as "
            f"source, with no index row or earlier unique batch row at >= {THRESHOLD}; {last['batch_missed_engine']:,} "
            f"are duplicates the engine missed."
        )
    print()
    print(json.dumps({"datasketch": ds, "results": results}))


if __name__ == "__main__":
    main()
