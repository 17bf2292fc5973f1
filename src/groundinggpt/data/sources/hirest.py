"""HiREST (j-min/HiREST) -> temporal grounding samples (stage 2).

Files: ``all_data_train.json`` (option ``files``) — a JSON object ``{query: {video file:
{"relevant", "clip", "v_duration", "bounds": [start, end], "steps": [{"index",
"heading", "absolute_bounds": [start, end]}]}}}``. Videos: ``<video_dir>/<video file>``.

Conventions: ``bounds`` and ``absolute_bounds`` are seconds from the start of the whole
video (``v_duration`` seconds long); ``clip: false`` (``bounds`` ``[0, 0]``) means the
video has no moment for the query: skipped, not rejected. One sample for the query's
moment and one per step heading (its ``absolute_bounds``). Spans beyond
``v_duration`` are rejected.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..jsonstream import iter_object
from ._text import as_slot
from .base import Context, Rejected, field_of, guarded, number, span_text

STAGE = 2
FILES = "all_data_train.json (all_data_val.json); videos"


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    video_dir = ctx.path("video_dir", "videos")
    steps = bool(ctx.opt("steps", True))
    for name in ctx.opt("files", ["all_data_train.json"]):
        path = ctx.require_file(name, "a HiREST all_data_<split>.json")
        for where, (query, videos) in iter_object(path):
            if not isinstance(videos, dict):
                ctx.reject(f"{path}:{where}", "malformed", "expected {video file: annotation}")
                continue
            for video, ann in videos.items():
                w = f"{path}:{where}[{video!r}]"
                yield from guarded(ctx, w, video, lambda: _one(ctx, query, video, ann, video_dir, steps))


def _one(ctx: Context, query: str, video: str, ann: dict, video_dir: Path, steps: bool) -> Iterator[dict]:
    if not ann.get("relevant") or not ann.get("clip"):
        ctx.skip("no moment (relevant/clip false)")
        return
    duration = number(ann.get("v_duration"), "v_duration")
    bounds = field_of(ann, "bounds", list, "[start, end] seconds")
    start, end = (number(v, "bounds") for v in bounds)
    if end <= start:
        raise Rejected("empty_span", f"bounds {bounds} enclose no time")
    media = ctx.media(video_dir, video)
    qid = f"{zlib.crc32(query.encode()):08x}"
    stem = Path(video).stem
    meta = {"query": query, "video": video, "bounds": [start, end], "duration": duration}
    event = as_slot(query)
    yield ctx.sample(f"hirest-{stem}-{qid}", "temporal_grounding", [("video", media)],
                     [(ctx.question("temporal_grounding", f"{stem}-{qid}", event=event),
                       span_text(start, end, duration))], meta)
    if not steps:
        return
    for step in ann.get("steps") or []:
        heading = as_slot(field_of(step, "heading", str, "the step heading"))
        b = field_of(step, "absolute_bounds", list, "[start, end] seconds")
        s, e = (number(v, "absolute_bounds") for v in b)
        if not heading or e <= s:
            ctx.reject(f"{video} step {step.get('index')}", "empty_span" if heading else "empty_text",
                       f"step {step!r}", video)
            continue
        sid = f"{stem}-{qid}-step{step.get('index')}"
        try:
            span = span_text(s, e, duration)
        except Rejected as r:
            ctx.reject(f"{video} step {step.get('index')}", r.reason, r.detail, video)
            continue
        yield ctx.sample(f"hirest-{sid}", "temporal_grounding", [("video", media)],
                         [(ctx.question("temporal_grounding", sid, event=heading), span)],
                         {**meta, "step": step.get("index"), "step_bounds": [s, e]})
