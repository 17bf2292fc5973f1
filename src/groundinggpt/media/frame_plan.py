"""Planned frame decoding: read the packet index first, decode only what the picks need.

Sampling ``M`` frames from a long video costs what the decoder decodes, and most of that
is frames nobody asked for. Demuxing (reading packets without decoding them) is cheap —
a fraction of a second for a minute of 720p — and tells, before anything is decoded:

- every frame's presentation time, so the frame *on screen* at each target time (the rule
  of :mod:`groundinggpt.media.video`) is known exactly in advance;
- where the keyframes are, so each needed frame is reached from the keyframe that opens
  its group of pictures: a seek when the decoder is not already inside that group, decoding
  on when it is (a seek would land on a keyframe already passed and decode frames twice);
- which frames can be skipped: a frame that is not needed is decoded only if others
  reference it (FFmpeg's ``skip_frame = NONREF`` for its packet), so the disposable
  B-frames of a typical long-GOP stream are never decoded;
- where to stop: nothing after the last needed frame is decoded;
- how to share the work: groups of pictures decode independently, so the needed frames
  are split into contiguous runs of groups decoded by parallel decoders (each its own
  open file). A frame-threaded decoder alone keeps the cores busy only between seeks:
  each seek drains and refills its pipeline.

The frames returned are those full decoding would give (tested pixel for pixel against
sequential decoding and against decord); :func:`plan_and_decode` returns ``None`` when the
stream does not allow a plan (no packet timestamps, e.g. a raw ``.h264`` stream) or when
the decoder does not deliver a planned frame (a damaged or oddly muxed file), and the
caller falls back to its sequential decoder.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

logger = logging.getLogger(__name__)

# Seeking flushes the decoder, and a frame-threaded decoder then refills its pipeline:
# when the next group starts at most this many packets ahead, decoding on (with
# non-reference frames skipped) is no dearer than a seek.
_DECODE_ON_PACKETS = 8

# Frames come out of the decoder some packets after their own (B-frame reordering plus a
# frame per decoding thread); a wanted frame still missing this far past its packet is lost.
_GIVE_UP_PACKETS = 64


@dataclass
class PacketIndex:
    """The video stream's packets in decode order: presentation time stamps and keyframe flags."""

    pts: list[int]
    keyframe: list[bool]

    @property
    def presentation_order(self) -> list[int]:
        return sorted(self.pts)


def read_packet_index(container: Any, stream: Any) -> PacketIndex | None:
    """Demux (no decoding) every packet of ``stream``; ``None`` if any lacks a timestamp.

    Raises:
        av.FFmpegError: The demuxer failed (the caller decides what that means).
    """
    pts: list[int] = []
    keyframe: list[bool] = []
    for packet in container.demux(stream):
        if packet.size == 0:  # the flush packet at end of stream
            continue
        if packet.pts is None:
            return None
        pts.append(packet.pts)
        keyframe.append(bool(packet.is_keyframe))
    if not pts or not keyframe[0] or len(set(pts)) != len(pts):
        return None  # no packets, a stream not starting on a keyframe, or ambiguous timestamps
    return PacketIndex(pts, keyframe)


def frames_on_screen(index: PacketIndex, target_pts: list[Fraction]) -> list[int]:
    """For each target (in stream time-base units) the pts of the frame on screen then.

    That is the last frame with ``pts <= target``, or the first frame when the target is
    before every frame — the same rule :mod:`groundinggpt.media.video` applies to decoded
    frames.
    """
    order = index.presentation_order
    picks = []
    for target in target_pts:
        at = bisect.bisect_right(order, target) - 1
        picks.append(order[max(at, 0)])
    return picks


def _groups(index: PacketIndex, position: dict[int, int], needed: set[int]) -> list[tuple[int, list[int]]]:
    """Needed frames grouped by the keyframe their decoding starts from, in decode order.

    A frame belongs to the last keyframe before it in decode order, unless it is shown
    before that keyframe (a leading picture of an open GOP, which references the previous
    group): then it belongs to the group before.
    """
    keys = [i for i, is_key in enumerate(index.keyframe) if is_key]
    groups: dict[int, list[int]] = {}
    for pts in needed:
        slot = bisect.bisect_right(keys, position[pts]) - 1
        while slot > 0 and pts < index.pts[keys[slot]]:
            slot -= 1
        groups.setdefault(keys[slot], []).append(position[pts])
    return sorted(groups.items())


