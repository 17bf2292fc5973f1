"""The processor's settings (:class:`ProcessorConfig`), saved as ``groundinggpt_processor.json`` beside the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..media.audio import AUDIO_MEAN, AUDIO_STD
from ..media.image import CLIP_MEAN, CLIP_STD
from ..modalities import MEDIA_KINDS, MODALITIES

__all__ = ["PROCESSOR_CONFIG_NAME", "ProcessorConfig"]

PROCESSOR_CONFIG_NAME = "groundinggpt_processor.json"


@dataclass
class ProcessorConfig:
    """Media settings and placeholder lengths; derived from the model config by :meth:`from_model_config`."""

    image_size: int = 64
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    image_seq_length: int = 16
    num_frames: int = 8
    video_seq_length: int = 8
    # Video frames: side in pixels (None: image_size), "uniform" / "index" sampling and
    # "pad" / "squash" resizing (see GroundingGPTVideoConfig; the released model: 224, index, squash).
    video_size: int | None = None
    video_sampling: str = "uniform"
    video_resize: str = "pad"
    num_clips: int = 3
    clip_seconds: float = 2.0
    num_mel_bins: int = 128
    target_frames: int = 204
    audio_mean: float = AUDIO_MEAN
    audio_std: float = AUDIO_STD
    audio_seq_length: int = 4
    image_token: str = "<image>"
    video_token: str = "<video>"
    audio_token: str = "<audio>"
    chat_template: str = "vicuna_v1"
    # {kind: [start, end]} special tokens around each placeholder run (the released model's
    # <im_start> … <im_end>); None writes none.
    boundary_tokens: dict[str, list[str]] | None = None
    # Replaces the template's default system prompt (None keeps it). The tiny preset can use a
    # short one: the Vicuna prompt is ~40 tokens, often more than the rest of a sample.
    system_prompt: str | None = None
    # How many media of each kind one conversation may hold (the paper trains with one).
    max_media: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MEDIA_KINDS, 1))
    max_image_pixels: int = 64_000_000  # refuse decompression bombs before decoding them; also per video frame
    # Decoding limits, counted on what is decoded (see groundinggpt.media.limits.DecodeLimits).
    max_media_seconds: float = 3600.0
    max_audio_samples: int = 3600 * 96_000 * 2
    max_video_pixels: int = 8_000_000_000
    # Settings of a modality that has no named field above (one added to the table after these
    # fields were written): "<kind>_token", "<kind>_seq_length" and what its loader reads, read
    # as attributes (config.depth_seq_length) like the named ones and saved with them.
    media_settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The fields as saved in ``groundinggpt_processor.json`` (``media_settings`` only when used,
        so the files of a three-modality processor read as before)."""
        values = asdict(self)
        if not values["media_settings"]:
            del values["media_settings"]
        return values

    def __getattr__(self, name: str) -> Any:
        # Only called for names that are not fields: a table modality's settings.
        settings = self.__dict__.get("media_settings") or {}
        if name in settings:
            return settings[name]
        raise AttributeError(f"{type(self).__name__} has no setting {name!r} (nor media_settings[{name!r}])")

    @classmethod
    def from_model_config(cls, config: Any, **overrides: Any) -> ProcessorConfig:
        values: dict[str, Any] = dict(
            image_size=config.vision_config.image_size,
            image_seq_length=config.image_seq_length,
            chat_template=config.chat_template,
            boundary_tokens=getattr(config, "media_boundary_tokens", None),
        )
        named = set(cls.__dataclass_fields__)
        settings = dict(overrides.pop("media_settings", None) or {})
        for m in MODALITIES:
            token = getattr(config, m.token_field, m.token)
            if m.token_field in named:
                values[m.token_field] = token
            else:  # a modality without named fields: its token and length from the model config
                settings.setdefault(m.token_field, token)
                settings.setdefault(m.seq_length_field, getattr(config, m.seq_length_field, 0))
        values["media_settings"] = settings
        if config.video_config is not None:
            v = config.video_config
            values.update(num_frames=v.num_frames, video_seq_length=config.video_seq_length,
                          video_size=config.video_frame_size, video_sampling=v.frame_sampling,
                          video_resize=v.frame_resize)
        else:
            values.update(video_seq_length=0)
        if config.audio_config is not None:
            a = config.audio_config
            values.update(num_clips=a.num_clips, clip_seconds=a.clip_seconds, num_mel_bins=a.num_mel_bins,
                          target_frames=a.target_frames, audio_seq_length=config.audio_seq_length)
        else:
            values.update(audio_seq_length=0)
        values.update(overrides)
        return cls(**values)
