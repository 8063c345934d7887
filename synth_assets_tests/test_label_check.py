"""The label-consistency tier catches wrong labels, leaves right ones, and runs only on survivors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth_assets.core.gate import gate_rows
from synth_assets.core.label_check import LabelChecker
from synth_assets.core.task_config import GateConfig
from synth_assets_tests.conftest import HELDOUT, SEEDS


def _checker(seed_rows):
    return LabelChecker.fit(seed_rows["text"], seed_rows["label"], dispute_rank=1, dispute_ratio=2.0)


def test_a_confidently_wrong_label_is_disputed_with_what_the_classifier_says(seed_rows):
    texts = pd.Series(["turn off the lights in the hall", "turn off the lights in the hall"])
    disputes = _checker(seed_rows).disputes(texts, pd.Series(["lights_off", "play_music"]))
    assert disputes.iloc[0] == ""
    assert "ranks 'play_music'" in disputes.iloc[1] and "it says 'lights_off'" in disputes.iloc[1]


def test_planted_wrong_labels_are_caught_and_right_ones_kept(seed_rows):
    rows = [(text, label) for label, texts in HELDOUT.items() for text in texts]
    labels = sorted(SEEDS)
    claimed = [label if i % 2 else labels[(labels.index(label) + 1) % len(labels)] for i, (_, label) in enumerate(rows)]
    wrong = np.array([c != t for c, (_, t) in zip(claimed, rows)])
    disputes = _checker(seed_rows).disputes(pd.Series([t for t, _ in rows]), pd.Series(claimed)) != ""
    assert (disputes.to_numpy() & wrong).sum() / wrong.sum() >= 0.8, "recall on planted wrong labels"
    assert not (disputes.to_numpy() & ~wrong).any(), "no right label disputed"


def test_the_classifier_tier_sees_only_rows_the_cheap_filters_kept(seed_rows):
    rows = pd.DataFrame(
        {
            "text": ["1. turn off the lights", "turn off the lights now please", "turn off the lights now please"],
            "label": ["play_music", "play_music", "lights_off"],
            "status": "ok",
            "error": "",
            "norm_key": ["1 turn off the lights", "turn off the lights now please", "turn off the lights now please x"],
            "dup_status": "unique",
            "dup_of": "",
            "dup_similarity": 0.0,
        }
    )
    config = GateConfig(label_dispute_rank=1, label_dispute_ratio=2.0)
    gated = gate_rows(rows, config, list(SEEDS), seed_rows)
    assert gated["reject_reason"].tolist() == ["list_marker", "label_disputed", ""]
    assert gate_rows(rows, GateConfig(label_check=False), list(SEEDS), seed_rows)["reject_reason"].tolist() == [
        "list_marker",
        "",
        "",
    ]


def test_a_two_label_task_is_checked_although_no_label_can_rank_below_second(seed_rows):
    binary = seed_rows[seed_rows["label"].isin(["lights_off", "play_music"])]
    checker = LabelChecker.fit(binary["text"], binary["label"], dispute_rank=3, dispute_ratio=1.5)
    texts = pd.Series(HELDOUT["lights_off"] + HELDOUT["play_music"])
    truth = ["lights_off"] * len(HELDOUT["lights_off"]) + ["play_music"] * len(HELDOUT["play_music"])
    swapped = ["play_music" if label == "lights_off" else "lights_off" for label in truth]
    assert (checker.disputes(texts, pd.Series(swapped)) != "").sum() >= len(texts) - 1
    assert (checker.disputes(texts, pd.Series(truth)) == "").all()
