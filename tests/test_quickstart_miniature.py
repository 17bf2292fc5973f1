"""The miniature pretrained parts: what they are pretrained on, and that the script reproduces loadable parts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from groundinggpt.data.synthetic.world import SHAPES, ImageScene, SceneObject
from groundinggpt.miniature.corpus import audio_corpus, chat_corpus, image_corpus, patch_targets

ROOT = Path(__file__).resolve().parents[1]
_DIGIT = re.compile(r"\d")


def test_image_captions_name_no_numbers_and_patch_targets_match_pixels():
    corpus = image_corpus(40, stream=9)
    assert not any(_DIGIT.search(c) for c in corpus.captions)  # coarse words only, no coordinates
    scene = ImageScene("t", 64, 64, (SceneObject("square", "red", "large", 12, 8, 8),))
    t = patch_targets(scene)
    # the 12-px square covers pixels 8..19: patch (1,1) fully, patches (1,2), (2,1), (2,2) partly
    grid = t["colour"].reshape(8, 8)
    assert grid[1, 1] > 0 and grid[0, 0] == 0 and grid[3, 3] == 0
    cells = t["cells"].reshape(8, 8, 4, 4)
    assert cells[1, 1].all() and cells[1, 2][:, :2].all() and not cells[1, 2][:, 2:].any()


def test_audio_corpus_captions_are_sound_captions():
    waves, captions = audio_corpus(6, stream=9)
    assert len(waves) == 6 and all(w.dtype == np.float32 for w in waves)
    assert not any(_DIGIT.search(c) for c in captions)


def test_llm_text_never_ties_numbers_to_objects():
    """Digits appear in number-format chats (no shape words) or as counts; never as a box of an object."""
    for turns in chat_corpus(400, stream=9):
        for question, answer in turns:
            if _DIGIT.search(answer):
                is_count = answer.isdigit()
                mentions_shape = any(s in (question + answer) for s in SHAPES)
                assert is_count or not mentions_shape, (question, answer)
            assert "[" not in question or not any(s in question for s in SHAPES), question


def test_parts_round_trip_in_float16(tmp_path):
    from groundinggpt.miniature import build_miniature, save_parts

    model, _ = build_miniature(load=())
    save_parts(tmp_path, vision=model.vision_tower, audio=model.audio_encoder, llm=model.language_model,
               info={"reports": {}})
    again, _ = build_miniature(tmp_path, seed=1)
    for a, b in zip(model.vision_tower.parameters(), again.vision_tower.parameters()):
        assert b.dtype == torch.float32
        assert torch.allclose(a, b, atol=1e-2, rtol=1e-3)


@pytest.mark.slow
def test_pretraining_script_writes_loadable_parts(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "pretrain_miniature.py"), "--quick",
                             "--out", str(tmp_path), "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    from groundinggpt.miniature import build_miniature, load_parts_info

    info = load_parts_info(tmp_path)
    assert set(info["reports"]) == {"vision", "audio", "llm"}
    model, processor = build_miniature(tmp_path)
    assert processor.config.system_prompt


@pytest.mark.slow
def test_pretraining_script_mixes_text_skills_and_continues_from_a_parts_folder(tmp_path):
    from safetensors.torch import load_file

    from groundinggpt.miniature import ASSETS, load_parts_info

    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "pretrain_miniature.py"), "--quick",
                             "--parts", "llm", "--llm-skills", "0.5", "--llm-from", str(ASSETS), "--llm-lr", "1e-5",
                             "--out", str(tmp_path), "--threads", "1"], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "32 skill chats" in result.stderr
    report = load_parts_info(tmp_path)["reports"]["llm"]
    assert report["skills_share"] == 0.5 and report["started_from"] == str(ASSETS)
    assert set(report["skills"]) == {"recall", "grid", "sequence", "order", "formats"}
    assert report["validation_skills"]["loss"] > 0
    # two steps at lr 1e-5 from the committed LLM: still the committed weights, not a random init
    before, after = load_file(str(ASSETS / "llm.safetensors")), load_file(str(tmp_path / "llm.safetensors"))
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        assert torch.allclose(before[key].float(), after[key].float(), atol=2e-3), key
