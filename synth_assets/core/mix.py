"""Dataset version k: the task's real seeds plus accepted synthetic rows of passed batches <= k.

The synthetic share is a target: with ``n`` real rows and share ``s`` the version holds
``round(n * s / (1 - s))`` synthetic rows, split across labels in proportion to the real label
prior (largest-remainder rounding) so mixing never shifts the class balance. A label whose pool
is smaller than its quota contributes what it has; the shortfall is recorded in the manifest.
Sampling is seeded from (task, version, "mix") and the pool is ordered by (batch order, row_id),
so a version is byte-identical however often it is rebuilt.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth_assets.core.hashing import derive_seed, stable_hash
from synth_assets.core.text import normalize_text

MIX_VERSION = "2026.11.1"
TRAINING_COLUMNS = ["row_id", "text", "label", "origin", "source_batch", "generator", "template_id"]


def unique_real_rows(seeds: pd.DataFrame) -> pd.DataFrame:
    """Seed rows of all batches so far, first occurrence of each normalised text kept."""
    ordered = seeds.sort_values(["batch_order", "line"], kind="stable")
    return ordered[~ordered["text"].map(normalize_text).duplicated()].reset_index(drop=True)


def label_quotas(real_labels: pd.Series, total: int) -> dict[str, int]:
    """Split ``total`` across labels in proportion to their real counts (largest remainder)."""
    counts = real_labels.value_counts().sort_index()
    exact = counts / counts.sum() * total
    quotas = np.floor(exact).astype(int)
    remainder = int(total - quotas.sum())
    order = sorted(counts.index, key=lambda label: (-(exact[label] - quotas[label]), label))
    for label in order[:remainder]:
        quotas[label] += 1
    return {label: int(quotas[label]) for label in counts.index}


def synthetic_target(real_rows: int, synthetic_share: float) -> int:
    return int(round(real_rows * synthetic_share / (1.0 - synthetic_share)))


def mix_version(
    task: str, version: str, real: pd.DataFrame, pool: pd.DataFrame, synthetic_share: float
) -> tuple[pd.DataFrame, dict]:
    """(training table, mixing summary) for one version.

    ``real`` has ``seed_id, text, label, batch``; ``pool`` the accepted synthetic rows with
    ``row_id, text, label, batch, batch_order, generator, template_id``.
    """
    quotas = label_quotas(real["label"], synthetic_target(len(real), synthetic_share))
    rng = np.random.default_rng(derive_seed(task, version, "mix"))
    ordered_pool = pool.sort_values(["batch_order", "row_id"], kind="stable").reset_index(drop=True)
    chosen, shortfall = [], {}
    for label, quota in quotas.items():
        candidates = ordered_pool[ordered_pool["label"] == label]
        if len(candidates) < quota:
            shortfall[label] = quota - len(candidates)
        take = min(quota, len(candidates))
        chosen.append(candidates.iloc[np.sort(rng.choice(len(candidates), size=take, replace=False))])
    synthetic = pd.concat(chosen) if chosen else ordered_pool.iloc[0:0]
    table = pd.concat(
        [
            pd.DataFrame(
                {
                    "row_id": real["seed_id"],
                    "text": real["text"],
                    "label": real["label"],
                    "origin": "real",
                    "source_batch": real["batch"],
                    "generator": "",
                    "template_id": "",
                }
            ),
            pd.DataFrame(
                {
                    "row_id": synthetic["row_id"],
                    "text": synthetic["text"],
                    "label": synthetic["label"],
                    "origin": "synthetic",
                    "source_batch": synthetic["batch"],
                    "generator": synthetic["generator"],
                    "template_id": synthetic["template_id"],
                }
            ),
        ],
        ignore_index=True,
    )[TRAINING_COLUMNS]
    summary = {
        "synthetic_share_target": synthetic_share,
        "synthetic_share_actual": round(len(synthetic) / len(table), 4) if len(table) else 0.0,
        "synthetic_pool_rows": len(pool),
        "synthetic_shortfall_by_label": shortfall,
        "mix_version": MIX_VERSION,
    }
    return table, summary


def content_hash(table: pd.DataFrame) -> str:
    """Hash of a version's rows independent of file encoding: same rows, same hash."""
    return stable_hash(list(table[["origin", "label", "text", "row_id"]].itertuples(index=False, name=None)), length=64)


def counts(table: pd.DataFrame) -> dict:
    return {
        "rows": len(table),
        "by_origin": {k: int(v) for k, v in table["origin"].value_counts().sort_index().items()},
        "by_label": {
            label: {k: int(v) for k, v in group["origin"].value_counts().sort_index().items()}
            for label, group in table.groupby("label", sort=True)
        },
        "by_batch": {k: int(v) for k, v in table["source_batch"].value_counts().sort_index().items()},
    }


def manifest(
    task: str,
    version: str,
    table: pd.DataFrame,
    mix_summary: dict,
    included: list[str],
    excluded: dict[str, list[str]],
    pool: pd.DataFrame,
    generation_cost_usd: float,
    gate_thresholds: dict,
) -> dict:
    """Everything needed to trust, reproduce and compare a dataset version."""
    synthetic = table[table["origin"] == "synthetic"]
    provenance = pool[pool["row_id"].isin(synthetic["row_id"])]
    return {
        "task": task,
        "version": version,
        "content_hash": content_hash(table),
        "counts": counts(table),
        "batches_included": included,
        "batches_excluded": excluded,
        "generators": sorted(set(zip(provenance["generator"], provenance["model"], provenance["template_version"]))),
        "gate_thresholds": gate_thresholds,
        "generation_cost_usd": round(generation_cost_usd, 6),
        "accepted_synthetic_rows": len(pool),
        "cost_per_accepted_example_usd": round(generation_cost_usd / len(pool), 8) if len(pool) else None,
        **mix_summary,
    }


def diff_versions(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Rows added and removed between two versions, by label and origin (a row is its ``row_id``)."""
    added = new[~new["row_id"].isin(set(old["row_id"]))]
    removed = old[~old["row_id"].isin(set(new["row_id"]))]
    frames = [rows.assign(change=change) for change, rows in (("added", added), ("removed", removed))]
    changes = pd.concat(frames, ignore_index=True)
    if changes.empty:
        return pd.DataFrame(columns=["label", "origin", "added", "removed"])
    table = changes.pivot_table(index=["label", "origin"], columns="change", values="row_id", aggfunc="count", fill_value=0)
    return table.reindex(columns=["added", "removed"], fill_value=0).reset_index().astype({"added": "int64", "removed": "int64"})
