"""Clotho (v2) -> audio caption samples (stage 3).

Files: ``clotho_captions_<split>.csv`` (option ``splits``, default ``["development"]``)
with columns ``file_name, caption_1 .. caption_5``. Audio: ``<audio_dir>/<split>/<file_name>``
(the release's ``clotho_audio_<split>`` archives unpack to ``<split>/``). One sample per
caption (five per clip).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._text import as_answer
from .base import Context, Rejected

STAGE = 3
FILES = "clotho_captions_<split>.csv; audio <split>/<file_name>"


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    audio_dir = ctx.path("audio_dir", ".")
    for split in ctx.opt("splits", ["development"]):
        path = ctx.require_file(f"clotho_captions_{split}.csv", "Clotho captions csv")
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            cols = [c for c in (reader.fieldnames or []) if c.startswith("caption_")]
            if "file_name" not in (reader.fieldnames or []) or not cols:
                raise FileNotFoundError(f"{path}: expected columns file_name, caption_1..caption_5; got {reader.fieldnames}")
            for lineno, row in enumerate(reader, start=2):
                where = f"{path}:{lineno}"
                name = (row.get("file_name") or "").strip()
                try:
                    if not name:
                        raise Rejected("malformed", "empty file_name")
                    media = ctx.media(audio_dir / split, name)
                except Rejected as r:
                    ctx.reject(where, r.reason, r.detail, name)
                    continue
                stem = Path(name).stem.replace(" ", "_")
                for col in cols:
                    text = as_answer(row.get(col) or "")
                    if not text:
                        ctx.reject(where, "empty_text", f"column {col!r} is empty", name)
                        continue
                    k = col.removeprefix("caption_")
                    sid = f"{split}-{stem}-{k}"
                    yield ctx.sample(f"clotho-{sid}", "audio_caption", [("audio", media)],
                                     [(ctx.question("audio_caption", sid), text)],
                                     {"split": split, "file_name": name, "caption": col})
