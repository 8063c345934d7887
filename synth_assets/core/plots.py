"""PNG charts for the per-version evaluation report, readable as plain markdown without Dagster.

Every chart is drawn on a ``matplotlib.figure.Figure`` with its own Agg canvas, never through
``pyplot``: nothing touches matplotlib's global backend, figure registry or rcParams, so charts can
be rendered from several threads and no figure outlives its call. matplotlib is imported inside the
functions because it is slow to import and the Dagster code location must load fast. Files are
written atomically (temporary file in the same folder, then rename) and carry no software version
or date, so identical inputs give identical bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from synth_assets.core.lake import as_path, atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
FIGURE_WIDTH_INCHES = 8.0
INCHES_PER_LABEL_ROW = 0.26
MIN_FIGURE_HEIGHT_INCHES = 3.0
INCHES_PER_METRIC_PANEL = 1.9
MAX_TICK_LABEL_CHARS = 40
MAX_CONFUSION_CELLS_ANNOTATED = 12
SPLIT_ORDER = ("heldout", "validation")
TITLE_FONT_SIZE = 11
LABEL_FONT_SIZE = 9
TICK_FONT_SIZE = 8
# A chart of 0-1 scores never spans less than this on its y axis: autoscaled, a 0.002 change looks like a cliff.
MIN_SCORE_SPAN = 0.05
SCORE_RANGE = (0.0, 1.0)
INTERVAL_SUFFIXES = ("_ci_low", "_ci_high")
INTERVAL_BAR_POINTS = 7
AXIS_MARGIN = 0.05  # matplotlib's default share of the data range left free beyond the extreme points
# Without the software/date keys, matplotlib writes no version into the PNG: same input, same bytes.
DETERMINISTIC_PNG_METADATA = {"Software": None}


def ratio_curve(curve: pd.DataFrame, path: Path, chosen_share: float | None) -> Path:
    """Held-out macro-F1 against the synthetic share of a fixed-size training set, one line per split.

    Shows whether adding synthetic rows (in place of real ones, same total) helps or hurts, with a
    mean ± std band over training seeds, and where the chosen share sits on that curve.
    """
    _require_columns(curve, ["synthetic_share", "split", "macro_f1_mean", "macro_f1_std"], "ratio curve")

    def draw(figure: Figure) -> None:
        from matplotlib.ticker import PercentFormatter

        axes = figure.add_subplot()
        points = curve.dropna(subset=["synthetic_share", "macro_f1_mean"])
        for split in _ordered_splits(points["split"]):
            _draw_split_line(axes, points[points["split"] == split])
        if chosen_share is not None:
            axes.axvline(chosen_share, color="0.35", linestyle="--", linewidth=1.2, label="chosen")
        if points.empty:
            _say_no_data(axes)
        _widen_y_to_at_least(axes, MIN_SCORE_SPAN)
        axes.xaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        _label_axes(
            axes,
            title="Held-out macro-F1 by synthetic share (same total size)",
            xlabel="Synthetic share (held-out: of the rows, at the version's size; validation: of the weight)",
            ylabel="Macro-F1 (mean ± std over seeds)",
        )
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=LABEL_FONT_SIZE)

    return _render(path, (FIGURE_WIDTH_INCHES, 4.5), draw)


def per_class_f1(per_class: pd.DataFrame, path: Path, max_labels: int = 40) -> Path:
    """Per-label F1 of the seeds-only model against this version's model, as a dumbbell per label.

    Labels are sorted by the change (most improved at the top) so the reader sees at once which
    classes synthetic data helped and which it hurt; with many labels only the extremes are shown.
    """
    _require_columns(per_class, ["label", "f1_seeds_only", "f1_version"], "per-class F1 table")
    scored = per_class.assign(change=per_class["f1_version"] - per_class["f1_seeds_only"])
    shown, truncated = _extremes(scored, "change", max_labels, neutral=0.0)
    title = "Per-class held-out F1: seeds only → this version"
    if truncated:
        least, most = _split_budget(max_labels)
        # Not "most worsened": fewer labels than are shown at the bottom may have lost F1.
        title += f"\n(the {most} labels that gained most and the {least} that gained least, of {len(per_class)})"

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        names = [f"{_short(label)} ({change:+.2f})" for label, change in zip(shown["label"], shown["change"])]
        hidden_after = _split_budget(max_labels)[0] if truncated else None
        rows = _draw_dumbbells(
            axes, names, shown["f1_seeds_only"], shown["f1_version"], ("seeds only", "this version"), hidden_after
        )
        if "f1_all_real" in shown.columns:
            axes.scatter(shown["f1_all_real"], rows, marker="x", color="black", zorder=3, label="all real data")
        axes.set_xlim(-0.02, 1.02)
        _label_axes(axes, title=title, xlabel="F1 on held-out real data", ylabel="Label (change in F1)")
        _legend_below(figure, axes)

    return _render(path, (FIGURE_WIDTH_INCHES, _height_for_rows(len(shown))), draw)


def interval_columns(metric: str) -> tuple[str, str]:
    """The history columns holding the low and high end of ``metric``'s 95% interval, when it has one."""
    low, high = INTERVAL_SUFFIXES
    return metric + low, metric + high


