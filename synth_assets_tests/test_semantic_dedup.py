"""Semantic duplicates: a small real model2vec-format model on disk, the real tokenizer and dedup code."""

from __future__ import annotations

import json
import struct

import numpy as np
import pandas as pd
import pytest

from synth_assets.core.dedup import Reference, semantic_duplicates
from synth_assets.core.embeddings import MODEL_NAME, MODELS_DIR_VARIABLE, EmbeddingModelError, load_static_model

# Words with the same meaning share a direction; "on" and "off" are close, as in real models.
DIRECTIONS = {
    "wake": 0,
    "rouse": 0,
    "me": 1,
    "up": 2,
    "at": 3,
    "seven": 4,
    "7": 4,
    "turn": 5,
    "the": 6,
    "lights": 7,
    "lamps": 7,
    "on": 8,
    "off": 8,
    "weather": 9,
    "in": 10,
    "paris": 11,
    "##s": 12,
    "lamp": 7,
}


def write_static_model(folder, directions=DIRECTIONS, dim=16):
    vocab = {"[UNK]": 0, **{word: i + 1 for i, word in enumerate(directions)}}
    table = np.zeros((len(vocab), dim), dtype=np.float32)
    for word, direction in directions.items():
        table[vocab[word], direction] = 1.0
    table[vocab["off"]] += 0.05  # nearly, not exactly, the same as "on"
    data = table.tobytes()
    header = json.dumps({"embeddings": {"dtype": "F32", "shape": list(table.shape), "data_offsets": [0, len(data)]}}).encode()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + data)
    (folder / "tokenizer.json").write_text(json.dumps(_wordpiece_tokenizer(vocab)))
    (folder / "config.json").write_text(json.dumps({"model_type": "model2vec", "hidden_dim": dim, "normalize": True}))
    return folder


def _wordpiece_tokenizer(vocab: dict[str, int]) -> dict:
    """A Hugging Face tokenizer.json of the kind potion-base-8M ships: BERT uncased WordPiece."""
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": 0,
                "content": "[UNK]",
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
        ],
        "normalizer": {
            "type": "BertNormalizer",
            "clean_text": True,
            "handle_chinese_chars": True,
            "strip_accents": None,
            "lowercase": True,
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": None,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": vocab,
        },
    }


@pytest.fixture
def model(tmp_path):
    return load_static_model(str(write_static_model(tmp_path / "model")))


def _verdicts(rows):
    return pd.DataFrame(
        {
            "row_id": [f"r{i}" for i in range(len(rows))],
            "text": [text for text, _ in rows],
            "label": [label for _, label in rows],
            "dup_status": "unique",
            "dup_of": "",
            "dup_similarity": 0.0,
        }
    )


def test_texts_are_tokenized_by_the_models_own_wordpiece_tokenizer(model):
    same = model.encode(["Lamps!", "lamps", "wake", "zzz wake"])
    assert np.allclose(same[0], same[1]) and np.allclose(same[2], same[3])  # case and punctuation folded, unknown dropped
    assert np.allclose(np.linalg.norm(same, axis=1), 1.0)


def test_a_same_label_paraphrase_is_a_semantic_duplicate_of_the_first(model):
    rows = [("wake me up at seven", "alarm_set"), ("rouse me up at 7", "alarm_set")]
    verdicts = semantic_duplicates(_verdicts(rows), [], model.encode, 0.95)
    assert verdicts["dup_status"].tolist() == ["unique", "semantic_dup"]
    assert verdicts["dup_of"].tolist() == ["", "r0"] and verdicts["dup_similarity"].iloc[1] >= 0.95


def test_close_texts_of_different_labels_both_stay(model):
    rows = [("turn the lights on", "lights_on"), ("turn the lights off", "lights_off")]
    assert model.encode([rows[0][0]]) @ model.encode([rows[1][0]]).T > 0.95
    assert semantic_duplicates(_verdicts(rows), [], model.encode, 0.95)["dup_status"].tolist() == ["unique", "unique"]


def test_a_paraphrase_of_a_heldout_row_is_contamination(model):
    heldout = Reference(["heldout:3"], ["turn the lamps on"], "contaminates_heldout", ["lights_on"])
    verdicts = semantic_duplicates(_verdicts([("turn the lights on", "lights_on")]), [heldout], model.encode, 0.95)
    assert verdicts[["dup_status", "dup_of"]].values.tolist() == [["contaminates_heldout", "heldout:3"]]


def test_rows_already_judged_are_left_alone(model):
    frame = _verdicts([("wake me up", "a"), ("wake me up", "a")])
    frame.loc[1, ["dup_status", "dup_of", "dup_similarity"]] = ["exact_dup", "r0", 1.0]
    assert semantic_duplicates(frame, [], model.encode, 0.9)["dup_status"].tolist() == ["unique", "exact_dup"]


def test_a_missing_model_says_how_to_get_it(tmp_path):
    with pytest.raises(EmbeddingModelError, match="fetch-semantic-model"):
        load_static_model(str(tmp_path / "nowhere"))


def test_the_factory_marks_semantic_duplicates_when_the_task_asks(data_dir, monkeypatch, instance):
    import yaml

    from synth_assets_tests.factory_harness import build_factory

    monkeypatch.setenv(MODELS_DIR_VARIABLE, str(data_dir / "models"))
    write_static_model(data_dir / "models" / MODEL_NAME)
    task_file = data_dir / "tasks" / "home" / "task.yaml"
    config = yaml.safe_load(task_file.read_text())
    config["dedup"] = {"semantic_threshold": 0.99}
    # The toy model knows a dozen words, so it finds most rows of a label the same as a seed; the
    # gate's batch thresholds would rightly fail such a batch, and this test is about the row verdicts.
    config["gate"].update(max_near_dup_rate=1.0, min_label_coverage=0.0, yield_floor=0.0)
    task_file.write_text(yaml.safe_dump(config))
    factory = build_factory(data_dir, monkeypatch, instance)
    key = factory.open("b1")
    assert factory.run(key).success
    table = factory.lake.read_table("deduplicated", key)
    semantic = table[table["dup_status"] == "semantic_dup"]
    assert len(semantic) > 0 and (semantic["dup_similarity"] >= 0.99).all()
    gated = factory.lake.read_table("gated", key)
    assert (gated.loc[gated["dup_status"] == "semantic_dup", "reject_reason"] == "semantic_dup").all()
