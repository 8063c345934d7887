"""A version holds the real rows plus synthetic rows at the target share, keeping the real prior."""

import pandas as pd

from synth_assets.core.mix import content_hash, label_quotas, mix_version, synthetic_target, unique_real_rows


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


def test_target_follows_the_share():
    assert synthetic_target(100, 0.75) == 300
    assert synthetic_target(100, 0.0) == 0


def test_quotas_keep_the_real_prior_and_sum_to_the_total():
    quotas = label_quotas(pd.Series(["a"] * 2 + ["b"] * 1), 10)
    assert quotas == {"a": 7, "b": 3}
    assert sum(quotas.values()) == 10


def test_version_mixes_at_the_share_and_records_shortfall():
    table, summary = mix_version("t", "t-1", _real(["a", "a", "b", "b"]), _pool({"a": 10, "b": 2}), 0.75)
    counts = table.groupby(["origin", "label"]).size().to_dict()
    assert counts == {("real", "a"): 2, ("real", "b"): 2, ("synthetic", "a"): 6, ("synthetic", "b"): 2}
    assert summary["synthetic_shortfall_by_label"] == {"b": 4}


def test_mixing_is_deterministic_and_version_specific():
    real, pool = _real(["a"] * 3 + ["b"] * 3), _pool({"a": 40, "b": 40})
    first, _ = mix_version("t", "t-1", real, pool, 0.75)
    again, _ = mix_version("t", "t-1", real, pool, 0.75)
    other, _ = mix_version("t", "t-2", real, pool, 0.75)
    assert first.equals(again)
    assert content_hash(first) == content_hash(again) != content_hash(other)


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
