"""Which validation fold each real seed belongs to: fixed by its text, so generation can know it in advance.

Within each label the seeds are ordered by a hash of their normalised text and dealt round-robin
into the folds: stratified (every label spread evenly) and the same whoever asks. Generation uses it
to show each LLM request seeds of one fold only; validation (:mod:`synth_assets.core.validation`)
leaves a synthetic row out of a fold's training when it was made from that fold's seeds, so a
request's rows stay usable in every other fold (about ``(folds - 1) / folds`` of the pool, where
seeds mixed across folds would leave about ``((folds - 1) / folds) ** shown``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth_assets.core.hashing import stable_hash
from synth_assets.core.text import normalize_text


def seed_folds(texts: pd.Series, labels: pd.Series, folds: int) -> np.ndarray:
    """The fold (0 .. folds-1) of each seed, in the order given."""
    keys = pd.Series([stable_hash("fold", normalize_text(text)) for text in texts], index=texts.index)
    rank = keys.groupby(labels.to_numpy()).rank(method="first").astype(int) - 1
    return (rank % folds).to_numpy()
