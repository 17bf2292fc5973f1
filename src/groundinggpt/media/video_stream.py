"""Reading one video stream: its timing facts, the decode budget, and a cursor that decodes forward.

The internals :func:`groundinggpt.media.video.load_video` samples with, kept apart from the
sampling policy (which frames, seek or not, planned or frame by frame) that ``video.py`` holds:

- :func:`video_stream` / :func:`_stream_info` / :func:`_fill_from_packet_scan`: which stream is
  the video (a text file or a still image posing as one is refused) and its duration, rate and
  frame count, in exact fractions, demuxing the packets only when the container does not say;
- :class:`_PixelBudget`, :func:`_check_seconds`, :func:`_check_not_mostly_frozen`: the decoding
  limits counted on what is decoded, and the refusal of a clip whose data breaks off early;
- :class:`_FrameCursor`: "which frame is on screen at t?" answered by decoding forward;
- :func:`_to_display_image`: a decoded frame as the RGB picture a player shows (rotation applied).

The names keep their leading underscore: they are this package's, not the public API.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from av.video.reformatter import VideoReformatter
from PIL import Image

from groundinggpt.errors import MediaError, MediaLimitError
from groundinggpt.media.limits import DecodeLimits

__all__ = ["video_stream"]

logger = logging.getLogger("groundinggpt.media.video")

# FFmpeg demuxers that render text/ANSI art files as "video".
_TEXT_DEMUXERS = frozenset({"tty", "bin", "xbin", "adf", "idf"})



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


def _fill_from_packet_scan(reader: Any, info: _StreamInfo, max_seconds: float | None = None) -> None:
    """Complete missing duration/frame count by demuxing (not decoding) all packets of ``reader``
    (a ``video._Reader``);
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


