"""Turns a batch's seeds into generation attempts with full provenance.

Every attempt becomes exactly one row of ``generated``, successful or not, so counts reconcile
downstream: attempts = accepted + rejected. The request key is content-addressed (generator,
template version, task, batch, label, sample index and the seed rows it may draw on), so the
same inputs always name the same attempt.
"""

from __future__ import annotations

import pandas as pd

from synth_assets.core import template_generator
from synth_assets.core.hashing import derive_seed, stable_hash
from synth_assets.core.task_config import TaskConfig

TEMPLATE_GENERATOR = "template"


def generator_version(task: TaskConfig) -> str:
    """What changes the generated rows of a task: backend, its code version and settings."""
    return stable_hash(TEMPLATE_GENERATOR, template_generator.TEMPLATE_VERSION, task.generation.model_dump(), length=12)


def generate_batch(task: TaskConfig, batch: str, seeds: pd.DataFrame) -> pd.DataFrame:
    """All generation attempts for ``batch``, in the ``generated`` lake schema."""
    seeds_fingerprint = stable_hash(sorted(zip(seeds["text"], seeds["label"])))
    rows = template_generator.generate_template_rows(
        seeds[["seed_id", "text", "label"]],
        {label: task.labels[label] for label in sorted(seeds["label"].unique())},
        per_label=task.generation.per_label,
        rng_seed=derive_seed(task.name, batch, "generate"),
    )
    request_keys = [
        stable_hash(
            TEMPLATE_GENERATOR, template_generator.TEMPLATE_VERSION, task.name, batch, label, int(index), seeds_fingerprint
        )
        for label, index in zip(rows["label"], rows["sample_index"])
    ]
    return pd.DataFrame(
        {
            "row_id": request_keys,
            "batch": batch,
            "text": rows["text"].astype(str),
            "label": rows["label"].astype(str),
            "status": "ok",
            "error": "",
            "generator": TEMPLATE_GENERATOR,
            "model": "",
            "template_id": rows["template_id"].astype(str),
            "template_version": template_generator.TEMPLATE_VERSION,
            "request_key": request_keys,
            "seed_ids": [list(ids) for ids in rows["seed_ids"]],
            "sample_index": rows["sample_index"].astype("int64"),
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost_usd": 0.0,
        }
    ).astype({"prompt_tokens": "int64", "completion_tokens": "int64", "cost_usd": "float64"})