class _PlannedDecoder:
    """Feeds packets to the decoder, skipping the non-reference frames nobody needs."""

    def __init__(self, container: Any, stream: Any, index: PacketIndex, needed: set[int],
                 on_frame: Callable[[Any], None] | None = None) -> None:
        self.container, self.stream, self.index, self.needed = container, stream, index, needed
        self.on_frame = on_frame
        self.position = {pts: i for i, pts in enumerate(index.pts)}
        self.codec = stream.codec_context
        self.got: dict[int, Any] = {}
        self.decoded = 0
        self.next_packet = 0  # decode-order position of the next packet the demuxer gives
        self._packets: Any = None
        self._drained = False

    def start_at(self, key: int) -> None:
        """Continue from the keyframe at decode position ``key`` (a seek unless it is packet 0 of a fresh open)."""
        if self._packets is not None or key > 0:
            self.container.seek(self.index.pts[key], stream=self.stream, backward=True, any_frame=False)
        self._packets = self.container.demux(self.stream)
        self._drained = False
        self.next_packet = key

    @property
    def started(self) -> bool:
        return self._packets is not None

    def decode_until(self, wanted: set[int]) -> bool:
        """Decode on until every pts in ``wanted`` has come out; False if it cannot.

        Gives up when the stream ends first, or when the demuxer has gone
        :data:`_GIVE_UP_PACKETS` past the last wanted packet (a seek that landed after
        it, or a decoder that dropped it).
        """
        last = max(self.position[pts] for pts in wanted)
        for packet in self._packets:
            if self.next_packet > last + _GIVE_UP_PACKETS:
                return False
            if packet.size == 0:
                self._drain()
            else:
                self.next_packet = self.position.get(packet.pts, self.next_packet) + 1
                self.codec.skip_frame = "DEFAULT" if packet.pts in self.needed else "NONREF"
                self._take(self.codec.decode(packet))
            if wanted.issubset(self.got):
                return True
        self._drain()
        return wanted.issubset(self.got)

    def _drain(self) -> None:
        if not self._drained:
            self._drained = True
            self._take(self.codec.decode(None))

    def _take(self, frames: Any) -> None:
        for frame in frames:
            self.decoded += 1
            if self.on_frame is not None:  # e.g. a decoding budget, which may raise
                self.on_frame(frame)
            if frame.pts in self.needed:
                self.got[frame.pts] = frame


def plan_and_decode(
    container: Any,
    stream: Any,
    index: PacketIndex,
    needed: set[int],
    *,
    seek: bool,
    on_frame: Callable[[Any], None] | None = None,
) -> tuple[dict[int, Any], int] | None:
    """Decode the frames whose pts are in ``needed``; ``({pts: frame}, frames decoded)``.

    ``on_frame`` is called with every frame decoded (needed or not).

    ``container`` must be freshly opened (positioned at the start). With ``seek=False``
    the stream is decoded from the start in one pass (still skipping non-reference frames
    that are not needed, and stopping after the last needed one).

    Returns ``None`` when a needed frame did not come out of the decoder.
    """
    decoder = _PlannedDecoder(container, stream, index, needed, on_frame)
    try:
        for key, members in _groups(index, decoder.position, needed):
            first = min(members)
            if decoder.next_packet > first:
                return None  # a needed frame was passed without coming out
            inside_or_close = key - _DECODE_ON_PACKETS <= decoder.next_packet
            if not decoder.started:
                decoder.start_at(key if seek and key > _DECODE_ON_PACKETS else 0)
            elif seek and not inside_or_close:
                decoder.start_at(key)
            wanted = {index.pts[m] for m in members}
            if not decoder.decode_until(wanted):
                logger.info("planned decoding missed %d frame(s)", len(wanted - set(decoder.got)))
                return None
    finally:
        decoder.codec.skip_frame = "DEFAULT"
    return decoder.got, decoder.decoded


def decode_in_parallel(
    open_stream: Callable[[], tuple[Any, Any]],
    index: PacketIndex,
    needed: set[int],
    *,
    seek: bool,
    workers: int,
    on_frame: Callable[[Any], None] | None = None,
) -> tuple[dict[int, Any], int] | None:
    """:func:`plan_and_decode` split over ``workers`` decoders, each on its own
    ``open_stream()`` (a fresh ``(container, stream)``), by contiguous runs of groups.

    One worker (or too few groups to share) decodes in the calling thread.
    """
    position = {pts: i for i, pts in enumerate(index.pts)}
    groups = _groups(index, position, needed)
    workers = max(1, min(workers, len(groups) // 2)) if seek else 1
    runs: list[set[int]] = [set() for _ in range(workers)]
    total, done = len(needed), 0
    for _, members in groups:  # contiguous runs holding about the same number of frames
        runs[min(workers - 1, done * workers // max(total, 1))].update(index.pts[m] for m in members)
        done += len(members)

    def decode(run: set[int]) -> tuple[dict[int, Any], int] | None:
        container, stream = open_stream()
        try:
            return plan_and_decode(container, stream, index, run, seek=seek, on_frame=on_frame)
        finally:
            container.close()

    if workers == 1:
        return decode(needed)
    with ThreadPoolExecutor(workers, thread_name_prefix="video-decode") as pool:
        results = list(pool.map(decode, [run for run in runs if run]))
    if any(result is None for result in results):
        return None
    frames: dict[int, Any] = {}
    for got, _ in results:  # type: ignore[misc]
        frames.update(got)
    return frames, sum(count for _, count in results)  # type: ignore[misc]
