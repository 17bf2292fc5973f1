"""Decoding audio files block by block into a mono waveform at the target rate.

Decoding a file whole to float32 costs ``seconds x rate x channels x 4`` bytes before
anything is mixed down: an 8-channel 655 kHz FLAC of silence (171 KB for 30 s) took
1.2 GB. Here every decoded block is mixed to mono and resampled at once
(:class:`~groundinggpt.media.resample.SincResampler`), and the
:class:`~groundinggpt.media.limits.DecodeLimits` are counted on what is decoded, so a
file without a duration (a browser's WebM/Opus) or with a lying header stops at the
limit like any other. Per sample, the arithmetic is the whole-file pipeline's (channel
mean in float64, the same filter taps and sums), so normal files give bit-identical
waveforms.

soundfile (libsndfile: WAV, FLAC, OGG, MP3) is tried first, PyAV (FFmpeg) for the rest,
including the audio track of a video.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
from torch import Tensor

from groundinggpt.errors import MediaError, MediaLimitError
from groundinggpt.media.limits import DecodeLimits
from groundinggpt.media.resample import SincResampler

__all__ = ["EXPECTED_AUDIO", "MIN_SAMPLE_RATE", "MIN_SECONDS", "check_audio_extent", "decode_audio"]

#: Lowest source rate accepted. Recordings use 8 kHz and up; a header claiming a few Hz
#: would make resampling to 16 kHz multiply the samples (and the memory) by thousands.
MIN_SAMPLE_RATE = 4000
#: Shortest audio accepted: one 25 ms fbank window; less would be pure padding.
MIN_SECONDS = 0.025
#: Samples x channels per decoded block (4 MB as float32).
BLOCK_SAMPLES = 1 << 20
#: Mono samples gathered before they are resampled: a decoder's frames are small (960
#: samples for Opus) and each resampling step has a fixed cost (tens of ms when torch's
#: threads contend on a busy machine); the output does not depend on the grouping.
RESAMPLE_SAMPLES = 1 << 16

EXPECTED_AUDIO = "a WAV/FLAC/OGG/MP3/M4A/AAC file or a video file with an audio track"


def check_audio_extent(num_samples: int, rate: int, name: str) -> None:
    """MediaError unless the audio has a usable sample rate and at least one fbank window.

    >>> check_audio_extent(100, 16000, "blip.wav")
    Traceback (most recent call last):
    ...
    groundinggpt.errors.MediaError: blip.wav: 6.2 ms of audio; expected at least 25 ms (one fbank window)
    """
    if rate < MIN_SAMPLE_RATE:
        raise MediaError(f"{name}: sample rate {rate} Hz; expected at least {MIN_SAMPLE_RATE} Hz")
    if num_samples / rate < MIN_SECONDS:
        raise MediaError(f"{name}: {1000 * num_samples / rate:.1f} ms of audio; expected at least "
                         f"{1000 * MIN_SECONDS:.0f} ms (one fbank window)")


class _Samples:
    """Output samples gathered into 1 M-sample tensors.

    Thousands of small output tensors kept alive between the decoder's and resampler's
    freed temporaries pin the freed memory: resident memory grew to 15x the output for
    an Opus file (20 ms frames). Few large buffers leave the freed memory reusable."""

    SIZE = 1 << 20

    def __init__(self) -> None:
        self._full: list[Tensor] = []
        self._current = torch.empty(self.SIZE)
        self._used = 0

    def add(self, samples: Tensor) -> None:
        while samples.numel():
            take = min(self.SIZE - self._used, samples.numel())
            self._current[self._used:self._used + take] = samples[:take]
            self._used += take
            samples = samples[take:]
            if self._used == self.SIZE:
                self._full.append(self._current)
                self._current, self._used = torch.empty(self.SIZE), 0

    def tensor(self) -> Tensor:
        return torch.cat([*self._full, self._current[:self._used]])


class _MonoSink:
    """Takes decoded ``[channels, n]`` float32 blocks; keeps them mixed to mono and resampled."""

    def __init__(self, name: str, target_rate: int | None, limits: DecodeLimits):
        self.name, self.target, self.limits = name, target_rate, limits
        self.rate: int | None = None
        self.frames = 0  # source samples per channel so far
        self.samples = 0  # samples x channels so far
        self._resampler: SincResampler | None = None
        self._out = _Samples()
        self._pending: list[np.ndarray] = []  # mono blocks not yet resampled
        self._pending_samples = 0

    def start(self, rate: int) -> None:
        if rate < MIN_SAMPLE_RATE:  # refused before decoding: resampling up would multiply it
            raise MediaError(f"{self.name}: sample rate {rate} Hz; expected at least {MIN_SAMPLE_RATE} Hz")
        self.rate = rate
        if self.target is not None and self.target != rate:
            self._resampler = SincResampler(rate, self.target)

    def add(self, block: np.ndarray) -> None:
        channels, n = block.shape
        self.frames += n
        self.samples += n * channels
        self._check_limits(channels)
        # The channel mean in float64, as the whole-file pipeline does (per sample, same sums).
        mono = block.mean(axis=0, dtype=np.float64) if channels > 1 else block[0]
        mono = np.array(mono, dtype=np.float32, copy=True)
        # A float WAV can hold NaN, which would flow into the features and turn a training
        # run's weights into NaN.
        if not np.isfinite(mono).all():
            raise MediaError(f"{self.name}: samples contain NaN or infinite values; expected finite audio samples")
        if self._resampler is None:
            self._out.add(torch.from_numpy(mono))
            return
        self._pending.append(mono)
        self._pending_samples += len(mono)
        if self._pending_samples >= RESAMPLE_SAMPLES:
            self._resample_pending()

    def _resample_pending(self) -> None:
        if self._pending:
            block = torch.from_numpy(np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0])
            self._out.add(self._resampler.push(block[None])[0])
            self._pending, self._pending_samples = [], 0

    def _check_limits(self, channels: int) -> None:
        limits, rate = self.limits, self.rate or 1
        if limits.max_seconds is not None and self.frames / rate > limits.max_seconds:
            raise MediaLimitError(f"{self.name}: the audio lasts more than {limits.max_seconds:g} s (decoding stopped "
                                  f"there); expected at most {limits.max_seconds:g} s", code="media_too_long")
        if limits.max_audio_samples is not None and self.samples > limits.max_audio_samples:
            raise MediaLimitError(f"{self.name}: more than {limits.max_audio_samples} samples x channels decoded "
                                  f"({channels} channels at {rate} Hz, {self.frames / rate:.1f} s so far); "
                                  f"expected at most {limits.max_audio_samples} (decoding stopped there)")

    def finish(self) -> tuple[Tensor, int]:
        if self.frames == 0 or self.rate is None:
            raise MediaError(f"{self.name}: contains no audio samples (length 0); expected at least one sample")
        check_audio_extent(self.frames, self.rate, self.name)
        if self._resampler is not None:
            self._resample_pending()
            self._out.add(self._resampler.finish()[0])
        mono = self._out.tensor()
        return mono, self.target if self._resampler is not None else self.rate


def _decode_with_soundfile(file: Any, sink: _MonoSink) -> tuple[Tensor, int] | None:
    """Decodes into ``sink``; None if libsndfile cannot read the file (FFmpeg is tried next)."""
    import soundfile

    try:
        sound = soundfile.SoundFile(file)
    except (RuntimeError, TypeError, ValueError, EOFError):
        # LibsndfileError is a RuntimeError; anything libsndfile cannot parse goes to FFmpeg.
        return None
    with sound:
        if sound.channels < 1:
            return None
        sink.start(int(sound.samplerate))
        frames = max(1, BLOCK_SAMPLES // sound.channels)
        while True:
            try:
                block = sound.read(frames, dtype="float32", always_2d=True)
            except (RuntimeError, TypeError, ValueError, EOFError):
                return None
            if not len(block):
                break
            sink.add(np.ascontiguousarray(block.T))
    return sink.finish()


def _pyav_blocks(container: Any, stream: Any, name: str):
    """The stream's audio as planar float32 frames at its own rate and layout; decoding
    errors become MediaError (the consumer's own errors are not caught here)."""
    import av

    converter = av.AudioResampler(format="fltp")
    try:
        for frame in container.decode(stream):
            yield from converter.resample(frame)
        yield from converter.resample(None)
    except (av.FFmpegError, ValueError, EOFError) as exc:
        raise MediaError(f"{name}: the audio stream could not be decoded ({exc})") from None


def _decode_with_pyav(file: Any, sink: _MonoSink) -> tuple[Tensor, int]:
    """Decodes the first audio stream with FFmpeg into ``sink``."""
    import av  # imported here: soundfile decodes most files without it

    from groundinggpt.media.containers import open_input

    name = sink.name
    try:
        container = open_input(file)
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise MediaError(f"{name}: could not be decoded as audio ({exc}); expected {EXPECTED_AUDIO}") from None
    with container:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise MediaError(
                f"{name}: has no audio stream (streams: {', '.join(kinds)}); expected {EXPECTED_AUDIO}"
            )
        # The converter keeps the first frame's rate and layout for the whole stream.
        for out in _pyav_blocks(container, container.streams.audio[0], name):
            if sink.rate is None:
                sink.start(int(out.sample_rate))
            sink.add(out.to_ndarray())
    return sink.finish()


def decode_audio(data: bytes | None, path: str | None, name: str, target_rate: int | None,
                 limits: DecodeLimits) -> tuple[Tensor, int]:
    """Decodes a file (``path``) or its bytes (``data``) → ``(mono float32 [T], rate)``.

    The waveform is at ``target_rate`` (``None``: the source's rate), resampled while
    decoding; decoding stops with :class:`~groundinggpt.errors.MediaLimitError` as soon
    as ``limits`` are passed. MediaError for undecodable, empty, too short or non-finite
    audio, naming ``name``.
    """
    def source() -> Any:
        return path if path is not None else io.BytesIO(data)  # a fresh reader per attempt

    decoded = _decode_with_soundfile(source(), _MonoSink(name, target_rate, limits))
    return decoded if decoded is not None else _decode_with_pyav(source(), _MonoSink(name, target_rate, limits))
