"""One loader per modality: a source (path, bytes, data URL ...) → the model's tensor + what the processor keeps.

Each function takes the processor's settings (a :class:`~groundinggpt.processor.ProcessorConfig`)
and returns ``(tensor, info)``, where ``info`` holds the :class:`~groundinggpt.processor.MediaInfo`
fields the medium has (``original_size`` for frames, ``duration`` for timed media). The
modality table (:mod:`groundinggpt.modalities`) names them, so the processor has no
per-kind branches: a new kind of medium brings its own loader here.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .audio import preprocess_audio
from .image import load_image, preprocess_image
from .limits import DecodeLimits
from .video import preprocess_video


def decode_limits(c: Any) -> DecodeLimits:
    """The processor settings' decoding limits (a video frame is capped like an image)."""
    return DecodeLimits(max_seconds=c.max_media_seconds, max_audio_samples=c.max_audio_samples,
                        max_frame_pixels=c.max_image_pixels, max_video_pixels=c.max_video_pixels)


def load_image_medium(source: Any, c: Any) -> tuple[Tensor, dict[str, Any]]:
    """Image → ``pixel_values`` [3, S, S] (padded to a square, resized, normalised) and its original size."""
    image = load_image(source, max_pixels=c.max_image_pixels)
    out = preprocess_image(image, size=c.image_size, mean=c.image_mean, std=c.image_std)
    return out.pixel_values, {"original_size": tuple(out.original_size)}


def load_video_medium(source: Any, c: Any) -> tuple[Tensor, dict[str, Any]]:
    """Video → ``pixel_values_videos`` [M, 3, S, S] (M frames: uniform in time, or the released model's
    frame indices), frame size and duration."""
    out = preprocess_video(source, num_frames=c.num_frames, size=c.video_size or c.image_size, mean=c.image_mean,
                           std=c.image_std, sampling=c.video_sampling, resize=c.video_resize,
                           limits=decode_limits(c))
    return out.pixel_values, {"original_size": tuple(out.original_size), "duration": out.duration}


def load_audio_medium(source: Any, c: Any) -> tuple[Tensor, dict[str, Any]]:
    """Audio (or a video's sound track) → ``input_features`` [N, 1, F, T] (N fbank clips) and duration."""
    out = preprocess_audio(source, num_clips=c.num_clips, clip_seconds=c.clip_seconds,
                           num_mel_bins=c.num_mel_bins, target_frames=c.target_frames,
                           mean=c.audio_mean, std=c.audio_std, limits=decode_limits(c))
    return out.input_features, {"duration": out.duration}
