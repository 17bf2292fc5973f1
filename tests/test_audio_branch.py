"""The audio branch tells sounds apart, and the order of an audio's clips, from initialisation on.

The audio branch had the video branch's problem (tests/test_video_branch.py): ImageBind's clip
embeddings go through the same width-64 Q-Former, initialised at BLIP-2's 0.02, so the learned
queries dominated and every sound gave nearly the same audio tokens (per-sound deviation 0.065
of the common part over 32 sounds, `scripts/branch_spread.py --modality audio`), and the clips'
order none at all. The same fix, through the same ``QFormerBranchConfig`` keys, for new models:
LayerNorm on the clip embeddings, positions at std 1, the Q-Former at 1/sqrt(width).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from groundinggpt.miniature import build_miniature, miniature_config
from test_video_branch import LEGACY, _spread, _stage1


def _audio(**changes):
    """The miniature's audio config (the tiny preset's) with ``changes``, as a dict."""
    keep = ("encoder", "num_clips", "clip_seconds", "num_mel_bins", "target_frames", "max_clips", "num_query_tokens",
            "qformer_hidden_size", "qformer_num_layers", "qformer_num_heads", "qformer_intermediate_size", "adapter")
    config = miniature_config().audio_config.to_dict()
    return {**{k: config[k] for k in keep}, **changes}


def _model(**changes):
    return build_miniature(seed=0, audio_config=_audio(**changes))


@pytest.fixture(scope="module")
def sounds():
    """12 world-like 2-s sounds (captions) and 12 6-s sequences of three different sounds, as clip embeddings."""
    from groundinggpt.data.synthetic.sound import SOUNDS, AudioScene, sample_audio_scene
    from groundinggpt.miniature.corpus import audio_clip_features

    rng = np.random.default_rng(7)
    scenes = [sample_audio_scene(rng, f"s{i}", 2.0) for i in range(12)]
    names = list(SOUNDS)
    sequences = []
    for i in range(12):
        a, b, c = (names[int(k)] for k in rng.choice(len(names), size=3, replace=False))
        sequences.append(AudioScene(f"q{i}", 6.0, ((a, 0.0, 2.0), (b, 2.0, 4.0), (c, 4.0, 6.0)), i).render())
    model, processor = _model()
    with torch.no_grad():
        features = model.encode_audios(audio_clip_features([s.render() for s in scenes], processor))
        ordered = model.encode_audios(audio_clip_features(sequences, processor))
    return features, ordered, [s.caption() for s in scenes]


def test_sounds_give_different_tokens_and_clip_order_at_initialisation(sounds):
    features, ordered, _ = sounds
    new, _ = _model()
    old, _ = _model(**LEGACY)
    assert new.audio_branch.input_norm is not None and old.audio_branch.input_norm is None
    between, _ = _spread(new.audio_branch, features)
    _, order = _spread(new.audio_branch, ordered)
    old_between, _ = _spread(old.audio_branch, features)
    _, old_order = _spread(old.audio_branch, ordered)
    assert between > 0.4 and order > 0.15, (between, order)
    assert old_between < 0.12 and old_order < 1e-3, (old_between, old_order)  # what the fix fixes


def test_sounds_stay_different_after_stage1_steps(sounds):
    features, ordered, captions = sounds
    model, processor = _model()
    losses = _stage1(model, processor, features, captions, kind="audio")
    assert losses[-1] < losses[0]
    between, _ = _spread(model.audio_branch, features)
    _, order = _spread(model.audio_branch, ordered)
    assert between > 0.1 and order > 0.05, (between, order)


def test_a_folder_saved_before_input_norm_loads_the_audio_branch_it_was_trained_with(sounds, tmp_path):
    """config.json whose audio_config lacks ``input_norm`` → no LayerNorm, 0.02: the same audio tokens."""
    from groundinggpt.models import GroundingGPTConfig, GroundingGPTForCausalLM

    features, _, _ = sounds
    old, _ = _model(**LEGACY)
    old.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("input_norm", "position_init_std", "qformer_initializer_range"):  # as written before the keys
        del config["audio_config"][key]
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = GroundingGPTForCausalLM.from_pretrained(tmp_path).eval()
    audio = loaded.config.audio_config
    assert (audio.input_norm, audio.position_init_std, audio.qformer_initializer_range) == (False, 0.02, 0.02)
    assert loaded.audio_branch.input_norm is None
    with torch.no_grad():
        torch.testing.assert_close(loaded.audio_branch(features), old.audio_branch(features))
    # a config made in code, or saved with the keys, keeps today's defaults
    fresh = GroundingGPTConfig().audio_config
    assert (fresh.input_norm, fresh.position_init_std, fresh.qformer_initializer_range) == (True, 1.0, None)
    assert fresh.qformer_config(64).initializer_range == fresh.qformer_hidden_size ** -0.5
    new, _ = _model()
    new.save_pretrained(tmp_path / "new")
    again = GroundingGPTForCausalLM.from_pretrained(tmp_path / "new").eval()
    assert again.audio_branch.input_norm is not None
    with torch.no_grad():
        torch.testing.assert_close(again.audio_branch(features), new.audio_branch(features))


def test_the_released_checkpoint_keeps_the_released_audio_forward(tmp_path):
    """The LEGO conversion's config: no LayerNorm on the clip embeddings, positions and Q-Former at 0.02
    (tests/test_convert_lego.py checks the converted audio tokens against the released forward)."""
    from transformers import CLIPVisionConfig

    from groundinggpt.convert.lego import project_config
    from lego_fixture import CLIP, RELEASED_TOKENS, released_tokenizer, write_released_folder

    src, _, state = write_released_folder(tmp_path)
    lego = json.loads((src / "config.json").read_text())
    tok = released_tokenizer()
    config = project_config(lego, {k: tuple(v.shape) for k, v in state.items()}, CLIPVisionConfig(**CLIP),
                            {t: tok.convert_tokens_to_ids(t) for t in RELEASED_TOKENS})
    audio = config.audio_config
    assert (audio.input_norm, audio.position_init_std, audio.qformer_initializer_range) == (False, 0.02, 0.02)
    saved = json.loads(config.to_json_string())["audio_config"]  # written resolved, so it loads the same
    assert (saved["input_norm"], saved["position_init_std"], saved["qformer_initializer_range"]) == (False, 0.02, 0.02)
