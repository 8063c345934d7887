"""Report charts are real PNGs, byte-identical for identical input, written atomically, and cost nothing to import."""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synth_assets.core import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_READABLE_PIXELS = 100
METRICS = ["distinct_2", "self_similarity", "discriminator_auc", "near_duplicate_share", "macro_f1"]
HWU64_LABELS = 64  # the demo task's label count, where the confusion title used to be cut off
BORDER_PIXELS = 2  # constrained layout leaves a few pixels of padding; ink there means something was cut off
WHITE = 0.99


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a valid PNG must have first, right after the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _curve(std: float = 0.02) -> pd.DataFrame:
    shares = [0.0, 0.25, 0.5, 0.75, 1.0]
    rows = [(share, split, 0.6 + 0.2 * share - 0.25 * share**2, std) for share in shares for split in ("heldout", "validation")]
    return pd.DataFrame(rows, columns=["synthetic_share", "split", "macro_f1_mean", "macro_f1_std"])


def _per_class(labels: int, with_all_real: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(labels)
    frame = pd.DataFrame(
        {
            "label": [f"intent_{i:03d}" for i in range(labels)],
            "f1_seeds_only": rng.uniform(0.2, 0.8, labels),
            "f1_version": rng.uniform(0.2, 0.95, labels),
        }
    )
    return frame.assign(f1_all_real=rng.uniform(0.6, 1.0, labels)) if with_all_real else frame


def _history(versions: int) -> pd.DataFrame:
    rng = np.random.default_rng(versions)
    frame = pd.DataFrame({"version": [f"2024-{month:02d}-01" for month in range(1, versions + 1)]})
    return frame.assign(**{metric: rng.uniform(0, 1, versions) for metric in METRICS})


def _confusion(labels: int, name: str = "label_{}") -> pd.DataFrame:
    rng = np.random.default_rng(labels)
    counts = np.diag(rng.integers(20, 50, labels)) + rng.poisson(0.5, (labels, labels))
    names = [name.format(i) for i in range(labels)]
    return pd.DataFrame(counts, index=names, columns=names)


def _scores_over_versions(macro_f1: list[float], **columns: list[float]) -> pd.DataFrame:
    versions = [f"task-batch_{number}" for number in range(1, len(macro_f1) + 1)]
    return pd.DataFrame({"version": versions, "macro_f1": macro_f1, **columns})


def _distribution(labels: int) -> pd.DataFrame:
    rng = np.random.default_rng(labels)
    return pd.DataFrame(
        {
            "label": [f"l{i}" for i in range(labels)],
            "real_share": rng.dirichlet(np.ones(labels)),
            "version_share": rng.dirichlet(np.ones(labels)),
        }
    )


CHARTS: dict[str, Callable[[Path], Path]] = {
    "ratio_curve": lambda path: plots.ratio_curve(_curve(), path, chosen_share=0.5),
    "per_class_f1": lambda path: plots.per_class_f1(_per_class(8), path),
    "metrics_over_versions": lambda path: plots.metrics_over_versions(_history(4), path, METRICS),
    "confusion_heatmap": lambda path: plots.confusion_heatmap(_confusion(6), path),
    "label_distribution": lambda path: plots.label_distribution(_distribution(10), path),
}
# Charts at the demo's size, with intent-like names as long as HWU64's longest (recommendation_locations).
CROWDED_CHARTS: dict[str, Callable[[Path], Path]] = {
    "confusion_heatmap": lambda path: plots.confusion_heatmap(_confusion(HWU64_LABELS, "recommendation_{:02d}x"), path),
    "per_class_f1": lambda path: plots.per_class_f1(_per_class(HWU64_LABELS), path),
    "label_distribution": lambda path: plots.label_distribution(_distribution(HWU64_LABELS), path),
    "metrics_over_versions": lambda path: plots.metrics_over_versions(
        _history(12).assign(macro_f1_ci_low=0.1, macro_f1_ci_high=0.9, seeds_only_macro_f1=0.5),
        path,
        METRICS,
        {"macro_f1": "seeds_only_macro_f1"},
    ),
}


@pytest.fixture
def saved_figures(monkeypatch) -> list:
    """Every matplotlib figure saved while the test runs, laid out and drawn as it was written."""
    from matplotlib.figure import Figure

    figures = []
    save = Figure.savefig

    def save_and_keep(figure, *args, **kwargs):
        figures.append(figure)
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", save_and_keep)
    return figures


def _ink_on_border(path: Path) -> list[str]:
    """The image's edges that have non-white pixels: text or lines drawn past the figure's edge."""
    from matplotlib.image import imread

    ink = (imread(path)[..., :3] < WHITE).any(axis=2)
    edges = {
        "top": ink[:BORDER_PIXELS],
        "bottom": ink[-BORDER_PIXELS:],
        "left": ink[:, :BORDER_PIXELS],
        "right": ink[:, -BORDER_PIXELS:],
    }
    return [edge for edge, pixels in edges.items() if pixels.any()]


@pytest.mark.parametrize("chart", CHARTS)
def test_each_chart_writes_one_readable_png_into_a_new_folder_and_no_temp_file(tmp_path, chart):
    target = tmp_path / "report" / "figures" / f"{chart}.png"
    assert CHARTS[chart](target) == target
    width, height = _png_size(target)
    assert width > MIN_READABLE_PIXELS and height > MIN_READABLE_PIXELS
    assert [path.name for path in target.parent.iterdir()] == [target.name]


@pytest.fixture(scope="module")
def reference_pngs(tmp_path_factory) -> dict[str, bytes]:
    """Each chart rendered once, one at a time: the bytes every later rendering must reproduce."""
    folder = tmp_path_factory.mktemp("reference")
    return {chart: render(folder / f"{chart}.png").read_bytes() for chart, render in CHARTS.items()}


@pytest.mark.parametrize("chart", CHARTS)
def test_identical_input_gives_identical_bytes(tmp_path, reference_pngs, chart):
    assert CHARTS[chart](tmp_path / "again.png").read_bytes() == reference_pngs[chart]


def test_rendering_from_several_threads_at_once_gives_the_same_bytes(tmp_path, reference_pngs):
    with ThreadPoolExecutor(max_workers=len(CHARTS)) as pool:
        paths = dict(zip(CHARTS, pool.map(lambda item: item[1](tmp_path / f"{item[0]}.png"), CHARTS.items())))
    assert {chart: path.read_bytes() for chart, path in paths.items()} == reference_pngs


def test_an_existing_file_is_replaced(tmp_path):
    target = tmp_path / "curve.png"
    target.write_bytes(b"stale")
    plots.ratio_curve(_curve(), target, chosen_share=None)
    assert target.read_bytes()[:8] == PNG_SIGNATURE


def test_ratio_curve_copes_with_missing_spread_and_no_chosen_share(tmp_path):
    curve = _curve(std=np.nan)
    curve.loc[curve.index[0], "macro_f1_std"] = 0.0
    _png_size(plots.ratio_curve(curve, tmp_path / "curve.png", chosen_share=None))


def test_per_class_with_only_two_labels_and_no_all_real_column(tmp_path):
    _png_size(plots.per_class_f1(_per_class(2, with_all_real=False), tmp_path / "per_class.png"))


def test_per_class_height_grows_with_labels_until_max_labels(tmp_path):
    _, few = _png_size(plots.per_class_f1(_per_class(2), tmp_path / "few.png", max_labels=20))
    _, exactly_max = _png_size(plots.per_class_f1(_per_class(20), tmp_path / "max.png", max_labels=20))
    _, many = _png_size(plots.per_class_f1(_per_class(90), tmp_path / "many.png", max_labels=20))
    assert few < exactly_max == many


def test_per_class_beyond_max_labels_keeps_the_most_worsened_and_most_improved():
    per_class = _per_class(30).assign(f1_seeds_only=0.5, f1_version=lambda frame: np.linspace(0.0, 1.0, len(frame)))
    scored = per_class.assign(change=per_class["f1_version"] - per_class["f1_seeds_only"])
    shown, truncated = plots._extremes(scored, "change", max_rows=6, neutral=0.0)
    assert truncated
    assert shown["label"].tolist() == [f"intent_{i:03d}" for i in [0, 1, 2, 27, 28, 29]]


def test_metrics_over_a_single_version_with_a_missing_value(tmp_path):
    history = _history(1).assign(distinct_2=np.nan)
    width, height = _png_size(plots.metrics_over_versions(history, tmp_path / "history.png", METRICS))
    assert width > MIN_READABLE_PIXELS and height > MIN_READABLE_PIXELS


def test_metrics_over_versions_names_a_missing_metric_column(tmp_path):
    with pytest.raises(ValueError, match="toxicity"):
        plots.metrics_over_versions(_history(2), tmp_path / "history.png", ["macro_f1", "toxicity"])


@pytest.mark.parametrize(
    "chart", [*(("small", name) for name in CHARTS), *(("crowded", name) for name in CROWDED_CHARTS)], ids="-".join
)
def test_nothing_is_cut_off_at_the_edges_of_a_chart(tmp_path, chart):
    size, name = chart
    render = (CHARTS if size == "small" else CROWDED_CHARTS)[name]
    assert _ink_on_border(render(tmp_path / "chart.png")) == []


def test_the_confusion_title_of_a_64_label_task_lies_inside_the_figure(tmp_path, saved_figures):
    plots.confusion_heatmap(_confusion(HWU64_LABELS, "recommendation_{:02d}x"), tmp_path / "confusion.png")
    (figure,) = saved_figures
    title = figure.axes[0].title
    extent = title.get_window_extent(figure.canvas.get_renderer())
    assert "30 of 64 labels" in title.get_text()
    assert figure.bbox.x0 <= extent.x0 and extent.x1 <= figure.bbox.x1
    assert figure.bbox.y0 <= extent.y0 and extent.y1 <= figure.bbox.y1


def _first_panel_limits(saved_figures: list) -> tuple[float, float]:
    (figure,) = saved_figures
    return figure.axes[0].get_ylim()


def test_a_tiny_change_of_macro_f1_does_not_fill_its_panel(tmp_path, saved_figures):
    plots.metrics_over_versions(_scores_over_versions([0.650, 0.652]), tmp_path / "history.png", ["macro_f1"])
    low, high = _first_panel_limits(saved_figures)
    assert high - low >= plots.MIN_SCORE_SPAN
    assert low < 0.650 and high > 0.652


def test_the_macro_f1_panel_spans_the_intervals_and_the_seeds_only_score(tmp_path, saved_figures):
    history = _scores_over_versions(
        [0.650, 0.652, 0.655],
        macro_f1_ci_low=[np.nan, 0.60, 0.63],
        macro_f1_ci_high=[np.nan, 0.70, 0.68],
        seeds_only_macro_f1=[np.nan, 0.55, 0.56],
    )
    plots.metrics_over_versions(history, tmp_path / "history.png", ["macro_f1"], {"macro_f1": "seeds_only_macro_f1"})
    low, high = _first_panel_limits(saved_figures)
    assert low <= 0.55 and high >= 0.70
    (figure,) = saved_figures
    assert [text.get_text() for text in figure.legends[0].get_texts()] == [
        "dataset version",
        "95% interval",
        "seeds only macro f1",
    ]


def test_history_without_intervals_or_baseline_draws_the_scores_alone(tmp_path, saved_figures):
    history = _scores_over_versions([0.650, 0.652], macro_f1_ci_low=np.nan, macro_f1_ci_high=np.nan)
    plots.metrics_over_versions(history, tmp_path / "history.png", ["macro_f1"], {"macro_f1": "seeds_only_macro_f1"})
    (figure,) = saved_figures
    assert figure.legends == [] and len(figure.axes[0].collections) == 0


def test_a_score_near_zero_keeps_its_panel_at_or_above_zero(tmp_path, saved_figures):
    history = _scores_over_versions([0.65, 0.66], self_similarity=[0.011, 0.012])
    plots.metrics_over_versions(history, tmp_path / "history.png", ["self_similarity"])
    assert _first_panel_limits(saved_figures) == (0.0, plots.MIN_SCORE_SPAN)


def test_the_ratio_curve_of_equal_scores_is_not_zoomed_to_their_noise(tmp_path, saved_figures):
    curve = _curve(std=0.0).assign(macro_f1_mean=lambda frame: 0.6 + 0.001 * frame["synthetic_share"])
    plots.ratio_curve(curve, tmp_path / "curve.png", chosen_share=0.5)
    (figure,) = saved_figures
    low, high = figure.axes[0].get_ylim()
    assert high - low >= plots.MIN_SCORE_SPAN


@pytest.mark.parametrize("chart", ["per_class_f1", "label_distribution"])
def test_the_note_on_hidden_labels_has_an_empty_row_of_its_own(tmp_path, saved_figures, chart):
    CROWDED_CHARTS[chart](tmp_path / "chart.png")
    (figure,) = saved_figures
    axes = figure.axes[0]
    (note,) = [text for text in axes.texts if "not shown" in text.get_text()]
    rows = np.sort(axes.get_yticks())
    below, above = rows[rows < note.get_position()[1]][-1], rows[rows > note.get_position()[1]][0]
    assert above - below == 2, "the rows either side of the note must be a full row apart"


def test_the_largest_label_share_is_drawn_clear_of_the_frame(tmp_path, saved_figures):
    distribution = _distribution(10)
    plots.label_distribution(distribution, tmp_path / "distribution.png")
    (figure,) = saved_figures
    largest = max(distribution["real_share"].max(), distribution["version_share"].max())
    assert figure.axes[0].get_xlim()[1] >= largest * (1 + plots.AXIS_MARGIN)


def test_confusion_beyond_max_labels_is_drawn_at_the_size_of_max_labels(tmp_path):
    capped = _png_size(plots.confusion_heatmap(_confusion(50), tmp_path / "many.png", max_labels=30))
    assert capped == _png_size(plots.confusion_heatmap(_confusion(30), tmp_path / "thirty.png", max_labels=30))


def test_confusion_keeps_the_labels_involved_in_the_most_errors():
    counts = pd.DataFrame(np.diag([10.0, 10.0, 10.0, 10.0]), index=list("abcd"), columns=list("abcd"))
    counts.loc["d", "b"] = 3  # b and d are each in 3 errors (as predicted and as true label), a and c in 1
    counts.loc["a", "c"] = 1
    assert plots._most_confused_labels(counts, max_labels=2) == ["b", "d"]


def test_confusion_with_a_label_never_predicted(tmp_path):
    confusion = _confusion(5).drop(columns="label_4")
    _png_size(plots.confusion_heatmap(confusion, tmp_path / "confusion.png"))


def test_label_distribution_with_hundreds_of_labels_and_one_absent_from_the_real_data(tmp_path):
    distribution = _distribution(150)
    distribution.loc[0, "real_share"] = 0.0
    width, height = _png_size(plots.label_distribution(distribution, tmp_path / "distribution.png"))
    assert width > MIN_READABLE_PIXELS and height > MIN_READABLE_PIXELS


def test_a_label_absent_from_the_real_data_ranks_as_most_over_represented():
    ratio = plots._share_ratio(pd.Series([0.5, 0.3, 0.2]), pd.Series([0.0, 0.6, 0.4]))
    assert ratio.tolist() == [np.inf, 0.5, 0.5]


def _run_python(code: str) -> None:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_importing_the_module_does_not_import_matplotlib():
    _run_python("import sys, synth_assets.core.plots; assert 'matplotlib' not in sys.modules, 'matplotlib imported eagerly'")


def test_rendering_never_imports_pyplot(tmp_path):
    code = (
        "import sys, pandas as pd; from synth_assets.core import plots; "
        "plots.label_distribution(pd.DataFrame({'label': ['a', 'b'], 'real_share': [0.5, 0.5], 'version_share': [0.7, 0.3]}), "
        f"{str(tmp_path / 'distribution.png')!r}); "
        "assert 'matplotlib' in sys.modules and 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'"
    )
    _run_python(code)