def metrics_over_versions(
    history: pd.DataFrame, path: Path, metrics: list[str], baselines: Mapping[str, str] | None = None
) -> Path:
    """One small panel per 0-1 quality metric across dataset versions, in the order the versions are given.

    Small multiples rather than one shared axis because the metrics have unrelated scales. A
    metric's 95% interval (``interval_columns``) is drawn as a bar behind each version's point and
    ``baselines`` maps a metric to a column drawn as a dashed line in its panel (e.g. the
    seeds-only score), each where present. A missing value (not computed for that version) is
    skipped, joining its neighbours. No panel spans less than MIN_SCORE_SPAN.
    """
    if not metrics:
        raise ValueError("metrics_over_versions needs at least one metric column to plot")
    baselines = baselines or {}
    _require_columns(history, ["version", *metrics], "version history")
    versions = [str(version) for version in history["version"]]
    positions = np.arange(len(versions))

    def column(name: str) -> np.ndarray:
        """The column as floats, all NaN when the history lacks it (versions summarised before it existed)."""
        values = history[name] if name in history.columns else pd.Series(np.nan, index=history.index)
        return pd.to_numeric(values, errors="coerce").to_numpy(float)

    def draw(figure: Figure) -> None:
        panels = figure.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
        for axes, metric in zip(panels, metrics):
            interval = tuple(column(name) for name in interval_columns(metric))
            baseline = (baselines[metric], column(baselines[metric])) if metric in baselines else None
            _draw_metric_panel(axes, positions, metric, column(metric), interval, baseline)
        _legend_of_panels(figure, panels)
        bottom = panels[-1]
        bottom.set_xlim(-0.5, len(versions) - 0.5)
        bottom.set_xticks(positions, versions, rotation=35, ha="right", fontsize=TICK_FONT_SIZE)
        bottom.set_xlabel("Dataset version (oldest first)", fontsize=LABEL_FONT_SIZE)
        figure.suptitle("Dataset quality metrics across versions", fontsize=TITLE_FONT_SIZE)

    height = max(MIN_FIGURE_HEIGHT_INCHES, INCHES_PER_METRIC_PANEL * len(metrics) + 1.2)
    return _render(path, (FIGURE_WIDTH_INCHES, height), draw)


def confusion_heatmap(confusion: pd.DataFrame, path: Path, max_labels: int = 30) -> Path:
    """Row-normalised confusion matrix (each cell: share of a true label's rows predicted as a label).

    Rows are normalised over all labels before any are hidden, so a shown row summing to less than
    100% means some of that label's rows went to labels not shown. With many labels, the ones
    involved in the most errors (as true or as predicted label) are kept.
    """
    counts = _square_counts(confusion)
    recall_shares = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
    kept = _most_confused_labels(counts, max_labels)
    shown = recall_shares.loc[kept, kept]
    title = "Confusion matrix on held-out data\n(each row: where a true label's rows were predicted)"
    if len(kept) < len(counts):
        title += f"\n({len(kept)} of {len(counts)} labels: those in the most errors)"

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        image = axes.imshow(shown.to_numpy(), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
        colorbar = figure.colorbar(image, ax=axes, shrink=0.8)
        colorbar.set_label("Share of the true label's rows", fontsize=LABEL_FONT_SIZE)
        colorbar.ax.tick_params(labelsize=TICK_FONT_SIZE)
        names = [_short(label) for label in shown.index]
        tick_size = TICK_FONT_SIZE if len(names) <= 15 else TICK_FONT_SIZE - 2
        axes.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=tick_size)
        axes.set_yticks(range(len(names)), names, fontsize=tick_size)
        if len(names) <= MAX_CONFUSION_CELLS_ANNOTATED:
            _annotate_cells(axes, shown.to_numpy())
        if shown.empty:
            _say_no_data(axes)
        _label_axes(axes, title=title, xlabel="Predicted label", ylabel="True label")

    side = max(5.0, INCHES_PER_LABEL_ROW * len(kept) + 3.0)
    return _render(path, (side + 1.0, side), draw)


