"""How synthetic text differs from real text, and whether a generator is collapsing.

Three questions an ML engineer asks of a dataset version:

- shift (:func:`shift_report`): can a classifier tell synthetic from real text, and how far apart
  are their vocabularies and lengths?
- diversity (:func:`diversity_profile`, :func:`collapse_verdict`): how repetitive is a set of
  texts, and did it become more repetitive than the previous version?
- memorisation (:func:`distance_to_closest_record`, :func:`dcr_summary`): how close is each
  synthetic text to its nearest real text, compared with how close independent real text is?

Every function works on seeded samples (at most ``MAX_ROWS`` rows per side, ``SAMPLE_ROWS`` for
the diversity profile), so a 100k-row version costs seconds and the same seed gives the same
numbers. Text is seen through :func:`~synth_assets.core.text.normalize_text` and split on
whitespace: casing and punctuation conventions, which the task model ignores too, do not count as
a difference between real and synthetic text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.sparse import spmatrix
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline, make_union

from synth_assets.core.hashing import derive_seed
from synth_assets.core.text import normalize_text

MAX_ROWS = 5000  # rows per side sampled by the shift and distance metrics
SAMPLE_ROWS = 1000  # texts per diversity profile: distinct-n falls with corpus size, so the size is fixed
FOLDS = 5
DISTINCT_ORDERS = (1, 2, 3)
NEAR_DUPLICATE_COSINE = 0.9
CLOSE_DCR = 0.1  # a synthetic text this close to a real one is a light edit of it
CHUNK_ROWS = 2000  # query rows per similarity product, so memory stays bounded by CHUNK_ROWS x corpus
DIGITS = 4


# --- shared helpers -------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return normalize_text(text).split()


def _sample(texts: pd.Series, rows: int, seed: int, purpose: str) -> pd.Series:
    """At most ``rows`` of ``texts`` (missing values dropped), drawn without replacement and kept in their original order."""
    texts = texts.dropna().astype(str)
    if len(texts) <= rows:
        return texts
    # One stream per purpose: the real and the synthetic side must not be drawn with the same positions.
    rng = np.random.default_rng(derive_seed(seed, purpose))
    return texts.iloc[np.sort(rng.choice(len(texts), size=rows, replace=False))]


def _has_words(texts: Iterable[str]) -> bool:
    """Whether any text survives normalisation: a vectorizer fitted on none raises "empty vocabulary"."""
    return any(normalize_text(text) for text in texts)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), DIGITS)


def _nearest_similarity(queries: spmatrix, corpus: spmatrix, exclude_self: bool = False) -> np.ndarray:
    """Per query row, the highest cosine to a corpus row (rows are L2-normalised); chunked to bound memory.

    With ``exclude_self`` the queries are the corpus and each row's similarity to itself is ignored.
    """
    best = np.zeros(queries.shape[0])
    for start in range(0, queries.shape[0], CHUNK_ROWS):
        block = (queries[start : start + CHUNK_ROWS] @ corpus.T).toarray()
        if exclude_self:
            rows = np.arange(block.shape[0])
            block[rows, start + rows] = -np.inf
        best[start : start + block.shape[0]] = block.max(axis=1)
    return best


# --- shift: real versus synthetic -----------------------------------------------------------------


def _discriminator() -> Pipeline:
    # Word 1-2 grams see phrasing; character 2-4 grams inside words see morphology and spelling.
    # Balanced classes: the larger side must not win the AUC by prior alone.
    # Texts arrive normalised (once, not once per fold and vectorizer), hence lowercase=False.
    features = make_union(
        TfidfVectorizer(lowercase=False, tokenizer=str.split, token_pattern=None, ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(lowercase=False, analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True),
    )
    # newton-cg reaches the same optimum as lbfgs, which was 2-3x slower on these ~20k sparse columns with threaded BLAS.
    return make_pipeline(features, LogisticRegression(max_iter=2000, class_weight="balanced", solver="newton-cg"))


def _discriminator_auc(real: pd.Series, synthetic: pd.Series, seed: int) -> float | None:
    """Cross-validated ROC AUC of a classifier telling synthetic from real: 0.5 = indistinguishable, 1 = told apart."""
    if min(len(real), len(synthetic)) < FOLDS:
        return None
    texts = pd.concat([real, synthetic], ignore_index=True).map(normalize_text)
    if not texts.str.len().any():
        return None
    is_synthetic = np.r_[np.zeros(len(real), dtype=int), np.ones(len(synthetic), dtype=int)]
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=derive_seed(seed, "discriminator"))
    return float(np.mean(cross_val_score(_discriminator(), texts, is_synthetic, cv=folds, scoring="roc_auc")))


def _vocabulary_js_divergence(real_counts: Counter[str], synthetic_counts: Counter[str]) -> float | None:
    """Jensen-Shannon divergence (base 2: 0 = same word distribution, 1 = no word in common) of two unigram counts."""
    if not real_counts or not synthetic_counts:
        return None
    vocabulary = sorted(real_counts.keys() | synthetic_counts.keys())
    real_p = np.array([real_counts[word] for word in vocabulary], dtype=float)
    synthetic_p = np.array([synthetic_counts[word] for word in vocabulary], dtype=float)
    # scipy returns the JS *distance* (square root of the divergence).
    return float(jensenshannon(real_p, synthetic_p, base=2) ** 2)


def _share_unseen(real_counts: Counter[str], synthetic_counts: Counter[str]) -> float | None:
    """Share of synthetic word occurrences whose word never occurs in the real text."""
    total = sum(synthetic_counts.values())
    if not total:
        return None
    return sum(count for word, count in synthetic_counts.items() if word not in real_counts) / total


def _length_ks(real_lengths: list[int], synthetic_lengths: list[int]) -> float | None:
    if not real_lengths or not synthetic_lengths:
        return None
    return float(ks_2samp(real_lengths, synthetic_lengths).statistic)


def _mean(values: list[int]) -> float | None:
    return float(np.mean(values)) if values else None


def shift_report(real: pd.Series, synthetic: pd.Series, seed: int, max_rows: int = MAX_ROWS) -> dict:
    """How synthetic text differs from real text, on seeded samples of at most ``max_rows`` rows per side.

    - ``discriminator_auc``: cross-validated (``FOLDS`` folds, seeded) ROC AUC of a TF-IDF word 1-2 gram +
      char_wb 2-4 gram logistic regression telling synthetic from real. 0.5 = indistinguishable;
      near 1 = the generator has a recognisable style the task model may learn instead of the task.
      None when a side has fewer than ``FOLDS`` rows. On identical distributions it scatters around
      (and slightly below) 0.5: about +-0.05 at 500 rows per side, more on fewer.
    - ``vocabulary_js_divergence``: Jensen-Shannon divergence (base 2, 0..1) of the word unigram
      distributions.
    - ``synthetic_vocabulary_share_unseen``: share of synthetic word occurrences whose word never
      occurs in the (sampled) real text: new vocabulary, welcome in moderation, off-domain in excess.
    - ``length_ks``: two-sample Kolmogorov-Smirnov statistic of words per text (0 = same length
      distribution, 1 = disjoint), with ``mean_words_real`` and ``mean_words_synthetic``.
    - ``real_rows``, ``synthetic_rows``: rows the numbers were computed on (after sampling).
    """
    real_sample = _sample(real, max_rows, seed, "shift:real")
    synthetic_sample = _sample(synthetic, max_rows, seed, "shift:synthetic")
    real_words = [_words(text) for text in real_sample]
    synthetic_words = [_words(text) for text in synthetic_sample]
    real_counts = Counter(word for words in real_words for word in words)
    synthetic_counts = Counter(word for words in synthetic_words for word in words)
    real_lengths = [len(words) for words in real_words]
    synthetic_lengths = [len(words) for words in synthetic_words]
    return {
        "discriminator_auc": _rounded(_discriminator_auc(real_sample, synthetic_sample, seed)),
        "vocabulary_js_divergence": _rounded(_vocabulary_js_divergence(real_counts, synthetic_counts)),
        "synthetic_vocabulary_share_unseen": _rounded(_share_unseen(real_counts, synthetic_counts)),
        "length_ks": _rounded(_length_ks(real_lengths, synthetic_lengths)),
        "mean_words_real": _rounded(_mean(real_lengths)),
        "mean_words_synthetic": _rounded(_mean(synthetic_lengths)),
        "real_rows": len(real_sample),
        "synthetic_rows": len(synthetic_sample),
    }


# --- diversity within one set of texts ------------------------------------------------------------


def _distinct_n(tokenised: list[list[str]], n: int) -> float | None:
    """Unique word n-grams / all word n-grams over the texts (n-grams never span two texts)."""
    ngrams = [tuple(words[i : i + n]) for words in tokenised for i in range(len(words) - n + 1)]
    return len(set(ngrams)) / len(ngrams) if ngrams else None


def _word_vectors(texts: pd.Series) -> spmatrix:
    return TfidfVectorizer(
        preprocessor=normalize_text, tokenizer=str.split, token_pattern=None, ngram_range=(1, 2)
    ).fit_transform(texts)


def _similarity_profile(texts: pd.Series) -> dict:
    if len(texts) < 2 or not _has_words(texts):
        return {"self_similarity": None, "nearest_neighbour_similarity": None, "near_duplicate_share": None}
    vectors = _word_vectors(texts)
    rows = vectors.shape[0]
    # Rows are unit vectors, so the sum of all pairwise cosines is |sum of rows|^2: the mean
    # off-diagonal cosine needs no rows x rows matrix. Empty texts are zero rows and count as 0.
    total = np.asarray(vectors.sum(axis=0)).ravel()
    self_pairs = vectors.multiply(vectors).sum()
    self_similarity = (float(total @ total) - float(self_pairs)) / (rows * (rows - 1))
    nearest = _nearest_similarity(vectors, vectors, exclude_self=True)
    return {
        "self_similarity": _rounded(self_similarity),
        "nearest_neighbour_similarity": _rounded(float(nearest.mean())),
        "near_duplicate_share": _rounded(float((nearest >= NEAR_DUPLICATE_COSINE).mean())),
    }


def diversity_profile(texts: pd.Series, seed: int, sample_rows: int = SAMPLE_ROWS) -> dict:
    """How varied a set of texts is, measured on a seeded sample of ``sample_rows`` texts (all when fewer).

    distinct-n falls as a corpus grows (more text, more repeats of common n-grams), so every number
    is computed on a sample of the same size: versions of different sizes are then comparable, and
    a larger version of the same generator gets the same numbers. Exact duplicates do lower them:
    a corpus that repeats itself is less diverse, however large.

    - ``distinct_1``, ``distinct_2``, ``distinct_3``: unique word n-grams / all word n-grams.
      Lower = more repetitive.
    - ``self_similarity``: mean pairwise cosine of TF-IDF word 1-2 gram vectors, diagonal excluded
      (a Self-BLEU analogue). Higher = more repetitive.
    - ``nearest_neighbour_similarity``: mean over texts of the highest cosine to another text.
    - ``near_duplicate_share``: share of texts whose nearest neighbour has cosine >= ``NEAR_DUPLICATE_COSINE``.
    - ``sample_rows``: texts measured; ``rows``: texts in the input.
    Values are None when there are too few texts (or words) to compute them.
    """
    sample = _sample(texts, sample_rows, seed, "diversity")
    tokenised = [_words(text) for text in sample]
    profile = {f"distinct_{n}": _rounded(_distinct_n(tokenised, n)) for n in DISTINCT_ORDERS}
    return {**profile, **_similarity_profile(sample), "sample_rows": len(sample), "rows": len(texts)}


# --- distance to closest record -------------------------------------------------------------------


def _char_vectorizer(texts: Iterable[str]) -> TfidfVectorizer | None:
    """TF-IDF over char_wb 3-5 grams of normalised text, fitted on ``texts``; None when none has a character."""
    texts = list(texts)
    if not _has_words(texts):
        return None
    return TfidfVectorizer(preprocessor=normalize_text, analyzer="char_wb", ngram_range=(3, 5), dtype=np.float32).fit(texts)


def _distances(queries: pd.Series, corpus: pd.Series, vectorizer: TfidfVectorizer | None) -> pd.Series:
    """Per query text, 1 - the highest cosine to a corpus text; exactly 0 for a copy (equal after normalisation)."""
    if corpus.empty:
        return pd.Series(np.nan, index=queries.index, name="dcr", dtype=float)
    if vectorizer is None or queries.empty:
        similarity = np.zeros(len(queries))
    else:
        similarity = _nearest_similarity(vectorizer.transform(queries), vectorizer.transform(corpus))
    distance = np.clip(1.0 - similarity, 0.0, 1.0)
    # Rounding leaves a copy at ~1e-7 rather than 0; equality of normalised text is the exact test.
    is_copy = queries.map(normalize_text).isin(set(corpus.map(normalize_text))).to_numpy()
    return pd.Series(np.where(is_copy, 0.0, distance), index=queries.index, name="dcr")


def distance_to_closest_record(synthetic: pd.Series, real: pd.Series, seed: int, max_rows: int = MAX_ROWS) -> pd.Series:
    """Per synthetic text, its distance to the closest real text: 1 - max cosine of TF-IDF char_wb 3-5 grams.

    0 = a copy of a real text (after normalisation); small = a light edit of one; 1 = shares no
    character n-gram with any real text. The vectorizer is fitted on both sides, so n-grams only
    synthetic text has still count against similarity. Both sides are sampled to at most
    ``max_rows`` rows (seeded), and the result is indexed like the sampled synthetic rows; when
    ``real`` has more rows than that, the closest record may be among the unsampled ones, so the
    distances are upper bounds. NaN when there is no real text.
    """
    queries = _sample(synthetic, max_rows, seed, "dcr:synthetic")
    corpus = _sample(real, max_rows, seed, "dcr:real")
    return _distances(queries, corpus, _char_vectorizer([*queries, *corpus]))


def _quantiles(distances: pd.Series, prefix: str) -> dict:
    names = {"min": 0.0, "p01": 0.01, "p05": 0.05, "p50": 0.5}
    distances = distances.dropna()
    if distances.empty:
        return {f"{prefix}{name}": None for name in [*names, "mean"]}
    values = {f"{prefix}{name}": float(np.quantile(distances, q)) for name, q in names.items()}
    return {key: _rounded(value) for key, value in {**values, f"{prefix}mean": distances.mean()}.items()}


def _exact_copies(synthetic: pd.Series, real: pd.Series) -> int:
    real_keys = set(real.dropna().astype(str).map(normalize_text))
    return int(synthetic.dropna().astype(str).map(normalize_text).isin(real_keys).sum())


def dcr_summary(
    synthetic: pd.Series, real: pd.Series, reference_real: pd.Series | None, seed: int, max_rows: int = MAX_ROWS
) -> dict:
    """Distance-to-closest-record (DCR) of synthetic text to real text, next to the real-to-real baseline.

    ``real`` is the text the generator saw (the seeds); ``reference_real`` is real text it did not
    see (e.g. the held-out split) and must share no rows with ``real``.

    - ``dcr_min``, ``dcr_p01``, ``dcr_p05``, ``dcr_p50``, ``dcr_mean``: distribution of synthetic -> real DCR
      (see :func:`distance_to_closest_record`) on a seeded sample of at most ``max_rows`` synthetic rows.
    - ``exact_copies``: synthetic rows, over *all* rows rather than the sample, equal to a real
      text after normalisation (their DCR is 0); ``share_below_0.1``: share of sampled synthetic
      rows with DCR < ``CLOSE_DCR``, i.e. light edits of a real text.
    - with ``reference_real``: ``real_baseline_dcr_*``, the same quantiles of reference -> real DCR,
      which say how far independently written text of the domain is from the seeds; and
      ``synthetic_closer_than_real_p05``, the share of synthetic rows closer to a seed than the 5th
      percentile of that baseline. A generator as novel as fresh real text scores about 0.05;
      well above means it reproduces its seeds (memorisation: a privacy risk when the seeds are
      private, and little new signal for the model). Synthetic DCRs far *above* the baseline mean
      the text has drifted off the domain (see :func:`shift_report`). Without ``reference_real``
      these keys are None.
    - ``rows``: synthetic rows measured.
    One vectorizer, fitted on all three samples, serves both distributions so they are comparable.
    """
    queries = _sample(synthetic, max_rows, seed, "dcr:synthetic")
    corpus = _sample(real, max_rows, seed, "dcr:real")
    reference = None if reference_real is None else _sample(reference_real, max_rows, seed, "dcr:reference")
    vectorizer = _char_vectorizer([*queries, *corpus, *([] if reference is None else reference)])
    synthetic_dcr = _distances(queries, corpus, vectorizer)
    measured = synthetic_dcr.dropna()
    summary = {
        **_quantiles(synthetic_dcr, "dcr_"),
        "exact_copies": _exact_copies(synthetic, real),
        f"share_below_{CLOSE_DCR}": _rounded((measured < CLOSE_DCR).mean()) if len(measured) else None,
        "rows": len(queries),
    }
    baseline_dcr = pd.Series(dtype=float) if reference is None else _distances(reference, corpus, vectorizer)
    baseline = _quantiles(baseline_dcr, "real_baseline_dcr_")
    closer = None
    if len(measured) and baseline["real_baseline_dcr_p05"] is not None:
        closer = _rounded((measured < float(np.quantile(baseline_dcr.dropna(), 0.05))).mean())
    return {**summary, **baseline, "synthetic_closer_than_real_p05": closer}


# --- collapse across versions ---------------------------------------------------------------------


def _relative_change(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before <= 0:
        return None
    return (after - before) / before


def _between(previous: dict, current: dict) -> str:
    if "version" in previous and "version" in current:
        return f"between versions {previous['version']} and {current['version']}"
    return "since the previous version"


def collapse_verdict(history: list[dict], current: dict, tolerance: float = 0.1) -> tuple[bool, str]:
    """(collapsed, sentence): did diversity collapse since the previous version?

    ``history`` holds the :func:`diversity_profile` of earlier versions, oldest first (a dict may
    carry a ``"version"`` key used in the sentence). Collapse = distinct-2 fell, or self-similarity
    rose, by more than ``tolerance`` relative to the previous version. Only consecutive versions
    are compared, so a slow drift of a few percent per version is not flagged.
    """
    if not history:
        return False, "first version: no earlier diversity profile to compare with"
    previous = history[-1]
    checks = [
        ("distinct-2", "distinct_2", -1),  # a fall is a loss of diversity
        ("self-similarity", "self_similarity", 1),  # a rise is a loss of diversity
    ]
    collapsed, described = False, []
    for name, key, bad_direction in checks:
        before, after = previous.get(key), current.get(key)
        change = _relative_change(before, after)
        if change is None:
            continue
        worse = change * bad_direction > tolerance
        collapsed = collapsed or worse
        if change == 0:
            described.append((False, f"{name} held at {before:.3g}"))
        else:
            verb = "fell" if change < 0 else "rose"
            described.append((worse, f"{name} {verb} from {before:.3g} to {after:.3g} ({change:+.0%})"))
    between = _between(previous, current)
    if not described:
        return False, f"no comparable distinct-2 or self-similarity {between}"
    if collapsed:
        return True, f"diversity collapsed {between}: " + "; ".join(text for worse, text in described if worse)
    return False, f"no collapse {between} (tolerance {tolerance:.0%}): " + "; ".join(text for _, text in described)
