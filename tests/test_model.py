"""GroundingGPTForCausalLM: shapes per branch, splicing, batching, cache, save/load, paper shapes."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from groundinggpt.models import GroundingGPTConfig, GroundingGPTForCausalLM
from groundinggpt.presets import paper_config, tiny_config



def test_branch_shapes(tiny):
    model, _ = tiny
    cfg = model.config
    with torch.no_grad():
        img = model.encode_images(torch.randn(2, 3, 64, 64))
        vid = model.encode_videos(torch.randn(2, cfg.video_config.num_frames, 3, 64, 64))
        aud = model.encode_audios(torch.randn(2, 3, 1, 128, 204))
        media = model.project_media(image_features=img, video_features=vid, audio_features=aud)
    # 8×8 patch grid pooled 2× → 16 image tokens of CLIP width.
    assert img.shape == (2, 16, cfg.vision_config.hidden_size)
    assert vid.shape == (2, cfg.video_config.num_frames, 16, cfg.vision_config.hidden_size)
    assert aud.shape == (2, 3, 1, 64)
    d = cfg.text_config.hidden_size
    assert media[cfg.image_token_id].shape == (2, cfg.image_seq_length, d)
    assert media[cfg.video_token_id].shape == (2, cfg.video_seq_length, d)
    assert media[cfg.audio_token_id].shape == (2, cfg.audio_seq_length, d)


def test_features_are_spliced_at_placeholders(tiny):
    """Changing the image changes the hidden state at the image tokens and after, never before."""
    model, _ = tiny
    cfg = model.config
    ids = torch.tensor([[1, 20, 21] + [cfg.image_token_id] * cfg.image_seq_length + [30, 31]])
    with torch.no_grad():
        a = model(input_ids=ids, pixel_values=torch.zeros(1, 3, 64, 64)).logits
        b = model(input_ids=ids, pixel_values=torch.ones(1, 3, 64, 64)).logits
    assert torch.allclose(a[0, :3], b[0, :3])
    assert not torch.allclose(a[0, 3:], b[0, 3:])


def test_placeholder_count_mismatch_is_a_clear_error(tiny):
    model, _ = tiny
    ids = torch.tensor([[1] + [model.config.image_token_id] * 5])
    with pytest.raises(ValueError, match="placeholder/feature mismatch"):
        model(input_ids=ids, pixel_values=torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="no media was given"):
        model(input_ids=ids)


def test_placeholders_of_a_medium_not_given_or_split_across_rows_are_errors(tiny):
    model, _ = tiny
    cfg = model.config
    k = cfg.image_seq_length
    image_and_audio = torch.tensor([[1] + [cfg.image_token_id] * k + [cfg.audio_token_id] * cfg.audio_seq_length])
    audio = torch.zeros(1, cfg.audio_config.num_clips, 1, cfg.audio_config.num_mel_bins, cfg.audio_config.target_frames)
    with pytest.raises(ValueError, match="placeholder tokens .* for a medium that was not given"):
        model(input_ids=image_and_audio, input_features=audio)  # image placeholders, audio only
    # two rows, two images: the totals match, but one image would be split over both rows
    rows = torch.tensor([[cfg.image_token_id] * (k + 1) + [20] * (k - 1), [cfg.image_token_id] * (k - 1) + [20] * (k + 1)])
    with pytest.raises(ValueError, match=rf"rows hold \[{k + 1}, {k - 1}\] placeholder tokens"):
        model(input_ids=rows, pixel_values=torch.zeros(2, 3, 64, 64))


def test_configs_whose_branch_cannot_emit_its_token_count_are_refused():
    with pytest.raises(ValueError, match="frame_token_pool=3 must divide the patch grid"):
        tiny_config(video_config={"frame_token_pool": 3})
    with pytest.raises(ValueError, match="'full' .* needs image_token_pool=1"):
        tiny_config(vision_feature_select_strategy="full")
    assert tiny_config(vision_feature_select_strategy="full", image_token_pool=1).image_seq_length == 65


@pytest.mark.parametrize("settings", [dict(num_beams=2), dict(do_sample=True, num_return_sequences=2, top_k=5)],
                         ids=["beams", "return_sequences"])
def test_expanded_generation_gives_every_copy_all_its_media(tiny, settings):
    """Beam search repeats each conversation; a conversation's two images must stay A,B in
    every copy (transformers alone would repeat along the media axis: A,A and B,B)."""
    import dataclasses

    from PIL import Image

    from groundinggpt.processor import GroundingGPTProcessor

    model, proc = tiny
    cfg = model.config
    two = GroundingGPTProcessor(proc.tokenizer, dataclasses.replace(proc.config, max_media={"image": 2}))
    a, b = Image.new("RGB", (64, 64), (250, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 250))
    batch = two([{"role": "user", "content": [{"type": "image", "image": a}, {"type": "image", "image": b},
                                              {"type": "text", "text": "compare"}]}])
    batch.pop("media_info")
    with torch.no_grad():
        feats = model.project_media(pixel_values=batch["pixel_values"])[cfg.image_token_id]
    seen = []
    hook = model.language_model.register_forward_pre_hook(
        lambda m, args, kw: seen.append(kw["inputs_embeds"].detach().clone()), with_kwargs=True)
    try:
        torch.manual_seed(0)
        with torch.no_grad():
            model.generate(**batch, max_new_tokens=2, pad_token_id=proc.tokenizer.pad_token_id, **settings)
    finally:
        hook.remove()
    prefill, mask = seen[0], batch["input_ids"][0] == cfg.image_token_id
    k = cfg.image_seq_length
    assert prefill.shape[0] == 2
    for row in prefill:
        torch.testing.assert_close(row[mask][:k], feats[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(row[mask][k:], feats[1], atol=1e-5, rtol=0)


def test_no_encoder_runs_for_absent_media(tiny):
    model, _ = tiny
    calls = {"vision": 0, "audio": 0}
    h1 = model.vision_tower.register_forward_hook(lambda *a: calls.__setitem__("vision", calls["vision"] + 1))
    h2 = model.audio_encoder.register_forward_hook(lambda *a: calls.__setitem__("audio", calls["audio"] + 1))
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([[1, 20, 21]]))
    finally:
        h1.remove()
        h2.remove()
    assert calls == {"vision": 0, "audio": 0}


def _conversations(image_path, video_path, audio_path):
    return [
        [{"role": "user", "content": [{"type": "image", "image": str(image_path)},
                                      {"type": "text", "text": "Output the coordinate of the red box."}]}],
        [{"role": "user", "content": "Say something."}],
        [{"role": "user", "content": [{"type": "video", "video": str(video_path)},
                                      {"type": "audio", "audio": str(audio_path)},
                                      {"type": "text", "text": "When does it turn red?"}]}],
        [{"role": "user", "content": [{"type": "audio", "audio": str(audio_path)},
                                      {"type": "text", "text": "What is this sound?"}]}],
    ]


def test_mixed_modality_batch_matches_one_by_one(tiny, image_path, video_path, audio_path):
    model, processor = tiny
    convs = _conversations(image_path, video_path, audio_path)
    batch = processor(convs, padding_side="right")
    batch.pop("media_info")
    with torch.no_grad():
        logits = model(**batch).logits
    for row, conv in enumerate(convs):
        single = processor(conv, padding_side="right")
        single.pop("media_info")
        n = single["input_ids"].shape[1]
        with torch.no_grad():
            ref = model(**single).logits
        torch.testing.assert_close(logits[row, :n], ref[0], atol=1e-4, rtol=1e-4)


def test_generate_cache_and_no_cache_agree_and_media_encoded_once(tiny, image_path, video_path, audio_path):
    model, processor = tiny
    conv = _conversations(image_path, video_path, audio_path)[2]
    batch = processor(conv)
    batch.pop("media_info")
    calls = []
    hook = model.vision_tower.register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            cached = model.generate(**batch, max_new_tokens=6, do_sample=False, min_new_tokens=6)
            n_cached = len(calls)
            calls.clear()
            uncached = model.generate(**batch, max_new_tokens=6, do_sample=False, min_new_tokens=6, use_cache=False)
    finally:
        hook.remove()
    assert torch.equal(cached, uncached)
    assert n_cached == 1  # the video's frames, encoded once at prefill
    assert len(calls) == 6  # without a cache every step re-encodes


def test_left_padded_batch_generation_matches_single(tiny, image_path, video_path, audio_path):
    model, processor = tiny
    convs = _conversations(image_path, video_path, audio_path)
    batch = processor(convs)  # left padding
    batch.pop("media_info")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    for row, conv in enumerate(convs):
        single = processor(conv)
        single.pop("media_info")
        with torch.no_grad():
            ref = model.generate(**single, max_new_tokens=5, min_new_tokens=5, do_sample=False)
        assert out[row, -5:].tolist() == ref[0, -5:].tolist()


def test_save_load_roundtrip_exact(tiny, tmp_path):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert AutoConfig.from_pretrained(tmp_path).model_type == "groundinggpt"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded) is GroundingGPTForCausalLM
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ids = torch.tensor([[1] + [model.config.image_token_id] * model.config.image_seq_length + [7]])
    px = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, pixel_values=px).logits, loaded.eval()(input_ids=ids, pixel_values=px).logits)


def test_model_without_video_and_audio_branches(tmp_path):
    cfg = tiny_config(video_config=None, audio_config=None)
    model = GroundingGPTForCausalLM(cfg)
    assert model.video_branch is None and model.audio_encoder is None
    with pytest.raises(ValueError, match="no video branch"):
        model.project_media(pixel_values_videos=torch.zeros(1, 8, 3, 64, 64))
    model.save_pretrained(tmp_path)
    again = GroundingGPTConfig.from_pretrained(tmp_path)
    assert again.video_config is None and again.audio_config is None


def test_linear_image_adapter_option():
    model = GroundingGPTForCausalLM(tiny_config(image_adapter="linear"))
    assert isinstance(model.image_adapter, torch.nn.Linear)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_7b_shapes_on_meta_device():
    cfg = paper_config("7b")
    with torch.device("meta"):
        model = GroundingGPTForCausalLM(cfg)
    # Image: CLIP ViT-L/14-336, 24×24 = 576 tokens, adapter 1024 → 4096 → 4096.
    assert cfg.image_seq_length == 576
    lin1, _, lin2 = model.image_adapter
    assert (lin1.in_features, lin1.out_features, lin2.out_features) == (1024, 4096, 4096)
    assert _count(model.image_adapter) == 1024 * 4096 + 4096 + 4096 * 4096 + 4096
    # CLIP ViT-L/14-336 vision tower: 303.5 M parameters (no projection head), less its last
    # layer (12.6 M), which layer -2 never uses and the model does not keep.
    assert len(model.vision_tower.encoder.layers) == 23
    assert abs(_count(model.vision_tower) - (303.5e6 - 12_596_224)) < 0.5e6
    # Video: 64 frames (temporal table 64×1024), 64 queries of 768 → linear 768 → 4096.
    assert cfg.video_config.num_frames == 64 and cfg.video_seq_length == 64
    assert model.video_branch.position_embedding.weight.shape == (64, 1024)
    assert model.video_branch.query_tokens.shape == (1, 64, 768)
    assert model.video_branch.adapter.weight.shape == (4096, 768)
    # Audio: ImageBind-Huge audio (86.2 M), 3 clips, table of 8 clip positions, 8 queries → 4096.
    assert _count(model.audio_encoder) == 86_235_648
    assert cfg.audio_config.num_clips == 3 and cfg.audio_seq_length == 8
    assert model.audio_branch.position_embedding.weight.shape == (8, 1024)
    assert model.audio_branch.adapter.weight.shape == (4096, 768)
    # Vicuna-7B with 3 added tokens: 6.738 G + 3 × 2 × 4096.
    assert _count(model.language_model) == 6_738_415_616 + 3 * 2 * 4096
    assert model.language_model.config.num_hidden_layers == 32


def test_paper_13b_shape_on_meta_device():
    cfg = paper_config("13b")
    with torch.device("meta"):
        model = GroundingGPTForCausalLM(cfg)
    assert model.image_adapter[2].out_features == 5120
    assert model.language_model.config.num_hidden_layers == 40


def test_generate_never_emits_a_media_placeholder(tiny, image_path):
    """A model that prefers ``<image>`` must not feed it back without media (plain HF generate)."""
    model, processor = tiny
    batch = processor([{"role": "user", "content": [{"type": "image", "image": str(image_path)},
                                                   {"type": "text", "text": "Describe it."}]}])
    batch.pop("media_info")
    cfg = model.config
    media_ids = {cfg.image_token_id, cfg.video_token_id, cfg.audio_token_id}

    def prefer_placeholders(module, args, logits):
        logits = logits.clone()
        logits[..., cfg.image_token_id] += 100.0
        logits[..., cfg.video_token_id] += 90.0
        return logits

    hook = model.get_output_embeddings().register_forward_hook(prefer_placeholders)
    try:
        with torch.no_grad():
            assert int(model(**batch).logits[0, -1].argmax()) == cfg.image_token_id  # the logits do prefer it
            out = model.generate(**batch, max_new_tokens=6, min_new_tokens=6, do_sample=False)
            # The caller's own suppress_tokens are kept, the placeholders added to them.
            out2 = model.generate(**batch, max_new_tokens=6, min_new_tokens=6, do_sample=False, suppress_tokens=[9])
    finally:
        hook.remove()
    prompt = batch["input_ids"].shape[1]
    new = out[0, prompt:].tolist()
    assert len(new) == 6 and not media_ids & set(new)
    assert 9 not in out2[0, prompt:].tolist() and not media_ids & set(out2[0, prompt:].tolist())
