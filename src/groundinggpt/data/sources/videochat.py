"""VideoChat-Instruct-11K (OpenGVLab/Ask-Anything) -> video conversations (stage 3).

Files: ``videochat_instruct_11k.json`` — a JSON array of ``{"video": "<folder>/<name>.mp4",
"QA": [{"i": instruction, "q": question, "a": answer}, ...]}`` (7K detailed descriptions
with one QA, 4K multi-turn conversations). Videos: WebVid, ``<video_dir>/<video>``.
Each QA is one turn; the user text is the instruction and the question joined.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..jsonstream import iter_array
from ._text import clean
from .base import Context, Rejected, field_of, guarded

STAGE = 3
FILES = "videochat_instruct_11k.json; WebVid videos"


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    path = ctx.require_file(ctx.opt("file", "videochat_instruct_11k.json"), "videochat_instruct_11k.json")
    video_dir = ctx.path("video_dir", "videos")
    for where, rec in iter_array(path):
        w = f"{path}:{where}"
        yield from guarded(ctx, w, where, lambda: _one(ctx, rec, where, video_dir))


def _one(ctx: Context, rec: dict, where: str, video_dir) -> Iterator[dict]:
    video = field_of(rec, "video", str, "the video path")
    turns = []
    for k, qa in enumerate(field_of(rec, "QA", list, "a list of {i, q, a}")):
        if not isinstance(qa, dict):
            raise Rejected("malformed", f"QA[{k}] is not an object")
        user = clean(" ".join(str(qa.get(key) or "") for key in ("i", "q")))
        answer = clean(str(qa.get("a") or ""))
        if not user or not answer:
            raise Rejected("empty_text", f"QA[{k}] has an empty question or answer")
        turns.append((user, answer))
    if not turns:
        raise Rejected("malformed", "no QA")
    index = where.strip("$[]")
    media = ctx.media(video_dir, video)
    task = "video_caption" if len(turns) == 1 else "conversation"
    yield ctx.sample(f"videochat-{Path(video).stem}-{index}", task, [("video", media)], turns,
                     {"video": video, "index": int(index)})
