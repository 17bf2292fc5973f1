"""The video branch carries what differs between clips, and their frames' order, from initialisation on.

Before ``video_config.input_norm`` (and the Q-Former's width-matched initialisation) the
miniature's branch gave every clip nearly the same tokens (per-clip deviation 0.7 % of the
common part) and *exactly* the same for a clip played backwards: the learned queries
dominated the residual stream and the frame position was ~40× below the frame tokens.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from groundinggpt.miniature import build_miniature
from groundinggpt.miniature.parts import MINIATURE_OVERRIDES

LEGACY = {"input_norm": False, "position_init_std": 0.02, "qformer_initializer_range": 0.02}


def _clips(n: int = 12):
    from groundinggpt.data.synthetic.video import sample_video_scene
    from groundinggpt.miniature.corpus import normalise_pixels

    rng = np.random.default_rng(5)
    scenes = [sample_video_scene(rng, f"t{i}", 64, 64) for i in range(n)]
    return torch.stack([normalise_pixels(np.stack(s.frames()[1::2])) for s in scenes]), [s.caption() for s in scenes]


def _spread(branch, features):
    """(deviation between clips, distance to the clip played backwards), over the mean token's norm."""
    with torch.no_grad():
        tokens, backwards = branch(features), branch(features.flip(1))
    mean = tokens.mean(0)
    scale = mean.norm(dim=-1).mean()
    return float((tokens - mean).norm(dim=-1).mean() / scale), float((tokens - backwards).norm(dim=-1).mean() / scale)


def _model(**video):
    return build_miniature(seed=0, video_config={**MINIATURE_OVERRIDES["video_config"], **video})


@pytest.fixture(scope="module")
def clips():
    pixels, captions = _clips()
    model, _ = _model()
    with torch.no_grad():
        return model.encode_videos(pixels), captions


def test_clips_give_different_ordered_tokens_at_initialisation(clips):
    features, _ = clips
    new, _ = _model()
    old, _ = _model(**LEGACY)
    assert new.video_branch.input_norm is not None and old.video_branch.input_norm is None
    between, order = _spread(new.video_branch, features)
    old_between, old_order = _spread(old.video_branch, features)
    assert between > 0.15 and order > 0.05, (between, order)
    assert old_between < 0.03 and old_order < 1e-3, (old_between, old_order)  # what the fix fixes


def _stage1(model, processor, features, captions, steps=12, kind="video"):
    """``steps`` of stage 1 on the captions, the ``kind`` branch alone trained (lr 1e-3); the losses."""
    from groundinggpt.processor import MediaInfo

    rows = [processor([{"role": "user", "content": [{"type": kind, kind: "m"},
                                                      {"type": "text", "text": f"Describe the {kind}."}]},
                       {"role": "assistant", "content": c}], add_generation_prompt=False, padding_side="right",
                      return_labels=True, media_loader=lambda k, s: (None, MediaInfo(kind=kind, duration=2.0)))
            for c in captions]
    width = max(r["input_ids"].shape[1] for r in rows)
    ids = torch.full((len(rows), width), processor.tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        n = r["input_ids"].shape[1]
        ids[k, :n], labels[k, :n], mask[k, :n] = r["input_ids"][0], r["labels"][0], 1
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(f"{kind}_branch")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels, **{f"{kind}_features": features}).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return losses


def test_clips_stay_different_after_stage1_steps(clips):
    """12 steps of stage 1 (branch only, lr 1e-3) pull the tokens towards what the captions share
    (measured: 0.086 between clips, 0.036 to the reversed clip); the old branch's order was 0.0000."""
    features, captions = clips
    model, processor = _model()
    losses = _stage1(model, processor, features, captions)
    assert losses[-1] < losses[0]
    between, order = _spread(model.video_branch, features)
    assert between > 0.05 and order > 0.02, (between, order)


def test_a_folder_saved_before_input_norm_loads_the_branch_it_was_trained_with(clips, tmp_path):
    """config.json without ``input_norm`` → no LayerNorm: the saved weights give the same video tokens."""
    from groundinggpt.models import GroundingGPTConfig, GroundingGPTForCausalLM

    features, _ = clips
    old, _ = _model(**LEGACY)
    old.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["video_config"]["input_norm"]  # as written before the key existed
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = GroundingGPTForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.video_config.input_norm is False and loaded.video_branch.input_norm is None
    with torch.no_grad():
        torch.testing.assert_close(loaded.video_branch(features), old.video_branch(features))
    # a config made in code, or saved with the key, keeps today's default
    assert GroundingGPTConfig().video_config.input_norm is True
    new, _ = _model()
    new.save_pretrained(tmp_path / "new")
    again = GroundingGPTForCausalLM.from_pretrained(tmp_path / "new").eval()
    assert again.video_branch.input_norm is not None
    with torch.no_grad():
        torch.testing.assert_close(again.video_branch(features), new.video_branch(features))


def test_the_released_front_keeps_the_released_forward():
    """``eva_blip2`` frames are BLIP-2 Q-Former outputs: no frame LayerNorm, positions and Q-Former at 0.02."""
    from groundinggpt.models import GroundingGPTVideoConfig

    released = GroundingGPTVideoConfig(frame_encoder="eva_blip2")
    assert (released.input_norm, released.position_init_std, released.qformer_initializer_range) == (False, 0.02, 0.02)
    clip = GroundingGPTVideoConfig()
    assert (clip.input_norm, clip.position_init_std, clip.qformer_initializer_range) == (True, 1.0, None)
    assert clip.qformer_config(128).initializer_range == 64 ** -0.5
    with pytest.raises(ValueError, match="released forward has no LayerNorm"):
        GroundingGPTVideoConfig(frame_encoder="eva_blip2", input_norm=True)
