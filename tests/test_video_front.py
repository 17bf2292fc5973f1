"""The released video front as a config choice: frozen in stage 1, cached like any encoder."""

from __future__ import annotations

import pytest
import torch

from conftest import make_video_frames
from groundinggpt.data import DataCollator, FeatureCache, GroundingDataset, Sample, encoder_fingerprints
from groundinggpt.media.video import write_video
from groundinggpt.models.video_front import RELEASED_EVA_BLIP2, eva_blip2_settings, tiny_eva_blip2_settings
from groundinggpt.presets import build_tiny
from groundinggpt.train.freeze import apply_freeze_plan, plan_for_stage

EVA_VIDEO = dict(frame_encoder="eva_blip2", frame_encoder_config=tiny_eva_blip2_settings(), num_frames=4,
                 num_query_tokens=8, qformer_hidden_size=64, frame_sampling="index", frame_resize="squash")


@pytest.fixture
def eva_tiny():
    return build_tiny(seed=0, video_config=EVA_VIDEO)


def test_settings_complete_with_the_released_values():
    full = eva_blip2_settings({"vision": {"num_hidden_layers": 2}})
    assert full["vision"]["num_hidden_layers"] == 2 and full["vision"]["hidden_size"] == 1408
    assert full["qformer"] == RELEASED_EVA_BLIP2["qformer"] and full["ln_vision_eps"] == 1e-5
    with pytest.raises(ValueError, match="unknown key 'visoin'"):
        eva_blip2_settings({"visoin": {}})


def test_front_shapes_and_ln_vision_eps(eva_tiny):
    model, processor = eva_tiny
    front = model.video_frame_encoder
    assert front.vision.post_layernorm.eps == 1e-5 and front.vision.encoder.layers[0].layer_norm1.eps == 1e-6
    assert model.encode_videos(torch.zeros(2, 3, 3, 28, 28)).shape == (2, 3, 4, 32)  # 4 BLIP-2 queries of 32
    assert processor.config.video_size == 28 and processor.config.video_sampling == "index"


def test_stage1_trains_the_branch_not_the_front(eva_tiny):
    model, _ = eva_tiny
    apply_freeze_plan(model, plan_for_stage(1))
    assert not any(p.requires_grad for p in model.video_frame_encoder.parameters())
    assert all(p.requires_grad for p in model.video_branch.parameters())
    ids = torch.tensor([[1] + [model.config.video_token_id] * model.config.video_seq_length + [9, 10]])
    out = model(input_ids=ids, pixel_values_videos=torch.randn(1, 4, 3, 28, 28), labels=ids)
    out.loss.backward()
    assert model.video_branch.query_tokens.grad is not None
    assert all(p.grad is None for p in model.video_frame_encoder.parameters())


def test_front_stays_in_eval_mode_when_the_model_trains(eva_tiny):
    model, _ = eva_tiny
    model.train()
    assert not model.video_frame_encoder.training and not model.video_frame_encoder.qformer.training
    assert model.video_branch.training  # the trainable branch does train
    frames = torch.randn(2, 3, 28, 28)
    assert torch.equal(model.video_frame_encoder(frames), model.video_frame_encoder(frames))


def test_feature_cache_holds_the_front_output(eva_tiny, tmp_path):
    model, processor = eva_tiny
    model.eval()  # the trainable video Q-Former's dropout would make the two losses differ
    write_video(tmp_path / "clip.mp4", make_video_frames(), fps=6)
    samples = [Sample.from_dict({"id": "v", "task": "temporal", "messages": [
        {"role": "user", "content": [{"type": "video", "video": "clip.mp4"}, {"type": "text", "text": "When?"}]},
        {"role": "assistant", "content": "At {0.20, 0.45}."}]})]
    cache = FeatureCache(tmp_path / "cache")
    assert cache.build(model, samples, processor, tmp_path, progress=False)["encoded"] == 1
    raw = DataCollator(processor)([GroundingDataset(samples, processor, tmp_path)[0]])
    cached = DataCollator(processor)([GroundingDataset(samples, processor, tmp_path, feature_cache=cache)[0]])
    assert cached["video_features"].shape == (1, 4, 4, 32)
    with torch.no_grad():
        assert float(model(**cached).loss) == pytest.approx(float(model(**raw).loss), abs=1e-5)
    before = encoder_fingerprints(model)["video"]
    with torch.no_grad():
        model.video_frame_encoder.query_tokens.add_(1.0)
    assert encoder_fingerprints(model)["video"] != before  # new front weights: a miss, never a stale hit
