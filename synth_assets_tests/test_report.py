"""Tables and the version report print what a reader expects: no nan, <NA>, -0.0 or counts as floats."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synth_assets.core.report import MISSING, markdown_table
from synth_assets.core.version_report import HISTORY_METRICS, ReportInputs, render

# What pandas prints and no reader wants: a negative zero, a count as a float (5382.0), a missing value.
UNREADABLE = re.compile(r"(?<![\w.])-0(?:\.0+)?(?![\w.])|(?<![\w.])\d{2,}\.0(?![\w.])|\bnan\b|<NA>|\bNaT\b|\bNone\b")
LABELS = ["alarm_set", "play_music", "weather_query"]


def _cells(table: str) -> list[list[str]]:
    """The body rows of a markdown table as lists of cell texts."""
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:] if line.startswith("|")]


def _ratio_curve() -> pd.DataFrame:
    """The held-out curve above the validation one, as heldout_eval joins them: validation has no rows or accuracy."""
    return pd.DataFrame(
        {
            "split": ["heldout", "heldout", "validation"],
            "synthetic_share": [0.0, 0.25, 0.9],
            "train_rows": pd.array([5382, 5382, pd.NA], dtype="Int64"),
            "draws": [3, 3, 3],
            "macro_f1_mean": [0.6329, 0.6528, 0.6223],
            "macro_f1_std": [0.0057, 0.0025, 0.0243],
            "accuracy_mean": [0.6459, 0.667, np.nan],
        }
    )


def test_missing_values_print_as_a_dash():
    frame = pd.DataFrame({"count": pd.array([1, pd.NA], dtype="Int64"), "score": [0.5, np.nan], "name": ["a", None]})
    assert _cells(markdown_table(frame))[1] == [MISSING, MISSING, MISSING]


def test_a_negative_zero_prints_as_zero():
    frame = pd.DataFrame({"effect_macro_f1": [-0.0, 0.0123], "effect_accuracy": [-0.0, -0.0]})
    assert _cells(markdown_table(frame)) == [["0.0000", "0"], ["0.0123", "0"]]


def test_counts_stored_as_floats_print_as_integers():
    frame = pd.DataFrame({"train_rows": [5382.0, np.nan, 640.0]})
    assert [row[0] for row in _cells(markdown_table(frame))] == ["5382", MISSING, "640"]


def test_a_float_column_has_one_number_of_decimals_at_most_four():
    frame = pd.DataFrame({"synthetic_share": [0.0, 0.25, 0.9], "macro_f1": [0.652839, 0.61, 0.5]})
    assert _cells(markdown_table(frame)) == [["0.00", "0.6528"], ["0.25", "0.6100"], ["0.90", "0.5000"]]


def test_a_tiny_non_zero_value_is_not_printed_as_zero():
    frame = pd.DataFrame({"cost_per_row_usd": [0.000031, 0.25]})
    assert _cells(markdown_table(frame))[0] == ["3.1e-05"]


def test_numeric_columns_are_right_aligned():
    rule = markdown_table(pd.DataFrame({"label": ["a"], "rows": [3], "share": [0.5], "kept": [True]})).splitlines()[1]
    assert rule == "| --- | ---: | ---: | --- |"


def test_a_column_of_mixed_values_prints_each_number_as_it_needs():
    frame = pd.DataFrame({"metric": ["rows", "auc", "none"], "value": pd.Series([640, 0.498, None], dtype=object)})
    assert [row[1] for row in _cells(markdown_table(frame))] == ["640", "0.498", MISSING]


def test_a_pipe_in_a_list_cell_is_escaped_once():
    frame = pd.DataFrame({"generators": [("template", "a|b")]})
    assert markdown_table(frame).splitlines()[2] == "| template, a\\|b |"


def test_a_table_like_heldout_evals_ratio_curve_prints_nothing_unreadable():
    table = markdown_table(_ratio_curve())
    assert UNREADABLE.findall(table) == []
    assert _cells(table)[2] == ["validation", "0.90", MISSING, "3", "0.6223", "0.0243", MISSING]


def _history(versions: list[str], with_interval: bool = True) -> pd.DataFrame:
    """This task's earlier version summarised before intervals existed (NaN), then ``versions[-1]`` with one."""
    rows = [{"version": version, **dict.fromkeys(HISTORY_METRICS, np.nan), "macro_f1": 0.6501} for version in versions]
    rows[-1] |= {"macro_f1": 0.6518, "discriminator_auc": 0.498, "distinct_2": 0.5474, "self_similarity": 0.0115}
    if with_interval:
        rows[-1] |= {"macro_f1_ci_low": 0.6321, "macro_f1_ci_high": 0.6702, "seeds_only_macro_f1": 0.5853}
    return pd.DataFrame(rows)


