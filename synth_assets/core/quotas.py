"""Closing the loop: the next batch generates more for the labels the current version is weak on.

A label's weight is ``1 - F1 + SMOOTHING`` from the latest version's out-of-fold validation F1
(core/validation.py, real seeds only: never the held-out split), relative to the mean weight and
clipped to ``[MIN_FACTOR, MAX_FACTOR]``, so the weakest label gets at most ``MAX_FACTOR / MIN_FACTOR``
times the attempts of the strongest: none is starved, none floods the batch. The batch's total
attempts stay ``per_label x labels``; only their split changes.
"""

from __future__ import annotations

import pandas as pd

from synth_assets.core.mix import apportion
from synth_assets.core.task_config import TaskConfig

SMOOTHING = 0.1  # a perfect label still gets attempts: new wording helps it generalise
MIN_FACTOR, MAX_FACTOR = 0.5, 2.0


def uniform_quotas(labels: list[str], per_label: int) -> dict[str, int]:
    return {label: per_label for label in sorted(labels)}


def quotas_from_validation(labels: list[str], per_label: int, per_label_f1: dict[str, float]) -> dict[str, int]:
    """Attempts per label for the next batch; labels without a validation F1 get the average weight."""
    weights = pd.Series({label: 1.0 - per_label_f1[label] + SMOOTHING for label in labels if label in per_label_f1}, dtype=float)
    mean = float(weights.mean()) if len(weights) else 1.0
    relative = pd.Series({label: weights.get(label, mean) / mean for label in sorted(labels)}, dtype=float)
    return apportion(relative.clip(MIN_FACTOR, MAX_FACTOR), per_label * len(labels))


def attempts_for_batch(task: TaskConfig, seed_labels: pd.Series, feedback: dict | None) -> dict[str, int]:
    """Attempts per label of a batch: weighted by ``feedback`` (see ``batches.latest_validation``) when the task says so."""
    labels = sorted(set(seed_labels))
    if task.generation.quotas == "validation_f1" and feedback:
        return quotas_from_validation(labels, task.generation.per_label, feedback["per_label_f1"])
    return uniform_quotas(labels, task.generation.per_label)
