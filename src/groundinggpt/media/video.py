"""Video loading (uniform frame sampling with PyAV) and preprocessing.

A video reaches the model as ``M`` frames sampled uniformly in time, each
preprocessed like an image (see :mod:`groundinggpt.media.image`). Temporal
grounding answers are expressed in seconds, so every returned frame carries its
presentation timestamp and the clip carries its duration.

Sampling
    Frame ``i`` of ``M`` is the frame *on screen* at ``t_i = D * (i + 0.5) / M``
    (``D`` = duration), i.e. the last frame whose timestamp is ``<= t_i``; only
    when nothing is on screen yet (``t_i`` before the first frame) the first
    frame after ``t_i`` is used. Segment midpoints (rather than ``i * D / M``)
    treat the start and end of the video symmetrically and never ask for a time
    at or past the end; "on screen at" (rather than "nearest") makes ``M`` equal to
    the frame count of a constant-rate video return every frame exactly once, and
    is well defined for variable frame rates. All times come from ``pts *
    time_base`` (exact fractions), never from an assumed constant fps.

Decoding strategy
    Long videos are sampled by seeking to the keyframe before each target and
    decoding forward; short ones (at most ``2 * M`` frames) are decoded once from
    the start, see :func:`load_video`. While seeking, a target that is closer to
    the decoder's position than seeks have been landing before their targets is
    reached by decoding on instead (a seek would land on a keyframe already
    passed and decode the same frames again).

This module is the sampling policy; reading one stream (its timing facts, the decode budget,
the forward-decoding frame cursor) is :mod:`groundinggpt.media.video_stream`, planned decoding
is :mod:`groundinggpt.media.frame_plan` and the writer :mod:`groundinggpt.media.video_writer`.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from av.video.reformatter import VideoReformatter
import torch
from PIL import Image

from groundinggpt.errors import MediaError
from groundinggpt.media.containers import open_input
from groundinggpt.media.frame_plan import decode_in_parallel, frames_on_screen, read_packet_index
from groundinggpt.media.limits import DecodeLimits
from groundinggpt.media.video_stream import (
    _check_not_mostly_frozen,
    _check_seconds,
    _Decoded,
    _fill_from_packet_scan,
    _FrameCursor,
    _PixelBudget,
    _stream_info,
    _StreamInfo,
    _to_display_image,
    video_stream,
)
from groundinggpt.media.image import (
    CLIP_MEAN,
    CLIP_STD,
    DEFAULT_IMAGE_SIZE,
    describe_source,
    normalize_frames,
    resize_for_clip,
)

__all__ = [
    "DEFAULT_NUM_FRAMES",
    "ProcessedVideo",
    "frame_indices",
    "VideoClip",
    "VideoSource",
    "load_video",
    "preprocess_video",
    "sample_times",
    "write_video",
]

logger = logging.getLogger(__name__)

#: Frames sampled per video by default.
DEFAULT_NUM_FRAMES = 64

#: What :func:`load_video` accepts: a filesystem path or the encoded file's bytes.
VideoSource = str | os.PathLike | bytes

# Short videos are decoded sequentially when they have at most this many source
# frames per requested frame (see load_video).
_SEQUENTIAL_FRAMES_PER_SAMPLE = 2

@dataclass
class VideoClip:
    """Frames sampled from a video.

    Attributes:
        frames: RGB images, exactly as many as requested (frames repeat when the
            video has fewer), except with ``"index"`` sampling, where a clip shorter
            than the request gives each of its frames once. Display rotation metadata is already applied.
        timestamps: Presentation time in seconds of each returned frame, relative
            to the start of the video stream (non-decreasing).
        duration: Length of the video stream in seconds.
        fps: Average frame rate (frames per second; ``0.0`` if unknown).
        num_source_frames: Frames in the stream, or ``None`` if the container does
            not say and it was not counted.
        original_size: ``(width, height)`` of the (rotated) frames.
        num_decoded_frames: How many frames were decoded to build the clip, a
            cost diagnostic (seeking keeps it far below the frame count).
    """

    frames: list[Image.Image]
    timestamps: list[float]
    duration: float
    fps: float
    num_source_frames: int | None
    original_size: tuple[int, int]
    num_decoded_frames: int = 0


@dataclass
class ProcessedVideo:
    """A video ready for the vision tower.

    Attributes:
        pixel_values: ``[M, 3, size, size]`` float32, normalised like images.
        timestamps: Seconds of each frame (see :class:`VideoClip`).
        duration: Seconds.
        original_size: ``(width, height)`` of the source frames.
    """

    pixel_values: torch.Tensor
    timestamps: list[float]
    duration: float
    original_size: tuple[int, int]


# --------------------------------------------------------------------------- public


def sample_times(duration: float | Fraction, num_frames: int) -> list[Fraction | float]:
    """Target times ``duration * (i + 0.5) / num_frames`` for ``i < num_frames``.

    Exact when ``duration`` is a ``Fraction``.
    """
    _check_num_frames(num_frames)
    return [duration * Fraction(2 * i + 1, 2 * num_frames) for i in range(num_frames)]


def frame_indices(num_source_frames: int, num_frames: int) -> list[int]:
    """The released inference's frame choice: ``⌊i·n/M⌋`` for ``i < M`` from frame 0, and
    every frame (``0 … n−1``, fewer than M) when the clip has ``n < M`` frames.

    >>> frame_indices(128, 4), frame_indices(3, 4)
    ([0, 32, 64, 96], [0, 1, 2])
    """
    _check_num_frames(num_frames)
    if num_source_frames < num_frames:
        return list(range(max(num_source_frames, 0)))
    return [i * num_source_frames // num_frames for i in range(num_frames)]


def _index_targets(info: _StreamInfo, num_frames: int) -> list[Fraction] | None:
    """Times at which frames :func:`frame_indices` are on screen (the middle of each frame's
    interval), or ``None`` when the stream says neither its frame count nor its rate."""
    fps = info.fps
    count = info.num_frames
    if count is None and info.duration is not None and fps:
        count = round(info.duration * fps)
    if not fps or not count:
        return None
    return [(Fraction(k) + Fraction(1, 2)) / fps for k in frame_indices(count, num_frames)]


def load_video(
    source: VideoSource,
    num_frames: int = DEFAULT_NUM_FRAMES,
    *,
    seek: bool | None = None,
    sampling: str = "uniform",
    limits: DecodeLimits | None = None,
) -> VideoClip:
    """Sample ``num_frames`` frames uniformly in time from a video.

    Args:
        source: Path or encoded bytes of a video file (any container/codec FFmpeg
            can read; a still image is read as a one-frame video).
        num_frames: How many frames to return (always exactly this many).
        seek: ``True`` to seek for every target, ``False`` to decode from the start
            once, ``None`` (default) to seek only when the video has more than
            ``2 * num_frames`` frames.
        sampling: ``"uniform"`` (the module doc's midpoints) or ``"index"`` (the authors'
            released inference, :func:`frame_indices`: frames ``⌊i·n/M⌋`` from frame 0, all
            ``n`` frames of a clip shorter than ``M``; a frame is found by its time, the
            middle of its interval at the stream's average rate).
        limits: Decoding limits (default :class:`~groundinggpt.media.limits.DecodeLimits`):
            the length (from the timestamps, scanning the packets when the container
            does not say), the pixels of one frame (from the header, then of every
            decoded frame) and the frames x pixels decoded in all.

    Returns:
        A :class:`VideoClip`.

    Raises:
        MediaError: Missing file, unreadable/corrupt data, no video stream (e.g.
            an audio-only file), no decodable frames, or an unsupported source
            type. The message names the source.
        MediaLimitError: A limit was passed (decoding stops there).
    """
    _check_num_frames(num_frames)
    if sampling not in ("uniform", "index"):
        raise ValueError(f"sampling must be 'uniform' or 'index', got {sampling!r}")
    name = describe_source(source)
    limits = limits or DecodeLimits()
    reader = _Reader(source, name, _PixelBudget(limits, name))
    try:
        info = _stream_info(reader.container, reader.stream)
        reader.budget.check_size(reader.stream.codec_context.width or 0, reader.stream.codec_context.height or 0)
        if info.duration is None:
            # Missing metadata (e.g. a browser-recorded WebM, a raw .h264 stream):
            # scan the packets, which only demuxes (no decoding), so that targets can
            # be placed. Not done merely to count frames (MKV/TS never store the
            # count): that would read the whole file for a number we can estimate.
            _fill_from_packet_scan(reader, info, limits.max_seconds)
            reader.reopen()
        _check_seconds(info, limits.max_seconds, name)
        # The planned decoder chooses per group of pictures whether to seek; only an
        # explicit seek=False keeps it to one pass from the start.
        plan_seek = seek is not False
        if seek is None:
            estimate = info.num_frames
            if estimate is None and info.duration is not None and info.fps:
                estimate = round(info.duration * info.fps)
            # Decode cost grows with the number of frames decoded, and a seek
            # decodes from the keyframe before its target: with few frames per
            # target, one sequential pass decodes each frame at most once, while M
            # seeks into the same GOPs would decode frames several times (and pay M
            # decoder flushes). With many frames per target, seeking skips most.
            seek = estimate is not None and estimate > _SEQUENTIAL_FRAMES_PER_SAMPLE * num_frames
        targets = _index_targets(info, num_frames) if sampling == "index" else None
        if targets is None:
            targets = sample_times(info.duration or Fraction(0), num_frames)
        picks, decoded, ran_out = _sample_planned(reader, info, targets, seek=plan_seek)
        if picks is None and seek:
            picks, decoded, ran_out = _sample(reader, info, targets, seek=True)
            if picks is None:  # seeking misbehaved on this file: start over plainly
                reader.reopen()
        if picks is None:
            picks, more, ran_out = _sample(reader, info, targets, seek=False)
            decoded += more
    finally:
        reader.close()
    if picks is None:
        raise MediaError(f"{name}: expected a video with at least one decodable frame, found none")
    if ran_out:  # a later frame was found after every target: the data went on, however sparse
        _check_not_mostly_frozen(picks, targets, info, name)
    return _build_clip(picks, info, decoded)


def preprocess_video(
    clip_or_source: VideoClip | VideoSource,
    num_frames: int | None = None,
    size: int = DEFAULT_IMAGE_SIZE,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    pad_to_square: bool = True,
    *,
    sampling: str = "uniform",
    resize: str | None = None,
    limits: DecodeLimits | None = None,
) -> ProcessedVideo:
    """Sample (if needed) and preprocess a video for the vision tower.

    Args:
        clip_or_source: A :class:`VideoClip` or anything :func:`load_video` accepts.
        num_frames: Frames to sample from a source (default
            :data:`DEFAULT_NUM_FRAMES`). For a clip it must be ``None`` or equal to
            the clip's frame count.
        size: Output side length in pixels.
        mean: Normaliser mean (also the pad colour).
        std: Normaliser standard deviation.
        pad_to_square: See :func:`~groundinggpt.media.image.preprocess_image`.
        sampling: See :func:`load_video` (``"index"``: the released inference's frames).
        resize: ``"pad"`` (``pad_to_square=True``), ``"crop"`` (``pad_to_square=False``) or
            ``"squash"``: resized to ``size`` × ``size`` without keeping the aspect ratio
            (bicubic), as the released inference decodes frames; ``None`` follows ``pad_to_square``.
        limits: Decoding limits (see :func:`load_video`).

    Returns:
        A :class:`ProcessedVideo` with ``pixel_values`` ``[M, 3, size, size]``.

    Raises:
        MediaError: The video cannot be loaded.
        ValueError: ``num_frames`` disagrees with a given clip.
    """
    if isinstance(clip_or_source, VideoClip):
        clip = clip_or_source
        if num_frames is not None and num_frames != len(clip.frames):
            raise ValueError(
                f"num_frames={num_frames} but the given clip has {len(clip.frames)} frames"
            )
    else:
        clip = load_video(clip_or_source, DEFAULT_NUM_FRAMES if num_frames is None else num_frames,
                          sampling=sampling, limits=limits)
    resize = resize or ("pad" if pad_to_square else "crop")
    if resize not in ("pad", "crop", "squash"):
        raise ValueError(f"resize must be 'pad', 'crop' or 'squash', got {resize!r}")
    # Repeated frames are the same PIL object; resize each distinct one once.
    resized: dict[int, Image.Image] = {}
    squares = []
    for frame in clip.frames:
        if id(frame) not in resized:
            resized[id(frame)] = (frame.resize((size, size), Image.Resampling.BICUBIC) if resize == "squash"
                                  else resize_for_clip(frame, size, mean, resize == "pad"))
        squares.append(resized[id(frame)])
    return ProcessedVideo(
        pixel_values=normalize_frames(squares, mean, std),
        timestamps=list(clip.timestamps),
        duration=clip.duration,
        original_size=clip.original_size,
    )


# ------------------------------------------------------------------ opening/probing


def _check_num_frames(num_frames: int) -> None:
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")


def _open_container(source: VideoSource, name: str) -> av.container.InputContainer:
    """Open a video for reading, mapping every failure to MediaError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise MediaError(f"{name}: expected video data, got 0 bytes")
        target: Any = io.BytesIO(bytes(source))
    elif isinstance(source, str) and source.startswith("data:"):
        raise MediaError(f"{name}: data URLs are not supported for video; pass a path or the decoded bytes")
    elif isinstance(source, (str, os.PathLike)):
        target = os.fsdecode(os.fspath(source))
        if not os.path.exists(target):
            raise MediaError(f"{name}: video file not found")
        if not os.path.isfile(target):
            raise MediaError(f"{name}: expected a video file, found a directory or special file")
    else:
        raise MediaError(f"{name}: unsupported video source type; expected a path or bytes")
    try:
        return open_input(target)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{name}: not a readable video file (corrupt or unknown format: {exc})") from exc


class _Reader:
    """An open container plus its first video stream; reopenable to rewind."""

    def __init__(self, source: VideoSource, name: str, budget: _PixelBudget | None = None) -> None:
        self.source, self.name, self.budget = source, name, budget
        self._open()

    def _open(self) -> None:
        self.container = _open_container(self.source, self.name)
        try:
            self.stream = video_stream(self.container, self.name)
        except MediaError:
            self.container.close()
            raise
        # Frame threads speed up decoding; must be set before the first decode.
        self.stream.thread_type = "AUTO"

    def reopen(self) -> None:
        """Start again from the beginning (cheaper and safer than seeking to 0)."""
        self.container.close()
        self._open()

    def close(self) -> None:
        self.container.close()


# ------------------------------------------------------------------------- sampling


def _sample_planned(
    reader: _Reader,
    info: _StreamInfo,
    targets: list[Fraction],
    *,
    seek: bool,
) -> tuple[list[_Decoded] | None, int, bool]:
    """Pick the frames from the packet index, decoding only what they need (see
    :mod:`groundinggpt.media.frame_plan`); ``(None, 0, False)`` with the reader rewound
    when the stream allows no plan, so the caller decodes frame by frame instead."""
    try:
        index = read_packet_index(reader.container, reader.stream)
        if index is None:
            reader.reopen()
            return None, 0, False
        needed = frames_on_screen(index, [info.start_pts + t / info.time_base for t in targets])

        def open_stream() -> tuple[Any, Any]:
            own = _Reader(reader.source, reader.name)
            return own.container, own.stream

        result = decode_in_parallel(open_stream, index, set(needed), seek=seek, workers=_decode_workers(),
                                    on_frame=reader.budget.charge if reader.budget is not None else None)
    except av.FFmpegError as exc:
        logger.info("%s: planned decoding failed (%s); decoding frame by frame", reader.name, exc)
        result = None
    if result is None:
        reader.reopen()  # the packet scan left it at the end; the caller decodes again
        return None, 0, False
    frames, decoded = result
    picks = [_Decoded((pts - info.start_pts) * info.time_base, frames[pts]) for pts in needed]
    # As the frame-by-frame decoder reports: it ran out when no frame follows the last target.
    ran_out = max(index.pts) <= info.start_pts + targets[-1] / info.time_base
    return picks, decoded, ran_out


def _decode_workers() -> int:
    """Parallel decoders for one long video: one per core, at most 4 (each also runs
    FFmpeg's own frame threads; more would only contend)."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _sample(
    reader: _Reader,
    info: _StreamInfo,
    targets: list[Fraction],
    *,
    seek: bool,
) -> tuple[list[_Decoded] | None, int, bool]:
    """Pick the frame on screen at each target; ``None`` if a target got no frame.

    Returns ``(picks, frames decoded, whether the decoder ran out of frames)``.
    """
    cursor = _FrameCursor(reader.container, reader.stream, info, reader.name, reader.budget)
    picks: list[_Decoded] = []
    # How far before its target a seek has landed: what one seek costs to decode.
    # When the next target is at most that far ahead of where the decoder already
    # is, decoding on is no dearer than seeking (and a seek would often land on a
    # keyframe we have already passed, decoding the same frames twice).
    seek_cost = Fraction(0)
    for target in targets:
        position = cursor.position
        seeking = seek and (position is None or target - position > seek_cost)
        if seeking:
            try:
                cursor.seek(target)
            except av.FFmpegError as exc:
                logger.info("%s: seeking failed (%s); decoding sequentially", reader.name, exc)
                return None, cursor.decoded, cursor.ran_out
        pick = cursor.frame_at(target)
        if pick is None:
            return None, cursor.decoded, cursor.ran_out
        if seeking and cursor.first_after_seek is not None:
            seek_cost = max(seek_cost, target - cursor.first_after_seek)
        picks.append(pick)
    return picks, cursor.decoded, cursor.ran_out


def _build_clip(picks: list[_Decoded], info: _StreamInfo, decoded: int) -> VideoClip:
    images: dict[int, Image.Image] = {}
    frames = []
    # One reformatter for the clip: ``VideoFrame.to_image()`` builds a new swscale
    # context per frame, which made RGB conversion ~90 % of loading a short clip.
    reformatter = VideoReformatter()
    for pick in picks:
        # A frame picked for several targets becomes one shared PIL image.
        if id(pick.frame) not in images:
            images[id(pick.frame)] = _to_display_image(pick.frame, reformatter)
        frames.append(images[id(pick.frame)])
    duration = info.duration
    last_time = max(p.time for p in picks)
    if duration is None or duration < last_time:
        # Metadata missing or too short: the video lasts at least until its
        # last frame we saw (plus one nominal frame interval).
        duration = last_time + (1 / info.fps if info.fps else 0)
    return VideoClip(
        frames=frames,
        timestamps=[float(p.time) for p in picks],
        duration=float(duration),
        fps=float(info.fps) if info.fps else 0.0,
        num_source_frames=info.num_frames,
        original_size=frames[0].size,
        num_decoded_frames=decoded,
    )


# The writer (for the synthetic world, tests and benches; no model input is ever written)
# lives in its own module; imported here so `media.video.write_video` keeps working.
from groundinggpt.media.video_writer import write_video  # noqa: E402
