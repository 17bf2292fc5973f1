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
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from av.video.reformatter import VideoReformatter
import torch
from PIL import Image

from groundinggpt.errors import MediaError, MediaLimitError
from groundinggpt.media.containers import open_input
from groundinggpt.media.frame_plan import decode_in_parallel, frames_on_screen, read_packet_index
from groundinggpt.media.limits import DecodeLimits
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

# FFmpeg demuxers that render text/ANSI art files as "video".
_TEXT_DEMUXERS = frozenset({"tty", "bin", "xbin", "adf", "idf"})


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


@dataclass
class _StreamInfo:
    """Timing facts of the video stream, in exact fractions where possible."""

    time_base: Fraction
    start_pts: int
    duration: Fraction | None  # seconds
    fps: Fraction | None
    num_frames: int | None


@dataclass
class _Decoded:
    """A decoded frame and its time (seconds from stream start)."""

    time: Fraction
    frame: Any


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


class _PixelBudget:
    """Counts the pixels decoded from one video against :class:`DecodeLimits`."""

    def __init__(self, limits: DecodeLimits, name: str) -> None:
        self.limits, self.name, self.decoded = limits, name, 0
        self._lock = threading.Lock()  # parallel decoders charge the same budget

    def check_size(self, width: int, height: int) -> None:
        cap = self.limits.max_frame_pixels
        if cap is not None and width * height > cap:
            raise MediaLimitError(f"{self.name}: video frames of {width}x{height} = {width * height} pixels; "
                                  f"expected at most {cap} pixels per frame")

    def charge(self, frame: Any) -> None:
        """Called for every decoded frame (a stream may change size midway)."""
        self.check_size(frame.width, frame.height)
        with self._lock:
            self.decoded += frame.width * frame.height
            decoded = self.decoded
        cap = self.limits.max_video_pixels
        if cap is not None and decoded > cap:
            raise MediaLimitError(f"{self.name}: decoding the sampled frames took more than {cap} pixels "
                                  f"(frames x width x height; decoding stopped there); expected at most {cap}")


def _check_seconds(info: _StreamInfo, max_seconds: float | None, name: str) -> None:
    if max_seconds is not None and info.duration is not None and info.duration > max_seconds:
        raise MediaLimitError(f"{name}: the video lasts {float(info.duration):.1f} s; expected at most "
                              f"{max_seconds:g} s", code="media_too_long")


def _check_not_mostly_frozen(picks: list[_Decoded], targets: list[Fraction], info: _StreamInfo, name: str) -> None:
    """Refuse a clip whose data breaks off early: its later targets would all get the last
    decodable frame, and a model asked *when* something happens would see a frozen video.
    Called only when the decoder ran out of frames: a variable-frame-rate video that shows
    one frame for seconds and then goes on is intact."""
    if not info.fps or not targets:
        return
    late = 2 / info.fps  # a pick may lag its target by a frame interval, never by more
    stale = sum(1 for pick, target in zip(picks, targets) if target - pick.time > late)
    if 2 * stale > len(targets):
        last = max(pick.time for pick in picks)
        raise MediaError(f"{name}: video data breaks off at {float(last):.1f} s of {float(info.duration or 0):.1f} s; "
                         f"{stale} of {len(targets)} sampled frames would repeat the last decodable one")


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


def video_stream(container: av.container.InputContainer, name: str) -> av.video.stream.VideoStream:
    """The container's first video stream; MediaError for a text file or a still image posing as one."""
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        found = f"{' and '.join(kinds)} stream(s) only" if kinds else "no streams at all"
        raise MediaError(f"{name}: expected a video stream, found {found}")
    if container.format.name in _TEXT_DEMUXERS:
        # FFmpeg's tty demuxer "plays" any *.txt file as a rendering of the text;
        # that is a text file, not a video.
        raise MediaError(
            f"{name}: expected a video, got a text file (FFmpeg format {container.format.name!r})"
        )
    if container.format.name.endswith("_pipe") or container.format.name == "image2":
        # FFmpeg also "plays" a single picture (png_pipe, jpeg_pipe ...) as a one-frame
        # video: an image sent in the video slot would get an answer about a 0.04 s clip.
        raise MediaError(
            f"{name}: expected a video, got a still image (FFmpeg format {container.format.name!r}); "
            "pass it as an image"
        )
    return container.streams.video[0]


def _positive_fraction(value: Any) -> Fraction | None:
    try:
        fraction = Fraction(value) if value is not None else None
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return fraction if fraction is not None and fraction > 0 else None


def _stream_info(container: av.container.InputContainer, stream: Any) -> _StreamInfo:
    """Read timing metadata; any of duration/fps/frame count may be missing."""
    time_base = _positive_fraction(stream.time_base) or Fraction(1, av.time_base)
    start_pts = stream.start_time if stream.start_time is not None else 0
    duration = None
    if stream.duration:  # stream's own length is the most specific
        duration = _positive_fraction(stream.duration * time_base)
    if duration is None and container.duration:  # whole file, microseconds
        duration = _positive_fraction(Fraction(container.duration, av.time_base))
    fps = _positive_fraction(stream.average_rate)
    num_frames = stream.frames if stream.frames and stream.frames > 0 else None
    if fps is None and num_frames and duration:
        fps = Fraction(num_frames) / duration
    if fps is None:
        fps = _positive_fraction(stream.guessed_rate)
    return _StreamInfo(time_base, start_pts, duration, fps, num_frames)


