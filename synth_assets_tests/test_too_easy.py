"""The too-easy filter drops artificial rows only when that helps on a validation split of the seeds."""

from __future__ import annotations

import pandas as pd

from synth_assets.core.too_easy import decide
from synth_assets_tests.conftest import SEEDS


def _synthetic(rows):
    return pd.DataFrame(
        {
            "row_id": [f"s{i}" for i in range(len(rows))],
            "text": [t for t, _, _ in rows],
            "label": [lb for _, lb, _ in rows],
            "seed_ids": [ids for _, _, ids in rows],
        }
    )


def test_artificial_rows_that_hurt_validation_are_flagged_and_the_filter_applied(seed_rows):
    labels = list(SEEDS)
    good = [(f"{text} please", label, [f"s:{label}:{i}"]) for label, texts in SEEDS.items() for i, text in enumerate(texts)]
    # Artificial, and wrong: another label's words under this label, all wearing the same marker.
    bad = [
        (f"zqx generated sample {text}", labels[(labels.index(label) + 1) % len(labels)], [f"s:{label}:{i}"])
        for label, texts in SEEDS.items()
        for i, text in enumerate(texts)
    ] * 2
    synthetic = _synthetic(good + bad)
    decision = decide(seed_rows, synthetic, 0.7, "tfidf_logreg", 0)
    flagged = set(synthetic.loc[decision.flagged, "text"])
    assert flagged and all(text.startswith("zqx") for text in flagged)
    assert decision.applied and decision.validation_macro_f1_with > decision.validation_macro_f1_without


def test_plausible_rows_keep_the_filter_off(seed_rows):
    good = [(f"{text} please", label, [f"s:{label}:{i}"]) for label, texts in SEEDS.items() for i, text in enumerate(texts)]
    decision = decide(seed_rows, _synthetic(good), 0.9, "tfidf_logreg", 0)
    assert not decision.applied


def test_too_few_rows_to_validate_leave_the_filter_off(seed_rows):
    decision = decide(seed_rows, _synthetic([("wake me at six", "alarm_set", ["x"])]), 0.9, "tfidf_logreg", 0)
    assert not decision.applied and not decision.flagged.any()
