"""The validation split: folds of the seeds choose the synthetic share, never the held-out split."""

import pandas as pd

from synth_assets.core.task_config import MixConfig
from synth_assets.core.validation import made_from_any, validate_shares
from synth_assets_tests.conftest import HELDOUT, SEEDS, rows_of

LABELS = sorted(SEEDS)


def _real():
    rows = rows_of(SEEDS)
    return pd.DataFrame(
        {
            "seed_id": [f"s{i}" for i in range(len(rows))],
            "text": [text for text, _ in rows],
            "label": [label for _, label in rows],
            "batch": "home-b1",
        }
    )


def _pool(examples, seed_ids):
    rows = rows_of(examples)
    return pd.DataFrame(
        {
            "row_id": [f"p{i}" for i in range(len(rows))],
            "text": [text for text, _ in rows],
            "label": [label for _, label in rows],
            "batch": "home-b1",
            "batch_order": 0,
            "generator": "template",
            "template_id": "t",
            "seed_ids": [seed_ids(i) for i in range(len(rows))],
        }
    )


def _flipped(examples):
    return {label: examples[LABELS[(LABELS.index(label) + 1) % len(LABELS)]] for label in LABELS}


def test_harmful_synthetic_rows_make_validation_choose_the_smallest_share():
    pool = _pool(_flipped(SEEDS), lambda i: ["unrelated"])
    result = validate_shares("home", "home-b1", _real(), pool, MixConfig(), [0.0, 0.5, 0.9], "tfidf_logreg")
    assert result.chosen_share == 0.0
    assert result.macro_f1_by_share[0.0] > result.macro_f1_by_share[0.9]
    assert result.folds == 3 and result.rows == len(_real())
    assert set(result.per_label_f1) == set(LABELS)


def test_synthetic_rows_made_from_a_validation_seed_never_train_its_fold():
    real = _real()
    # Each synthetic row is an exact copy of a seed text under the seed's label, made from that seed.
    copies = _pool(SEEDS, lambda i: [f"s{i}"])
    leaky = _pool(SEEDS, lambda i: ["unrelated"])
    guarded = validate_shares("home", "home-b1", real, copies, MixConfig(), [0.9], "tfidf_logreg")
    unguarded = validate_shares("home", "home-b1", real, leaky, MixConfig(), [0.9], "tfidf_logreg")
    # Without the guard the copies of validation seeds score perfectly; with it they cannot.
    assert unguarded.macro_f1_by_share[0.9] == 1.0
    assert guarded.macro_f1_by_share[0.9] < 1.0


def test_too_few_seeds_cannot_be_validated():
    tiny = _real().groupby("label").head(2)
    assert validate_shares("home", "home-b1", tiny, _pool({}, list), MixConfig(), [0.5], "tfidf_logreg") is None


def test_validation_is_deterministic_and_ignores_the_heldout_split():
    pool = _pool(HELDOUT, lambda i: ["unrelated"])
    first = validate_shares("home", "home-b1", _real(), pool, MixConfig(), [0.0, 0.5], "tfidf_logreg")
    again = validate_shares("home", "home-b1", _real(), pool, MixConfig(), [0.0, 0.5], "tfidf_logreg")
    assert first == again


def test_made_from_any_reads_lists_of_seed_ids():
    assert made_from_any(pd.Series([["a"], ["b", "c"], []]), {"c"}).tolist() == [False, True, False]
