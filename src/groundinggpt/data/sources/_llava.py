"""Shared by the LLaVA-style sources (CC3M-595K, mix665k, Valley): one record -> a Sample dict."""

from __future__ import annotations

from typing import Any

from ..schema import DataError, from_llava_style
from .base import Context, Rejected


def llava_record(ctx: Context, record: Any, where: str, task: str, media_paths: dict[str, str]) -> dict[str, Any]:
    """Convert with :func:`from_llava_style`, the record's media keys replaced by
    ``media_paths`` (paths relative to the media root), the id prefixed with the source."""
    if not isinstance(record, dict):
        raise Rejected("malformed", f"expected a LLaVA-style object, got {type(record).__name__}")
    rec = {k: v for k, v in record.items() if k not in ("image", "video", "sound", "audio")}
    rec.update(media_paths)
    try:
        sample = from_llava_style(rec, where, task=task, stage=ctx.stage, source=ctx.source)
    except DataError as e:
        raise Rejected("malformed", str(e).removeprefix(f"{where}: ")) from None
    d = sample.to_dict()
    d["id"] = f"{ctx.source}-{d['id']}"
    return d
