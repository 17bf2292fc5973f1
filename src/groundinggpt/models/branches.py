"""The media branches of GroundingGPT and how each modality's modules are built.

A *branch* turns a modality's frozen-encoder features into LLM-width tokens: the image
adapter (an MLP over pooled CLIP patches) and the video and audio :class:`QFormerBranch`
(learned queries cross-attending to per-frame / per-clip tokens). Each entry of the modality
table names its builder here (``Modality.build``): ``build(config) -> {attribute: module}``,
the modules the model registers for that modality, in order, under the names its saved
weights use (``vision_tower``, ``image_adapter``, ``video_branch`` ...). The model calls the
builders in table order, so a new modality's modules come from its own builder and the
model's ``__init__`` does not change; the registration order, hence the random
initialisation of a seeded model, is the one the hand-written ``__init__`` had.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Blip2QFormerModel, CLIPVisionModel

from .audio_encoder import AudioEncoderConfig, ImageBindAudioEncoder
from .configuration_groundinggpt import GroundingGPTConfig, QFormerBranchConfig
from .video_front import EvaBlip2FrameEncoder, frame_encoder_width
from .vision_cut import cut_vision_tower

__all__ = ["QFormerBranch", "build_adapter", "pool_patch_grid", "build_image_modules", "build_video_modules",
           "build_audio_modules"]


def build_adapter(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    """``"mlp"``: Linear → GELU → Linear (LLaVA-1.5 / the paper); ``"linear"``: one Linear."""
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    raise ValueError(f"unknown adapter kind {kind!r}; expected 'mlp' or 'linear'")


def pool_patch_grid(features: torch.Tensor, factor: int) -> torch.Tensor:
    """Average-pool a square patch grid: [B, G*G, C] → [B, (G/f)*(G/f), C]."""
    if factor == 1:
        return features
    batch, tokens, channels = features.shape
    grid = int(tokens**0.5)
    if grid * grid != tokens:
        raise ValueError(f"cannot pool {tokens} tokens: not a square grid")
    x = features.transpose(1, 2).reshape(batch, channels, grid, grid)
    x = F.avg_pool2d(x, factor)
    return x.flatten(2).transpose(1, 2)


class QFormerBranch(nn.Module):
    """Learned queries that cross-attend to a sequence of encoder tokens (BLIP-2 structure).

    Used by both the video branch (over frame tokens) and the audio branch (over clip
    embeddings). ``position_embedding`` marks *when* each frame/clip is, which is what
    lets the model answer with timestamps.

    Args:
        config: the branch's Q-Former fields (a video or audio config).
        encoder_width: width of the encoder tokens the queries attend to.
        out_dim: the LLM's width.
    """

    def __init__(self, config: QFormerBranchConfig, *, encoder_width: int, out_dim: int):
        super().__init__()
        # BLIP-2's ln_vision: content on one scale with the position (config.input_norm, see its docstring)
        self.input_norm = nn.LayerNorm(encoder_width) if config.input_norm else None
        self.position_init_std = config.position_init_std
        self.position_embedding = nn.Embedding(config.num_positions, encoder_width)
        self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, config.qformer_hidden_size))
        self.qformer = Blip2QFormerModel(config.qformer_config(encoder_width))
        self.adapter = build_adapter(config.adapter, config.qformer_hidden_size, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: [B, P, T, C] (P positions — frames or clips — of T tokens each) → [B, Q, out_dim]."""
        batch, positions, per_position, _ = tokens.shape
        if self.input_norm is not None:
            tokens = self.input_norm(tokens.to(self.input_norm.weight.dtype))
        pos = self.position_embedding(torch.arange(positions, device=tokens.device))
        tokens = (tokens + pos[None, :, None, :].to(tokens.dtype)).flatten(1, 2)
        queries = self.query_tokens.expand(batch, -1, -1).to(tokens.dtype)
        out = self.qformer(query_embeds=queries, encoder_hidden_states=tokens, return_dict=True)
        return self.adapter(out.last_hidden_state)


def build_image_modules(config: GroundingGPTConfig) -> dict[str, nn.Module | None]:
    """The CLIP tower (also the frame encoder of ``"clip"`` videos) and the image adapter."""
    tower = CLIPVisionModel(config.vision_config)
    # Layers after the selected one are never run (see vision_cut): the tower's
    # last_hidden_state is then the selected layer's output.
    cut_vision_tower(tower, config.vision_feature_layer)
    adapter = build_adapter(config.image_adapter, config.vision_config.hidden_size, config.text_config.hidden_size)
    return {"vision_tower": tower, "image_adapter": adapter}


def build_video_modules(config: GroundingGPTConfig) -> dict[str, nn.Module | None]:
    """The released frame encoder (``eva_blip2`` only; ``"clip"`` frames use the vision tower) and
    the video Q-Former branch; ``None`` each when ``config.video_config`` is ``None``."""
    v = config.video_config
    if v is None:
        return {"video_branch": None, "video_frame_encoder": None}
    frame_encoder, frame_width = None, config.vision_config.hidden_size
    if v.frame_encoder == "eva_blip2":
        frame_encoder = EvaBlip2FrameEncoder(v.frame_encoder_config)
        frame_width = frame_encoder_width(v.frame_encoder_config)
    branch = QFormerBranch(v, encoder_width=frame_width, out_dim=config.text_config.hidden_size)
    return {"video_frame_encoder": frame_encoder, "video_branch": branch}


def build_audio_modules(config: GroundingGPTConfig) -> dict[str, nn.Module | None]:
    """The ImageBind audio ViT and the audio Q-Former branch; ``None`` each without ``audio_config``."""
    a = config.audio_config
    if a is None:
        return {"audio_encoder": None, "audio_branch": None}
    enc_cfg = AudioEncoderConfig.from_dict({"num_mel_bins": a.num_mel_bins, "target_frames": a.target_frames,
                                            **a.encoder})
    encoder = ImageBindAudioEncoder(enc_cfg)
    branch = QFormerBranch(a, encoder_width=enc_cfg.out_dim, out_dim=config.text_config.hidden_size)
    return {"audio_encoder": encoder, "audio_branch": branch}
