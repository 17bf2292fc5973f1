"""Released (``lego``) tensor names → this project's names: one table, plus what is dropped.

The authors' ``save_pretrained`` writes a LLaMA checkpoint whose ``model.`` holds every
branch (``model_type: "LEGO"``). Each row below is a regular expression over a released
key and the project key it becomes; BERT-style Q-Former names follow LAVIS, whose
``embeddings.LayerNorm`` / ``attention.self`` / ``crossattention.self`` are transformers'
``layernorm`` / ``attention.attention`` / ``crossattention.attention``. EVA's two biases
``q_bias`` / ``v_bias`` become one fused ``qkv.bias = cat(q_bias, zeros, v_bias)`` — the
bias EVA's attention actually adds (:data:`QKV_BIAS_PARTS`).

Example:
    >>> map_key("model.video_Qformer.bert.encoder.layer.1.crossattention.self.key.weight")
    'video_branch.qformer.encoder.layer.1.crossattention.attention.key.weight'
    >>> map_key("model.visual_encoder.blocks.3.attn.q_bias")
    ('video_frame_encoder.vision.encoder.layers.3.self_attn.qkv.bias', 'q')
    >>> drop_reason("model.Qformer.bert.embeddings.position_ids")
    'position_ids buffer (recomputed, not a weight)'
"""

from __future__ import annotations

import re

from ..models.audio_encoder import BLOCK_PARAM_NAMES, IMAGEBIND_AUDIO_KEY_MAP

_BERT = [  # LAVIS BERT Q-Former (under ``.bert.``) → transformers' Blip2QFormerModel
    (r"embeddings\.LayerNorm\.(weight|bias)", r"layernorm.\1"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.(weight|bias)",
     r"encoder.layer.\1.attention.attention.\2.\3"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.(dense|LayerNorm)\.(weight|bias)",
     r"encoder.layer.\1.attention.output.\2.\3"),
    (r"encoder\.layer\.(\d+)\.crossattention\.self\.(query|key|value)\.(weight|bias)",
     r"encoder.layer.\1.crossattention.attention.\2.\3"),
    (r"encoder\.layer\.(\d+)\.crossattention\.output\.(dense|LayerNorm)\.(weight|bias)",
     r"encoder.layer.\1.crossattention.output.\2.\3"),
    (r"encoder\.layer\.(\d+)\.intermediate_query\.dense\.(weight|bias)", r"encoder.layer.\1.intermediate_query.dense.\2"),
    (r"encoder\.layer\.(\d+)\.output_query\.(dense|LayerNorm)\.(weight|bias)", r"encoder.layer.\1.output_query.\2.\3"),
]