def label_distribution(distribution: pd.DataFrame, path: Path, max_labels: int = 40) -> Path:
    """Each label's share in this version against its share in the real data, sorted by their ratio.

    A ratio far from 1 means generation or filtering amplified (or starved) a label relative to the
    real prior, which a model trained on the version would inherit. Labels absent from the real data
    but present in the version rank as the most over-represented.
    """
    _require_columns(distribution, ["label", "real_share", "version_share"], "label distribution")
    scored = distribution.assign(ratio=_share_ratio(distribution["version_share"], distribution["real_share"]))
    shown, truncated = _extremes(scored, "ratio", max_labels, neutral=1.0)
    title = "Label shares: this version vs the real prior (sorted by version / real)"
    if truncated:
        lowest, highest = _split_budget(max_labels)
        title += f"\n(the {highest} highest and the {lowest} lowest ratios, of {len(distribution)} labels)"

    def draw(figure: Figure) -> None:
        from matplotlib.ticker import PercentFormatter

        axes = figure.add_subplot()
        names = [f"{_short(label)} ({_ratio_text(ratio)})" for label, ratio in zip(shown["label"], shown["ratio"])]
        hidden_after = _split_budget(max_labels)[0] if truncated else None
        _draw_dumbbells(axes, names, shown["real_share"], shown["version_share"], ("real data", "this version"), hidden_after)
        # From zero, so shares compare by length, with room right of the largest share so its point clears the frame.
        largest = np.nanmax([*shown["real_share"], *shown["version_share"], 0.0])
        if largest > 0:
            axes.set_xlim(0.0, largest * (1 + AXIS_MARGIN))
        else:
            axes.set_xlim(left=0.0)
        axes.xaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        _label_axes(axes, title=title, xlabel="Share of rows", ylabel="Label (version / real ratio)")
        _legend_below(figure, axes)

    return _render(path, (FIGURE_WIDTH_INCHES, _height_for_rows(len(shown))), draw)


