"""Tests for the ImageBind audio tower (groundinggpt.models.audio_encoder).

Everything runs on tiny configs except the parameter count of the real
(Huge-audio) config, which is built on the ``meta`` device (no memory, no time).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from groundinggpt.errors import InputError
from groundinggpt.models.audio_encoder import (
    BLOCK_PARAM_NAMES,
    IMAGEBIND_AUDIO_KEY_MAP,
    AudioEncoderConfig,
    CheckpointError,
    ImageBindAudioEncoder,
    convert_imagebind_audio_state_dict,
    detect_imagebind_audio_prefix,
    load_imagebind_audio_weights,
)

# Tiny but structurally complete: 2 blocks, 2 heads, a 3x4 patch grid from a
# 36x46 spectrogram with ImageBind's own kernel 16 / stride 10.
TINY = dict(embed_dim=32, depth=2, num_heads=2, out_dim=24, num_mel_bins=36, target_frames=46)
GT_PREFIX = "model.audio_encoder."  # where the GroundingGPT checkpoint keeps the tower


def tiny_config(**overrides) -> AudioEncoderConfig:
    return AudioEncoderConfig(**{**TINY, **overrides})


def tiny_encoder(seed: int = 0, **overrides) -> ImageBindAudioEncoder:
    torch.manual_seed(seed)
    return ImageBindAudioEncoder(tiny_config(**overrides)).eval()


def spectrogram(cfg: AudioEncoderConfig, *leading: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*leading, 1, cfg.num_mel_bins, cfg.target_frames, generator=g)


def official_audio_state_dict(
    cfg: AudioEncoderConfig, prefix: str = "", seed: int = 2, log_logit_scale: float = math.log(7.0)
) -> dict[str, torch.Tensor]:
    """Random tensors named and shaped exactly as ImageBind's audio modality stores them.

    The logit scale is deliberately not log(20) so that the test sees it load.
    """
    g = torch.Generator().manual_seed(seed)
    D, H, P, k = cfg.embed_dim, cfg.mlp_hidden_dim, cfg.num_tokens, cfg.patch_kernel

    def rand(*shape, scale=0.1):
        return torch.randn(*shape, generator=g) * scale

    def norm(name):  # LayerNorm affine params, away from the (1, 0) init
        return {f"{name}.weight": 1 + rand(D), f"{name}.bias": rand(D)}

    pre, trunk = "modality_preprocessors.audio.", "modality_trunks.audio.blocks."
    sd = {
        pre + "rgbt_stem.proj.weight": rand(D, 1, k, k),
        **norm(pre + "rgbt_stem.norm_layer"),
        pre + "cls_token": rand(1, 1, D, scale=0.5),
        pre + "pos_embedding_helper.pos_embed": rand(1, P, D, scale=0.5),
        **norm("modality_heads.audio.0"),
        "modality_heads.audio.2.weight": rand(cfg.out_dim, D),
        "modality_postprocessors.audio.1.log_logit_scale": torch.tensor(log_logit_scale),
    }
    for i in range(cfg.depth):
        b = f"{trunk}{i}."
        sd.update(norm(b + "norm_1"))
        sd.update(norm(b + "norm_2"))
        sd[b + "attn.in_proj_weight"] = rand(3 * D, D, scale=0.2)
        sd[b + "attn.in_proj_bias"] = rand(3 * D)
        sd[b + "attn.bias_k"] = rand(1, 1, D, scale=1.0)
        sd[b + "attn.bias_v"] = rand(1, 1, D, scale=1.0)
        sd[b + "attn.out_proj.weight"] = rand(D, D, scale=0.2)
        sd[b + "attn.out_proj.bias"] = rand(D)
        sd[b + "mlp.fc1.weight"] = rand(H, D, scale=0.2)
        sd[b + "mlp.fc1.bias"] = rand(H)
        sd[b + "mlp.fc2.weight"] = rand(D, H, scale=0.2)
        sd[b + "mlp.fc2.bias"] = rand(D)
    return {prefix + key: value for key, value in sd.items()}


def with_other_modalities(sd: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Add keys of other ImageBind modalities and of the surrounding LLM: all must be ignored."""
    return {
        **sd,
        prefix + "modality_preprocessors.vision.rgbt_stem.proj.1.weight": torch.zeros(4, 3, 2, 2, 2),
        prefix + "modality_trunks.text.blocks.0.attn.in_proj_weight": torch.zeros(6, 2),
        prefix + "modality_heads.depth.2.weight": torch.zeros(3, 2),
        prefix + "modality_postprocessors.thermal.1.log_logit_scale": torch.tensor(1.0),
        "model.layers.0.self_attn.q_proj.weight": torch.zeros(2, 2),
        "lm_head.weight": torch.zeros(5, 2),
    }


