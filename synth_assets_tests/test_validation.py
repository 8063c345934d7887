"""The validation split: folds of the seeds choose the mixing policy, never the held-out split."""

import pandas as pd

from synth_assets.core.folds import seed_folds
from synth_assets.core.task_config import MixConfig
from synth_assets.core.validation import candidate_policies, made_from_any, validate_policies
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


def _validate(real, pool, **mix):
    return validate_policies("home", "home-b1", real, pool, MixConfig(**mix), "tfidf_logreg")


def test_the_candidates_are_seeds_only_unweighted_and_each_share():
    assert candidate_policies(MixConfig()) == [0.0, "unweighted", 0.5, 0.75, 0.9]
    assert candidate_policies(MixConfig(synthetic_share=0.6)) == [0.0, 0.6]


def test_harmful_synthetic_rows_leave_the_version_with_the_seeds_alone():
    pool = _pool(_flipped(SEEDS), lambda i: ["unrelated"])
    result = _validate(_real(), pool)
    assert result.chosen_share == 0.0
    assert "no evidence the synthetic rows help" in result.chosen_by
    assert result.macro_f1_by_share[0.0] > result.macro_f1_by_share[0.9]
    assert result.folds == 3 and result.rows == len(_real())
    assert set(result.per_label_f1) == set(LABELS)


def test_do_no_harm_can_be_turned_off_for_a_fixed_share():
    pool = _pool(_flipped(SEEDS), lambda i: ["unrelated"])
    assert _validate(_real(), pool, synthetic_share=0.5, do_no_harm=False).chosen_share == 0.5


def test_clearly_helpful_rows_are_published_under_the_heaviest_policy_that_scores_as_well():
    # Rows that teach exactly the texts being scored (not marked as made from them): clear evidence, every
    # synthetic policy scores the same, so the one giving the synthetic rows most weight is taken.
    pool = _pool(SEEDS, lambda i: ["unrelated"])
    result = _validate(_real(), pool)
    assert result.chosen_share != 0.0, result.chosen_by
    assert result.versus_seeds_only["delta_macro_f1"] > result.versus_seeds_only["se"]
    assert result.synthetic_weight_by_share[result.chosen_share] == max(result.synthetic_weight_by_share.values())


def test_synthetic_rows_made_from_a_validation_seed_never_train_its_fold():
    real = _real()
    # Each synthetic row is an exact copy of a seed text under the seed's label, made from that seed.
    copies = _pool(SEEDS, lambda i: [f"s{i}"])
    leaky = _pool(SEEDS, lambda i: ["unrelated"])
    guarded = _validate(real, copies, synthetic_share=0.9)
    unguarded = _validate(real, leaky, synthetic_share=0.9)
    # Without the guard the copies of validation seeds score perfectly; with it they cannot.
    assert unguarded.macro_f1_by_share[0.9] == 1.0
    assert guarded.macro_f1_by_share[0.9] < 1.0


def test_too_few_seeds_cannot_be_validated():
    tiny = _real().groupby("label").head(2)
    assert _validate(tiny, _pool({}, list)) is None


def test_validation_is_deterministic_and_ignores_the_heldout_split():
    pool = _pool(HELDOUT, lambda i: ["unrelated"])
    assert _validate(_real(), pool) == _validate(_real(), pool)


def test_made_from_any_reads_lists_of_seed_ids():
    assert made_from_any(pd.Series([["a"], ["b", "c"], []]), {"c"}).tolist() == [False, True, False]


def test_folds_are_fixed_by_the_text_and_stratified():
    real = _real()
    folds = seed_folds(real["text"], real["label"], 3)
    assert (seed_folds(real["text"].iloc[::-1], real["label"].iloc[::-1], 3) == folds[::-1]).all(), "order does not matter"
    per_label = pd.crosstab(real["label"], folds)
    assert (per_label.max(axis=1) - per_label.min(axis=1) <= 1).all(), "every label spread evenly"
