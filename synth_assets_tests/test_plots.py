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


def _confusion(labels: int) -> pd.DataFrame:
    rng = np.random.default_rng(labels)
    counts = np.diag(rng.integers(20, 50, labels)) + rng.poisson(0.5, (labels, labels))
    names = [f"label_{i}" for i in range(labels)]
    return pd.DataFrame(counts, index=names, columns=names)


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
