"""``groundinggpt convert lego``: a released-layout folder at tiny shapes → a project folder
that computes what the released model computes (restated in tests/lego_fixture.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPVisionModel, LlamaConfig, LlamaForCausalLM

import lego_fixture as lf
from groundinggpt.cli import main as cli_main
from groundinggpt.convert.lego import ConversionError, convert_lego
from groundinggpt.convert.lego_keys import map_key
from groundinggpt.media.video import frame_indices, write_video
from groundinggpt.models import GroundingGPTForCausalLM
from groundinggpt.processor import GroundingGPTProcessor, MediaInfo


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    root = tmp_path_factory.mktemp("lego")
    src, clip, sd = lf.write_released_folder(root)
    dst = root / "converted"
    report = convert_lego(src, clip, dst, log=lambda _: None)
    return src, clip, sd, dst, report


@pytest.fixture(scope="module")
def converted(released):
    *_, dst, _ = released
    model, info = GroundingGPTForCausalLM.from_pretrained(dst, output_loading_info=True, attn_implementation="eager")
    return model.eval(), GroundingGPTProcessor.from_pretrained(dst), info


def test_every_parameter_filled_and_report_written(released, converted):
    src, clip, sd, dst, report = released
    _, _, info = converted
    assert info["missing_keys"] == [] or not info["missing_keys"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    dropped = {k for keys in report.dropped.values() for k in keys}
    assert dropped == {k for k in sd if k.endswith((".position_ids", "inv_freq"))} | {
        "model.audio_encoder.modality_heads.vision.2.weight"}
    assert report.mapped == len(sd) - len(dropped)
    assert report.fused_qkv_biases == lf.EVA_DEPTH
    saved = json.loads((dst / "conversion_report.json").read_text())
    assert saved["mapped"] == report.mapped and saved["dropped"] == report.dropped
    cfg = json.loads((dst / "config.json").read_text())
    assert cfg["model_type"] == "groundinggpt" and cfg["video_config"]["frame_encoder"] == "eva_blip2"


def test_tensors_copied_exactly(released, converted):
    _, clip, sd, _, _ = released
    model, _, _ = converted
    own = model.state_dict()
    # Spot checks written out by hand, one per family of names (independent of the key table).
    by_hand = {
        "model.layers.1.mlp.down_proj.weight": "language_model.model.layers.1.mlp.down_proj.weight",
        "lm_head.weight": "language_model.lm_head.weight",
        "model.mm_vision_projector.2.bias": "image_adapter.2.bias",
        "model.visual_encoder.pos_embed": "video_frame_encoder.vision.embeddings.position_embedding",
        "model.visual_encoder.blocks.1.attn.proj.weight": "video_frame_encoder.vision.encoder.layers.1.self_attn.projection.weight",
        "model.ln_vision.weight": "video_frame_encoder.vision.post_layernorm.weight",
        "model.Qformer.bert.embeddings.LayerNorm.bias": "video_frame_encoder.qformer.layernorm.bias",
        "model.Qformer.bert.encoder.layer.0.crossattention.self.key.weight":
            "video_frame_encoder.qformer.encoder.layer.0.crossattention.attention.key.weight",
        "model.video_Qformer.bert.encoder.layer.1.attention.self.value.bias":
            "video_branch.qformer.encoder.layer.1.attention.attention.value.bias",
        "model.video_frame_position_embedding.weight": "video_branch.position_embedding.weight",
        "model.llama_proj.weight": "video_branch.adapter.weight",
        "model.audio_encoder.modality_trunks.audio.blocks.1.attn.in_proj_weight": "audio_encoder.blocks.1.attn.in_proj_weight",
        "model.audio_encoder.modality_heads.audio.2.weight": "audio_encoder.head_proj.weight",
        "model.audio_Qformer.bert.encoder.layer.0.output_query.LayerNorm.weight":
            "audio_branch.qformer.encoder.layer.0.output_query.LayerNorm.weight",
        "model.audio_position_embedding.weight": "audio_branch.position_embedding.weight",
        "model.audio_query_tokens": "audio_branch.query_tokens",
    }
    for released_key, ours in by_hand.items():
        assert torch.equal(own[ours], sd[released_key]), released_key
    for key, tensor in sd.items():
        target = map_key(key)
        if isinstance(target, str) and not key.endswith((".position_ids", "inv_freq")):
            assert torch.equal(own[target], tensor), key
    for i in range(lf.EVA_DEPTH):  # transformed as stated: qkv bias = cat(q_bias, zeros, v_bias)
        b = f"model.visual_encoder.blocks.{i}.attn."
        fused = own[f"video_frame_encoder.vision.encoder.layers.{i}.self_attn.qkv.bias"]
        assert torch.equal(fused, torch.cat([sd[b + "q_bias"], torch.zeros(lf.EVA_W), sd[b + "v_bias"]]))
    tower = CLIPVisionModel.from_pretrained(clip)
    cut = [k for k in tower.state_dict() if k.startswith(f"encoder.layers.{lf.CLIP['num_hidden_layers'] - 1}.")]
    assert cut and sorted("vision_tower." + k for k in cut) == released[4].clip_left_out  # after layer -2: never run
    for k, v in tower.state_dict().items():
        if k not in cut:
            assert torch.equal(own["vision_tower." + k], v), k


def test_video_front_equals_the_released_forward(released, converted):
    _, _, sd, _, _ = released
    model, _, _ = converted
    video = torch.randn(2, lf.MAX_FRAME, 3, lf.EVA_SIZE, lf.EVA_SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours32 = model.video_branch(model.encode_videos(video))
        ref32 = lf.released_video_tokens(sd, video)
        assert (ours32 - ref32).abs().max() < 1e-4
        m64 = GroundingGPTForCausalLM.from_pretrained(released[3], attn_implementation="eager").eval().double()
        sd64 = {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}
        ours = m64.video_branch(m64.encode_videos(video.double()))
        ref = lf.released_video_tokens(sd64, video.double())
    assert (ours - ref).abs().max() < 1e-9 * ref.abs().max()  # the same computation, not an approximation
    # a clip shorter than max_frame (the released sampling keeps its own frames)
    with torch.no_grad():
        short = video[:1, :3].double()
        assert (m64.video_branch(m64.encode_videos(short)) - lf.released_video_tokens(sd64, short)).abs().max() < 1e-9


_PARTS: dict = {}


def _released_parts(released):
    """The released model's LLaMA, CLIP tower and audio tower, built once per folder."""
    src, clip, sd, _, _ = released
    if str(src) not in _PARTS:
        from groundinggpt.models.audio_encoder import AudioEncoderConfig, ImageBindAudioEncoder, load_imagebind_audio_weights
        cfg = json.loads((src / "config.json").read_text())
        llama = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg.items() if k in LlamaConfig().to_dict()
                                                and k not in ("model_type", "architectures")}))
        llama.load_state_dict({k: v for k, v in sd.items() if (k.startswith("model.layers.") and "inv_freq" not in k)
                               or k in ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight")})
        enc = ImageBindAudioEncoder(AudioEncoderConfig(embed_dim=lf.AUD_W, depth=lf.AUD_DEPTH, num_heads=1,
                                                       patch_stride=lf.AUD_STRIDE, out_dim=lf.AUD_OUT))
        load_imagebind_audio_weights(enc, src, prefix="model.audio_encoder.")
        _PARTS[str(src)] = (llama.eval(), CLIPVisionModel.from_pretrained(clip).eval(), enc.eval())
    return _PARTS[str(src)]


def _released_logits(released, batch) -> torch.Tensor:
    """The released LEGOLlamaModel forward restated: embed, overwrite the run after each start
    token with the medium's features, then the LLaMA."""
    sd = released[2]
    llama, tower, enc = _released_parts(released)
    ids = batch["input_ids"][0]
    embeds = llama.model.embed_tokens(ids)
    tok = lf.released_tokenizer()
    feats = {}
    if "pixel_values" in batch:
        h = tower(batch["pixel_values"], output_hidden_states=True).hidden_states[-2][:, 1:]
        h = F.linear(F.gelu(F.linear(h, sd["model.mm_vision_projector.0.weight"], sd["model.mm_vision_projector.0.bias"])),
                     sd["model.mm_vision_projector.2.weight"], sd["model.mm_vision_projector.2.bias"])
        feats["<im_start>"] = h[0]
    if "pixel_values_videos" in batch:
        feats["<vi_start>"] = lf.released_video_tokens(sd, batch["pixel_values_videos"])[0]
    if "input_features" in batch:
        clips = enc(batch["input_features"][0])  # [N, out]
        x = clips[None] + sd["model.audio_position_embedding.weight"][: clips.shape[0]][None]
        q = lf.bert_queries(sd, "model.audio_Qformer.bert.", sd["model.audio_query_tokens"], x, lf.VQ_LAYERS, 1)
        feats["<so_start>"] = F.linear(q, sd["model.audio_llama_proj.weight"], sd["model.audio_llama_proj.bias"])[0]
    for start, f in feats.items():
        pos = int((ids == tok.convert_tokens_to_ids(start)).nonzero()[0])
        embeds = torch.cat([embeds[: pos + 1], f, embeds[pos + 1 + f.shape[0]:]])
    return llama(inputs_embeds=embeds[None]).logits


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 44, 3), dtype=np.uint8)).save(root / "x.png")
    write_video(root / "clip.mp4", [rng.integers(0, 255, (32, 48, 3), dtype=np.uint8) for _ in range(10)], fps=5)
    return root


