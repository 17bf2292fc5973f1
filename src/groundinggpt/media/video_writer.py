"""Write frames (and a sound track) to a video file: the synthetic world, tests and benches make their videos here.

Kept apart from :mod:`groundinggpt.media.video`, which only reads: no model input is ever
written, and the reader's module stays about decoding.

Example:
    >>> import numpy as np, tempfile, os
    >>> from groundinggpt.media.video import load_video
    >>> path = os.path.join(tempfile.mkdtemp(), "clip.mp4")
    >>> write_video(path, [np.full((16, 16, 3), 40 * i, np.uint8) for i in range(5)], fps=5)
    >>> round(load_video(path, num_frames=2).duration, 1)
    1.0
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import av
import numpy as np
from PIL import Image

__all__ = ["write_video"]


def write_video(
    path: str | os.PathLike,
    frames: Sequence[np.ndarray | Image.Image],
    fps: float = 10,
    codec: str = "libx264",
    *,
    audio: tuple[np.ndarray, int] | None = None,
    timestamps: Sequence[float] | None = None,
    gop_size: int = 12,
    audio_codec: str | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """Write frames (and optionally a mono/multichannel audio track) to a video file.

    The container comes from the file extension (``.mp4``, ``.mkv``, ...). Frames are
    encoded as yuv420p (so width and height must be even) without B-frames: with
    B-frames, libx264 + the MP4 muxer record a wrong track duration for
    irregular timestamps.

    Args:
        path: Output file.
        frames: ``uint8`` ``H x W x 3`` RGB arrays or PIL images, all the same size.
        fps: Frame rate; with ``timestamps`` it only sets the last frame's
            duration (``1 / fps``) and the nominal rate.
        codec: Video encoder, e.g. ``"libx264"`` or ``"mpeg4"``.
        audio: ``(waveform, sample_rate)``; waveform float32 in [-1, 1], shape
            ``[samples]`` (mono) or ``[channels, samples]``.
        timestamps: Optional presentation time in seconds of each frame (strictly
            increasing), for variable-frame-rate videos.
        gop_size: Maximum distance between keyframes, in frames.
        audio_codec: Audio encoder; default: the first of aac, libmp3lame,
            libopus that this FFmpeg build has.
        options: Extra encoder options (e.g. ``{"crf": "18"}``).

    Raises:
        ValueError: Bad frames, timestamps or audio.
    """
    arrays = [_frame_array(f, i) for i, f in enumerate(frames)]
    if not arrays:
        raise ValueError("write_video needs at least one frame")
    height, width = arrays[0].shape[:2]
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError("all frames must have the same size")
    if width % 2 or height % 2:
        raise ValueError(f"yuv420p needs even width and height, got {width}x{height}")
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    pts, time_base = _frame_pts(len(arrays), rate, timestamps)
    with av.open(os.fspath(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, options=dict(options or {}))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.codec_context.gop_size = gop_size
        stream.codec_context.max_b_frames = 0
        audio_stream = _add_audio_stream(container, audio, audio_codec) if audio else None
        if audio_stream is not None:
            _encode_audio(container, audio_stream, audio)  # type: ignore[arg-type]
        for array, frame_pts in zip(arrays, pts):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = frame_pts, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _frame_array(frame: np.ndarray | Image.Image, index: int) -> np.ndarray:
    array = np.asarray(frame.convert("RGB") if isinstance(frame, Image.Image) else frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"frame {index}: expected a uint8 HxWx3 RGB array or PIL image, "
            f"got dtype {array.dtype} shape {array.shape}"
        )
    return np.ascontiguousarray(array)


def _frame_pts(count: int, rate: Fraction, timestamps: Sequence[float] | None) -> tuple[list[int], Fraction]:
    """Integer pts and the time base for constant or explicit frame times."""
    if timestamps is None:
        return list(range(count)), 1 / rate
    if len(timestamps) != count:
        raise ValueError(f"got {len(timestamps)} timestamps for {count} frames")
    time_base = Fraction(1, 90_000)  # the MPEG clock: fine enough for any frame rate
    pts = [round(Fraction(t) / time_base) for t in timestamps]
    if pts[0] < 0 or any(b <= a for a, b in zip(pts, pts[1:])):
        raise ValueError("timestamps must be >= 0 and strictly increasing")
    return pts, time_base


def _add_audio_stream(container: Any, audio: tuple[np.ndarray, int], codec: str | None) -> Any:
    _, sample_rate = audio
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"audio sample_rate must be a positive int, got {sample_rate!r}")
    candidates = [codec] if codec else ["aac", "libmp3lame", "libopus"]
    for candidate in candidates:
        try:
            av.codec.Codec(candidate, "w")
        except (av.FFmpegError, ValueError):  # UnknownCodecError is a ValueError
            continue
        # Opus only runs at 48 kHz (and friends); PyAV resamples the frames.
        rate = 48_000 if candidate == "libopus" else sample_rate
        return container.add_stream(candidate, rate=rate)
    raise ValueError(f"no audio encoder available among {candidates}")


def _encode_audio(container: Any, stream: Any, audio: tuple[np.ndarray, int]) -> None:
    waveform, sample_rate = audio
    samples = np.asarray(waveform, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[None, :]
    if samples.ndim != 2 or samples.shape[1] == 0 or samples.shape[0] not in (1, 2):
        raise ValueError(f"audio must be [samples] or [1|2, samples], got shape {samples.shape}")
    layout = "mono" if samples.shape[0] == 1 else "stereo"
    stream.layout = layout
    # "fltp" (planar) takes [channels, samples]; the encoder's resampler converts.
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=layout)
    frame.sample_rate, frame.pts, frame.time_base = sample_rate, 0, Fraction(1, sample_rate)
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