def _render(path: Path, size_inches: tuple[float, float], draw: Callable[[Figure], None]) -> Path:
    """Create a private Agg figure, let ``draw`` fill it, and write it to ``path`` atomically as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size_inches, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    draw(figure)
    path = as_path(path)
    # The temporary name ends in .tmp, so the format must be explicit rather than taken from the suffix.
    atomic_write(path, lambda temp: figure.savefig(temp, format="png", dpi=DPI, metadata=DETERMINISTIC_PNG_METADATA))
    return path


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing column(s) {missing}; it has {list(frame.columns)}")


def _label_axes(axes: Axes, title: str, xlabel: str, ylabel: str) -> None:
    axes.set_title(title, fontsize=TITLE_FONT_SIZE)
    axes.set_xlabel(xlabel, fontsize=LABEL_FONT_SIZE)
    axes.set_ylabel(ylabel, fontsize=LABEL_FONT_SIZE)
    axes.tick_params(labelsize=TICK_FONT_SIZE)


def _say_no_data(axes: Axes) -> None:
    axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", va="center", color="0.5")


def _short(label: object) -> str:
    text = str(label)
    return text if len(text) <= MAX_TICK_LABEL_CHARS else text[: MAX_TICK_LABEL_CHARS - 1] + "…"


def _height_for_rows(rows: int) -> float:
    return max(MIN_FIGURE_HEIGHT_INCHES, INCHES_PER_LABEL_ROW * rows + 1.6)


def _ordered_splits(splits: pd.Series) -> list[str]:
    """Known splits in a fixed order (so colours never swap between reports), then any others by name."""
    present = set(splits)
    return [split for split in SPLIT_ORDER if split in present] + sorted(present - set(SPLIT_ORDER), key=str)


def _draw_split_line(axes: Axes, points: pd.DataFrame) -> None:
    points = points.sort_values("synthetic_share", kind="mergesort")
    share = points["synthetic_share"].to_numpy(float)
    mean = points["macro_f1_mean"].to_numpy(float)
    spread = np.nan_to_num(points["macro_f1_std"].to_numpy(float), nan=0.0)
    (line,) = axes.plot(share, mean, marker="o", label=str(points["split"].iloc[0]))
    axes.fill_between(share, mean - spread, mean + spread, color=line.get_color(), alpha=0.2, linewidth=0)


def _extremes(frame: pd.DataFrame, score: str, max_rows: int, neutral: float) -> tuple[pd.DataFrame, bool]:
    """Rows sorted by ``score`` ascending; when there are more than ``max_rows``, only the lowest and highest.

    A missing score ranks as ``neutral`` (no change) so it is never shown as an extreme; ties break
    by label so the order never depends on the input order.
    """
    ranked = frame.assign(_rank=frame[score].fillna(neutral), _name=frame["label"].astype(str))
    ranked = ranked.sort_values(["_rank", "_name"], kind="mergesort").drop(columns=["_rank", "_name"]).reset_index(drop=True)
    if len(ranked) <= max_rows:
        return ranked, False
    lowest, highest = _split_budget(max_rows)
    return pd.concat([ranked.head(lowest), ranked.tail(highest)], ignore_index=True), True


def _split_budget(max_rows: int) -> tuple[int, int]:
    """How many of the lowest and of the highest rows to show when only ``max_rows`` fit."""
    lowest = max_rows // 2
    return lowest, max_rows - lowest


def _draw_dumbbells(
    axes: Axes, names: list[str], start: pd.Series, end: pd.Series, labels: tuple[str, str], hidden_after: int | None
) -> np.ndarray:
    """One row per name: a segment from ``start`` to ``end``, green where it rose and red where it fell.

    With ``hidden_after``, an empty row after the first ``hidden_after`` names says that labels were
    left out there (its note would hide a point on a row of its own). Returns each name's row.
    """
    rows = np.arange(len(names))
    if hidden_after is not None:
        rows = rows + (rows >= hidden_after)
    start_values = start.to_numpy(float)
    end_values = end.to_numpy(float)
    colours = np.where(end_values >= start_values, "tab:green", "tab:red")
    axes.hlines(rows, start_values, end_values, colors=colours, linewidth=2, alpha=0.7)
    axes.scatter(start_values, rows, color="0.55", zorder=3, label=labels[0])
    axes.scatter(end_values, rows, color="tab:blue", zorder=3, label=labels[1])
    axes.set_yticks(rows, names)
    axes.set_ylim(-0.7, (rows[-1] if len(rows) else 0) + 0.7)
    axes.grid(axis="x", alpha=0.3)
    if hidden_after is not None:
        _mark_hidden_middle(axes, hidden_after)
    return rows


def _mark_hidden_middle(axes: Axes, row: int) -> None:
    """A dotted rule with a note across the empty ``row`` where the labels in between were left out."""
    axes.axhline(row, color="0.4", linestyle=":", linewidth=1)
    axes.text(
        0.99,
        row,
        "labels in between not shown",
        transform=axes.get_yaxis_transform(),
        ha="right",
        va="center",
        fontsize=TICK_FONT_SIZE - 1,
        color="0.4",
        backgroundcolor="white",
    )


def _legend_below(figure: Figure, axes: Axes) -> None:
    """Legend under the plot, where it can never hide a point."""
    handles, labels = axes.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=LABEL_FONT_SIZE, frameon=False)


def _draw_metric_panel(
    axes: Axes,
    positions: np.ndarray,
    metric: str,
    values: np.ndarray,
    interval: tuple[np.ndarray, np.ndarray],
    baseline: tuple[str, np.ndarray] | None,
) -> None:
    """The metric's points joined across versions, its interval as a bar behind each point, a baseline dashed."""
    present = ~np.isnan(values)
    (line,) = axes.plot(positions[present], values[present], marker="o", zorder=3, label="dataset version")
    low, high = interval
    bounded = ~np.isnan(low) & ~np.isnan(high)
    if bounded.any():
        axes.vlines(
            positions[bounded],
            low[bounded],
            high[bounded],
            color=line.get_color(),
            linewidth=INTERVAL_BAR_POINTS,
            alpha=0.3,
            label="95% interval",
        )
    if baseline is not None:
        name, reference = baseline
        known = ~np.isnan(reference)
        if known.any():
            axes.plot(
                positions[known],
                reference[known],
                linestyle="--",
                marker="s",
                markersize=4,
                color="0.4",
                label=name.replace("_", " "),
            )
    if not present.any():
        _say_no_data(axes)
    _widen_y_to_at_least(axes, MIN_SCORE_SPAN)
    axes.set_ylabel(metric.replace("_", " "), fontsize=LABEL_FONT_SIZE)
    axes.tick_params(labelsize=TICK_FONT_SIZE)
    axes.grid(alpha=0.3)


