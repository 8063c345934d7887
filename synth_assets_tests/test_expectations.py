"""The Great Expectations suite passes a sound batch and names what a broken one breaks."""

from __future__ import annotations

import pandas as pd

from synth_assets.core.expectations import validate_batch
from synth_assets.core.task_config import GateConfig

SEEDS = pd.Series(["set an alarm for seven", "what is the weather like today", "play jazz"])


def _gated(rows):
    return pd.DataFrame(
        {
            "text": [text for text, _, _ in rows],
            "label": [label for _, label, _ in rows],
            "accepted": [accepted for _, _, accepted in rows],
            "norm_key": [text.lower() for text, _, _ in rows],
        }
    )


def test_a_sound_batch_meets_every_expectation():
    gated = _gated([("wake me at six please", "alarm_set", True), ("is it raining in rome", "weather_query", True)])
    passed, results = validate_batch(gated, ["alarm_set", "weather_query"], GateConfig(), SEEDS)
    assert passed and results["success"].all() and len(results) == 9


def test_a_broken_batch_names_each_expectation_it_breaks():
    gated = _gated(
        [
            ("wake me at six please", "alarm_set", True),
            ("wake me at six please", "alarm_set", True),
            ("is it raining in rome", "weather_query", False),
        ]
    )
    passed, results = validate_batch(gated, ["alarm_set", "weather_query"], GateConfig(), SEEDS)
    failed = set(results.loc[~results["success"], "expectation"])
    assert not passed
    assert failed == {
        "expect_column_distinct_values_to_contain_set",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_be_between",
    }
