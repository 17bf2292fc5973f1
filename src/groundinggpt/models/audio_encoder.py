"""ImageBind-Huge audio encoder: a small ViT over log-mel spectrograms.

GroundingGPT's audio branch runs the (frozen) audio tower of ImageBind-Huge on
every 2-second clip of a sound and feeds the resulting 1024-d embeddings,
one per clip, to its audio Q-Former. ImageBind itself is not installable here,
so this module re-implements just that tower, with the same arithmetic, so that
the official weights load into it unchanged.

The pipeline, for one clip of shape ``[1, num_mel_bins, target_frames]``
(``[1, 128, 204]`` for ImageBind):

1. **Patch stem.** ``Conv2d(1 -> 768, kernel 16, stride 10, no bias)`` cuts the
   spectrogram into overlapping 16x16 patches: a 12 (mel) x 19 (time) grid, i.e.
   228 patches, flattened row-major, then a ``LayerNorm`` (PyTorch's default
   eps, 1e-5: ImageBind builds this one without passing an eps).
2. **CLS + positions.** A learned CLS token is prepended and a learned positional
   embedding of 1 + 228 = 229 rows is added. There is no LayerNorm before the
   blocks for audio (ImageBind's ``pre_transformer_ln=False``).
3. **Trunk.** 12 pre-LN transformer blocks, width 768, 12 heads, MLP ratio 4,
   exact GELU, LayerNorm eps 1e-6. Attention is ``nn.MultiheadAttention`` with
   ``add_bias_kv=True``: one learned key and one learned value (``bias_k``,
   ``bias_v``) are appended to every sequence *after* the input projection, so
   each query attends over 229 + 1 positions. ImageBind trains with progressive
   drop-path up to 0.1; the tower is frozen here, so drop-path is omitted (it is
   the identity in eval mode).
4. **Head.** ``LayerNorm`` (eps 1e-6), take the CLS token (index 0),
   ``Linear(768 -> 1024, no bias)``.
5. **Post-processing.** L2-normalise, then multiply by a fixed logit scale:
   ``min(exp(log_logit_scale), 100)`` with ``log_logit_scale = log(20)``. Every
   output row therefore has norm 20. GroundingGPT (through Video-LLaMA's
   ``get_audio_feature``) feeds exactly this scaled embedding, one per clip, to
   its audio Q-Former.

Loading ImageBind's and the authors' checkpoints into this tower (the key map) is
:mod:`groundinggpt.models.audio_checkpoint`; its names are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from groundinggpt.errors import InputError

__all__ = [
    "AudioEncoderConfig",
    "BLOCK_PARAM_NAMES",
    "CheckpointError",
    "IMAGEBIND_AUDIO_KEY_MAP",
    "ImageBindAudioEncoder",
    "convert_imagebind_audio_state_dict",
    "detect_imagebind_audio_prefix",
    "load_imagebind_audio_weights",
]


# --------------------------------------------------------------------------- #
# Configuration
# --------------------------------------------------------------------------- #


@dataclass
class AudioEncoderConfig:
    """Hyper-parameters of the ImageBind audio tower.

    The defaults are ImageBind-Huge's audio modality (``imagebind_huge()`` in
    ``imagebind/models/imagebind_model.py``); a tiny config (e.g. ``embed_dim=32,
    depth=2, num_heads=2, out_dim=32``) builds the same architecture for tests.
    """

    embed_dim: int = 768  # audio_embed_dim: token width of the trunk
    depth: int = 12  # audio_num_blocks
    num_heads: int = 12  # audio_num_heads (head dim 64)
    mlp_ratio: float = 4.0  # SimpleTransformer's mlp_ratio: hidden = 3072
    patch_kernel: int = 16  # audio_kernel_size: square Conv2d kernel
    patch_stride: int = 10  # audio_stride: patches overlap by 6 bins/frames
    num_mel_bins: int = 128  # audio_num_mel_bins: spectrogram height
    target_frames: int = 204  # audio_target_len: spectrogram width (~2 s at 10 ms hop)
    out_dim: int = 1024  # out_embed_dim: the joint ImageBind embedding space
    logit_scale: float = 20.0  # LearnableLogitScaling(logit_scale_init=20, learnable=False)
    max_logit_scale: float = 100.0  # LearnableLogitScaling's clip on exp(log_logit_scale)
    layer_norm_eps: float = 1e-6  # blocks' and head's LayerNorms
    stem_layer_norm_eps: float = 1e-5  # the stem's LayerNorm uses PyTorch's default eps

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads != 0:
            raise ValueError(
                f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.num_mel_bins < self.patch_kernel or self.target_frames < self.patch_kernel:
            raise ValueError(
                f"the spectrogram ({self.num_mel_bins}x{self.target_frames}) must be at least "
                f"one patch ({self.patch_kernel}x{self.patch_kernel})"
            )

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid (mel rows, time columns): the Conv2d output size, (12, 19) for Huge."""
        rows = (self.num_mel_bins - self.patch_kernel) // self.patch_stride + 1
        cols = (self.target_frames - self.patch_kernel) // self.patch_stride + 1
        return rows, cols

    @property
    def num_patches(self) -> int:
        """Number of patch tokens, 228 for Huge."""
        rows, cols = self.grid_size
        return rows * cols

    @property
    def num_tokens(self) -> int:
        """Sequence length seen by the trunk: CLS + patches, 229 for Huge."""
        return 1 + self.num_patches

    @property
    def mlp_hidden_dim(self) -> int:
        # ImageBind computes int(mlp_ratio * dim); keep the same rounding.
        return int(self.mlp_ratio * self.embed_dim)

    def to_dict(self) -> dict:
        """Plain-JSON dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> AudioEncoderConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (they are usually typos)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown AudioEncoderConfig keys: {unknown}; known keys: {sorted(known)}")
        return cls(**dict(data))


# --------------------------------------------------------------------------- #
# Model
# --------------------------------------------------------------------------- #


class AudioMLP(nn.Module):
    """The block's feed-forward net: fc1 -> exact GELU -> fc2 (ImageBind's ``Mlp``)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class AudioBlock(nn.Module):
    """Pre-LN transformer block; sub-module names match ImageBind's ``BlockWithMasking``."""

    def __init__(self, config: AudioEncoderConfig) -> None:
        super().__init__()
        dim = config.embed_dim
        self.norm_1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        # add_bias_kv=True appends one learned key/value row to every sequence,
        # exactly as ImageBind's audio trunk does. ImageBind runs the module
        # sequence-first (it rearranges "b l d -> l b d" around the trunk);
        # batch_first=True is the same computation without the transposes in our
        # code, and it keeps the parameter names (in_proj_weight, bias_k, ...).
        self.attn = nn.MultiheadAttention(
            dim, config.num_heads, bias=True, add_bias_kv=True, batch_first=True
        )
        self.norm_2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = AudioMLP(dim, config.mlp_hidden_dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.norm_2(x))
        return x


