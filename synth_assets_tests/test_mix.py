"""A version holds the real rows plus every accepted synthetic row, weighted to the target share and the real prior."""

import pandas as pd
import pytest

from synth_assets.core.mix import (
    content_hash,
    fixed_size_mix,
    label_distribution,
    label_quotas,
    mix_version,
    total_variation,
    unique_real_rows,
)
from synth_assets.core.task_config import MixConfig

PRIOR = MixConfig()


def _real(labels):
    return pd.DataFrame(
        {
            "seed_id": [f"s{i}" for i in range(len(labels))],
            "text": [f"real {i}" for i in range(len(labels))],
            "label": labels,
            "batch": "t-1",
        }
    )


def _pool(per_label: dict[str, int]):
    rows = [(label, i) for label, n in per_label.items() for i in range(n)]
    return pd.DataFrame(
        {
            "row_id": [f"{label}-{i}" for label, i in rows],
            "text": [f"synthetic {label} {i}" for label, i in rows],
            "label": [label for label, _ in rows],
            "batch": "t-1",
            "batch_order": 0,
            "generator": "template",
            "template_id": "recombine",
        }
    )


def _weights(table):
    return table.groupby(["origin", "label"])["weight"].sum().round(6).to_dict()


def test_quotas_keep_the_real_prior_and_sum_to_the_total():
    quotas = label_quotas(pd.Series(["a"] * 2 + ["b"] * 1), 10)
    assert quotas == {"a": 7, "b": 3}
    assert sum(quotas.values()) == 10


def test_every_accepted_row_is_kept_and_the_share_is_reached_by_weighting_real_rows():
    real, pool = _real(["a", "a", "b", "b"]), _pool({"a": 10, "b": 10})
    table, summary = mix_version("t", "t-1", real, pool, PRIOR, 0.75)
    assert (table["origin"] == "synthetic").sum() == 20 and summary["synthetic_rows_used"] == 20
    synthetic = table.loc[table["origin"] == "synthetic", "weight"].sum()
    assert synthetic / table["weight"].sum() == pytest.approx(0.75)
    assert summary["synthetic_share_actual"] == 0.75
    assert table["weight"].mean() == pytest.approx(1.0), "weights keep the scale of unweighted rows"
    assert summary["mix_policy"] == "seeds + all accepted rows, synthetic weight share 0.75"


def test_unweighted_counts_every_row_once_and_share_zero_is_the_seeds_alone():
    real, pool = _real(["a", "a", "b", "b"]), _pool({"a": 3, "b": 3})
    unweighted, summary = mix_version("t", "t-1", real, pool, PRIOR, "unweighted")
    assert (unweighted["weight"] == 1.0).all() and len(unweighted) == 10
    assert summary["synthetic_share_actual"] == 0.6
    seeds_only, summary = mix_version("t", "t-1", real, pool, PRIOR, 0.0)
    assert seeds_only["origin"].eq("real").all() and len(seeds_only) == 4
    assert summary["mix_policy"] == "seeds only"


def test_a_label_with_more_synthetic_rows_than_its_part_is_weighted_down_not_cut():
    table, summary = mix_version("t", "t-1", _real(["a", "a", "b", "b"]), _pool({"a": 10, "b": 2}), PRIOR, 0.75)
    weights = _weights(table)
    assert (table["origin"] == "synthetic").sum() == 12
    # Share 0.75 of 4 real rows: 12 real-row units of synthetic weight, 6 a label. a's 10 rows weigh 0.6 each;
    # b has 2 rows, which keep full weight and fall 4 short.
    assert weights[("synthetic", "a")] / weights[("real", "a")] == pytest.approx(3.0)
    assert weights[("synthetic", "b")] / weights[("real", "b")] == pytest.approx(1.0)
    assert summary["synthetic_shortfall_by_label"] == {"b": 4}


def test_mixing_is_deterministic_and_version_specific():
    real, pool = _real(["a"] * 3 + ["b"] * 3), _pool({"a": 40, "b": 40})
    capped = MixConfig(max_synthetic_per_label=20)
    first, _ = mix_version("t", "t-1", real, pool, capped, 0.75)
    again, _ = mix_version("t", "t-1", real, pool, capped, 0.75)
    other, _ = mix_version("t", "t-2", real, pool, capped, 0.75)
    redrawn, _ = mix_version("t", "t-1", real, pool, capped, 0.75, draw=1)
    assert first.equals(again)
    assert content_hash(first) == content_hash(again) != content_hash(other)
    assert content_hash(redrawn) != content_hash(first) and len(redrawn) == len(first)


