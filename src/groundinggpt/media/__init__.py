"""Loading and preprocessing of images, videos and audio for GroundingGPT.

Every bad input raises :class:`groundinggpt.errors.MediaError` naming the source.
"""

from __future__ import annotations

from groundinggpt.media.audio import (
    AUDIO_MEAN,
    AUDIO_STD,
    TARGET_SAMPLE_RATE,
    AudioWaveform,
    ProcessedAudio,
    audio_clip_starts,
    load_audio,
    preprocess_audio,
    resample_waveform,
    waveform_to_clips,
)
from groundinggpt.media.fbank import kaldi_fbank, mel_banks
from groundinggpt.media.image import (
    CLIP_MEAN,
    CLIP_STD,
    DEFAULT_IMAGE_SIZE,
    ImageSource,
    ProcessedImage,
    describe_source,
    expand_to_square,
    load_image,
    mean_to_fill,
    normalize_frames,
    preprocess_image,
    preprocess_images,
    resize_for_clip,
)
from groundinggpt.media.video import (
    DEFAULT_NUM_FRAMES,
    ProcessedVideo,
    VideoClip,
    VideoSource,
    load_video,
    preprocess_video,
    sample_times,
    write_video,
)

__all__ = [
    # image
    "CLIP_MEAN",
    "CLIP_STD",
    "DEFAULT_IMAGE_SIZE",
    "ImageSource",
    "ProcessedImage",
    "describe_source",
    "expand_to_square",
    "load_image",
    "mean_to_fill",
    "normalize_frames",
    "preprocess_image",
    "preprocess_images",
    "resize_for_clip",
    # video
    "DEFAULT_NUM_FRAMES",
    "ProcessedVideo",
    "VideoClip",
    "VideoSource",
    "load_video",
    "preprocess_video",
    "sample_times",
    "write_video",
    # audio
    "AUDIO_MEAN",
    "AUDIO_STD",
    "TARGET_SAMPLE_RATE",
    "AudioWaveform",
    "ProcessedAudio",
    "audio_clip_starts",
    "load_audio",
    "preprocess_audio",
    "resample_waveform",
    "waveform_to_clips",
    "kaldi_fbank",
    "mel_banks",
]