class ImageBindAudioEncoder(nn.Module):
    """ImageBind's audio tower: log-mel clip(s) -> scaled, unit-direction embedding.

    Args:
        config: Architecture; defaults to ImageBind-Huge's audio tower.

    Inputs are log-mel spectrogram clips, ``[B, 1, num_mel_bins, target_frames]``,
    or a batch of clip sequences, ``[B, S, 1, num_mel_bins, target_frames]``
    (GroundingGPT's ``sounds`` layout), which is encoded clip by clip.
    """

    def __init__(self, config: AudioEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config if config is not None else AudioEncoderConfig()
        dim = config.embed_dim

        # 1. Patch stem (ImageBind: modality_preprocessors.audio.rgbt_stem).
        self.patch_embed = nn.Conv2d(
            1, dim, kernel_size=config.patch_kernel, stride=config.patch_stride, bias=False
        )
        self.patch_norm = nn.LayerNorm(dim, eps=config.stem_layer_norm_eps)
        # 2. CLS token and learned positions, shape [1, tokens, dim] as in the checkpoint.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_tokens, dim))
        # 3. Trunk (modality_trunks.audio.blocks).
        self.blocks = nn.ModuleList(AudioBlock(config) for _ in range(config.depth))
        # 4. Head (modality_heads.audio: LayerNorm, SelectElement(0), Linear).
        self.head_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.head_proj = nn.Linear(dim, config.out_dim, bias=False)
        # 5. Fixed logit scale (modality_postprocessors.audio.1). ImageBind keeps it
        # as a persistent buffer, so it is in the checkpoint and in our state dict.
        self.register_buffer(
            "log_logit_scale", torch.tensor(math.log(config.logit_scale)), persistent=True
        )

        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # Real weights come from the checkpoint; this init (ImageBind's own: Xavier
        # for Linear layers, OpenCLIP-style N(0, 1/dim) for CLS and positions) only
        # keeps a freshly built encoder numerically sane for tests and ablations.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        scale = self.config.embed_dim**-0.5
        nn.init.normal_(self.cls_token, std=scale)
        nn.init.normal_(self.pos_embed, std=scale)
        # nn.MultiheadAttention already initialised in_proj (Xavier), its biases
        # (zero) and bias_k/bias_v (Xavier normal) in its constructor.

    @property
    def logit_scale(self) -> Tensor:
        """The scalar every output row is scaled to: ``min(exp(log_logit_scale), max)``."""
        return self.log_logit_scale.exp().clamp(max=self.config.max_logit_scale)

    def _flatten_clips(self, input_features: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """Check the input layout and fold any clip axis into the batch axis."""
        cfg = self.config
        expected = (1, cfg.num_mel_bins, cfg.target_frames)
        # Only the exact trained size is accepted: the positional table has one
        # row per patch of that grid, and ImageBind itself cannot interpolate it
        # for a non-square grid such as 12x19.
        if input_features.ndim not in (4, 5) or tuple(input_features.shape[-3:]) != expected:
            raise InputError(
                f"audio input_features: expected [B, 1, {cfg.num_mel_bins}, {cfg.target_frames}] "
                f"or [B, S, 1, {cfg.num_mel_bins}, {cfg.target_frames}], got {list(input_features.shape)}"
            )
        leading = tuple(input_features.shape[:-3])
        return input_features.reshape(-1, *expected), leading

    def _tokens(self, clips: Tensor) -> Tensor:
        """Trunk output for clips ``[N, 1, mel, frames]`` -> ``[N, 1 + P, embed_dim]``."""
        x = self.patch_embed(clips)  # [N, D, rows, cols]
        # Flatten the grid row-major (mel-major), the order the checkpoint's
        # positional table was trained with.
        x = x.flatten(2).transpose(1, 2)  # [N, P, D]
        x = self.patch_norm(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return x

    def forward_tokens(self, input_features: Tensor) -> Tensor:
        """Run the stem and the trunk, without the head.

        Args:
            input_features: ``[B, 1, mel, frames]`` or ``[B, S, 1, mel, frames]``.

        Returns:
            The trunk's token sequence (CLS first, then the patches in row-major
            grid order), ``[B, 1 + P, embed_dim]`` or ``[B, S, 1 + P, embed_dim]``.
            It is *before* the head's LayerNorm.
        """
        clips, leading = self._flatten_clips(input_features)
        tokens = self._tokens(clips)
        return tokens.reshape(*leading, *tokens.shape[1:])

    def forward(self, input_features: Tensor) -> Tensor:
        """Embed each clip into ImageBind's joint space, scaled to the logit scale.

        Args:
            input_features: ``[B, 1, mel, frames]`` or ``[B, S, 1, mel, frames]``.

        Returns:
            ``[B, out_dim]`` (or ``[B, S, out_dim]``, one row per clip: GroundingGPT
            does not average the clips, its Q-Former attends over them). Each row
            has L2 norm ``logit_scale`` (20 for ImageBind).
        """
        clips, leading = self._flatten_clips(input_features)
        tokens = self._tokens(clips)
        # ImageBind applies the LayerNorm to every token and then keeps index 0;
        # LayerNorm is per token, so normalising only the CLS token is identical
        # and 229x cheaper.
        cls = self.head_norm(tokens[:, 0])
        embedding = F.normalize(self.head_proj(cls), p=2, dim=-1) * self.logit_scale
        return embedding.reshape(*leading, -1)


# The checkpoint key map and loader live in their own module; imported here so the names
# above keep working (`from groundinggpt.models.audio_encoder import load_imagebind_audio_weights`).
from .audio_checkpoint import (  # noqa: E402
    BLOCK_PARAM_NAMES,
    IMAGEBIND_AUDIO_KEY_MAP,
    CheckpointError,
    convert_imagebind_audio_state_dict,
    detect_imagebind_audio_prefix,
    load_imagebind_audio_weights,
)
