"""A dataset version's report: one markdown file with PNG plots beside it, readable without Dagster.

It answers the user's question in order: is this version better than what I had on real data
(scores next to the real-only baselines and the previous version), at which synthetic share and
why that one (validation and held-out ratio curves), where it helps and hurts (per-class F1,
confusions, attribution), and can it be trusted (shift, diversity over versions, leakage,
label distribution against the real prior, provenance).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from synth_assets.core import plots
from synth_assets.core.batches import task_of
from synth_assets.core.lake import atomic_write
from synth_assets.core.report import MISSING, format_number, markdown_table
from synth_assets.core.verdict import sentence

REPORT_FILE = "report.md"
# One panel each in the chart over versions, all on a 0-1 scale.
HISTORY_PANELS = ["macro_f1", "discriminator_auc", "distinct_2", "self_similarity", "batch_near_dup_rate"]
# Drawn in the macro-F1 panel: the version's 95% bootstrap interval (plots.interval_columns) and the seeds-only score.
HISTORY_BASELINES = {"macro_f1": "seeds_only_macro_f1"}
# Every numeric column of the history; older versions' summaries lack the interval and the baseline (NaN).
HISTORY_METRICS = [*HISTORY_PANELS, "macro_f1_ci_low", "macro_f1_ci_high", "seeds_only_macro_f1"]


@dataclass(frozen=True)
class ReportInputs:
    task: str
    version: str
    heldout: dict  # heldout_eval summary (scores, draws, confusions, shift, diversity, leakage)
    manifest: dict  # training_set manifest
    curve: pd.DataFrame  # split, synthetic_share, macro_f1_mean, macro_f1_std (heldout and validation)
    per_class: pd.DataFrame  # label, f1_seeds_only, f1_version[, f1_all_real]
    confusion: pd.DataFrame
    attribution: pd.DataFrame
    distribution: pd.DataFrame  # label, real_share, version_share, ratio
    history: pd.DataFrame  # version + HISTORY_METRICS of this task's versions, oldest first, this version last
    exports: dict[str, Path]


def _score_rows(inputs: ReportInputs) -> pd.DataFrame:
    summary, draws = inputs.heldout, inputs.heldout["version_draws"]
    rows = [
        ("seeds only (real)", summary["seeds_only"]),
        ("this version", summary["version"]),
        *([("all real (reference)", summary["all_real"])] if "all_real" in summary else []),
    ]
    table = pd.DataFrame(
        [{"trained on": name, "rows": s["train_rows"], "accuracy": s["accuracy"], "macro-F1": s["macro_f1"]} for name, s in rows]
    )
    table["macro-F1 over resamples of its synthetic rows"] = ""
    if draws["draws"] > 1:
        table.loc[table["trained on"] == "this version", "macro-F1 over resamples of its synthetic rows"] = (
            f"{draws['macro_f1_mean']:.4f} ± {draws['macro_f1_std']:.4f} ({draws['draws']} resamples)"
        )
    return table


def _headline(manifest: dict, heldout: dict) -> str:
    if manifest["mix_policy"] == "seeds only":
        return "The version is the seeds alone: validation found no evidence the synthetic rows help (policies below)"
    return f"Synthetic data: {sentence(heldout['versus_seeds_only'])} against the seeds alone"


def _other_models(heldout: dict) -> list[str]:
    """The version and its baselines under the comparison models (e.g. TF-IDF, as the published baselines)."""
    rows = [
        {
            "model": model,
            "seeds only": scores["seeds_only"]["macro_f1"],
            "this version": scores["version"]["macro_f1"],
            "all real": scores.get("all_real", {}).get("macro_f1", float("nan")),
            "verdict": sentence(scores["versus_seeds_only"]),
        }
        for model, scores in heldout.get("other_models", {}).items()
    ]
    return ["The same version and baselines with other models (macro-F1):", markdown_table(pd.DataFrame(rows))] if rows else []


def _previous_line(history: pd.DataFrame, versus_previous: dict | None) -> str:
    if len(history) < 2:
        return "This is the task's first evaluated version."
    if versus_previous:
        return f"Against the previous version `{versus_previous['version']}`: {sentence(versus_previous)}."
    previous, current = history.iloc[-2], history.iloc[-1]
    change = current["macro_f1"] - previous["macro_f1"]
    line = f"Previous version `{previous['version']}`: macro-F1 {previous['macro_f1']:.4f} ({change:+.4f} now"
    low, high = (current.get(column) for column in plots.interval_columns("macro_f1"))
    if pd.notna(low) and pd.notna(high):
        line += f"; this version's 95% interval {low:.4f} to {high:.4f}"
    return line + ")."


def _require_one_task(history: pd.DataFrame, task: str) -> None:
    """The chart over versions compares a task with itself; another task's scores on it would mislead."""
    others = [version for version in history["version"] if task_of(version) != task]
    if others:
        raise ValueError(f"the history of task {task!r} holds versions of other tasks: {others}")


def _rows_by_origin(counts: dict) -> str:
    return " + ".join(f"{rows} {origin}" for origin, rows in counts.items()) + " rows"


def _generators(generators: list) -> str:
    return "; ".join(", ".join(str(part or MISSING) for part in generator) for generator in generators) or "none"