def _inputs(history: pd.DataFrame) -> ReportInputs:
    """A small version of task ``demo`` with the kinds of values the real summaries hold (counts, zeros, None)."""
    scores = {"accuracy": 0.6636, "macro_f1": 0.6518, "train_rows": 6022}
    summary = {
        "version": scores,
        "seeds_only": {"accuracy": 0.6106, "macro_f1": 0.5853, "train_rows": 640},
        "version_draws": {"macro_f1_mean": 0.6518, "macro_f1_std": 0.001, "draws": 3},
        "delta_macro_f1_vs_seeds_only": 0.0665,
        "versus_seeds_only": {"delta_macro_f1": 0.0665, "ci_low": 0.0452, "ci_high": 0.0871, "se": 0.0107, "verdict": "helped"},
        "policies": [
            {"policy": "seeds only", "validation_macro_f1": 0.5283, "heldout_macro_f1": 0.5853, "chosen": ""},
            {"policy": "seeds + all accepted rows, unweighted", "validation_macro_f1": 0.6223, "heldout_macro_f1": 0.6518,
             "chosen": "yes"},
        ],
        "policy_regret_on_heldout": 0.0,
        "heldout_rows": 1076,
        "model": "tfidf_logreg",
        "top_confusions": [{"true_label": "play_music", "predicted_label": "weather_query", "count": 7}],
        "shift": {"discriminator_auc": 0.498, "real_rows": 640, "synthetic_rows": 5000},
        "diversity": {"distinct_2": 0.5474, "self_similarity": -0.0, "rows": 5382},
        "leakage": {"dcr_min": 0.0, "exact_copies": 0, "dcr_to_heldout_min": None},
    }
    manifest = {
        "synthetic_share_target": "unweighted",
        "mix_policy": "seeds + all accepted rows, unweighted",
        "synthetic_share_actual": 0.8937,
        "synthetic_share_chosen_by": "validation",
        "balance": "real_prior",
        "counts": {"by_origin": {"real": 640, "synthetic": 5382}},
        "validation": {"macro_f1_by_share": {"0": 0.5283, "0.9": 0.6223}},
        "label_distribution_total_variation": 0.038912,
        "content_hash": "c9ea80ce",
        "batches_included": history["version"].tolist(),
        "batches_excluded": [],
        "generators": [["template", "", "2026.12.1"]],
        "generation_cost_usd": 0.0,
        "cost_per_accepted_example_usd": 0.0,
    }
    per_class = pd.DataFrame({"label": LABELS, "f1_seeds_only": [0.5, 0.6, 0.7], "f1_version": [0.6, 0.55, 0.7]})
    confusion = pd.DataFrame(np.diag([10, 12, 9]), index=LABELS, columns=LABELS)
    attribution = pd.DataFrame(
        {"kind": ["template", "batch"], "group": ["reframe", "demo-b1"], "rows": [430, 2912], "effect_macro_f1": [-0.0, 0.0122]}
    )
    distribution = pd.DataFrame({"label": LABELS, "real_share": [1 / 3] * 3, "version_share": [0.3, 0.35, 0.35]})
    return ReportInputs(
        task="demo",
        version=history["version"].iloc[-1],
        heldout=summary,
        manifest=manifest,
        curve=_ratio_curve(),
        per_class=per_class,
        confusion=confusion,
        attribution=attribution,
        distribution=distribution,
        history=history,
        exports={"csv": Path("exports/demo-b2.csv")},
    )


def test_the_report_prints_no_nan_na_negative_zero_or_count_as_a_float(tmp_path):
    text = render(_inputs(_history(["demo-b1", "demo-b2"])), tmp_path)
    assert UNREADABLE.findall(text) == []
    assert "640 real + 5382 synthetic rows" in text and "| synthetic rows | 5382 |" in text
    assert "| generators (generator, model, template version) | template, –, 2026.12.1 |" in text


def test_the_report_gives_this_versions_interval_next_to_the_change_from_the_previous_one(tmp_path):
    text = render(_inputs(_history(["demo-b1", "demo-b2"])), tmp_path)
    assert "macro-F1 0.6501 (+0.0017 now; this version's 95% interval 0.6321 to 0.6702)." in text


def test_the_headline_gives_the_verdict_word_and_its_interval_and_every_policy_is_listed(tmp_path):
    text = render(_inputs(_history(["demo-b1", "demo-b2"])), tmp_path)
    assert "**Synthetic data: helped: +6.7 points macro-F1 (95% interval +4.5 to +8.7) against the seeds alone**" in text
    assert "| seeds + all accepted rows, unweighted |" in text and "Regret of the chosen policy on held-out: 0.0 points" in text


def test_the_change_from_the_previous_version_is_a_verdict_when_its_predictions_were_kept(tmp_path):
    inputs = _inputs(_history(["demo-b1", "demo-b2"]))
    versus = {"version": "demo-b1", "delta_macro_f1": 0.0017, "ci_low": -0.004, "ci_high": 0.0074, "se": 0.003}
    inputs.heldout["versus_previous"] = versus | {"verdict": "no measurable difference"}
    text = render(inputs, tmp_path)
    assert "Against the previous version `demo-b1`: no measurable difference: +0.2 points macro-F1" in text


def test_the_report_of_versions_summarised_before_intervals_existed_still_draws_its_history(tmp_path):
    history = _history(["demo-b1", "demo-b2"], with_interval=False).drop(columns=["macro_f1_ci_low", "macro_f1_ci_high"])
    text = render(_inputs(history), tmp_path)
    assert "(+0.0017 now)." in text and (tmp_path / "over_versions.png").is_file()


def test_the_report_refuses_a_history_with_another_tasks_versions(tmp_path):
    with pytest.raises(ValueError, match="other-b1"):
        render(_inputs(_history(["other-b1", "demo-b2"])), tmp_path)


def test_a_version_left_with_the_seeds_alone_says_so_in_its_headline(tmp_path):
    inputs = _inputs(_history(["demo-b1", "demo-b2"]))
    inputs.manifest["mix_policy"] = "seeds only"
    text = render(inputs, tmp_path)
    assert "**The version is the seeds alone: validation found no evidence the synthetic rows help" in text
