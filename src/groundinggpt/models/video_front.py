"""The released video front: EVA ViT-g/14 + ``ln_vision`` + frozen BLIP-2 Q-Former, per frame.

The paper's text says video frames go through the image encoder (CLIP); the authors'
released GroundingGPT-7B does something else (read from their ``lego`` package): every
frame goes through BLIP-2's frame encoder, and what the video Q-Former reads is the 32
query outputs of the frozen BLIP-2 Q-Former per frame::

    frame [3, 224, 224] → EVA ViT-g/14 (39 blocks, width 1408, no final norm)
                        → ln_vision (LayerNorm, eps 1e-5)          → [257, 1408]
                        → BLIP-2 Q-Former (12 layers, cross-attention every 2nd,
                          32 learned queries, width 768)           → [32, 768]

Both halves are transformers' own BLIP-2 classes, so no LAVIS code is needed:

- ``Blip2VisionModel`` is EVA's ViT: its ``qkv.bias`` is EVA's ``cat(q_bias, 0, v_bias)``
  (the converter builds it) and its ``post_layernorm`` plays ``ln_vision``; it is
  replaced here by a LayerNorm with ``ln_vision``'s own eps (1e-5: LAVIS builds it with
  PyTorch's default, while the ViT's blocks use 1e-6 — one ``layer_norm_eps`` in
  ``Blip2VisionConfig`` cannot hold both).
- ``Blip2QFormerModel`` is LAVIS's BERT Q-Former without its text half: with only
  query embeddings, both apply the embedding LayerNorm to the queries and run the
  query feed-forward (``intermediate_query`` / ``output_query``).

The module is frozen in every stage (it is an encoder); its output is what the feature
cache stores for such a model's videos.

Example:
    >>> import torch
    >>> front = EvaBlip2FrameEncoder(tiny_eva_blip2_settings())
    >>> front(torch.zeros(2, 3, 28, 28)).shape
    torch.Size([2, 4, 32])
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel, Blip2VisionConfig, Blip2VisionModel

FRAME_ENCODERS = ("clip", "eva_blip2")

#: The released model's frame encoder (EVA-CLIP ViT-g/14 at 224 px, BLIP-2 Q-Former).
RELEASED_EVA_BLIP2: dict[str, Any] = {
    "vision": dict(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39, num_attention_heads=16,
                   image_size=224, patch_size=14, layer_norm_eps=1e-6, hidden_act="gelu", qkv_bias=True),
    "qformer": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                    cross_attention_frequency=2, layer_norm_eps=1e-12, hidden_act="gelu",
                    max_position_embeddings=512),
    "num_query_tokens": 32,
    "ln_vision_eps": 1e-5,
}


def tiny_eva_blip2_settings() -> dict[str, Any]:
    """The same structure at CPU-test sizes (28-px frames, 2×2 patches of 14, width 24 / 32)."""
    return {
        "vision": dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                       image_size=28, patch_size=14, layer_norm_eps=1e-6, hidden_act="gelu", qkv_bias=True),
        "qformer": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        cross_attention_frequency=2, layer_norm_eps=1e-12, hidden_act="gelu"),
        "num_query_tokens": 4,
        "ln_vision_eps": 1e-5,
    }


def eva_blip2_settings(given: dict[str, Any] | None) -> dict[str, Any]:
    """``given`` completed with the released values for anything it leaves out (nested)."""
    out = copy.deepcopy(RELEASED_EVA_BLIP2)
    for key, value in (given or {}).items():
        if key not in out:
            raise ValueError(f"video_config.frame_encoder_config has an unknown key {key!r}; "
                             f"expected some of {sorted(out)}")
        if isinstance(out[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"video_config.frame_encoder_config.{key} must be a dict, got {type(value).__name__}")
            out[key].update(value)
        else:
            out[key] = value
    return out


def frame_encoder_width(settings: dict[str, Any]) -> int:
    """Width of what the frame encoder gives the video branch (the BLIP-2 Q-Former's)."""
    return int(settings["qformer"]["hidden_size"])


class EvaBlip2FrameEncoder(nn.Module):
    """Frames ``[B, 3, S, S]`` → BLIP-2 query outputs ``[B, Q, H]`` (see the module doc).

    Args:
        settings: ``{"vision": Blip2VisionConfig kwargs, "qformer": Blip2QFormerConfig kwargs,
            "num_query_tokens": Q, "ln_vision_eps": eps}`` (:func:`eva_blip2_settings`).
    """

    def __init__(self, settings: dict[str, Any]):
        super().__init__()
        vision_cfg = Blip2VisionConfig(**settings["vision"])
        self.vision = Blip2VisionModel(vision_cfg)
        # ln_vision: LAVIS's LayerNorm over the ViT's last block, with PyTorch's default eps.
        self.vision.post_layernorm = nn.LayerNorm(vision_cfg.hidden_size, eps=settings["ln_vision_eps"])
        qcfg = Blip2QFormerConfig(encoder_hidden_size=vision_cfg.hidden_size, **settings["qformer"])
        self.qformer = Blip2QFormerModel(qcfg)
        self.query_tokens = nn.Parameter(torch.zeros(1, settings["num_query_tokens"], qcfg.hidden_size))
        nn.init.normal_(self.query_tokens, std=qcfg.initializer_range)

    def train(self, mode: bool = True) -> EvaBlip2FrameEncoder:
        """Always in eval mode, as the released code keeps it (LAVIS's ``disabled_train``): the
        BLIP-2 Q-Former's dropout (0.1) would otherwise make a frozen encoder's output random
        during training, and differ from what the feature cache stored."""
        return super().train(False)

    @property
    def image_size(self) -> int:
        return self.vision.config.image_size

    @property
    def dtype(self) -> torch.dtype:
        return self.query_tokens.dtype

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        frames = frames.to(self.vision.embeddings.patch_embedding.weight.dtype)
        patches = self.vision(pixel_values=frames, return_dict=True).last_hidden_state  # ln_vision applied
        queries = self.query_tokens.expand(frames.shape[0], -1, -1)
        out = self.qformer(query_embeds=queries.to(patches.dtype), encoder_hidden_states=patches, return_dict=True)
        return out.last_hidden_state