def _widen_y_to_at_least(axes: Axes, span: float) -> None:
    """Widen the y axis to ``span`` when the data would zoom it tighter.

    About its centre, but not past the ends of SCORE_RANGE unless the data already is: a score near
    0 gets the window [0, span] rather than a negative half.
    """
    low, high = axes.get_ylim()
    if high - low >= span:
        return
    floor, ceiling = min(low, SCORE_RANGE[0]), max(high, SCORE_RANGE[1])
    start = min(max((low + high - span) / 2, floor), ceiling - span)
    axes.set_ylim(start, start + span)


def _legend_of_panels(figure: Figure, panels: Sequence[Axes]) -> None:
    """One legend under all panels, each entry once, when any panel draws more than the metric itself."""
    entries: dict[str, object] = {}
    for panel in panels:
        for handle, label in zip(*panel.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if len(entries) > 1:
        figure.legend(
            entries.values(),
            entries.keys(),
            loc="outside lower center",
            ncols=len(entries),
            fontsize=LABEL_FONT_SIZE,
            frameon=False,
        )


def _square_counts(confusion: pd.DataFrame) -> pd.DataFrame:
    """The confusion counts over the union of true and predicted labels (a label never predicted gets a zero column)."""
    labels = list(dict.fromkeys([*confusion.index, *confusion.columns]))
    return confusion.reindex(index=labels, columns=labels).fillna(0).astype(float)


def _most_confused_labels(counts: pd.DataFrame, max_labels: int) -> list:
    """All labels when few enough, else those with the most off-diagonal counts as true or predicted label, in input order."""
    if len(counts) <= max_labels:
        return list(counts.index)
    off_diagonal = counts.to_numpy() * (1 - np.eye(len(counts)))
    errors = pd.Series(off_diagonal.sum(axis=0) + off_diagonal.sum(axis=1), index=range(len(counts)))
    keep = set(errors.sort_values(ascending=False, kind="mergesort").index[:max_labels])
    return [label for position, label in enumerate(counts.index) if position in keep]


def _annotate_cells(axes: Axes, shares: np.ndarray) -> None:
    for (row, column), share in np.ndenumerate(shares):
        if share > 0:
            colour = "white" if share > 0.6 else "black"
            axes.text(column, row, f"{share:.0%}", ha="center", va="center", fontsize=TICK_FONT_SIZE - 1, color=colour)


def _share_ratio(version_share: pd.Series, real_share: pd.Series) -> pd.Series:
    """version / real, with a label absent from the real data counted as infinitely over-represented."""
    real = real_share.astype(float)
    ratio = version_share.astype(float) / real.where(real > 0)
    return ratio.mask((real <= 0) & (version_share > 0), np.inf).mask((real <= 0) & (version_share <= 0), 1.0)


def _ratio_text(ratio: float) -> str:
    return "not in real data" if np.isinf(ratio) else f"×{ratio:.2f}"
