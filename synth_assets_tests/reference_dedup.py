"""Plain-Python definitions the vectorised engine is checked against (the tests' ground truth)."""

from __future__ import annotations

from datasketch import MinHash

from synth_assets.core.minhash import MINHASH_SEED


def shingles(normalized: str, size: int) -> set[str]:
    """Character k-shingles; a text shorter than ``size`` is its own single shingle."""
    if len(normalized) <= size:
        return {normalized}
    return {normalized[start : start + size] for start in range(len(normalized) - size + 1)}


def jaccard(left: set[str], right: set[str]) -> float:
    return len(left & right) / len(left | right) if left or right else 1.0


def datasketch_signatures(shingle_sets: list[set[str]], num_perm: int) -> list[MinHash]:
    """datasketch's MinHash (SHA-1 shingle hashes) of each set, via ``MinHash.bulk``."""
    encoded = [[shingle.encode("utf-8") for shingle in sorted(item)] for item in shingle_sets]
    return list(MinHash.bulk(encoded, num_perm=num_perm, seed=MINHASH_SEED)) if encoded else []