def test_real_rows_repeated_across_batches_are_kept_once():
    seeds = pd.DataFrame(
        {
            "seed_id": ["t-1:2", "t-2:2"],
            "text": ["Play jazz", "play jazz!"],
            "label": ["m", "m"],
            "batch": ["t-1", "t-2"],
            "line": [2, 2],
            "batch_order": [0, 1],
        }
    )
    assert unique_real_rows(seeds)["seed_id"].tolist() == ["t-1:2"]


def test_repeated_seed_texts_map_to_the_kept_seed_id():
    from synth_assets.core.mix import canonical_seed_ids

    seeds = pd.DataFrame(
        {
            "seed_id": ["t-2:2", "t-1:2", "t-1:3"],
            "text": ["play jazz!", "Play jazz", "stop"],
            "label": ["m", "m", "s"],
            "batch": ["t-2", "t-1", "t-1"],
            "line": [2, 2, 3],
            "batch_order": [1, 0, 0],
        }
    )
    assert canonical_seed_ids(seeds) == {"t-1:2": "t-1:2", "t-2:2": "t-1:2", "t-1:3": "t-1:3"}


def test_two_versions_diff_by_label_and_origin():
    from synth_assets.core.mix import diff_versions

    old = pd.DataFrame({"row_id": ["r1", "s1", "s2"], "label": ["a", "a", "b"], "origin": ["real", "synthetic", "synthetic"]})
    new = pd.DataFrame(
        {"row_id": ["r1", "s2", "s3", "r2"], "label": ["a", "b", "b", "a"], "origin": ["real", "synthetic", "synthetic", "real"]}
    )
    changes = diff_versions(old, new).set_index(["label", "origin"])[["added", "removed"]]
    assert changes.to_dict("index") == {
        ("a", "real"): {"added": 1, "removed": 0},
        ("a", "synthetic"): {"added": 0, "removed": 1},
        ("b", "synthetic"): {"added": 1, "removed": 0},
    }
    assert diff_versions(new, new).empty


def test_label_weights_and_cap_shape_the_synthetic_part():
    real, pool = _real(["a"] * 4 + ["b"] * 4), _pool({"a": 10, "b": 10})
    weighted = _weights(mix_version("t", "t-1", real, pool, MixConfig(label_weights={"a": 0.5}), 0.5)[0])
    assert weighted[("synthetic", "a")] / weighted[("synthetic", "b")] == pytest.approx(0.5, abs=1e-4)
    capped, summary = mix_version("t", "t-1", real, pool, MixConfig(max_synthetic_per_label=5), "unweighted")
    assert capped.loc[capped["origin"] == "synthetic", "label"].value_counts().to_dict() == {"a": 5, "b": 5}


def test_balanced_version_evens_out_the_label_distribution():
    real, pool = _real(["a"] * 6 + ["b"] * 2), _pool({"a": 60, "b": 60})
    prior_table, _ = mix_version("t", "t-1", real, pool, PRIOR, 0.5)
    balanced_table, summary = mix_version("t", "t-1", real, pool, MixConfig(balance="balanced"), 0.5)
    assert total_variation(label_distribution(prior_table)) == 0.0
    assert (balanced_table["origin"] == "synthetic").sum() == 120, "no row dropped to balance"
    assert summary["balance"] == "balanced"
    distribution = label_distribution(balanced_table).set_index("label")
    assert distribution.loc["b", "real_share"] == 0.25 and distribution.loc["b", "version_share"] > 0.25


def test_fixed_size_mix_has_the_same_size_at_every_share():
    real, pool = _real(["a"] * 3 + ["b"] * 3), _pool({"a": 5, "b": 5})
    for share, synthetic in [(0.0, 0), (0.5, 10), (1.0, 20)]:
        table = fixed_size_mix("t", "t-1", real, pool, share, 20)
        assert len(table) == 20 and (table["origin"] == "synthetic").sum() == synthetic
        assert table["label"].value_counts().to_dict() == {"a": 10, "b": 10}, "both parts keep the real prior"
    # At 0% the real rows repeat: every real row is present at least once.
    assert set(fixed_size_mix("t", "t-1", real, pool, 0.0, 20)["row_id"]) == set(real["seed_id"])
