"""A released-layout (``lego``) GroundingGPT folder at tiny shapes, and the released forward
restated from its definition in plain torch — the reference the converter is checked against.

Key names, config fields and the tokenizer's 9 added tokens are written as the authors'
``save_pretrained`` writes them (read from their ``lego/LEGO.py``, LAVIS's ``eva_vit.py`` /
``Qformer.py`` and ImageBind's names); nothing here uses the project's key table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers.processors import TemplateProcessing
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig

from groundinggpt.presets import tiny_tokenizer

RELEASED_TOKENS = ["<im_patch>", "<im_start>", "<im_end>", "<vi_patch>", "<vi_start>", "<vi_end>",
                   "<so_patch>", "<so_start>", "<so_end>"]

# Tiny shapes (head widths as released: EVA 88, BERT/ImageBind 64).
LLM = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
           max_position_embeddings=2048, rms_norm_eps=1e-5)
CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, image_size=28,
            patch_size=14, projection_dim=32, hidden_act="quick_gelu")
EVA_W, EVA_DEPTH, EVA_MLP, EVA_PATCH, EVA_SIZE = 176, 2, 96, 14, 28  # 2 heads of 88; 2×2 patches + CLS
QF_H, QF_LAYERS, QF_FREQ, QF_MLP, QF_QUERIES = 128, 2, 2, 96, 4  # BLIP-2 Q-Former: 2 heads of 64
VQ_LAYERS, VQ_QUERIES, MAX_FRAME = 2, 6, 4  # video Q-Former (cross-attention every layer)
AUD_W, AUD_DEPTH, AUD_OUT, AUD_KERNEL, AUD_STRIDE = 64, 2, 48, 16, 16  # 8×12 patches + CLS
AQ_QUERIES, AUD_POS = 3, 8


def _t(gen: torch.Generator, *shape: int, scale: float = 0.2) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) * scale


def _bert(gen: torch.Generator, prefix: str, hidden: int, enc_width: int, layers: int, freq: int, mlp: int) -> dict:
    sd = {prefix + "embeddings.LayerNorm.weight": 1 + _t(gen, hidden, scale=0.05),
          prefix + "embeddings.LayerNorm.bias": _t(gen, hidden, scale=0.05),
          prefix + "embeddings.position_ids": torch.arange(512).unsqueeze(0)}
    for i in range(layers):
        p = f"{prefix}encoder.layer.{i}."
        blocks = [("attention", hidden)] + ([("crossattention", enc_width)] if i % freq == 0 else [])
        for name, kv_in in blocks:
            for proj, fan_in in (("query", hidden), ("key", kv_in), ("value", kv_in)):
                sd[f"{p}{name}.self.{proj}.weight"] = _t(gen, hidden, fan_in)
                sd[f"{p}{name}.self.{proj}.bias"] = _t(gen, hidden, scale=0.05)
            sd[f"{p}{name}.output.dense.weight"] = _t(gen, hidden, hidden)
            sd[f"{p}{name}.output.dense.bias"] = _t(gen, hidden, scale=0.05)
            sd[f"{p}{name}.output.LayerNorm.weight"] = 1 + _t(gen, hidden, scale=0.05)
            sd[f"{p}{name}.output.LayerNorm.bias"] = _t(gen, hidden, scale=0.05)
        sd[f"{p}intermediate_query.dense.weight"] = _t(gen, mlp, hidden)
        sd[f"{p}intermediate_query.dense.bias"] = _t(gen, mlp, scale=0.05)
        sd[f"{p}output_query.dense.weight"] = _t(gen, hidden, mlp)
        sd[f"{p}output_query.dense.bias"] = _t(gen, hidden, scale=0.05)
        sd[f"{p}output_query.LayerNorm.weight"] = 1 + _t(gen, hidden, scale=0.05)
        sd[f"{p}output_query.LayerNorm.bias"] = _t(gen, hidden, scale=0.05)
    return sd


def _eva(gen: torch.Generator) -> dict:
    p = "model.visual_encoder."
    n = (EVA_SIZE // EVA_PATCH) ** 2
    sd = {p + "cls_token": _t(gen, 1, 1, EVA_W), p + "pos_embed": _t(gen, 1, n + 1, EVA_W),
          p + "patch_embed.proj.weight": _t(gen, EVA_W, 3, EVA_PATCH, EVA_PATCH, scale=0.02),
          p + "patch_embed.proj.bias": _t(gen, EVA_W, scale=0.05)}
    for i in range(EVA_DEPTH):
        b = f"{p}blocks.{i}."
        for norm in ("norm1", "norm2"):
            sd[f"{b}{norm}.weight"] = 1 + _t(gen, EVA_W, scale=0.05)
            sd[f"{b}{norm}.bias"] = _t(gen, EVA_W, scale=0.05)
        sd[b + "attn.q_bias"] = _t(gen, EVA_W, scale=0.1)
        sd[b + "attn.v_bias"] = _t(gen, EVA_W, scale=0.1)
        sd[b + "attn.qkv.weight"] = _t(gen, 3 * EVA_W, EVA_W, scale=0.05)
        sd[b + "attn.proj.weight"] = _t(gen, EVA_W, EVA_W, scale=0.05)
        sd[b + "attn.proj.bias"] = _t(gen, EVA_W, scale=0.05)
        sd[b + "mlp.fc1.weight"] = _t(gen, EVA_MLP, EVA_W, scale=0.05)
        sd[b + "mlp.fc1.bias"] = _t(gen, EVA_MLP, scale=0.05)
        sd[b + "mlp.fc2.weight"] = _t(gen, EVA_W, EVA_MLP, scale=0.05)
        sd[b + "mlp.fc2.bias"] = _t(gen, EVA_W, scale=0.05)
    sd["model.ln_vision.weight"] = 1 + _t(gen, EVA_W, scale=0.05)
    sd["model.ln_vision.bias"] = _t(gen, EVA_W, scale=0.05)
    return sd


def _imagebind_audio(gen: torch.Generator) -> dict:
    p = "model.audio_encoder."
    tokens = ((128 - AUD_KERNEL) // AUD_STRIDE + 1) * ((204 - AUD_KERNEL) // AUD_STRIDE + 1) + 1
    sd = {p + "modality_preprocessors.audio.rgbt_stem.proj.weight": _t(gen, AUD_W, 1, AUD_KERNEL, AUD_KERNEL, scale=0.02),
          p + "modality_preprocessors.audio.rgbt_stem.norm_layer.weight": 1 + _t(gen, AUD_W, scale=0.05),
          p + "modality_preprocessors.audio.rgbt_stem.norm_layer.bias": _t(gen, AUD_W, scale=0.05),
          p + "modality_preprocessors.audio.cls_token": _t(gen, 1, 1, AUD_W),
          p + "modality_preprocessors.audio.pos_embedding_helper.pos_embed": _t(gen, 1, tokens, AUD_W),
          p + "modality_heads.audio.0.weight": 1 + _t(gen, AUD_W, scale=0.05),
          p + "modality_heads.audio.0.bias": _t(gen, AUD_W, scale=0.05),
          p + "modality_heads.audio.2.weight": _t(gen, AUD_OUT, AUD_W),
          p + "modality_postprocessors.audio.1.log_logit_scale": torch.tensor(math.log(20.0)),
          # another ImageBind modality: on the drop list
          p + "modality_heads.vision.2.weight": _t(gen, AUD_OUT, AUD_W)}
    for i in range(AUD_DEPTH):
        b = f"{p}modality_trunks.audio.blocks.{i}."
        sd.update({b + "norm_1.weight": 1 + _t(gen, AUD_W, scale=0.05), b + "norm_1.bias": _t(gen, AUD_W, scale=0.05),
                   b + "attn.in_proj_weight": _t(gen, 3 * AUD_W, AUD_W), b + "attn.in_proj_bias": _t(gen, 3 * AUD_W),
                   b + "attn.bias_k": _t(gen, 1, 1, AUD_W), b + "attn.bias_v": _t(gen, 1, 1, AUD_W),
                   b + "attn.out_proj.weight": _t(gen, AUD_W, AUD_W), b + "attn.out_proj.bias": _t(gen, AUD_W),
                   b + "norm_2.weight": 1 + _t(gen, AUD_W, scale=0.05), b + "norm_2.bias": _t(gen, AUD_W, scale=0.05),
                   b + "mlp.fc1.weight": _t(gen, 4 * AUD_W, AUD_W), b + "mlp.fc1.bias": _t(gen, 4 * AUD_W),
                   b + "mlp.fc2.weight": _t(gen, AUD_W, 4 * AUD_W), b + "mlp.fc2.bias": _t(gen, AUD_W)})
    return sd


def released_tokenizer():
    """Vicuna's tokenizer stands in as the tiny one; as Llama's, it adds <s> to a prompt."""
    tok = tiny_tokenizer()
    tok._tokenizer.post_processor = TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.bos_token_id)])
    for token in RELEASED_TOKENS:  # as the authors' training adds them, one call each
        tok.add_tokens([token], special_tokens=True)
    return tok


def released_state_dict(vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    h = LLM["hidden_size"]
    sd = {"model.embed_tokens.weight": _t(gen, vocab, h, scale=0.5), "model.norm.weight": 1 + _t(gen, h, scale=0.05),
          "lm_head.weight": _t(gen, vocab, h)}
    for i in range(LLM["num_hidden_layers"]):
        b = f"model.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            sd[f"{b}self_attn.{proj}.weight"] = _t(gen, h, h)
        sd[f"{b}self_attn.rotary_emb.inv_freq"] = torch.rand(h // LLM["num_attention_heads"] // 2, generator=gen)
        sd[f"{b}mlp.gate_proj.weight"] = _t(gen, LLM["intermediate_size"], h)
        sd[f"{b}mlp.up_proj.weight"] = _t(gen, LLM["intermediate_size"], h)
        sd[f"{b}mlp.down_proj.weight"] = _t(gen, h, LLM["intermediate_size"])
        sd[f"{b}input_layernorm.weight"] = 1 + _t(gen, h, scale=0.05)
        sd[f"{b}post_attention_layernorm.weight"] = 1 + _t(gen, h, scale=0.05)
    sd["model.mm_vision_projector.0.weight"] = _t(gen, h, CLIP["hidden_size"])
    sd["model.mm_vision_projector.0.bias"] = _t(gen, h, scale=0.05)
    sd["model.mm_vision_projector.2.weight"] = _t(gen, h, h)
    sd["model.mm_vision_projector.2.bias"] = _t(gen, h, scale=0.05)
    sd.update(_eva(gen))
    sd["model.query_tokens"] = _t(gen, 1, QF_QUERIES, QF_H, scale=0.5)
    sd.update(_bert(gen, "model.Qformer.bert.", QF_H, EVA_W, QF_LAYERS, QF_FREQ, QF_MLP))
    sd["model.llama_proj.weight"] = _t(gen, h, QF_H)
    sd["model.llama_proj.bias"] = _t(gen, h, scale=0.05)
    sd["model.video_frame_position_embedding.weight"] = _t(gen, MAX_FRAME, QF_H, scale=0.5)
    sd["model.video_query_tokens"] = _t(gen, 1, VQ_QUERIES, QF_H, scale=0.5)
    sd.update(_bert(gen, "model.video_Qformer.bert.", QF_H, QF_H, VQ_LAYERS, 1, QF_MLP))
    sd.update(_imagebind_audio(gen))
    sd["model.audio_query_tokens"] = _t(gen, 1, AQ_QUERIES, QF_H, scale=0.5)
    sd.update(_bert(gen, "model.audio_Qformer.bert.", QF_H, AUD_OUT, VQ_LAYERS, 1, QF_MLP))
    sd["model.audio_llama_proj.weight"] = _t(gen, h, QF_H)
    sd["model.audio_llama_proj.bias"] = _t(gen, h, scale=0.05)
    sd["model.audio_position_embedding.weight"] = _t(gen, AUD_POS, AUD_OUT, scale=0.5)
    return sd


def write_released_folder(root: Path, *, safetensors: bool = False, seed: int = 0) -> tuple[Path, Path, dict]:
    """Writes ``root/released`` (2 shards + index, config, tokenizer) and ``root/clip``; returns them and the weights."""
    src, clip = root / "released", root / "clip"
    src.mkdir(parents=True)
    tok = released_tokenizer()
    tok.save_pretrained(src)
    ids = {t: tok.convert_tokens_to_ids(t) for t in RELEASED_TOKENS}
    sd = released_state_dict(len(tok), seed)
    llama = LlamaConfig(vocab_size=len(tok), bos_token_id=1, eos_token_id=2, pad_token_id=0, **LLM).to_dict()
    llama.update({
        "architectures": ["LEGOLlamaForCausalLM"], "model_type": "LEGO", "torch_dtype": "float32",
        "mm_vision_tower": "openai/clip-vit-large-patch14-336", "mm_vision_hidden_size": CLIP["hidden_size"],
        "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch", "use_mm_vision_proj": True,
        "mm_use_im_start_end": True, "mm_use_im_patch_token": True, "tune_mm_mlp_adapter": False,
        "freeze_mm_mlp_adapter": False, "image_aspect_ratio": "pad", "image_grid_pinpoints": None,
        "image_token_len": (CLIP["image_size"] // CLIP["patch_size"]) ** 2, "num_query_token": QF_QUERIES,
        "max_frame": MAX_FRAME, "video_token_len": VQ_QUERIES, "sound_token_len": AQ_QUERIES,
        "video_patch_token": ids["<vi_patch>"], "video_start_token": ids["<vi_start>"],
        "video_end_token": ids["<vi_end>"], "sound_patch_token": ids["<so_patch>"],
        "sound_start_token": ids["<so_start>"], "sound_end_token": ids["<so_end>"], "use_cache": True,
    })
    (src / "config.json").write_text(json.dumps(llama, indent=2))
    keys = list(sd)
    # Shard boundaries fall inside the EVA blocks: a q_bias and its v_bias land in different files.
    cut = keys.index("model.visual_encoder.blocks.1.attn.v_bias")
    shards = [dict((k, sd[k]) for k in keys[:cut]), dict((k, sd[k]) for k in keys[cut:])]
    ext = "safetensors" if safetensors else "bin"
    stem = "model" if safetensors else "pytorch_model"
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        name = f"{stem}-{i:05d}-of-{len(shards):05d}.{ext}"
        if safetensors:
            from safetensors.torch import save_file
            save_file({k: v.contiguous() for k, v in shard.items()}, str(src / name))
        else:
            torch.save(shard, src / name)
        weight_map.update({k: name for k in shard})
    (src / f"{stem}.{ext}.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    torch.manual_seed(seed + 1)
    CLIPVisionModel(CLIPVisionConfig(**CLIP)).save_pretrained(clip)
    return src, clip, sd


# --------------------------------------------------------------------------- the released forward, restated


def _ln(x, sd, p, eps):
    return F.layer_norm(x, x.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], eps)


def _mha(q, k, v, heads):
    b, n, c = q.shape
    d = c // heads
    q, k, v = (t.reshape(t.shape[0], t.shape[1], heads, d).transpose(1, 2) for t in (q, k, v))
    att = (q @ k.transpose(-1, -2) / math.sqrt(d)).softmax(-1)
    return (att @ v).transpose(1, 2).reshape(b, n, c)


def eva_forward(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """LAVIS EVA ViT-g (no final norm) then ln_vision (eps 1e-5)."""
    p = "model.visual_encoder."
    x = F.conv2d(x, sd[p + "patch_embed.proj.weight"], sd[p + "patch_embed.proj.bias"], stride=EVA_PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd[p + "cls_token"].expand(x.shape[0], -1, -1), x], 1) + sd[p + "pos_embed"]
    heads = EVA_W // 88
    for i in range(EVA_DEPTH):
        b = f"{p}blocks.{i}."
        h = _ln(x, sd, b + "norm1", 1e-6)
        bias = torch.cat([sd[b + "attn.q_bias"], torch.zeros_like(sd[b + "attn.v_bias"]), sd[b + "attn.v_bias"]])
        q, k, v = F.linear(h, sd[b + "attn.qkv.weight"], bias).chunk(3, -1)
        x = x + F.linear(_mha(q, k, v, heads), sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"])
        h = _ln(x, sd, b + "norm2", 1e-6)
        h = F.linear(F.gelu(F.linear(h, sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"])),
                     sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"])
        x = x + h
    return _ln(x, sd, "model.ln_vision", 1e-5)


def bert_queries(sd: dict, prefix: str, queries: torch.Tensor, enc: torch.Tensor, layers: int, freq: int) -> torch.Tensor:
    """LAVIS BertModel(query_embeds=..., encoder_hidden_states=...) with no text: the query path."""
    heads = queries.shape[-1] // 64
    x = _ln(queries, sd, prefix + "embeddings.LayerNorm", 1e-12)

    def attend(x, kv, name):
        s = f"{name}.self."
        ctx = _mha(F.linear(x, sd[s + "query.weight"], sd[s + "query.bias"]),
                   F.linear(kv, sd[s + "key.weight"], sd[s + "key.bias"]),
                   F.linear(kv, sd[s + "value.weight"], sd[s + "value.bias"]), heads)
        o = f"{name}.output."
        return _ln(F.linear(ctx, sd[o + "dense.weight"], sd[o + "dense.bias"]) + x, sd, o + "LayerNorm", 1e-12)

    for i in range(layers):
        p = f"{prefix}encoder.layer.{i}."
        x = attend(x, x, p + "attention")
        if i % freq == 0:
            x = attend(x, enc, p + "crossattention")
        h = F.gelu(F.linear(x, sd[p + "intermediate_query.dense.weight"], sd[p + "intermediate_query.dense.bias"]))
        x = _ln(F.linear(h, sd[p + "output_query.dense.weight"], sd[p + "output_query.dense.bias"]) + x, sd,
                p + "output_query.LayerNorm", 1e-12)
    return x


def released_video_tokens(sd: dict, video: torch.Tensor) -> torch.Tensor:
    """``encode_videoQformer_visual``: video [B, T, 3, S, S] → [B, video_token_len, D]."""
    b, t = video.shape[:2]
    frames = eva_forward(sd, video.flatten(0, 1))
    q = bert_queries(sd, "model.Qformer.bert.", sd["model.query_tokens"].expand(b * t, -1, -1), frames,
                     QF_LAYERS, QF_FREQ)
    pos = sd["model.video_frame_position_embedding.weight"][:t]
    hidden = (q.reshape(b, t, q.shape[1], q.shape[2]) + pos[None, :, None, :]).reshape(b, -1, q.shape[2])
    out = bert_queries(sd, "model.video_Qformer.bert.", sd["model.video_query_tokens"].expand(b, -1, -1), hidden,
                       VQ_LAYERS, 1)
    return F.linear(out, sd["model.llama_proj.weight"], sd["model.llama_proj.bias"])


# --------------------------------------------------------------------------- the released prompt rule, restated

SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the human's questions.")


def released_prompt(turns: list[tuple[str, str | None]], media: list[str], lengths: dict[str, int]) -> str:
    """conv_lego (SeparatorStyle.SINGLE, sep '###') with the demo's media blocks: the image block
    is put before the text first, then video, then sound — each before what is there."""
    blocks = {"image": ("<im_start>", "<im_patch>", "<im_end>"), "video": ("<vi_start>", "<vi_patch>", "<vi_end>"),
              "audio": ("<so_start>", "<so_patch>", "<so_end>")}
    first = turns[0][0]
    for kind in ("image", "video", "audio"):
        if kind in media:
            start, patch, end = blocks[kind]
            first = start + patch * lengths[kind] + end + "\n" + first
    turns = [(first, turns[0][1])] + turns[1:]
    ret = SYSTEM + "###"
    for human, assistant in turns:
        ret += "Human: " + human + "###"
        ret += "Assistant: " + assistant + "###" if assistant is not None else "Assistant:"
    return ret