def _wav(path):
    import soundfile as sf
    t = np.arange(16000 * 3) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return path


@pytest.mark.parametrize("kinds", [("image",), ("video",), ("audio",), ("audio", "video", "image")])
def test_logits_and_greedy_answer_equal_the_released_forward(released, converted, media, kinds):
    model, proc, _ = converted
    sources = {"image": str(media / "x.png"), "video": str(media / "clip.mp4"), "audio": str(_wav(media / "a.wav"))}
    parts = [{"type": k, k: sources[k]} for k in kinds] + [{"type": "text", "text": "What is there?"}]
    batch = proc([{"role": "user", "content": parts}])
    model_inputs = {k: v for k, v in batch.items() if k != "media_info"}
    with torch.no_grad():
        ours = model(**model_inputs).logits
        ref = _released_logits(released, batch)
        assert (ours - ref).abs().max() < 1e-4
        out = model.generate(**model_inputs, max_new_tokens=4, do_sample=False)[0, batch["input_ids"].shape[1]:]
        ids, greedy = batch["input_ids"], []
        for _ in range(4):  # the released model's greedy answer, one full forward per token
            nxt = int(_released_logits(released, {**batch, "input_ids": ids})[0, -1].argmax())
            greedy.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
    assert out.tolist()[: len(greedy)] == greedy