_EVA = [  # LAVIS EVA ViT-g → transformers' Blip2VisionModel
    (r"cls_token", "embeddings.class_embedding"),
    (r"pos_embed", "embeddings.position_embedding"),
    (r"patch_embed\.proj\.(weight|bias)", r"embeddings.patch_embedding.\1"),
    (r"blocks\.(\d+)\.norm1\.(weight|bias)", r"encoder.layers.\1.layer_norm1.\2"),
    (r"blocks\.(\d+)\.norm2\.(weight|bias)", r"encoder.layers.\1.layer_norm2.\2"),
    (r"blocks\.(\d+)\.attn\.qkv\.weight", r"encoder.layers.\1.self_attn.qkv.weight"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"encoder.layers.\1.self_attn.projection.\2"),
    (r"blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"encoder.layers.\1.mlp.\2.\3"),
]

#: EVA's separate q/v biases, fused into one tensor (k's third is zeros).
QKV_BIAS_PARTS = re.compile(r"model\.visual_encoder\.blocks\.(\d+)\.attn\.(q|v)_bias")


def _rows() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = [
        # LLM (HF LLaMA layout)
        (r"model\.embed_tokens\.weight", "language_model.model.embed_tokens.weight"),
        (r"model\.layers\.(\d+)\.(.+)", r"language_model.model.layers.\1.\2"),
        (r"model\.norm\.weight", "language_model.model.norm.weight"),
        (r"lm_head\.weight", "language_model.lm_head.weight"),
        # image adapter: Linear → GELU → Linear
        (r"model\.mm_vision_projector\.(0|2)\.(weight|bias)", r"image_adapter.\1.\2"),
        # released video front: EVA ViT-g + ln_vision + BLIP-2 Q-Former
        (r"model\.ln_vision\.(weight|bias)", r"video_frame_encoder.vision.post_layernorm.\1"),
        (r"model\.query_tokens", "video_frame_encoder.query_tokens"),
        # video branch
        (r"model\.video_frame_position_embedding\.weight", "video_branch.position_embedding.weight"),
        (r"model\.video_query_tokens", "video_branch.query_tokens"),
        (r"model\.llama_proj\.(weight|bias)", r"video_branch.adapter.\1"),
        # audio branch
        (r"model\.audio_position_embedding\.weight", "audio_branch.position_embedding.weight"),
        (r"model\.audio_query_tokens", "audio_branch.query_tokens"),
        (r"model\.audio_llama_proj\.(weight|bias)", r"audio_branch.adapter.\1"),
    ]
    rows += [(r"model\.visual_encoder\." + src, "video_frame_encoder.vision." + dst) for src, dst in _EVA]
    for released, ours in (("Qformer", "video_frame_encoder.qformer"), ("video_Qformer", "video_branch.qformer"),
                           ("audio_Qformer", "audio_branch.qformer")):
        rows += [(rf"model\.{released}\.bert\." + src, ours + "." + dst) for src, dst in _BERT]
    for official, ours in IMAGEBIND_AUDIO_KEY_MAP.items():
        rows.append((r"model\.audio_encoder\." + re.escape(official), "audio_encoder." + ours))
    names = "|".join(re.escape(n) for n in BLOCK_PARAM_NAMES)
    rows.append((rf"model\.audio_encoder\.modality_trunks\.audio\.blocks\.(\d+)\.({names})",
                 r"audio_encoder.blocks.\1.\2"))
    return rows


MAPPING: list[tuple[re.Pattern, str]] = [(re.compile(src), dst) for src, dst in _rows()]

#: Released tensors with no counterpart, and why (the documented drop list).
DROPS: list[tuple[re.Pattern, str]] = [
    (re.compile(r".*\.position_ids"), "position_ids buffer (recomputed, not a weight)"),
    (re.compile(r".*rotary_emb\.inv_freq"), "rotary inv_freq buffer (recomputed, not a weight)"),
    (re.compile(r"model\.audio_encoder\.modality_(preprocessors|trunks|heads|postprocessors)\."
                r"(vision|text|depth|thermal|imu)\..*"), "ImageBind modality other than audio (unused)"),
    (re.compile(r"model\.(Qformer|video_Qformer|audio_Qformer)\.bert\.embeddings\.(word|position)_embeddings\..*"),
     "Q-Former text embeddings (queries only: never used)"),
    (re.compile(r"model\.(Qformer|video_Qformer|audio_Qformer)\.bert\.encoder\.layer\.\d+\.(intermediate|output)\."
                r"(dense|LayerNorm)\..*"), "Q-Former text feed-forward (queries only: never used)"),
    (re.compile(r"model\.(Qformer|video_Qformer|audio_Qformer)\.cls\..*"), "Q-Former language-model head (unused)"),
]


def map_key(key: str) -> str | tuple[str, str] | None:
    """The project key for a released key; ``(fused key, "q"|"v")`` for EVA's biases; ``None`` if unmapped."""
    m = QKV_BIAS_PARTS.fullmatch(key)
    if m:
        return f"video_frame_encoder.vision.encoder.layers.{m.group(1)}.self_attn.qkv.bias", m.group(2)
    for pattern, replacement in MAPPING:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key)
    return None


def drop_reason(key: str) -> str | None:
    """Why a released key is dropped, or ``None`` when it is not on the drop list."""
    for pattern, reason in DROPS:
        if pattern.fullmatch(key):
            return reason
    return None


def mapping_table() -> list[tuple[str, str]]:
    """``(released pattern, project pattern)`` rows, for the docs and the conversion report."""
    rows = [(p.pattern, r) for p, r in MAPPING]
    rows.append((QKV_BIAS_PARTS.pattern, "video_frame_encoder.vision.encoder.layers.\\1.self_attn.qkv.bias "
                                         "= cat(q_bias, zeros, v_bias)"))
    return rows
