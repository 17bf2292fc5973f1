"""Audio loading and ImageBind-compatible preprocessing.

GroundingGPT encodes audio with ImageBind's audio encoder, so audio must reach it
exactly as ImageBind's ``load_and_transform_audio_data`` prepares it:

1. decode, mix to mono and resample to 16 kHz (band-limited sinc resampling, the
   same filter as ``torchaudio.functional.resample``'s defaults). The one departure:
   ImageBind's fbank reads only the first channel of stereo audio; here the channels
   are averaged;
2. cut ``num_clips`` (3) clips of ``clip_seconds`` (2 s) placed like pytorchvideo's
   ``ConstantClipsPerVideoSampler`` (see :func:`audio_clip_starts`);
3. per clip: subtract the clip's mean, compute a 128-bin Kaldi log mel filterbank
   (25 ms / 10 ms frames, Hann window, no dither), transpose to ``[128, frames]``,
   zero-pad or crop to 204 frames and normalise with ``(x - mean) / std``.

The result has shape ``[num_clips, 1, 128, 204]``.

Decoding (:mod:`groundinggpt.media.audio_decode`) uses soundfile (WAV, FLAC, OGG, MP3
through libsndfile) first and falls back to PyAV (FFmpeg) for everything else,
including the audio track of a video file. It mixes down and resamples block by block
and stops at the :class:`~groundinggpt.media.limits.DecodeLimits`, so memory is bounded
by the limits, not by the file. Nothing here needs torchaudio.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import urllib.parse
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from groundinggpt.errors import MediaError
from groundinggpt.media.audio_decode import (EXPECTED_AUDIO, MIN_SAMPLE_RATE, MIN_SECONDS,  # noqa: F401 - re-exported
                                             check_audio_extent, decode_audio)
from groundinggpt.media.fbank import kaldi_fbank
from groundinggpt.media.limits import DecodeLimits
from groundinggpt.media.resample import check_rate, resample_waveform

__all__ = [
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
]

#: ImageBind's normalisation of log mel features (``transforms.Normalize(mean, std)``).
AUDIO_MEAN = -4.268
AUDIO_STD = 9.138
#: ImageBind's audio sampling rate.
TARGET_SAMPLE_RATE = 16000
_EXPECTED = EXPECTED_AUDIO


@dataclass(frozen=True)
class AudioWaveform:
    """A decoded mono waveform.

    Attributes:
        waveform: float32 tensor ``[T]`` with samples in ``[-1, 1]`` (integer PCM is
            scaled by its full range, as soundfile and torchaudio do).
        sample_rate: Samples per second.
        duration: Length in seconds, ``T / sample_rate``.
    """

    waveform: Tensor
    sample_rate: int
    duration: float


@dataclass(frozen=True)
class ProcessedAudio:
    """Model-ready audio features.

    Attributes:
        input_features: float32 tensor ``[num_clips, 1, num_mel_bins, target_frames]``.
        duration: Length of the (resampled) source audio in seconds.
        clip_starts: Start time of each clip in seconds.
    """

    input_features: Tensor
    duration: float
    clip_starts: list[float]


AudioSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, tuple[Any, int], AudioWaveform]


_check_rate = check_rate


# --------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------

_DATA_URL = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<payload>.*)$", re.DOTALL)
_REMOTE_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def _decode_data_url(url: str) -> bytes:
    name = "<data: URL>"
    match = _DATA_URL.match(url)
    if match is None:
        raise MediaError(f"{name}: malformed data URL; expected 'data:audio/<type>;base64,<payload>'")
    mime = match["mime"].strip().lower()
    # Video types are accepted because the audio track of a video is a valid source.
    if mime and not (
        mime.startswith(("audio/", "video/")) or mime in ("application/octet-stream", "application/ogg")
    ):
        raise MediaError(f"{name}: media type {mime!r} is not audio; expected audio/* (or video/*)")
    payload = match["payload"]
    if ";base64" in match["params"].lower():
        try:
            data = base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MediaError(f"{name}: invalid base64 payload ({exc})") from None
    else:
        data = urllib.parse.unquote_to_bytes(payload)
    if not data:
        raise MediaError(f"{name}: the payload is empty; expected {_EXPECTED}")
    return data


def _array_to_channels(array: Any, name: str) -> np.ndarray:
    """Converts a user array (``[T]``, ``[C, T]`` or ``[T, C]``) to float32 ``[C, T]``."""
    if isinstance(array, Tensor):
        array = array.detach().cpu().numpy() if array.dtype != torch.bfloat16 else array.float().numpy()
    array = np.asarray(array)
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.number)) or np.iscomplexobj(array):
        raise MediaError(f"{name}: samples have dtype {array.dtype}; expected a real float or integer PCM array")
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        # Scale integer PCM to [-1, 1) like soundfile / torchaudio; unsigned PCM is offset-binary.
        offset = (int(info.max) + 1) // 2 if info.min == 0 else 0
        array = (array.astype(np.float64) - offset) / float(int(info.max) + 1 - offset)
    if array.ndim == 1:
        array = array[None, :]
    elif array.ndim == 2:
        # Channels are the shorter axis: no real recording has more channels than samples.
        if array.shape[0] > array.shape[1]:
            array = array.T
    else:
        raise MediaError(f"{name}: samples have shape {array.shape}; expected [T], [channels, T] or [T, channels]")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise MediaError(f"{name}: samples contain NaN or infinite values; expected finite audio samples")
    return array


def _to_mono_tensor(channels: np.ndarray) -> Tensor:
    # Average the channels (an equal-weight down-mix); copy so the tensor owns its memory.
    # A deliberate departure: ImageBind's torchaudio fbank reads only the first channel of
    # a stereo clip, so a sound panned right would be lost (it is halved here instead).
    mono = channels.mean(axis=0, dtype=np.float64) if channels.shape[0] > 1 else channels[0]
    return torch.from_numpy(np.array(mono, dtype=np.float32, copy=True))


def load_audio(source: AudioSource, sample_rate: int | None = TARGET_SAMPLE_RATE, *,
               limits: DecodeLimits | None = None) -> AudioWaveform:
    """Loads audio as a mono float32 waveform at ``sample_rate``.

    Args:
        source: One of

            * a path (``str`` or ``os.PathLike``) to an audio file (WAV, FLAC, OGG,
              MP3, M4A, AAC, ...) or a video file, whose first audio stream is used;
            * the encoded file contents as ``bytes`` / ``bytearray`` / ``memoryview``;
            * a ``data:audio/...;base64,...`` URL (``video/*`` types are accepted too);
            * a ``(samples, sample_rate)`` tuple, ``samples`` being a numpy array or
              tensor of shape ``[T]``, ``[channels, T]`` or ``[T, channels]`` (the
              shorter axis is taken as channels); integer PCM is scaled to ``[-1, 1)``;
            * an :class:`AudioWaveform` (only resampled if needed).
        sample_rate: Output rate in Hz; ``None`` keeps the source's rate.
        limits: Decoding limits for files, bytes and data URLs (default
            :class:`~groundinggpt.media.limits.DecodeLimits`); arrays and waveforms are
            already in memory and are not limited.

    Returns:
        The mono (channel-averaged) waveform, resampled with
        :func:`resample_waveform`.

    Raises:
        MediaError: The file is missing, empty or undecodable, has no audio stream,
            or holds no samples; the message names the source (the path,
            ``<bytes>``, ``<data: URL>`` or ``<array>``).
        MediaLimitError: Decoding passed a limit (too long, too many samples).
    """
    if sample_rate is not None:
        sample_rate = _check_rate(sample_rate, "sample_rate")
    limits = limits or DecodeLimits()

    if isinstance(source, AudioWaveform):
        name = "<waveform>"
        if source.waveform.dim() != 1:
            raise MediaError(f"{name}: waveform has shape {tuple(source.waveform.shape)}; expected [T]")
        mono = source.waveform.detach().to(device="cpu", dtype=torch.float32)
        rate = _check_rate(source.sample_rate, "AudioWaveform.sample_rate")
    elif isinstance(source, tuple):
        name = "<array>"
        if len(source) != 2:
            raise MediaError(f"{name}: expected a (samples, sample_rate) pair, got {len(source)} items")
        samples, rate_in = source
        try:
            rate = _check_rate(rate_in, "sample rate")
        except ValueError as exc:
            raise MediaError(f"{name}: {exc}") from None
        mono = _to_mono_tensor(_array_to_channels(samples, name))
    elif isinstance(source, (np.ndarray, Tensor)):
        raise MediaError(
            "<array>: a bare array carries no sample rate; pass (samples, sample_rate) instead"
        )
    elif isinstance(source, (bytes, bytearray, memoryview)):
        name = "<bytes>"
        data = bytes(source)
        if not data:
            raise MediaError(f"{name}: no data; expected {_EXPECTED}")
        return _decoded(decode_audio(data, None, name, sample_rate, limits))
    elif isinstance(source, str) and source[:5].lower() == "data:":
        return _decoded(decode_audio(_decode_data_url(source), None, "<data: URL>", sample_rate, limits))
    elif isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if isinstance(name, bytes):
            name = os.fsdecode(name)
        if _REMOTE_URL.match(name):
            raise MediaError(f"{name}: remote URLs are not fetched; download the file and pass its path")
        path = Path(name)
        if not path.exists():
            raise MediaError(f"{name}: file not found; expected {_EXPECTED}")
        if not path.is_file():
            raise MediaError(f"{name}: not a regular file; expected {_EXPECTED}")
        if path.stat().st_size == 0:
            raise MediaError(f"{name}: the file is empty (0 bytes); expected {_EXPECTED}")
        return _decoded(decode_audio(None, name, name, sample_rate, limits))
    else:
        raise MediaError(
            f"<{type(source).__name__}>: unsupported audio source; expected a path, bytes, "
            "a data: URL, a (samples, sample_rate) pair or an AudioWaveform"
        )

    if mono.numel() == 0:
        raise MediaError(f"{name}: contains no audio samples (length 0); expected at least one sample")
    if not bool(torch.isfinite(mono).all()):
        raise MediaError(f"{name}: samples contain NaN or infinite values; expected finite audio samples")
    check_audio_extent(mono.numel(), rate, name)
    if sample_rate is not None and sample_rate != rate:
        mono = resample_waveform(mono, rate, sample_rate)
        rate = sample_rate
    return AudioWaveform(waveform=mono.contiguous(), sample_rate=rate, duration=mono.numel() / rate)


def _decoded(result: tuple[Tensor, int]) -> AudioWaveform:
    mono, rate = result
    return AudioWaveform(waveform=mono.contiguous(), sample_rate=rate, duration=mono.numel() / rate)


# --------------------------------------------------------------------------------------
# Clips and features
# --------------------------------------------------------------------------------------


def _clip_starts_exact(duration: float, num_clips: int, clip_seconds: float) -> list[Fraction]:
    """ImageBind's clip starts as exact fractions (pytorchvideo computes in Fractions)."""
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if not clip_seconds > 0:
        raise ValueError(f"clip_seconds must be positive, got {clip_seconds}")
    if not duration >= 0:
        raise ValueError(f"duration must be >= 0, got {duration}")
    # pytorchvideo subtracts the Fraction clip length from the float duration, which
    # Python evaluates in float; the spacing is then an exact Fraction.
    max_start = Fraction(max(float(duration) - float(Fraction(clip_seconds)), 0.0))
    spacing = max_start / num_clips
    return [spacing * i for i in range(num_clips)]


def audio_clip_starts(duration: float, num_clips: int = 3, clip_seconds: float = 2.0) -> list[float]:
    """Clip start times (seconds) as ImageBind's data code samples them with pytorchvideo 0.1.5.

    ImageBind uses pytorchvideo's ``ConstantClipsPerVideoSampler``, which in the
    release on PyPI (0.1.5, what the GroundingGPT authors' unpinned requirement
    installs) divides the available start range ``[0, duration - clip_seconds]`` into
    ``num_clips`` equal steps and starts clip ``i`` at ``i * (duration - clip_seconds) /
    num_clips``. The divisor is ``num_clips``, not ``num_clips - 1``: the last clip does
    not reach the end of the audio (10 s gives starts ``[0, 8/3, 16/3]``, so the audio
    after 7.33 s is never seen). pytorchvideo's later sources divide by
    ``max(num_clips - 1, 1)`` (``[0, 4, 8]``), and ImageBind's own requirements pin such
    a commit. PyPI's 0.1.5 predates that change (January vs April 2022), so this follows
    what the GroundingGPT authors' environment most likely ran. Audio no
    longer than one clip gives ``num_clips`` clips that all start at 0.

    Args:
        duration: Audio length in seconds.
        num_clips: Number of clips.
        clip_seconds: Clip length in seconds.

    Returns:
        ``num_clips`` start times in seconds.

    Raises:
        ValueError: For a negative duration, ``num_clips < 1`` or a non-positive clip length.
    """
    return [float(s) for s in _clip_starts_exact(duration, num_clips, clip_seconds)]


def _clip_bounds(num_samples: int, sample_rate: int, num_clips: int, clip_seconds: float) -> list[tuple[int, int]]:
    """Sample ranges ``[start, end)`` of the clips, clipped to the signal.

    Mirrors ImageBind's ``waveform[:, int(start * sr) : int(end * sr)]`` with the
    duration computed as ``num_samples / sample_rate``.
    """
    clip = Fraction(clip_seconds)
    bounds = []
    for start in _clip_starts_exact(num_samples / sample_rate, num_clips, clip_seconds):
        a = int(start * sample_rate)
        b = int((start + clip) * sample_rate)
        bounds.append((min(a, num_samples), min(b, num_samples)))
    return bounds


def waveform_to_clips(
    waveform: Tensor,
    sample_rate: int = TARGET_SAMPLE_RATE,
    num_clips: int = 3,
    clip_seconds: float = 2.0,
) -> Tensor:
    """Cuts a mono waveform into ImageBind's clips (see :func:`audio_clip_starts`).

    Args:
        waveform: Tensor ``[T]``.
        sample_rate: Rate of ``waveform`` in Hz.
        num_clips: Number of clips.
        clip_seconds: Clip length in seconds.

    Returns:
        Tensor ``[num_clips, ceil(clip_seconds * sample_rate)]``; clips that run past
        the end of the audio (audio shorter than a clip) are zero-padded at the end.

    Raises:
        ValueError: If ``waveform`` is not 1-D or the clip settings are invalid.
    """
    if waveform.dim() != 1:
        raise ValueError(f"waveform must have shape [T], got {tuple(waveform.shape)}")
    rate = _check_rate(sample_rate, "sample_rate")
    clip_samples = math.ceil(Fraction(clip_seconds) * rate)
    bounds = _clip_bounds(waveform.numel(), rate, num_clips, clip_seconds)
    clips = waveform.new_zeros((num_clips, clip_samples))
    for i, (a, b) in enumerate(bounds):
        n = min(b - a, clip_samples)
        clips[i, :n] = waveform[a : a + n]
    return clips


def preprocess_audio(
    source_or_waveform: AudioSource,
    num_clips: int = 3,
    clip_seconds: float = 2.0,
    num_mel_bins: int = 128,
    target_frames: int = 204,
    mean: float = AUDIO_MEAN,
    std: float = AUDIO_STD,
    limits: DecodeLimits | None = None,
) -> ProcessedAudio:
    """Turns audio into ImageBind audio-encoder input.

    Reproduces ImageBind's ``load_and_transform_audio_data`` for one audio:
    16 kHz mono, :func:`audio_clip_starts` clips, and per clip a mean-subtracted
    Kaldi fbank (:func:`~groundinggpt.media.fbank.kaldi_fbank`, 25 ms / 10 ms,
    Hann, no dither), transposed, zero-padded / cropped to ``target_frames`` and
    normalised. Two ImageBind details are kept on purpose, as the encoder was
    trained with them:

    * padding happens on the *features*: a clip shorter than ``clip_seconds`` (only
      when the audio itself is shorter) is analysed as is and its missing frames
      are 0 before normalisation, i.e. ``-mean / std`` (about 0.467) after. A full
      2 s clip has 198 frames, so its last 6 columns are that value too;
    * ImageBind subtracts each clip's mean in place on a view of the shared
      waveform, so when clips overlap (audio shorter than about 8 s) a later clip
      sees the earlier clips' means subtracted on the overlap. This is replicated;
      per-frame DC removal makes its effect tiny.

    ImageBind reads stereo files channel-first and analyses channel 0 only; this
    function averages the channels instead (see :func:`load_audio`).

    Args:
        source_or_waveform: Anything :func:`load_audio` accepts.
        num_clips: Number of clips.
        clip_seconds: Clip length in seconds.
        num_mel_bins: Mel bins per frame.
        target_frames: Frames per clip after padding / cropping.
        mean: Normalisation mean.
        std: Normalisation standard deviation.
        limits: Decoding limits (see :func:`load_audio`).

    Returns:
        The features ``[num_clips, 1, num_mel_bins, target_frames]`` (float32), the
        audio duration and the clip start times.

    Raises:
        MediaError: If the audio cannot be loaded (see :func:`load_audio`).
        ValueError: For invalid clip or feature settings.
    """
    if target_frames < 1:
        raise ValueError(f"target_frames must be >= 1, got {target_frames}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    audio = load_audio(source_or_waveform, TARGET_SAMPLE_RATE, limits=limits)
    rate = audio.sample_rate
    # A private float32 copy, so the in-place mean subtraction below (ImageBind's
    # behaviour) never touches the caller's tensor.
    buffer = audio.waveform.to(torch.float32).clone()
    bounds = _clip_bounds(buffer.numel(), rate, num_clips, clip_seconds)
    starts = audio_clip_starts(audio.duration, num_clips, clip_seconds)

    clips: list[Tensor] = []
    for a, b in bounds:
        view = buffer[a:b]
        if view.numel():
            view -= view.mean()
        clips.append(view.clone())

    if len({c.numel() for c in clips}) == 1:
        fbanks = list(kaldi_fbank(torch.stack(clips), sample_rate=rate, num_mel_bins=num_mel_bins))
    else:
        fbanks = [kaldi_fbank(c, sample_rate=rate, num_mel_bins=num_mel_bins) for c in clips]

    # Zeros in the log-mel domain where frames are missing, as ImageBind pads.
    features = torch.zeros((num_clips, 1, num_mel_bins, target_frames), dtype=torch.float32)
    for i, fb in enumerate(fbanks):
        n = min(fb.shape[0], target_frames)
        features[i, 0, :, :n] = fb[:n].T
    features = (features - mean) / std
    return ProcessedAudio(input_features=features, duration=audio.duration, clip_starts=starts)