def _dict_table(values: dict, key: str = "metric", value: str = "value") -> str:
    # Object dtype keeps each value's own type: a count stays an int beside the floats.
    frame = pd.DataFrame({key: list(values), value: pd.Series(list(values.values()), dtype=object)})
    return markdown_table(frame, max_rows=50)


def render(inputs: ReportInputs, folder: Path) -> str:
    """The report's markdown; the plots it links are written into ``folder`` first."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest, heldout = inputs.manifest, inputs.heldout
    plots.ratio_curve(inputs.curve, folder / "ratio_curve.png", manifest["synthetic_share_actual"])
    plots.per_class_f1(inputs.per_class, folder / "per_class_f1.png")
    plots.confusion_heatmap(inputs.confusion, folder / "confusion.png")
    plots.label_distribution(inputs.distribution, folder / "label_distribution.png")
    _require_one_task(inputs.history, inputs.task)
    panels = [metric for metric in HISTORY_PANELS if metric in inputs.history]
    plots.metrics_over_versions(inputs.history, folder / "over_versions.png", panels, HISTORY_BASELINES)
    sections = [
        f"# Dataset version `{inputs.version}` of task `{inputs.task}`",
        f"**{_headline(manifest, heldout)}**: held-out macro-F1 "
        f"{heldout['version']['macro_f1']:.4f} ({heldout['heldout_rows']} real held-out rows never used for training, "
        f"choosing or prompting; model `{heldout['model']}`; the interval is a paired bootstrap over held-out rows, "
        f"and a gain inside it is no gain). {_previous_line(inputs.history, heldout.get('versus_previous'))}",
        markdown_table(_score_rows(inputs)),
        *_other_models(heldout),
        "## Mixing policy",
        f"**{manifest['mix_policy']}** ({manifest['synthetic_share_chosen_by']}), balance `{manifest['balance']}`; "
        f"{_rows_by_origin(manifest['counts']['by_origin'])}, synthetic rows carrying "
        f"{manifest['synthetic_share_actual']:.0%} of the weight. Every accepted row is kept; the ratio is reached by "
        "weighting. Each candidate policy on validation (folds of the seeds: what the choice is made on) and on "
        "held-out (reported only: the regret is how much better the best policy would have scored here):",
        markdown_table(pd.DataFrame(heldout["policies"]), max_rows=20),
        f"Regret of the chosen policy on held-out: {heldout['policy_regret_on_heldout'] * 100:.1f} points macro-F1.",
        "The ratio curve trains every point on the version's size (rows repeat where a part runs short), so it "
        "separates new text from more rows: 0% is the seeds repeated, 100% train-synthetic-test-real. The validation "
        "points are the candidate policies at the synthetic share of the weight they give.",
        "![ratio curve](ratio_curve.png)",
        markdown_table(inputs.curve, max_rows=40),
        "## Per class",
        "![per-class F1](per_class_f1.png)",
        "Most confused (true → predicted, held-out rows):",
        markdown_table(pd.DataFrame(heldout["top_confusions"])),
        "![confusion matrix](confusion.png)",
        "## Attribution",
        "Effect on held-out scores of each of the largest groups of synthetic rows: the version's score minus the "
        "score without the group (negative: the group hurt).",
        markdown_table(inputs.attribution, max_rows=50),
        "## Shift and diversity",
        "Real-vs-synthetic discriminator AUC (0.5: indistinguishable), vocabulary and length divergence, and the "
        "synthetic rows' diversity on a fixed-size sample (comparable across versions).",
        _dict_table(heldout["shift"] | {f"synthetic {k}": v for k, v in heldout["diversity"].items()}),
        "Across the task's versions, oldest first: held-out macro-F1 with its 95% bootstrap interval and the "
        "seeds-only score, the discriminator AUC, the synthetic rows' distinct-2 and self-similarity, and the "
        f"batch's near-duplicate rate. Every panel spans at least {plots.MIN_SCORE_SPAN:g}, so a small change "
        "does not look like a cliff.",
        "![over versions](over_versions.png)",
        "## Leakage and privacy",
        "Distance to the closest real record (1 - cosine of character n-grams) of each synthetic row, against the "
        "seeds and against the held-out split; the real baseline is how far held-out rows are from the seeds.",
        _dict_table(heldout["leakage"]),
        "## Label distribution",
        f"Total variation from the real prior: {format_number(manifest['label_distribution_total_variation'])}.",
        "![label distribution](label_distribution.png)",
        "## Provenance",
        _dict_table(
            {
                "content hash": manifest["content_hash"],
                "batches included": ", ".join(manifest["batches_included"]) or "none",
                "batches excluded": ", ".join(manifest["batches_excluded"]) or "none",
                "generators (generator, model, template version)": _generators(manifest["generators"]),
                "generation cost (USD)": manifest["generation_cost_usd"],
                "cost per accepted example (USD)": manifest["cost_per_accepted_example_usd"],
                **{f"export: {kind}": str(path) for kind, path in inputs.exports.items()},
            },
            "item",
        ),
    ]
    return "\n\n".join(sections) + "\n"


def write_report(inputs: ReportInputs, folder: Path) -> Path:
    """Write ``folder/report.md`` and its plots; returns the report's path."""
    text = render(inputs, folder)
    target = folder / REPORT_FILE
    atomic_write(target, lambda temp: temp.write_text(text, encoding="utf-8"))
    return target