def test_video_frames_follow_the_released_sampling(converted, media, tmp_path):
    _, proc, _ = converted
    assert frame_indices(10, 4) == [0, 2, 5, 7] and frame_indices(3, 4) == [0, 1, 2]
    frames = [np.full((24, 40, 3), 20 * i, dtype=np.uint8) for i in range(10)]
    write_video(tmp_path / "ramp.mp4", frames, fps=5, codec="libx264", options={"crf": "0"})
    pixels, _ = proc.load_medium("video", str(tmp_path / "ramp.mp4"))
    assert pixels.shape == (4, 3, lf.EVA_SIZE, lf.EVA_SIZE)  # squashed to the EVA size
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
    grey = ((pixels * std + mean) * 255).mean(dim=(1, 2, 3))
    assert np.allclose(grey.numpy(), [0, 40, 100, 140], atol=6)  # frames 0, 2, 5, 7
    write_video(tmp_path / "short.mp4", frames[:3], fps=5)
    short, _ = proc.load_medium("video", str(tmp_path / "short.mp4"))
    assert short.shape[0] == 3  # fewer than max_frame: every frame, as released


def test_refuses_unknown_and_unfilled_tensors(tmp_path):
    src, clip, sd = lf.write_released_folder(tmp_path / "a", safetensors=True)
    from safetensors.torch import load_file, save_file
    shard = sorted(src.glob("model-*.safetensors"))[-1]
    tensors = load_file(shard)
    tensors["model.mystery_head.weight"] = torch.zeros(2)
    save_file(tensors, str(shard))
    index = json.loads((src / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.mystery_head.weight"] = shard.name
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ConversionError, match="mystery_head"):
        convert_lego(src, clip, tmp_path / "out1", log=lambda _: None)
    del tensors["model.mystery_head.weight"]
    del tensors["model.video_Qformer.bert.encoder.layer.1.output_query.dense.bias"]
    save_file(tensors, str(shard))
    del index["weight_map"]["model.mystery_head.weight"]
    del index["weight_map"]["model.video_Qformer.bert.encoder.layer.1.output_query.dense.bias"]
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ConversionError, match=r"unfilled.*video_branch\.qformer\.encoder\.layer\.1\.output_query\.dense\.bias"):
        convert_lego(src, clip, tmp_path / "out2", log=lambda _: None)
    assert not (tmp_path / "out2").exists()  # refused before anything is written


def test_refuses_a_folder_that_is_not_lego(tmp_path, released):
    *_, dst, _ = released
    with pytest.raises(ConversionError, match="expected 'LEGO'"):
        convert_lego(dst, released[1], tmp_path / "out", log=lambda _: None)


