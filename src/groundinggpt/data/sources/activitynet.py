"""ActivityNet Captions (ranjaykrishna/densevid_eval) -> dense captions and grounding (stage 3).

Files: ``train.json``, ``val_1.json``, ``val_2.json`` (option ``files``, default
``["train.json"]``) — a JSON object ``{"v_<youtube id>": {"duration": seconds,
"timestamps": [[start, end], ...], "sentences": [...]}}``. Videos:
``<video_dir>/<v_id><video_ext>`` (default ``.mp4``).

Conventions: timestamps are seconds from the video start, relative spans are
``start/duration``, ``end/duration``. Some events end after ``duration``: an overshoot of
at most ``span_tolerance_s`` (default 1 s) is clipped to the duration (counted as
``span_end_clipped_to_duration``), more is rejected; an event with end < start is
rejected. Tasks (option ``tasks``): ``dense_caption`` (one sample per video, every
event with its span; a video with any rejected event gives none), ``temporal_grounding``
(one per event), ``segment_caption`` (the Table 11 "describe the clip {time}" family).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..jsonstream import iter_object
from ._text import as_answer, as_slot
from .base import Context, Rejected, field_of, guarded, number, span_text

STAGE = 3
FILES = "train.json / val_1.json / val_2.json; videos v_<id>.mp4"


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    video_dir = ctx.path("video_dir", "videos")
    tasks = set(ctx.opt("tasks", ["dense_caption", "temporal_grounding"]))
    for name in ctx.opt("files", ["train.json"]):
        path = ctx.require_file(name, "an ActivityNet Captions json")
        split = Path(name).stem
        for where, (vid, ann) in iter_object(path):
            yield from guarded(ctx, f"{path}:{where}", vid, lambda: _video(ctx, f"{path}:{where}", split, vid, ann,
                                                                           video_dir, tasks))


def _video(ctx: Context, where: str, split: str, vid: str, ann: dict, video_dir: Path, tasks: set[str]) -> Iterator[dict]:
    duration = number(ann.get("duration"), "duration")
    stamps = field_of(ann, "timestamps", list, "[[start, end], ...] seconds")
    sentences = field_of(ann, "sentences", list, "one sentence per timestamp")
    if len(stamps) != len(sentences):
        raise Rejected("malformed", f"{len(stamps)} timestamps but {len(sentences)} sentences")
    media = ctx.media(video_dir, vid + ctx.opt("video_ext", ".mp4"))
    tol = float(ctx.opt("span_tolerance_s", 1.0))
    events, bad = [], 0
    for k, (ts, sentence) in enumerate(zip(stamps, sentences)):
        try:
            if not isinstance(ts, list) or len(ts) != 2:
                raise Rejected("malformed", f"timestamps[{k}] is {ts!r}; expected [start, end]")
            s, e = number(ts[0], "timestamps"), number(ts[1], "timestamps")
            if duration < e <= duration + tol and s < duration:
                ctx.fixed("span_end_clipped_to_duration")
                e = duration
            span = span_text(s, e, duration)
            if not isinstance(sentence, str) or not sentence.strip():
                raise Rejected("empty_text", f"sentences[{k}] is empty")
        except Rejected as r:
            ctx.reject(f"{where}.timestamps[{k}]", r.reason, r.detail, vid)
            bad += 1
            continue
        events.append((k, span, sentence, (s, e)))
    meta = {"video": vid, "split": split, "duration": duration}
    if "dense_caption" in tasks and events and not bad:
        answer = " ".join(f"{as_answer(t).rstrip('.!?')} {span}." for _, span, t, _ in events)
        q = "Describe the events in the video with their time spans."
        yield ctx.sample(f"anet-{split}-{vid}-dense", "dense_caption", [("video", media)], [(q, answer)], meta)
    for k, span, text, secs in events:
        sid = f"{split}-{vid}-{k}"
        m = {**meta, "event": k, "seconds": list(secs)}
        if "temporal_grounding" in tasks:
            yield ctx.sample(f"anet-{sid}-tg", "temporal_grounding", [("video", media)],
                             [(ctx.question("temporal_grounding", sid, event=as_slot(text)), span)], m)
        if "segment_caption" in tasks:
            yield ctx.sample(f"anet-{sid}-seg", "dense_caption", [("video", media)],
                             [(ctx.question("video_dense_caption", sid, time=span), as_answer(text))], m)