def _fill_from_packet_scan(reader: _Reader, info: _StreamInfo, max_seconds: float | None = None) -> None:
    """Complete missing duration/frame count by demuxing (not decoding) all packets;
    stops with MediaLimitError as soon as the timestamps pass ``max_seconds``."""
    count, end = 0, None
    limit = None if max_seconds is None else info.start_pts + Fraction(max_seconds) / info.time_base
    try:
        for packet in reader.container.demux(reader.stream):
            if packet.size == 0:  # the flush packet at end of stream
                continue
            count += 1
            if packet.pts is not None:
                packet_end = packet.pts + max(packet.duration or 0, 0)
                end = packet_end if end is None else max(end, packet_end)
                if limit is not None and end > limit:
                    raise MediaLimitError(f"{reader.name}: the video lasts more than {max_seconds:g} s (its "
                                          f"container gives no duration; the scan stopped there); expected at "
                                          f"most {max_seconds:g} s", code="media_too_long")
    except av.FFmpegError as exc:
        logger.warning("%s: demuxing stopped early (%s)", reader.name, exc)
    if count == 0:
        raise MediaError(f"{reader.name}: expected a video with at least one frame, found none (zero-length video)")
    if info.num_frames is None:
        info.num_frames = count
    if info.duration is None and end is not None:
        info.duration = _positive_fraction((end - info.start_pts) * info.time_base)
    if info.duration is None and info.fps:
        info.duration = count / info.fps
    if info.fps is None and info.duration:
        info.fps = count / info.duration


# ------------------------------------------------------------------------- sampling


class _FrameCursor:
    """Decodes a stream forward, answering "which frame is on screen at t?".

    Keeps the last frame at or before the previous target and one look-ahead frame,
    so consecutive targets are answered without re-decoding or buffering the video.
    """

    def __init__(self, container: Any, stream: Any, info: _StreamInfo, name: str,
                 budget: _PixelBudget | None = None) -> None:
        self._container, self._stream, self._info, self._name = container, stream, info, name
        self._budget = budget
        self._frames: Any = None
        self._prev: _Decoded | None = None
        self._ahead: _Decoded | None = None
        self._index = 0  # frames since the last seek, for timestamps without pts
        self.decoded = 0
        self.first_after_seek: Fraction | None = None
        self.ran_out = False  # the decoder had no more frames (end of data, or a damaged tail)

    @property
    def position(self) -> Fraction | None:
        """Time of the last frame taken from the decoder (None right after a seek)."""
        last = self._ahead or self._prev
        return last.time if last else None

    def seek(self, time: Fraction) -> None:
        """Jump to the keyframe at or before ``time``."""
        pts = self._info.start_pts + int(time / self._info.time_base)
        self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
        self._frames, self._prev, self._ahead, self._index = None, None, None, 0
        self.first_after_seek = None
        self.ran_out = False

    def frame_at(self, time: Fraction) -> _Decoded | None:
        """The last frame with timestamp <= ``time``, else the first after it."""
        while True:
            item = self._ahead if self._ahead is not None else self._next()
            self._ahead = None
            if item is None:
                break
            if item.time <= time:
                self._prev = item
                continue
            self._ahead = item
            break
        return self._prev or self._ahead

    def _next(self) -> _Decoded | None:
        if self._frames is None:
            self._frames = self._container.decode(self._stream)
        try:
            frame = next(self._frames)
        except StopIteration:
            self.ran_out = True
            return None
        except av.FFmpegError as exc:
            if self.decoded == 0:
                raise MediaError(f"{self._name}: video data is corrupt, no frame could be decoded ({exc})") from exc
            # A damaged tail should not discard the frames before it.
            logger.warning("%s: decoding stopped early (%s)", self._name, exc)
            self._frames = iter(())
            self.ran_out = True
            return None
        self.decoded += 1
        if self._budget is not None:
            self._budget.charge(frame)
        item = _Decoded(self._frame_time(frame), frame)
        self._index += 1
        if self.first_after_seek is None:
            self.first_after_seek = item.time
        return item

    def _frame_time(self, frame: Any) -> Fraction:
        if frame.pts is not None:
            return (frame.pts - self._info.start_pts) * self._info.time_base
        # Raw elementary streams carry no timestamps; only then fall back to
        # counting frames at the average rate.
        return Fraction(self._index) / (self._info.fps or 1)


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


def _to_display_image(frame: Any, reformatter: VideoReformatter) -> Image.Image:
    """RGB PIL image of a decoded frame, rotated as players would show it.

    Phones store portrait video as landscape plus a display matrix; ignoring it
    would give the model (and box coordinates) a sideways picture. ``rotation`` is
    counter-clockwise degrees, as is ``PIL.Image.rotate``.
    """
    image = Image.fromarray(reformatter.reformat(frame, format="rgb24").to_ndarray())
    rotation = round((getattr(frame, "rotation", 0) or 0) / 90) * 90 % 360
    if rotation == 90:
        image = image.transpose(Image.Transpose.ROTATE_90)
    elif rotation == 180:
        image = image.transpose(Image.Transpose.ROTATE_180)
    elif rotation == 270:
        image = image.transpose(Image.Transpose.ROTATE_270)
    return image


# The writer (for the synthetic world, tests and benches; no model input is ever written)
# lives in its own module; imported here so `media.video.write_video` keeps working.
from groundinggpt.media.video_writer import write_video  # noqa: E402
