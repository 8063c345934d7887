"""Held-out scoring is deterministic and compares a version with its real-only baseline."""

import pandas as pd
import pytest

from synth_assets.core.evaluate import evaluate_version, train_and_score
from synth_assets_tests.conftest import HELDOUT, SEEDS, rows_of

LABELS = sorted(SEEDS)


def _frame(examples, origin):
    return pd.DataFrame(rows_of(examples), columns=["text", "label"]).assign(origin=origin)


def test_scores_are_in_range_and_per_class_rows_cover_every_label():
    score = train_and_score("seeds", _frame(SEEDS, "real"), _frame(HELDOUT, "real"), LABELS)
    assert 0.0 <= score.macro_f1 <= 1.0 and 0.0 <= score.accuracy <= 1.0
    assert score.per_class["label"].tolist() == LABELS
    assert score.per_class["support"].sum() == sum(len(v) for v in HELDOUT.values())


def test_training_on_the_heldout_texts_scores_perfectly():
    score = train_and_score("oracle", _frame(HELDOUT, "real"), _frame(HELDOUT, "real"), LABELS)
    assert score.accuracy == 1.0 and score.macro_f1 == 1.0


def test_version_is_reported_next_to_baselines_with_the_delta():
    version = pd.concat([_frame(SEEDS, "real"), _frame(HELDOUT, "synthetic")])
    summary, per_class = evaluate_version(version, _frame(HELDOUT, "real"), _frame(SEEDS, "real"), LABELS, "tfidf_logreg")
    assert set(per_class["trained_on"]) == {"version", "seeds_only", "all_real"}
    assert summary["version"]["macro_f1"] == 1.0
    assert summary["delta_macro_f1_vs_seeds_only"] == pytest.approx(1.0 - summary["seeds_only"]["macro_f1"], abs=1e-4)
    assert summary["seeds_only"]["train_rows"] == len(rows_of(SEEDS))


def test_one_label_cannot_be_trained():
    one = _frame({"alarm_set": SEEDS["alarm_set"]}, "real")
    with pytest.raises(ValueError, match="at least 2 are needed"):
        train_and_score("seeds", one, _frame(HELDOUT, "real"), LABELS)


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="unknown evaluation model 'bert'"):
        train_and_score("seeds", _frame(SEEDS, "real"), _frame(HELDOUT, "real"), LABELS, model="bert")
