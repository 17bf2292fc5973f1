"""Valley-Pretrain-703K (stage 1) and Valley-Instruct-73K (stage 3) (RupertLuo/Valley).

Files: ``chat.json`` (pretrain; option ``file``) or ``valley_instruct_73k.json``
(instruct) — JSON arrays of ``{"id", "video", "source"?, "conversations"}`` in the LLaVA
form with a ``<video>`` marker. Videos: Valley's loader reads
``<video_folder>/<source, default "webvid">/<video>`` and appends ``.mp4`` when the name
has none; the same is done here under ``video_dir``. Streamed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..jsonstream import iter_array
from ._llava import llava_record
from .base import Context, field_of, guarded

STAGE = 1
STAGES = {"valley-pretrain": 1, "valley-instruct": 3}
FILES = "chat.json (pretrain) / valley_instruct_73k.json (instruct); videos <source>/<video>.mp4"


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    instruct = ctx.source == "valley-instruct"
    default = "valley_instruct_73k.json" if instruct else "chat.json"
    path = ctx.require_file(ctx.opt("file", default), f"Valley {'instruct' if instruct else 'pretrain'} json")
    video_dir = ctx.path("video_dir", "videos")
    task = "conversation" if instruct else "video_caption"
    for where, rec in iter_array(path):
        w = f"{path}:{where}"
        yield from guarded(ctx, w, rec.get("id") if isinstance(rec, dict) else None,
                           lambda: [llava_record(ctx, rec, w, task, {"video": _video(ctx, rec, video_dir)})])


def _video(ctx: Context, rec: dict, video_dir) -> str:
    name = field_of(rec, "video", str, "the video file name")
    if ".mp4" not in name:
        name += ".mp4"
    sub = rec.get("source") if isinstance(rec.get("source"), str) and rec.get("source") else "webvid"
    return ctx.media(video_dir / sub, name)
