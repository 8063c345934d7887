"""Dataset version k: the task's real seeds plus every accepted synthetic row of passed batches <= k.

Accepted rows are kept: a real/synthetic ratio is reached by **weighting**, never by discarding
rows the generator was paid for. A version's ``weight`` column is each row's sample weight
(normalised to a mean of 1, so a model's regularisation sees the same scale as unweighted rows):

- with ``share`` s, the synthetic rows carry s of the weight: in real-row units (a real row
  weighs 1) they share ``s / (1 - s)`` times the real rows. Each label's part follows the task's
  ``mix`` policy: ``balance: real_prior`` (default) in proportion to the real label counts, so
  mixing never shifts the class balance; ``balanced`` filling every label towards an equal total;
  ``label_weights`` multiplying a label's part. A synthetic row weighs at most as much as a real
  one: a label with more rows than its part has each weighted down, a label with fewer keeps
  them at full weight and falls short of its part (the shortfall is recorded);
- ``unweighted``: every row counts once; share 0 is the seeds alone;
- ``max_synthetic_per_label`` still caps a label's rows (a seeded draw picks which stay).

The pool is ordered by (batch order, row_id) and every draw is seeded from (task, version,
"mix"), so a version is byte-identical however often it is rebuilt; ``draw`` > 0 resamples each
label's synthetic rows with replacement, which shows how much a score depends on which synthetic
rows the generator happened to produce.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth_assets.core.hashing import derive_seed, stable_hash
from synth_assets.core.task_config import MixConfig
from synth_assets.core.text import normalize_text

MIX_VERSION = "2026.12.1"
TRAINING_COLUMNS = ["row_id", "text", "label", "origin", "source_batch", "generator", "template_id"]


def unique_real_rows(seeds: pd.DataFrame) -> pd.DataFrame:
    """Seed rows of all batches so far, first occurrence of each normalised text kept."""
    ordered = seeds.sort_values(["batch_order", "line"], kind="stable")
    return ordered[~ordered["text"].map(normalize_text).duplicated()].reset_index(drop=True)


def canonical_seed_ids(seeds: pd.DataFrame) -> dict[str, str]:
    """Every seed id -> the id :func:`unique_real_rows` keeps for its text.

    The same seed text arrives again in later batches under a new id; synthetic rows made from it
    must still count as made from the kept row (the validation split's leak guard relies on it).
    """
    ordered = seeds.sort_values(["batch_order", "line"], kind="stable")
    keys = ordered["text"].map(normalize_text)
    first = dict(zip(keys[~keys.duplicated()], ordered.loc[~keys.duplicated(), "seed_id"]))
    return {seed_id: first[key] for seed_id, key in zip(ordered["seed_id"], keys)}


def apportion(weights: pd.Series, total: int) -> dict[str, int]:
    """Split ``total`` across the index of ``weights`` in proportion to them (largest remainder, ties by name)."""
    weights = weights.sort_index().astype(float)
    if total <= 0 or weights.sum() <= 0:
        return {label: 0 for label in weights.index}
    exact = weights / weights.sum() * total
    quotas = np.floor(exact).astype(int)
    remainder = int(total - quotas.sum())
    order = sorted(weights.index, key=lambda label: (-(exact[label] - quotas[label]), label))
    for label in order[:remainder]:
        quotas[label] += 1
    return {label: int(quotas[label]) for label in weights.index}


def label_quotas(real_labels: pd.Series, total: int) -> dict[str, int]:
    """Split ``total`` across labels in proportion to their real counts."""
    return apportion(real_labels.value_counts(), total)


UNWEIGHTED = "unweighted"
Share = float | str  # a synthetic share of the weight in [0, 1), or UNWEIGHTED


def policy_name(share: Share) -> str:
    """How a mixing policy reads on every surface."""
    if share == UNWEIGHTED:
        return "seeds + all accepted rows, unweighted"
    return "seeds only" if share == 0 else f"seeds + all accepted rows, synthetic weight share {share:g}"


def synthetic_label_mass(real_labels: pd.Series, synthetic_mass: float, policy: MixConfig) -> pd.Series:
    """Each label's part of ``synthetic_mass`` (in real-row units) under the balance policy and label weights."""
    counts = real_labels.value_counts().sort_index().astype(float)
    # balanced: every label is filled towards the same total; labels already above it get none.
    fill = ((counts.sum() + synthetic_mass) / len(counts) - counts).clip(lower=0)
    base = fill if policy.balance == "balanced" else counts
    weighted = base * pd.Series({label: policy.label_weights.get(label, 1.0) for label in base.index}, dtype=float)
    return weighted / weighted.sum() * synthetic_mass if weighted.sum() > 0 else weighted


def version_weights(table: pd.DataFrame, policy: MixConfig, share: Share) -> tuple[np.ndarray, dict]:
    """Sample weights of a training table's rows (mean 1) and what they amount to.

    In real-row units: a real row weighs 1; label ``l``'s synthetic rows share the label's part of
    ``share / (1 - share)`` times the real rows, each weighing at most 1 (a generated row never
    counts for more than a real one, so a label short of rows falls short of its part).
    """
    synthetic = (table["origin"] == "synthetic").to_numpy()
    synthetic_labels = table.loc[synthetic, "label"]
    real_rows = int((~synthetic).sum())
    weights, shortfall = np.ones(len(table)), {}
    if share != UNWEIGHTED and synthetic.any() and real_rows:
        target = synthetic_label_mass(table.loc[~synthetic, "label"], share / (1.0 - share) * real_rows, policy)
        available = synthetic_labels.value_counts()
        per_row = (target.reindex(available.index, fill_value=0.0) / available).clip(upper=1.0)
        weights[synthetic] = synthetic_labels.map(per_row).to_numpy(float)
        missing = (target - available.reindex(target.index, fill_value=0)).clip(lower=0).round()
        shortfall = {label: int(n) for label, n in missing.items() if n > 0}
    synthetic_mass = float(weights[synthetic].sum())
    return weights * (len(table) / weights.sum()), {
        "synthetic_share_actual": round(synthetic_mass / (synthetic_mass + real_rows), 4) if synthetic_mass else 0.0,
        "synthetic_shortfall_by_label": shortfall,
    }


def draw_per_label(
    rows: pd.DataFrame, quotas: dict[str, int], rng: np.random.Generator, repeat_when_short: bool = False
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``quotas[label]`` rows of each label (ordered as in ``rows``) and the shortfall per label.

    Without ``repeat_when_short`` a label gives at most what it has; with it, a short label gives
    all its rows and then repeats random ones (for fixed-size training sets).
    """
    chosen, shortfall = [], {}
    for label, quota in quotas.items():
        candidates = rows[rows["label"] == label]
        available = len(candidates)
        if available < quota:
            shortfall[label] = quota - available
        take = min(quota, available)
        picks = np.sort(rng.choice(available, size=take, replace=False))
        if repeat_when_short and available and quota > available:
            picks = np.r_[np.arange(available), np.sort(rng.choice(available, size=quota - available, replace=True))]
        chosen.append(candidates.iloc[picks])
    return (pd.concat(chosen) if chosen else rows.iloc[0:0]), shortfall


def training_table(real: pd.DataFrame, synthetic: pd.DataFrame) -> pd.DataFrame:
    """Real seed rows (``seed_id, text, label, batch``) and synthetic pool rows in the training-set columns."""
    return pd.concat(
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


def _rng(task: str, version: str, draw: int, *purpose: str) -> np.random.Generator:
    # draw 0 keeps the seed the published version was drawn with.
    return np.random.default_rng(derive_seed(task, version, "mix", *purpose, *([f"draw{draw}"] if draw else [])))


def _ordered(pool: pd.DataFrame) -> pd.DataFrame:
    return pool.sort_values(["batch_order", "row_id"], kind="stable").reset_index(drop=True)


def _capped(pool: pd.DataFrame, policy: MixConfig, rng: np.random.Generator) -> pd.DataFrame:
    if policy.max_synthetic_per_label is None:
        return pool
    counts = pool["label"].value_counts().sort_index()
    quotas = {label: min(count, policy.max_synthetic_per_label) for label, count in counts.items()}
    return draw_per_label(pool, quotas, rng)[0]


def _resampled(pool: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    quotas = pool["label"].value_counts().sort_index().to_dict()
    picks = [np.sort(rng.choice(np.flatnonzero(pool["label"].to_numpy() == label), size=n)) for label, n in quotas.items()]
    return pool.iloc[np.concatenate(picks)] if picks else pool


def mix_version(
    task: str, version: str, real: pd.DataFrame, pool: pd.DataFrame, policy: MixConfig, share: Share, draw: int = 0
) -> tuple[pd.DataFrame, dict]:
    """(training table with ``weight``, mixing summary) for one version under mixing policy ``share``.

    ``real`` has ``seed_id, text, label, batch``; ``pool`` the accepted synthetic rows with
    ``row_id, text, label, batch, batch_order, generator, template_id``.
    """
    rng = _rng(task, version, draw)
    synthetic = pool.iloc[0:0] if share == 0 else _capped(_ordered(pool), policy, rng)
    if draw and len(synthetic):
        synthetic = _resampled(synthetic, rng)
    table = training_table(real, synthetic)
    weights, weighting = version_weights(table, policy, share)
    table["weight"] = weights.round(6)
    summary = {
        "mix_policy": policy_name(share),
        "synthetic_share_target": share,
        **weighting,
        "balance": policy.balance,
        "synthetic_pool_rows": len(pool),
        "synthetic_rows_used": len(synthetic),
        "mix_version": MIX_VERSION,
    }
    return table, summary


def fixed_size_mix(
    task: str, version: str, real: pd.DataFrame, pool: pd.DataFrame, share: float, total: int, draw: int = 0
) -> pd.DataFrame:
    """A training table of exactly ``total`` rows, ``share`` of them synthetic, both parts in the real label prior.

    The points of a mixing-ratio curve differ only in their share, never in size: when a part
    needs more rows than exist, rows repeat (at 0% synthetic that is the seeds repeated, which
    separates "more text" from "more rows").
    """
    rng = _rng(task, version, draw, f"share{share}")
    synthetic_rows = int(round(total * share))
    real_part, _ = draw_per_label(real, label_quotas(real["label"], total - synthetic_rows), rng, repeat_when_short=True)
    synthetic_labels = real["label"][real["label"].isin(set(pool["label"]))]
    quotas = label_quotas(synthetic_labels, synthetic_rows) if len(synthetic_labels) else {}
    synthetic_part, _ = draw_per_label(_ordered(pool), quotas, rng, repeat_when_short=True)
    return training_table(real_part, synthetic_part)


def label_distribution(table: pd.DataFrame) -> pd.DataFrame:
    """Each label's share of the real rows and of the whole version's weight: where mixing amplified or damped a class."""
    real = table.loc[table["origin"] == "real", "label"].value_counts(normalize=True)
    weight = table["weight"] if "weight" in table else pd.Series(1.0, index=table.index)
    version = weight.groupby(table["label"]).sum() / weight.sum()
    frame = pd.DataFrame({"real_share": real, "version_share": version}).fillna(0.0).rename_axis("label").reset_index()
    frame["ratio"] = (frame["version_share"] / frame["real_share"].where(frame["real_share"] > 0)).round(3)
    return frame.sort_values("label").reset_index(drop=True)


def total_variation(distribution: pd.DataFrame) -> float:
    """Total variation distance between the version's and the real label distribution (0 = same prior)."""
    return round(float((distribution["version_share"] - distribution["real_share"]).abs().sum() / 2), 4)


def content_hash(table: pd.DataFrame) -> str:
    """Hash of a version's rows and weights independent of file encoding: same rows, same hash."""
    return stable_hash(list(table[["origin", "label", "text", "row_id", "weight"]].itertuples(index=False, name=None)), length=64)


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


COMPARED_SETTINGS = ("gate_thresholds", "generators", "mix_version", "synthetic_share_target", "balance", "batches_included")


def version_change(
    old_table: pd.DataFrame | None, old_manifest: dict | None, new_table: pd.DataFrame, new_manifest: dict
) -> dict:
    """Did rebuilding a version change it? Content hashes, rows added/removed by label, manifest settings that differ."""
    if old_table is None or old_manifest is None:
        return {"changed": True, "summary": f"new version, content hash {new_manifest['content_hash'][:16]}"}
    if old_manifest["content_hash"] == new_manifest["content_hash"]:
        return {"changed": False, "summary": f"identical: content hash {new_manifest['content_hash'][:16]} unchanged"}
    diff = diff_versions(old_table, new_table)
    settings = [name for name in COMPARED_SETTINGS if old_manifest.get(name) != new_manifest.get(name)]
    by_label = ", ".join(f"{row.label} +{row.added}/-{row.removed}" for row in diff.head(8).itertuples())
    return {
        "changed": True,
        "settings_changed": settings,
        "summary": (
            f"changed: content hash {old_manifest['content_hash'][:16]} -> {new_manifest['content_hash'][:16]}, "
            f"{int(diff['added'].sum())} rows added, {int(diff['removed'].sum())} removed ({by_label}"
            f"{', ...' if len(diff) > 8 else ''}); settings changed: {', '.join(settings) or 'none (code or upstream rows)'}"
        ),
    }
