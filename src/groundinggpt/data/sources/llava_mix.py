"""LLaVA-v1.5-mix665k (``llava_v1_5_mix665k.json``) -> conversations (stage 3).

Files: ``llava_v1_5_mix665k.json`` — a JSON array of LLaVA records ``{"id", "image"?:
"coco/train2017/...", "conversations"}``; records without ``image`` (ShareGPT) are
text-only conversations and are kept as such. Images under ``image_dir`` (the folder
holding ``coco/``, ``gqa/``, ``ocr_vqa/``, ``textvqa/``, ``vg/``). Streamed, twice: a
first pass lists the images of records whose text holds boxes, whose sizes are then
read from the file headers in parallel (and cached).

Conventions: the boxes in mix665k's region-level records (RefCOCO, VG) are fractions of
the image padded to a square, as the LLaVA maintainers describe (haotian-liu/LLaVA
issue #606): option ``boxes_frame`` ``square`` (default) maps them back to the original
image (``x = (X * side - pad_x) / width`` with the square's side and padding of LLaVA's
``expand2square``); a box lying in the padding by more than ``tolerance`` (0.005) is
rejected ``box_outside_image``; ``original`` keeps them. Boxes are rewritten with 3
decimals. A record whose image cannot be read (needed for its size) is rejected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from ...grounding import Box, format_box
from ..jsonstream import iter_array
from ._llava import llava_record
from .base import Context, Rejected, guarded

STAGE = 3
FILES = "llava_v1_5_mix665k.json; images coco/, gqa/, ocr_vqa/, textvqa/, vg/"
_BOX = re.compile(r"\[\s*([-+]?\d*\.?\d+)\s*,\s*([-+]?\d*\.?\d+)\s*,\s*([-+]?\d*\.?\d+)\s*,\s*([-+]?\d*\.?\d+)\s*\]")


def _has_box(rec: Any) -> bool:
    if not isinstance(rec, dict) or not isinstance(rec.get("conversations"), list):
        return False
    return any(isinstance(t, dict) and isinstance(t.get("value"), str) and _BOX.search(t["value"])
               for t in rec["conversations"])


def _square_to_original(text: str, w: int, h: int, tol: float) -> str:
    side = max(w, h)
    ox, oy = (side - w) // 2, (side - h) // 2

    def sub(m: re.Match) -> str:
        X1, Y1, X2, Y2 = (float(g) for g in m.groups())
        b = [(X1 * side - ox) / w, (Y1 * side - oy) / h, (X2 * side - ox) / w, (Y2 * side - oy) / h]
        if min(b) < -tol or max(b) > 1 + tol:
            raise Rejected("box_outside_image", f"square-frame box {m.group(0)} lies outside the {w}x{h} image")
        box = Box(*b).clipped()
        if not (box.x2 > box.x1 and box.y2 > box.y1):
            raise Rejected("empty_box", f"box {m.group(0)} encloses no area")
        return format_box(box)

    return _BOX.sub(sub, text)


def _key(ctx: Context, image_dir, p: str) -> str:
    full = image_dir / p
    try:
        return full.relative_to(ctx.media_root).as_posix()
    except ValueError:
        return os.path.relpath(full, ctx.media_root)


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    path = ctx.require_file(ctx.opt("file", "llava_v1_5_mix665k.json"), "llava_v1_5_mix665k.json")
    image_dir = ctx.path("image_dir", ".")
    frame = ctx.opt("boxes_frame", "square")
    if frame not in ("square", "original"):
        raise ValueError(f"llava-mix665k: boxes_frame must be 'square' or 'original', got {frame!r}")
    sizes: dict[str, tuple[int, int]] = {}
    if frame == "square":
        need = []
        for _, rec in iter_array(path):
            if _has_box(rec) and isinstance(rec.get("image"), str):
                need.append(rec["image"])
        if need and ctx.image_sizes is not None:
            keys = {p: _key(ctx, image_dir, p) for p in need}
            probed = ctx.image_sizes(sorted(set(keys.values())))
            sizes = {p: probed[k] for p, k in keys.items() if k in probed}
    tol = float(ctx.opt("tolerance", 0.005))
    for where, rec in iter_array(path):
        w = f"{path}:{where}"
        yield from guarded(ctx, w, rec.get("id") if isinstance(rec, dict) else None,
                           lambda: [_one(ctx, rec, w, image_dir, frame, sizes, tol)])


def _one(ctx: Context, rec: dict, where: str, image_dir, frame: str, sizes: dict, tol: float) -> dict:
    media = {}
    if "image" in rec:
        if not isinstance(rec["image"], str):
            raise Rejected("malformed", f"field 'image' is {rec['image']!r}; expected one path")
        media["image"] = ctx.media(image_dir, rec["image"])
    if frame == "square" and media and _has_box(rec):
        size = sizes.get(rec["image"])
        if size is None:
            raise Rejected("unreadable_image", f"{rec['image']}: size unknown (image missing or unreadable); "
                                               "needed to map its square-frame boxes to the original image")
        rec = {**rec, "conversations": [{**t, "value": _square_to_original(t["value"], *size, tol)}
                                        if isinstance(t, dict) and isinstance(t.get("value"), str) else t
                                        for t in rec["conversations"]]}
    return llava_record(ctx, rec, where, "conversation", media)