# ----------------------------------------------------------------------------
# Reference: the whole audio tower written out with plain torch ops
# ----------------------------------------------------------------------------


def reference_block(x: torch.Tensor, p: dict, b: str, heads: int, eps: float) -> torch.Tensor:
    """One ImageBind trunk block by hand; ``b`` is its official key prefix."""
    B, T, D = x.shape
    hd = D // heads
    h = F.layer_norm(x, (D,), p[b + "norm_1.weight"], p[b + "norm_1.bias"], eps)
    q, k, v = (h @ p[b + "attn.in_proj_weight"].T + p[b + "attn.in_proj_bias"]).split(D, dim=-1)
    # add_bias_kv: one extra, already-projected key and value per sequence.
    k = torch.cat([k, p[b + "attn.bias_k"].reshape(1, 1, D).expand(B, 1, D)], dim=1)
    v = torch.cat([v, p[b + "attn.bias_v"].reshape(1, 1, D).expand(B, 1, D)], dim=1)
    q = q.reshape(B, T, heads, hd).transpose(1, 2)  # [B, h, T, hd]
    k = k.reshape(B, T + 1, heads, hd).transpose(1, 2)  # [B, h, T+1, hd]
    v = v.reshape(B, T + 1, heads, hd).transpose(1, 2)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
    attended = (weights @ v).transpose(1, 2).reshape(B, T, D)
    x = x + attended @ p[b + "attn.out_proj.weight"].T + p[b + "attn.out_proj.bias"]
    h = F.layer_norm(x, (D,), p[b + "norm_2.weight"], p[b + "norm_2.bias"], eps)
    h = F.gelu(h @ p[b + "mlp.fc1.weight"].T + p[b + "mlp.fc1.bias"])
    return x + h @ p[b + "mlp.fc2.weight"].T + p[b + "mlp.fc2.bias"]


