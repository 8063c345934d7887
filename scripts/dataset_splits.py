"""The split both development-dataset builders write: what ``new-task --from`` reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

TEST_SHARE = 0.3


def write_splits(frame: pd.DataFrame, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``frame`` (text, label) split 70/30, stratified by label with random_state 0, as ``folder``/train.csv and test.csv."""
    train, test = train_test_split(frame, test_size=TEST_SHARE, stratify=frame["label"], random_state=0)
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    return train, test