@pytest.mark.parametrize("flag", ["--out", "--output"])
def test_cli_converts_safetensors_release(tmp_path, flag, capsys):
    src, clip, _ = lf.write_released_folder(tmp_path / "a", safetensors=True)
    assert cli_main(["convert", "lego", str(src), "--vision", str(clip), flag, str(tmp_path / "dst")]) == 0
    out = capsys.readouterr().out
    assert "mapped released tensors" in out and "dropped released tensors: 6" in out
    assert (tmp_path / "dst" / "conversion_report.json").is_file()
    GroundingGPTForCausalLM.from_pretrained(tmp_path / "dst")


# ---- prompts: ids equal the released rule --------------------------------------------------------


def _chats(media):
    wav = str(_wav(media / "b.wav"))
    img, vid = str(media / "x.png"), str(media / "clip.mp4")
    return [
        ([{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "Describe it."}]}],
         [("Describe it.", None)], ["image"]),
        ([{"role": "user", "content": [{"type": "video", "video": vid}, {"type": "text", "text": "When?"}]}],
         [("When?", None)], ["video"]),
        ([{"role": "user", "content": [{"type": "audio", "audio": wav}, {"type": "text", "text": "What sound?"}]}],
         [("What sound?", None)], ["audio"]),
        # the demo's order: sound block, then image block, then the text
        ([{"role": "user", "content": [{"type": "audio", "audio": wav}, {"type": "image", "image": img},
                                       {"type": "text", "text": "Where is the sound from?"}]}],
         [("Where is the sound from?", None)], ["image", "audio"]),
        ([{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "Who is there?"}]},
          {"role": "assistant", "content": "A dog [0.100, 0.200, 0.500, 0.600]."},
          {"role": "user", "content": "And on the left?"}],
         [("Who is there?", "A dog [0.100, 0.200, 0.500, 0.600]."), ("And on the left?", None)], ["image"]),
    ]


def test_prompt_ids_equal_the_released_inference_ids(converted, media):
    _, proc, _ = converted
    tok = lf.released_tokenizer()
    lengths = {"image": proc.seq_lengths["image"], "video": proc.seq_lengths["video"], "audio": proc.seq_lengths["audio"]}
    for messages, turns, kinds in _chats(media):
        def no_media(kind, _source):  # text and placeholders only; a square image leaves boxes as written
            return None, MediaInfo(kind, original_size=(40, 40) if kind != "audio" else None, duration=1.0)

        ours = proc(messages, media_loader=no_media)["input_ids"][0].tolist()
        assert ours == tok(lf.released_prompt(turns, kinds, lengths)).input_ids, kinds


def test_typed_start_token_stays_text(converted):
    _, proc, _ = converted
    ids = proc([{"role": "user", "content": "look <im_start> here <vi_end>"}])["input_ids"][0].tolist()
    tok = lf.released_tokenizer()
    for token in lf.RELEASED_TOKENS:
        assert tok.convert_tokens_to_ids(token) not in ids


# ---- front ends on a converted folder --------------------------------------------------------------


def test_chat_and_serve_on_a_converted_folder(released, media, monkeypatch, capsys):
    import base64
    import io

    *_, dst, _ = released
    monkeypatch.setattr("sys.stdin", io.StringIO("What is there?\n"))
    code = cli_main(["chat", "--model", str(dst), "--image", str(media / "x.png"), "--device", "cpu",
                     "--dtype", "float32", "--max-new-tokens", "3"])
    assert code == 0, capsys.readouterr().err
    from fastapi.testclient import TestClient

    from groundinggpt.serve.engine import load_engine
    from groundinggpt.serve.server import Limits, create_app
    image = "data:image/png;base64," + base64.b64encode((media / "x.png").read_bytes()).decode()
    with TestClient(create_app(load_engine(str(dst), device="cpu"), Limits())) as client:
        r = client.post("/v1/chat/completions", json={"model": "x", "max_tokens": 3, "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}},
                                         {"type": "text", "text": "Where is it?"}]}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["grounding"]["image_size"] == [44, 30]


def test_shards_are_read_one_at_a_time(tmp_path, monkeypatch):
    import groundinggpt.convert.lego as lego

    src, clip, _ = lf.write_released_folder(tmp_path / "a")
    real, state = lego._open_shard, {"open": 0, "most": 0, "opened": 0}

    def counting(path):
        shapes, get, close = real(path)
        state["open"] += 1
        state["opened"] += 1
        state["most"] = max(state["most"], state["open"])

        def closing():
            state["open"] -= 1
            close()
        return shapes, get, closing

    monkeypatch.setattr(lego, "_open_shard", counting)
    convert_lego(src, clip, tmp_path / "out", log=lambda _: None)
    assert state == {"open": 0, "most": 1, "opened": 4}  # 2 shards, read twice (names, then tensors)