def reference_forward(
    x: torch.Tensor, p: dict, cfg: AudioEncoderConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(trunk tokens, final embedding) for clips ``x`` [B, 1, mel, frames] from official tensors."""
    pre = "modality_preprocessors.audio."
    D = cfg.embed_dim
    t = F.conv2d(x, p[pre + "rgbt_stem.proj.weight"], stride=cfg.patch_stride)
    t = t.flatten(2).transpose(1, 2)
    stem_norm = pre + "rgbt_stem.norm_layer."
    t = F.layer_norm(t, (D,), p[stem_norm + "weight"], p[stem_norm + "bias"], 1e-5)
    t = torch.cat([p[pre + "cls_token"].expand(len(x), 1, D), t], dim=1)
    t = t + p[pre + "pos_embedding_helper.pos_embed"]
    for i in range(cfg.depth):
        t = reference_block(t, p, f"modality_trunks.audio.blocks.{i}.", cfg.num_heads, 1e-6)
    # ImageBind's head order: LayerNorm over all tokens, then select CLS.
    head_norm = "modality_heads.audio.0."
    h = F.layer_norm(t, (D,), p[head_norm + "weight"], p[head_norm + "bias"], 1e-6)[:, 0]
    e = h @ p["modality_heads.audio.2.weight"].T
    e = e / e.norm(dim=-1, keepdim=True) * p["modality_postprocessors.audio.1.log_logit_scale"].exp()
    return t, e


# ----------------------------------------------------------------------------
# Configuration and architecture
# ----------------------------------------------------------------------------


def test_default_config_is_imagebind_huge_audio_and_round_trips():
    cfg = AudioEncoderConfig()
    # Conv2d output: (128 - 16) // 10 + 1 = 12 mel rows, (204 - 16) // 10 + 1 = 19 time columns.
    assert cfg.grid_size == (12, 19)
    assert cfg.num_patches == 228
    assert cfg.num_tokens == 229
    assert AudioEncoderConfig.from_dict(cfg.to_dict()) == cfg
    assert AudioEncoderConfig.from_dict(tiny_config().to_dict()) == tiny_config()
    with pytest.raises(ValueError, match="embed_dimm"):
        AudioEncoderConfig.from_dict({"embed_dimm": 8})
    with pytest.raises(ValueError, match="divisible"):
        AudioEncoderConfig(embed_dim=30, num_heads=4)


def test_huge_parameter_count_and_token_grid_on_meta_device():
    with torch.device("meta"):
        encoder = ImageBindAudioEncoder()
        tokens = encoder.forward_tokens(torch.empty(2, 1, 128, 204))
        out = encoder(torch.empty(2, 1, 128, 204))
    assert tokens.shape == (2, 229, 768)  # CLS + 12 x 19 patches
    assert out.shape == (2, 1024)

    D, hidden, out_dim, depth = 768, 3072, 1024, 12
    stem = D * 1 * 16 * 16 + 2 * D  # Conv2d (no bias) + LayerNorm = 196,608 + 1,536
    tokens_params = D + 229 * D  # cls_token + pos_embed = 768 + 175,872
    block = (
        2 * D  # norm_1                               1,536
        + 3 * D * D + 3 * D  # in_proj weight + bias  1,769,472 + 2,304
        + 2 * D  # bias_k + bias_v                     1,536
        + D * D + D  # out_proj                        590,592
        + 2 * D  # norm_2                              1,536
        + D * hidden + hidden  # fc1                   2,362,368
        + hidden * D + D  # fc2                        2,360,064
    )  # = 7,089,408 per block
    head = 2 * D + D * out_dim  # LayerNorm + Linear (no bias) = 1,536 + 786,432
    expected = stem + tokens_params + depth * block + head
    assert block == 7_089_408
    assert expected == 86_235_648
    assert sum(p.numel() for p in encoder.parameters()) == expected
    # ImageBind builds the stem LayerNorm with PyTorch's default eps and every
    # other LayerNorm (blocks, head) with 1e-6.
    assert encoder.patch_norm.eps == 1e-5
    assert {b.norm_1.eps for b in encoder.blocks} | {b.norm_2.eps for b in encoder.blocks} == {1e-6}
    assert encoder.head_norm.eps == 1e-6
    # The fixed logit scale is a buffer (as in ImageBind), not a parameter.
    assert [name for name, _ in encoder.named_buffers()] == ["log_logit_scale"]


def test_state_dict_names_are_exactly_the_mapped_names():
    cfg = tiny_config()
    ours = set(ImageBindAudioEncoder(cfg).state_dict())
    mapped = set(IMAGEBIND_AUDIO_KEY_MAP.values()) | {
        f"blocks.{i}.{name}" for i in range(cfg.depth) for name in BLOCK_PARAM_NAMES
    }
    assert ours == mapped


# ----------------------------------------------------------------------------
# Forward behaviour
# ----------------------------------------------------------------------------


def test_output_shape_and_norm_equals_logit_scale():
    encoder = tiny_encoder()
    cfg = encoder.config
    with torch.no_grad():
        out = encoder(spectrogram(cfg, 3))
        tokens = encoder.forward_tokens(spectrogram(cfg, 3))
    assert out.shape == (3, cfg.out_dim)
    assert tokens.shape == (3, 1 + 3 * 4, cfg.embed_dim)
    torch.testing.assert_close(out.norm(dim=-1), torch.full((3,), 20.0), atol=1e-4, rtol=0)


def test_clip_sequences_are_encoded_clip_by_clip():
    encoder = tiny_encoder()
    x = spectrogram(encoder.config, 2, 3)  # [B=2, S=3, 1, mel, frames]
    with torch.no_grad():
        out = encoder(x)
        flat = encoder(x.flatten(0, 1))
        tokens = encoder.forward_tokens(x)
    assert out.shape == (2, 3, encoder.config.out_dim)
    assert tokens.shape == (2, 3, 13, encoder.config.embed_dim)
    torch.testing.assert_close(out, flat.reshape(2, 3, -1))


def test_eval_mode_is_deterministic():
    encoder = tiny_encoder()
    x = spectrogram(encoder.config, 2)
    with torch.no_grad():
        assert torch.equal(encoder(x), encoder(x))


def test_batch_rows_are_independent():
    encoder = tiny_encoder()
    x = spectrogram(encoder.config, 4)
    with torch.no_grad():
        batched = encoder(x)
        for i in range(len(x)):
            torch.testing.assert_close(batched[i : i + 1], encoder(x[i : i + 1]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape", [(2, 36, 46), (2, 2, 36, 46), (2, 1, 36, 40), (2, 1, 1, 1, 36, 46)])
def test_wrong_input_shape_is_rejected(shape):
    with pytest.raises(InputError, match=r"\[B, 1, 36, 46\]"):
        tiny_encoder()(torch.zeros(shape))


# ----------------------------------------------------------------------------
# Official checkpoint layout
# ----------------------------------------------------------------------------


def test_official_weights_convert_load_strictly_and_match_hand_computation():
    encoder = tiny_encoder()
    cfg = encoder.config
    x = spectrogram(cfg, 2)
    with torch.no_grad():
        before = encoder(x)

    official = official_audio_state_dict(cfg)
    checkpoint = with_other_modalities({GT_PREFIX + k: v for k, v in official.items()}, GT_PREFIX)
    converted = convert_imagebind_audio_state_dict(checkpoint, prefix=GT_PREFIX)
    assert len(converted) == len(official)
    encoder.load_state_dict(converted, strict=True)

    with torch.no_grad():
        tokens = encoder.forward_tokens(x)
        after = encoder(x)
        ref_tokens, ref_out = reference_forward(x, official, cfg)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(tokens, ref_tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(after, ref_out, atol=1e-5, rtol=1e-5)
    # The loaded (non-default) logit scale is what the rows are scaled to.
    torch.testing.assert_close(after.norm(dim=-1), torch.full((2,), 7.0), atol=1e-4, rtol=0)


def test_one_block_matches_hand_written_attention_with_bias_kv():
    cfg = tiny_config(depth=1)
    official = official_audio_state_dict(cfg)
    encoder = ImageBindAudioEncoder(cfg).eval()
    encoder.load_state_dict(convert_imagebind_audio_state_dict(official), strict=True)
    x = torch.randn(3, cfg.num_tokens, cfg.embed_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ours = encoder.blocks[0](x)
    expected = reference_block(x, official, "modality_trunks.audio.blocks.0.", cfg.num_heads, 1e-6)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_batch_first_attention_equals_imagebinds_sequence_first_call():
    # ImageBind wraps its audio trunk in "b l d -> l b d" rearranges and runs
    # nn.MultiheadAttention sequence-first; we run it batch-first. Same tensors,
    # same numbers.
    cfg = tiny_config(depth=1)
    ours = ImageBindAudioEncoder(cfg).eval().blocks[0].attn
    theirs = torch.nn.MultiheadAttention(cfg.embed_dim, cfg.num_heads, bias=True, add_bias_kv=True).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(3, cfg.num_tokens, cfg.embed_dim)
    with torch.no_grad():
        a = ours(x, x, x, need_weights=False)[0]
        seq_first = x.transpose(0, 1)
        b = theirs(seq_first, seq_first, seq_first, need_weights=False)[0].transpose(0, 1)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_prefix_detection():
    official = official_audio_state_dict(tiny_config())
    assert detect_imagebind_audio_prefix(with_other_modalities(official)) == ""
    prefixed = {GT_PREFIX + k: v for k, v in official.items()}
    assert detect_imagebind_audio_prefix(with_other_modalities(prefixed, GT_PREFIX)) == GT_PREFIX
    with pytest.raises(CheckpointError, match="no ImageBind audio weights"):
        detect_imagebind_audio_prefix(["lm_head.weight"])
    with pytest.raises(CheckpointError, match="several"):
        detect_imagebind_audio_prefix([*official, *prefixed])


def test_conversion_lists_missing_and_unexpected_audio_keys():
    official = official_audio_state_dict(tiny_config())
    del official["modality_trunks.audio.blocks.1.attn.bias_v"]
    official["modality_trunks.audio.pre_transformer_layer.0.weight"] = torch.ones(32)
    with pytest.raises(CheckpointError) as info:
        convert_imagebind_audio_state_dict(official)
    message = str(info.value)
    assert "missing 1: modality_trunks.audio.blocks.1.attn.bias_v" in message
    assert "unexpected 1: modality_trunks.audio.pre_transformer_layer.0.weight" in message
    with pytest.raises(CheckpointError, match="no ImageBind audio keys under prefix 'model.'"):
        convert_imagebind_audio_state_dict(official, prefix="model.")


def test_load_from_pth_safetensors_and_shard_directory(tmp_path):
    cfg = tiny_config()
    official = official_audio_state_dict(cfg)
    x = spectrogram(cfg, 2)
    _, expected = reference_forward(x, official, cfg)

    # imagebind_huge.pth layout: a flat torch.save-d dict, no prefix.
    torch.save(with_other_modalities(official), tmp_path / "imagebind.pth")
    # GroundingGPT layout: prefixed, in safetensors, split over two shards.
    prefixed = with_other_modalities({GT_PREFIX + k: v for k, v in official.items()}, GT_PREFIX)
    keys = sorted(prefixed)
    shards = tmp_path / "groundinggpt"
    shards.mkdir()
    save_file({k: prefixed[k].contiguous() for k in keys[::2]}, shards / "model-00001-of-00002.safetensors")
    save_file({k: prefixed[k].contiguous() for k in keys[1::2]}, shards / "model-00002-of-00002.safetensors")

    for path, prefix in [
        (tmp_path / "imagebind.pth", ""),
        (shards / "model-00001-of-00002.safetensors", None),  # half the tensors: must fail
        (shards, GT_PREFIX),
    ]:
        encoder = tiny_encoder(seed=3)
        if prefix is None:
            with pytest.raises(CheckpointError):
                load_imagebind_audio_weights(encoder, path)
            continue
        assert load_imagebind_audio_weights(encoder, path) == prefix
        with torch.no_grad():
            torch.testing.assert_close(encoder(x), expected, atol=1e-5, rtol=1e-5)


def test_loading_into_a_mismatched_config_names_the_shapes(tmp_path):
    torch.save(official_audio_state_dict(tiny_config()), tmp_path / "ckpt.pth")
    shapes = r"patch_embed.weight: checkpoint \[32, 1, 16, 16\] vs model \[48"
    with pytest.raises(CheckpointError, match=shapes):
        load_imagebind_audio_weights(tiny_encoder(embed_dim=48), tmp_path / "ckpt.pth")
    with pytest.raises(CheckpointError, match="missing"):  # checkpoint has 2 blocks, model wants 3
        load_imagebind_audio_weights(tiny_encoder(depth=3), tmp_path / "ckpt.pth")
    with pytest.raises(FileNotFoundError):
        load_imagebind_audio_weights(tiny_encoder(), tmp_path / "nope.pth")
