"""Valley-Pretrain-703K (stage 1) and Valley-Instruct-73K (stage 3) (RupertLuo/Valley).

Files: ``chat.json`` (pretrain; option ``file``) or, for instruct, the first of
:data:`INSTRUCT_FILES` present — the 73K file circulates as ``Valley_instruct_73k.json``
(the copy TimeChat links as "Valley-73K, previous version of Valley-65K", in
ShuhuaiRen/TimeIT ``data/valley/``), the publisher's current release is
``valley_instruct_65k.json`` (luoruipu1/Valley-Instruct-65k) — JSON arrays of ``{"id", "video", "source"?, "conversations"}`` in the LLaVA
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
FILES = "chat.json (pretrain) / Valley_instruct_73k.json (instruct); videos <source>/<video>.mp4"
#: The instruct file names tried in order when the ``file`` option is not given.
INSTRUCT_FILES = ("Valley_instruct_73k.json", "valley_instruct_73k.json", "valley_instruct_65k.json")


def _instruct_file(ctx: Context) -> str:
    for name in INSTRUCT_FILES:
        if (ctx.root / name).is_file():
            return name
    raise FileNotFoundError(f"source {ctx.source!r}: none of {', '.join(INSTRUCT_FILES)} in {ctx.root} "
                            "(expected the Valley instruct json; option file: NAME for another name)")


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    instruct = ctx.source == "valley-instruct"
    name = ctx.opt("file") or (_instruct_file(ctx) if instruct else "chat.json")
    path = ctx.require_file(name, f"Valley {'instruct' if instruct else 'pretrain'} json")
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
