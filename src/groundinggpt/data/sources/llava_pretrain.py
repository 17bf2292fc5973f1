"""LLaVA-CC3M-Pretrain-595K -> image caption samples (stage 1).

Files: ``chat.json`` — a JSON array of ``{"id", "image": "GCC_train_<n>.jpg",
"conversations": [{"from": "human", "value": "<instruction>\\n<image>"}, {"from": "gpt",
"value": caption}]}``; images ``images/`` (``images.zip`` of the release, option
``image_dir``). The record is kept as published (its instruction included), the
``<image>`` marker becoming the image part. Streamed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..jsonstream import iter_array
from ._llava import llava_record
from .base import Context, field_of, guarded

STAGE = 1
FILES = "chat.json; images/"


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    path = ctx.require_file(ctx.opt("file", "chat.json"), "LLaVA-CC3M-Pretrain-595K chat.json")
    image_dir = ctx.path("image_dir", "images")
    for where, rec in iter_array(path):
        w = f"{path}:{where}"
        yield from guarded(ctx, w, rec.get("id") if isinstance(rec, dict) else None,
                           lambda: [llava_record(ctx, rec, w, "caption",
                                                 {"image": ctx.media(image_dir, field_of(rec, "image", str, "image file"))})])
