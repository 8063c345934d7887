"""Which synthetic rows helped? Leave one group out (a batch, a generator, a template), retrain, compare.

The effect of a group is the version's held-out score minus the score of the same version
without that group's rows: positive means the group helped on real data, negative means it hurt,
so a regression points at the template or batch that caused it. Only the ``max_groups`` largest
groups of each kind are left out (each costs one fit), and a kind with a single group is skipped:
leaving out everything synthetic is the seeds-only baseline, reported already.
"""

from __future__ import annotations

import pandas as pd

from synth_assets.core.evaluate import Score

GROUP_COLUMNS = {"batch": "source_batch", "generator": "generator", "template": "template_id"}
ATTRIBUTION_COLUMNS = ["kind", "group", "rows", "macro_f1_without", "effect_macro_f1", "effect_accuracy"]


def attribution_groups(training: pd.DataFrame, max_groups: int) -> list[tuple[str, str, int]]:
    """(kind, group, synthetic rows) of the largest groups of each kind, largest first."""
    synthetic = training[training["origin"] == "synthetic"]
    groups = []
    for kind, column in GROUP_COLUMNS.items():
        sizes = synthetic[column].value_counts()
        if len(sizes) < 2:
            continue
        ranked = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))[:max_groups]
        groups += [(kind, str(group), int(rows)) for group, rows in ranked]
    return groups


def training_name(kind: str, group: str) -> str:
    return f"without {kind}={group}"


def leave_one_out_trainings(training: pd.DataFrame, groups: list[tuple[str, str, int]]) -> dict[str, pd.DataFrame]:
    """The version without each group's synthetic rows, by training name."""
    synthetic = training["origin"] == "synthetic"
    return {
        training_name(kind, group): training[~(synthetic & (training[GROUP_COLUMNS[kind]] == group))] for kind, group, _ in groups
    }


def attribution_table(version: Score, scores: dict[str, Score], groups: list[tuple[str, str, int]]) -> pd.DataFrame:
    """Effect of each group on held-out macro-F1 and accuracy, most harmful first."""
    rows = []
    for kind, group, size in groups:
        without = scores[training_name(kind, group)]
        rows.append(
            {
                "kind": kind,
                "group": group,
                "rows": size,
                "macro_f1_without": round(without.macro_f1, 4),
                "effect_macro_f1": round(version.macro_f1 - without.macro_f1, 4),
                "effect_accuracy": round(version.accuracy - without.accuracy, 4),
            }
        )
    table = pd.DataFrame(rows, columns=ATTRIBUTION_COLUMNS)
    return table.sort_values(["effect_macro_f1", "kind", "group"], kind="stable").reset_index(drop=True)
