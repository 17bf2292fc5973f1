"""Configuration of GroundingGPT: one LLM, three media branches.

The top-level :class:`GroundingGPTConfig` nests four sub-configs, each saved in
``config.json``:

- ``text_config``: any causal-LM config (``LlamaConfig`` for Vicuna);
- ``vision_config``: a ``CLIPVisionConfig`` (the image encoder, also used per video frame);
- ``video_config``: :class:`GroundingGPTVideoConfig` (temporal embedding + Q-Former);
- ``audio_config``: :class:`GroundingGPTAudioConfig` (ImageBind-style audio ViT + Q-Former).

``video_config`` / ``audio_config`` may be ``None`` for a model without that branch.

Example:
    >>> from groundinggpt.models import GroundingGPTConfig
    >>> cfg = GroundingGPTConfig()  # tiny shapes by default
    >>> cfg.image_seq_length, cfg.video_config.num_query_tokens, cfg.audio_config.num_query_tokens
    (16, 8, 4)
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, Blip2QFormerConfig, CLIPVisionConfig, LlamaConfig, PretrainedConfig

from ..modalities import MEDIA_KINDS
from .video_front import FRAME_ENCODERS, eva_blip2_settings


class QFormerBranchConfig(PretrainedConfig):
    """What the video and audio branches share: learned queries, a BLIP-2 Q-Former, an adapter.

    A branch turns P positions (frames or clips) of encoder tokens into ``num_query_tokens``
    LLM-width tokens: + position embedding → Q-Former (learned queries cross-attend to the
    tokens) → adapter. The fields are saved flat in ``config.json`` (``qformer_hidden_size``
    ...), as before this class existed, so saved folders read the same.

    Args:
        num_query_tokens: learned queries = tokens given to the LLM (k_V / k_A).
        qformer_hidden_size / qformer_num_layers / qformer_num_heads /
        qformer_intermediate_size: the BLIP-2-structured Q-Former.
        cross_attention_frequency: a cross-attention block every N layers.
        adapter: ``"linear"`` (the authors' choice) or ``"mlp"``.
        input_norm: a LayerNorm on the encoder tokens before the position is added (BLIP-2's
            ``ln_vision``), so that content and position share one scale.
        position_init_std: std of the position embedding at initialisation.
        qformer_initializer_range: std of the Q-Former's weights at initialisation; ``None``:
            ``1/sqrt(qformer_hidden_size)``. BLIP-2's 0.02 suits its width of 768
            (1/sqrt(768) = 0.036); at a width of 64 it leaves the cross-attention's values and
            output ~0.02× the learned queries on the residual stream, and its weights near-uniform.

    The base defaults are the branch as it was (no LayerNorm, 0.02 everywhere); the video and
    audio branches of a new model change them (:class:`GroundingGPTVideoConfig`,
    :class:`GroundingGPTAudioConfig`), while the released checkpoint and folders saved before
    ``input_norm`` existed keep them (:meth:`GroundingGPTConfig.from_dict`).
    """

    def __init__(
        self,
        num_query_tokens: int = 8,
        qformer_hidden_size: int = 64,
        qformer_num_layers: int = 1,
        qformer_num_heads: int = 4,
        qformer_intermediate_size: int = 128,
        cross_attention_frequency: int = 1,
        adapter: str = "linear",
        input_norm: bool = False,
        position_init_std: float = 0.02,
        qformer_initializer_range: float | None = 0.02,
        **kwargs: Any,
    ) -> None:
        self.input_norm = bool(input_norm)
        self.position_init_std = float(position_init_std)
        self.qformer_initializer_range = qformer_initializer_range
        self.num_query_tokens = num_query_tokens
        self.qformer_hidden_size = qformer_hidden_size
        self.qformer_num_layers = qformer_num_layers
        self.qformer_num_heads = qformer_num_heads
        self.qformer_intermediate_size = qformer_intermediate_size
        self.cross_attention_frequency = cross_attention_frequency
        self.adapter = adapter
        super().__init__(**kwargs)

    def qformer_config(self, encoder_width: int) -> Blip2QFormerConfig:
        """The BLIP-2 Q-Former config of this branch, cross-attending to tokens of width ``encoder_width``."""
        return Blip2QFormerConfig(
            hidden_size=self.qformer_hidden_size, num_hidden_layers=self.qformer_num_layers,
            num_attention_heads=self.qformer_num_heads, intermediate_size=self.qformer_intermediate_size,
            encoder_hidden_size=encoder_width, cross_attention_frequency=self.cross_attention_frequency,
            initializer_range=(self.qformer_initializer_range if self.qformer_initializer_range is not None
                               else self.qformer_hidden_size ** -0.5),
        )


class GroundingGPTVideoConfig(QFormerBranchConfig):
    """Video branch: M frames → vision tower → + temporal embedding → Q-Former → adapter.

    Args:
        num_frames: frames sampled uniformly from each video (the paper: 64).
        frame_token_pool: average-pool factor applied to each frame's patch grid
            before the Q-Former (1 keeps all patches; 2 keeps a quarter). Keeps the
            Q-Former's cross-attention affordable at 64 frames × 576 patches.
        num_query_tokens: learned queries = video tokens given to the LLM (k_V).
        frame_encoder: what encodes each frame. ``"clip"`` (the paper's text): the image
            tower at its own size, ``frame_token_pool``-pooled patches. ``"eva_blip2"`` (the
            authors' released model): EVA ViT-g/14 + ``ln_vision`` + the frozen BLIP-2
            Q-Former, 32 query outputs per frame (:mod:`~groundinggpt.models.video_front`).
        frame_encoder_config: the ``eva_blip2`` shapes (completed with the released values,
            see :data:`~groundinggpt.models.video_front.RELEASED_EVA_BLIP2`); ``None`` for ``clip``.
        frame_sampling: ``"uniform"`` (frames on screen at the midpoints of M equal time
            segments) or ``"index"`` (the released inference: frames ⌊i·n/M⌋ of the n frames,
            from frame 0; a clip of fewer than M frames gives all its n frames).
        frame_resize: ``"pad"`` (padded to a square, like images) or ``"squash"`` (resized
            to the square without keeping the aspect ratio, as the released inference does).
        input_norm: a LayerNorm on the frame tokens before the frame position is added
            (BLIP-2's ``ln_vision``). ``None``: ``True`` for ``clip`` frames, ``False`` for
            ``eva_blip2`` (the released forward; passing ``True`` with it is refused). Saved
            resolved; a ``config.json`` written before this key existed loads as ``False``
            (:meth:`GroundingGPTConfig.from_dict`): the branch it was trained with, the same outputs.
        position_init_std: the frame position's std at initialisation, on the normalised
            tokens' scale; ``None``: 1.0 (a position as large as a token's content), 0.02 for ``eva_blip2``.
        qformer_initializer_range: ``None``: ``1/sqrt(qformer_hidden_size)``, 0.02 for ``eva_blip2``.
        **kwargs: the other Q-Former fields of :class:`QFormerBranchConfig`.

    Why the video defaults differ from the base ones: with them the miniature's branch gave
    every clip nearly the same tokens (per-clip deviation 0.0066 of the common part) and
    *exactly* the same for a clip played backwards, since the tower's tokens (norm ~9) dwarfed
    a position embedding at std 0.02 and the learned queries dwarfed the cross-attention;
    with them 0.36 and 0.12 (``scripts/branch_spread.py``, docs/quickstart.md).
    """

    model_type = "groundinggpt_video"

    def __init__(self, num_frames: int = 8, frame_token_pool: int = 2, num_query_tokens: int = 8,
                 frame_encoder: str = "clip", frame_encoder_config: dict | None = None,
                 frame_sampling: str = "uniform", frame_resize: str = "pad", input_norm: bool | None = None,
                 position_init_std: float | None = None, qformer_initializer_range: float | None = None,
                 **kwargs: Any) -> None:
        if frame_encoder not in FRAME_ENCODERS:
            raise ValueError(f"video_config.frame_encoder must be one of {FRAME_ENCODERS}, got {frame_encoder!r}")
        if frame_sampling not in ("uniform", "index"):
            raise ValueError(f"video_config.frame_sampling must be 'uniform' or 'index', got {frame_sampling!r}")
        if frame_resize not in ("pad", "squash"):
            raise ValueError(f"video_config.frame_resize must be 'pad' or 'squash', got {frame_resize!r}")
        self.frame_encoder = frame_encoder
        self.frame_encoder_config = eva_blip2_settings(frame_encoder_config) if frame_encoder == "eva_blip2" else None
        self.frame_sampling = frame_sampling
        self.frame_resize = frame_resize
        released = frame_encoder == "eva_blip2"
        if released and input_norm:
            raise ValueError("video_config.input_norm=True with frame_encoder='eva_blip2': the released forward has "
                             "no LayerNorm there (its frame features are BLIP-2 Q-Former outputs, already normalised)")
        input_norm = (not released) if input_norm is None else bool(input_norm)
        position_init_std = (0.02 if released else 1.0) if position_init_std is None else position_init_std
        if qformer_initializer_range is None and released:
            qformer_initializer_range = 0.02
        self.num_frames = num_frames
        self.frame_token_pool = frame_token_pool
        super().__init__(num_query_tokens=num_query_tokens, input_norm=input_norm,
                         position_init_std=position_init_std, qformer_initializer_range=qformer_initializer_range,
                         **kwargs)

    @property
    def num_positions(self) -> int:
        """Rows of the frame-position table: one per sampled frame."""
        return self.num_frames


class GroundingGPTAudioConfig(QFormerBranchConfig):
    """Audio branch: N clips → ImageBind-style audio ViT → + clip embedding → Q-Former → adapter.

    Args:
        encoder: keyword arguments of :class:`~groundinggpt.models.audio_encoder.AudioEncoderConfig`
            (ImageBind-Huge audio when left empty).
        num_clips: 2-second clips per audio (the paper: 3).
        clip_seconds: length of one clip.
        num_mel_bins / target_frames: the fbank each clip becomes (128 × 204 for ImageBind).
        max_clips: size of the learned clip-position table (the authors use 8).
        num_query_tokens: learned queries = audio tokens given to the LLM (k_A).
        input_norm: a LayerNorm on the clip embeddings before the clip position is added.
            ``None``: ``True``. Saved resolved; a ``config.json`` written before this key existed
            loads as ``False`` with positions and Q-Former at 0.02 (:meth:`GroundingGPTConfig.from_dict`),
            and the released checkpoint's conversion sets those values too (its forward has no LayerNorm).
        position_init_std: the clip position's std at initialisation; ``None``: 1.0.
        qformer_initializer_range: ``None``: ``1/sqrt(qformer_hidden_size)``.
        **kwargs: the other Q-Former fields of :class:`QFormerBranchConfig`.

    Why the defaults differ from the base ones: as for the video branch. With the base ones the
    miniature's branch gave every sound nearly the same tokens (per-sound deviation 0.065 of the
    common part over 32 sounds) and the same for an audio's clips in reverse order (0.0000): in a
    width-64 Q-Former initialised at 0.02 the learned queries dominate, and the clip position is
    far below the clip embeddings. With these 0.83 and 0.40 (0.53 and 0.34 after 12 stage-1
    steps; ``scripts/branch_spread.py --modality audio``, docs/quickstart.md).
    """

    model_type = "groundinggpt_audio"

    def __init__(
        self,
        encoder: dict | None = None,
        num_clips: int = 3,
        clip_seconds: float = 2.0,
        num_mel_bins: int = 128,
        target_frames: int = 204,
        max_clips: int = 8,
        num_query_tokens: int = 4,
        input_norm: bool | None = None,
        position_init_std: float | None = None,
        qformer_initializer_range: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.encoder = dict(encoder or {})
        self.num_clips = num_clips
        self.clip_seconds = clip_seconds
        self.num_mel_bins = num_mel_bins
        self.target_frames = target_frames
        self.max_clips = max_clips
        if num_clips > max_clips:
            raise ValueError(f"audio_config.num_clips={num_clips} exceeds max_clips={max_clips}")
        super().__init__(num_query_tokens=num_query_tokens, input_norm=True if input_norm is None else input_norm,
                         position_init_std=1.0 if position_init_std is None else position_init_std,
                         qformer_initializer_range=qformer_initializer_range, **kwargs)

    @property
    def num_positions(self) -> int:
        """Rows of the clip-position table (``max_clips``, more than the clips used)."""
        return self.max_clips


def _sub_config(value: Any, default_cls: type[PretrainedConfig]) -> PretrainedConfig:
    if value is None:
        return default_cls()
    if isinstance(value, PretrainedConfig):
        return value
    if isinstance(value, dict):
        value = dict(value)
        model_type = value.get("model_type")
        if model_type and model_type != getattr(default_cls, "model_type", None):
            return AutoConfig.for_model(**value)
        value.pop("model_type", None)
        return default_cls(**value)
    raise TypeError(f"expected a config or a dict, got {type(value).__name__}")


def tiny_text_config(**overrides: Any) -> LlamaConfig:
    """The tiny preset's LLM: a 4-layer LLaMA of width 256 (about 3 M parameters with its vocab)."""
    kwargs = dict(
        vocab_size=1024,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
    )
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def tiny_vision_config(**overrides: Any) -> CLIPVisionConfig:
    """The tiny preset's vision tower: a 4-layer CLIP ViT over 64-px images, patch 8 (8×8 grid)."""
    kwargs = dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        image_size=64,
        patch_size=8,
        projection_dim=128,
    )
    kwargs.update(overrides)
    return CLIPVisionConfig(**kwargs)


class GroundingGPTConfig(PretrainedConfig):
    """Configuration of :class:`~groundinggpt.models.GroundingGPTForCausalLM`.

    The defaults build the *tiny* shapes (CPU-sized); the paper's shapes come from
    :func:`groundinggpt.presets.paper_config`.

    Args:
        text_config: the LLM's config (dict or ``PretrainedConfig``); tiny LLaMA by default.
        vision_config: a ``CLIPVisionConfig`` (dict or object); tiny CLIP by default.
        video_config: a :class:`GroundingGPTVideoConfig`, or ``None`` for no video branch.
        audio_config: a :class:`GroundingGPTAudioConfig`, or ``None`` for no audio branch.
        vision_feature_layer: which hidden state of the vision tower to use (the paper: -2).
        vision_feature_select_strategy: ``"default"`` drops the CLS token, ``"full"`` keeps it.
        image_token_pool: average-pool factor over the patch grid before the adapter
            (1 = every patch is an LLM token, as in the paper; 2 = a quarter of them).
        image_adapter: ``"mlp"`` (Linear → GELU → Linear, the paper) or ``"linear"`` (Table 8 ablation).
        image_token_id / video_token_id / audio_token_id: placeholder token ids in the LLM vocab.
        image_token / video_token / audio_token: their strings.
        chat_template: name of the conversation template (``"vicuna_v1"`` or ``"legacy"``).
        media_boundary_tokens: ``{kind: [start, end]}`` tokens written around each medium's
            placeholder run (the released model: ``<im_start>`` … ``<im_end>``, ``<vi_start>`` …
            ``<vi_end>``, ``<so_start>`` … ``<so_end>``); ``None`` writes none (our models).
    """

    model_type = "groundinggpt"
    sub_configs = {
        "text_config": AutoConfig,
        "vision_config": CLIPVisionConfig,
        "video_config": GroundingGPTVideoConfig,
        "audio_config": GroundingGPTAudioConfig,
    }

    def __init__(
        self,
        text_config: dict | PretrainedConfig | None = None,
        vision_config: dict | PretrainedConfig | None = None,
        video_config: dict | PretrainedConfig | None | bool = True,
        audio_config: dict | PretrainedConfig | None | bool = True,
        vision_feature_layer: int = -2,
        vision_feature_select_strategy: str = "default",
        image_token_pool: int = 2,
        image_adapter: str = "mlp",
        image_token_id: int = 4,
        video_token_id: int = 5,
        audio_token_id: int = 6,
        image_token: str = "<image>",
        video_token: str = "<video>",
        audio_token: str = "<audio>",
        chat_template: str = "vicuna_v1",
        media_boundary_tokens: dict[str, list[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        self.text_config = text_config if isinstance(text_config, PretrainedConfig) else (
            _sub_config(text_config, LlamaConfig) if text_config is not None else tiny_text_config()
        )
        self.vision_config = vision_config if isinstance(vision_config, PretrainedConfig) else (
            _sub_config(vision_config, CLIPVisionConfig) if vision_config is not None else tiny_vision_config()
        )
        # True means "the default branch", None/False means "no such branch".
        self.video_config = (
            GroundingGPTVideoConfig() if video_config is True
            else None if video_config in (None, False)
            else _sub_config(video_config, GroundingGPTVideoConfig)
        )
        self.audio_config = (
            GroundingGPTAudioConfig(encoder=_TINY_AUDIO_ENCODER) if audio_config is True
            else None if audio_config in (None, False)
            else _sub_config(audio_config, GroundingGPTAudioConfig)
        )
        if vision_feature_select_strategy not in ("default", "full"):
            raise ValueError(
                f"vision_feature_select_strategy must be 'default' or 'full', got {vision_feature_select_strategy!r}"
            )
        if image_adapter not in ("mlp", "linear"):
            raise ValueError(f"image_adapter must be 'mlp' or 'linear', got {image_adapter!r}")
        grid = self.vision_config.image_size // self.vision_config.patch_size
        if image_token_pool < 1 or grid % image_token_pool:
            raise ValueError(f"image_token_pool={image_token_pool} must divide the patch grid ({grid})")
        if vision_feature_select_strategy == "full" and image_token_pool != 1:
            # The CLS token does not pool with the patch grid: the branch could not emit
            # image_seq_length tokens, and every image forward would fail.
            raise ValueError(f"vision_feature_select_strategy='full' (CLS kept) needs image_token_pool=1, "
                             f"got {image_token_pool}")
        clip_frames = self.video_config is not None and self.video_config.frame_encoder == "clip"
        pool = self.video_config.frame_token_pool if clip_frames else 1
        if pool < 1 or grid % pool:
            raise ValueError(f"video_config.frame_token_pool={pool} must divide the patch grid ({grid}); "
                             "pooling would silently drop the last rows and columns of patches")
        self.vision_feature_layer = vision_feature_layer
        self.vision_feature_select_strategy = vision_feature_select_strategy
        self.image_token_pool = image_token_pool
        self.image_adapter = image_adapter
        self.image_token_id = image_token_id
        self.video_token_id = video_token_id
        self.audio_token_id = audio_token_id
        self.image_token = image_token
        self.video_token = video_token
        self.audio_token = audio_token
        self.chat_template = chat_template
        if media_boundary_tokens is not None:
            bad = {k: v for k, v in media_boundary_tokens.items()
                   if k not in MEDIA_KINDS or not isinstance(v, (list, tuple)) or len(v) != 2}
            if bad:
                raise ValueError(f"media_boundary_tokens must map media kinds {tuple(MEDIA_KINDS)} to [start, end] token strings; "
                                 f"got {bad}")
            media_boundary_tokens = {k: list(v) for k, v in media_boundary_tokens.items()}
        self.media_boundary_tokens = media_boundary_tokens
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    # ---- token counts: the processor expands each placeholder to exactly this many tokens
    @property
    def image_seq_length(self) -> int:
        """LLM tokens one image becomes (576 for CLIP-L/14-336 without pooling)."""
        grid = self.vision_config.image_size // self.vision_config.patch_size // self.image_token_pool
        cls = 1 if self.vision_feature_select_strategy == "full" and self.image_token_pool == 1 else 0
        return grid * grid + cls

    @property
    def video_frame_size(self) -> int:
        """Side in pixels of a video frame given to the model (the frame encoder's input)."""
        v = self.video_config
        if v is not None and v.frame_encoder == "eva_blip2":
            return int(v.frame_encoder_config["vision"]["image_size"])
        return self.vision_config.image_size

    @property
    def video_seq_length(self) -> int:
        return self.video_config.num_query_tokens if self.video_config is not None else 0

    @property
    def audio_seq_length(self) -> int:
        return self.audio_config.num_query_tokens if self.audio_config is not None else 0

    @property
    def hidden_size(self) -> int:  # what generation utilities look for on the top config
        return self.text_config.hidden_size

    @property
    def vocab_size(self) -> int:
        return self.text_config.vocab_size

    def get_text_config(self, *args: Any, **kwargs: Any) -> PretrainedConfig:
        return self.text_config

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any):
        """A ``config.json`` from before ``input_norm`` existed keeps the branches it was saved with
        (no LayerNorm on the video's frame tokens nor on the audio's clip embeddings): its weights
        give the same outputs. The audio branch also keeps its initialisation (0.02), which a weight
        missing from such a folder would be drawn with."""
        legacy = {"video_config": {"input_norm": False},
                  "audio_config": {"input_norm": False, "position_init_std": 0.02, "qformer_initializer_range": 0.02}}
        for key, values in legacy.items():
            branch = config_dict.get(key)
            if isinstance(branch, dict) and "input_norm" not in branch:
                config_dict = {**config_dict, key: {**branch, **values}}
        return super().from_dict(config_dict, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for key in ("video_config", "audio_config"):
            if getattr(self, key) is None:
                out[key] = None
        return out


# The tiny preset's audio ViT (see AudioEncoderConfig): 128×204 fbank, patch 16, stride 16 → 8×12 grid.
_TINY_AUDIO_ENCODER = dict(embed_dim=64, depth=2, num_heads=4, out_dim=64, patch_stride=16)
