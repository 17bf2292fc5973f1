"""scripts/diagnose_selection.py: the selection learning-curve diagnostic (docs/quickstart.md)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def diag():
    spec = importlib.util.spec_from_file_location("diagnose_selection", ROOT / "scripts" / "diagnose_selection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_word_tokens_are_the_llms_own_embeddings_of_what_covers_each_patch(diag):
    from groundinggpt.data.synthetic.world import COLOURS, SHAPES, SIZES, sample_image_scene
    from groundinggpt.miniature.corpus import patch_targets

    model, processor = diag.build_model("pretrained")
    vectors = diag.word_vectors(model, processor.tokenizer)
    scene = sample_image_scene(np.random.default_rng(3), "s", 64, 64, (2, 3))
    feats = diag.word_features(scene, vectors)
    assert feats.shape == (64, model.config.text_config.hidden_size + 16)
    t = patch_targets(scene)
    table = model.language_model.get_input_embeddings().weight.detach()
    tok = processor.tokenizer
    covered = int(np.flatnonzero(t["colour"])[0])
    obj_words = [list(vocab)[int(t[name][covered]) - 1]  # patch_targets' classes are 1-based
                 for name, vocab in (("colour", COLOURS), ("shape", SHAPES), ("size", SIZES))]
    expected = sum(table[tok(" " + w, add_special_tokens=False)["input_ids"]].mean(0) for w in obj_words)
    torch.testing.assert_close(feats[covered, :-16], expected)
    empty = int(np.flatnonzero(t["colour"] == 0)[0])
    assert torch.count_nonzero(feats[empty, :-16]) == 0
    torch.testing.assert_close(feats[:, -16:], torch.from_numpy(t["cells"]).float())


def test_question_first_moves_only_the_text_ahead(diag):
    messages = [{"role": "user", "content": [{"type": "image", "image": "a.png"}, {"type": "text", "text": "Where?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "[0.1, 0.2, 0.3, 0.4]"}]}]
    out = diag.question_first(messages)
    assert [p["type"] for p in out[0]["content"]] == ["text", "image"]
    assert out[1] == messages[1] and messages[0]["content"][0]["type"] == "image"  # input untouched


def test_a_short_run_logs_a_learning_curve(diag, tmp_path):
    out = tmp_path / "curve.jsonl"
    rows = diag.run(diag.parse_args(["--features", "tower", "--llm", "128x1", "--question-first", "--scenes", "64",
                                     "--test", "8", "--steps", "4", "--eval-every", "2", "--batch", "4",
                                     "--device", "cpu", "--out", str(out)]))
    evals = [r for r in rows if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [0, 2, 4]
    assert [r.get("samples", 0) for r in evals] == [0, 8, 16]
    assert all(0.0 <= r["acc"] <= 100.0 and len(r["examples"]) == 3 for r in evals)
    assert rows[0]["event"] == "data" and rows[0]["objects"] == [2, 4] and rows[0]["features"] == "tower"
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows


def test_bad_llm_shape_is_refused(diag):
    with pytest.raises(SystemExit, match="WIDTHxLAYERS"):
        diag.build_model("wide")
    with pytest.raises(SystemExit, match="multiple of 64"):
        diag.build_model("100x2")


def test_objects_argument(diag):
    assert diag.parse_objects("2-4") == (2, 4) and diag.parse_objects("3") == (3, 3)
    for bad in ("two", "4-2", "0", "2-x"):
        with pytest.raises(SystemExit, match="--objects"):
            diag.parse_objects(bad)
