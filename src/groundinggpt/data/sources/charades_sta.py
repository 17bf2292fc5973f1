"""Charades-STA (jiyanggao/TALL) -> temporal grounding samples (stage 2).

Files: ``charades_sta_train.txt`` (option ``split``) — lines ``VIDEOID START END##SENTENCE``
with START/END in seconds — and the Charades release's ``Charades_v1_train.csv``, whose
``length`` column is the video duration in seconds. Videos: ``<video_dir>/<VIDEOID>.mp4``.

Conventions: a few annotations end after the video; the loaders of the 2D-TAN family
clip the end to the CSV ``length`` (``min(end, duration)``): done here and counted as
``span_end_clipped_to_duration``. A start at or after the end of the video, or an end
before the start, is rejected. Spans are relative to ``length``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...eval.formats import read_charades_durations
from ._text import as_slot
from .base import Context, Rejected, span_text

STAGE = 2
FILES = "charades_sta_<split>.txt + Charades_v1_<split>.csv; videos <id>.mp4"


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    split = ctx.opt("split", "train")
    path = ctx.require_file(ctx.opt("annotations", f"charades_sta_{split}.txt"), "Charades-STA annotations")
    durations = read_charades_durations(ctx.require_file(ctx.opt("csv", f"Charades_v1_{split}.csv"),
                                                         "the Charades release CSV (id, length)"))
    video_dir = ctx.path("video_dir", "Charades_v1_480")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield _line(ctx, line, lineno, durations, video_dir)
            except Rejected as r:
                ctx.reject(where, r.reason, r.detail, line.split(" ", 1)[0])


def _line(ctx: Context, line: str, lineno: int, durations: dict[str, float], video_dir) -> dict[str, Any]:
    head, sep, sentence = line.strip().partition("##")
    parts = head.split()
    if not sep or len(parts) != 3:
        raise Rejected("malformed", f"{line.strip()!r} is not 'VIDEOID START END##SENTENCE'")
    vid, s, e = parts
    try:
        start, end = float(s), float(e)
    except ValueError:
        raise Rejected("malformed", f"START/END {s!r} {e!r} are not seconds") from None
    if vid not in durations:
        raise Rejected("unknown_video", f"video {vid!r} has no length in the Charades CSV")
    duration = durations[vid]
    if start >= duration or end < start:
        raise Rejected("span_outside_video", f"{start:g}-{end:g} s in a {duration:g} s video")
    if end > duration:
        ctx.fixed("span_end_clipped_to_duration")
        end = duration
    event = as_slot(sentence)
    if not event:
        raise Rejected("empty_text", "empty sentence")
    media = ctx.media(video_dir, f"{vid}{ctx.opt('video_ext', '.mp4')}")
    sid = f"{vid}-{lineno}"
    return ctx.sample(f"charades-{sid}", "temporal_grounding", [("video", media)],
                      [(ctx.question("temporal_grounding", sid, event=event), span_text(start, end, duration))],
                      {"video": vid, "seconds": [float(s), float(e)], "duration": duration, "line": lineno})
