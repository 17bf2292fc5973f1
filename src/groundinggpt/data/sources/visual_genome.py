"""Visual Genome region descriptions -> REC and REG samples (stage 2).

Files (visualgenome.org, v1.2/v1.4): ``region_descriptions.json`` — a JSON array of
``{"id": image_id, "regions": [{"region_id", "image_id", "phrase", "x", "y", "width",
"height"}]}`` — and ``image_data.json`` — an array of ``{"image_id" (``"id"`` in v1.0),
"width", "height", "url"}``. Images: ``VG_100K/<id>.jpg`` or ``VG_100K_2/<id>.jpg``, the
folder named in ``url`` (the last two parts of the URL).

Conventions: ``x, y`` are the region's top-left corner and ``width, height`` its extent,
in pixels of the image as described by ``image_data.json`` (the original image); the
box is ``[x/W, y/H, (x+width)/W, (y+height)/H]``. Regions reaching more than
``tolerance_px`` outside the image are rejected (they occur in VG). Both files are
streamed (region_descriptions.json is ~700 MB).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from zlib import crc32

import orjson

from ..jsonstream import iter_array
from ._text import as_answer, clean
from .base import Context, Rejected, Serialized, box_text, number

_MAX_ID = 1 << 63  # region ids orjson writes as JSON ints (larger ones take the checked path)

STAGE = 2
FILES = "region_descriptions.json + image_data.json; images VG_100K/, VG_100K_2/"


def _images(ctx: Context) -> dict[int, tuple[float, float, str]]:
    path = ctx.require_file(ctx.opt("image_data", "image_data.json"), "Visual Genome image_data.json")
    out = {}
    for where, d in iter_array(path):
        if not isinstance(d, dict):
            ctx.reject(f"{path}:{where}", "malformed", "expected an object {image_id, width, height, url}")
            continue
        iid = d.get("image_id", d.get("id"))
        url = d.get("url")
        rel = "/".join(url.rstrip("/").split("/")[-2:]) if isinstance(url, str) and "/" in url else f"VG_100K/{iid}.jpg"
        out[iid] = (d.get("width"), d.get("height"), rel)
    return out


def _plain(pool: tuple[str, ...], slot: str) -> bool:
    """Whether every phrasing of ``pool``, its slot filled, is free of ``[`` and ``{`` (no coordinates)."""
    return all("[" not in t.format(**{slot: ""}) and "{" not in t.format(**{slot: ""}) for t in pool)


def _esc(b: bytes) -> bytes:
    """A literal ``%`` of a value must survive the ``bytes %`` formatting."""
    return b.replace(b"%", b"%%")


def _line_formats(ctx: Context, iid: Any, image: str) -> tuple[bytes, bytes] | None:
    """The REC and REG lines of one image as ``bytes %`` formats: the bytes orjson writes for
    the dict :meth:`Context.sample` builds, with the per-region values left as slots.

    REC: (rid, question JSON, box, rid); REG: (rid, question JSON, answer JSON, rid).
    None when the image id does not serialise (the checked path decides those regions).
    """
    try:
        stage, source, image_json, iid_json = (_esc(orjson.dumps(v)) for v in (ctx.stage, ctx.source, image, iid))
    except TypeError:  # orjson.JSONEncodeError: an id orjson cannot write (a huge int, say)
        return None
    head = (b',"stage":' + stage + b',"source":' + source
            + b',"messages":[{"role":"user","content":[{"type":"image","image":' + image_json
            + b'},{"type":"text","text":%s}]},{"role":"assistant","content":')
    tail = b'}],"meta":{"image_id":' + iid_json + b',"region_id":%d}}\n'
    return (b'{"id":"vg-rec-%d","task":"rec"' + head + b'"%s"' + tail,
            b'{"id":"vg-reg-%d","task":"reg"' + head + b"%s" + tail)


def convert(ctx: Context) -> Iterator[dict[str, Any] | Serialized]:
    images = _images(ctx)
    path = ctx.require_file(ctx.opt("regions", "region_descriptions.json"), "Visual Genome region_descriptions.json")
    tasks = set(ctx.opt("tasks", ["rec", "reg"]))
    image_dir = ctx.path("image_dir", ".")
    rec, reg = "rec" in tasks, "reg" in tasks
    (rec_pool, rec_state), (reg_pool, reg_state) = ctx.pool("rec"), ctx.pool("reg")
    # The serialised fast path writes questions without the coordinate check convert.py would
    # run: only sound while no phrasing brings brackets of its own (true of the shipped pools).
    lines_ok = _plain(rec_pool, "exp") and _plain(reg_pool, "region")
    dumps = orjson.dumps
    for where, entry in iter_array(path):
        if not isinstance(entry, dict) or not isinstance(entry.get("regions"), list):
            ctx.reject(f"{path}:{where}", "malformed", "expected {id, regions: [...]}")
            continue
        iid = entry.get("id", entry.get("image_id"))
        info = images.get(iid)
        image = None
        if info is None:
            ctx.reject(f"{path}:{where}", "unknown_image", f"image {iid!r} is not in image_data.json "
                                                          f"({len(entry['regions'])} regions)", iid)
            continue
        try:
            width, height = number(info[0], "width"), number(info[1], "height")
            image = ctx.media(image_dir, info[2])
        except Rejected as r:
            ctx.reject(f"{path}:{where}", r.reason, r.detail, iid)
            continue
        formats = _line_formats(ctx, iid, image) if lines_ok and width > 0 and height > 0 else None
        rec_fmt, reg_fmt = formats or (b"", b"")
        ids: list[str] = []
        kinds: list[str] = []
        lines: list[bytes] = []
        for j, region in enumerate(entry["regions"]):
            # The hot loop of the largest source (5M regions). A region of whole-pixel numbers
            # well inside its image, with an int id and a phrase without brackets (nearly all
            # of VG), is written here straight to its JSONL lines, handed over per image
            # (Serialized); any other goes through _region, whose checks, rejections and
            # clipping decide it. Both give the same bytes for the regions the fast path
            # takes (tests/test_data_sources.py).
            if formats is not None and type(region) is dict:
                x, y, w, h = region.get("x"), region.get("y"), region.get("width"), region.get("height")
                phrase, rid = region.get("phrase"), region.get("region_id")
                if (type(x) is int and type(y) is int and type(w) is int and type(h) is int
                        and type(phrase) is str and type(rid) is int and 0 <= rid < _MAX_ID
                        and 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= width and y + h <= height
                        and "[" not in phrase and "{" not in phrase):
                    phrase = " ".join(phrase.split())
                    a, b, c, d = f"{x / width:.3f}", f"{y / height:.3f}", f"{(x + w) / width:.3f}", f"{(y + h) / height:.3f}"
                    if phrase and a < c and b < d:
                        box = f"[{a}, {b}, {c}, {d}]"
                        if rec:
                            q = rec_pool[crc32(b"rec-%d" % rid, rec_state) % len(rec_pool)].format(exp=phrase)
                            ids.append(f"vg-rec-{rid}")
                            kinds.append("rec")
                            lines.append(rec_fmt % (rid, dumps(q), box.encode(), rid))
                        if reg:
                            q = reg_pool[crc32(b"reg-%d" % rid, reg_state) % len(reg_pool)].format(region=box)
                            ids.append(f"vg-reg-{rid}")
                            kinds.append("reg")
                            lines.append(reg_fmt % (rid, dumps(q), dumps(as_answer(phrase)), rid))
                        continue
            if ids:  # the lines so far first: the file keeps the regions' order
                yield Serialized(ids, kinds, lines)
                ids, kinds, lines = [], [], []
            try:
                yield from _region(ctx, region, iid, image, width, height, tasks)
            except Rejected as r:
                ctx.reject(f"{path}:{where}.regions[{j}]", r.reason, r.detail,
                           region.get("region_id") if isinstance(region, dict) else None)
            except (KeyError, TypeError, AttributeError) as e:
                ctx.reject(f"{path}:{where}.regions[{j}]", "malformed", f"{type(e).__name__}: {e}",
                           region.get("region_id") if isinstance(region, dict) else None)
        if ids:
            yield Serialized(ids, kinds, lines)


def _region(ctx: Context, r: dict, iid: int, image: str, width: float, height: float, tasks: set[str]) -> list[dict]:
    x, y, w, h = number(r["x"], "x"), number(r["y"], "y"), number(r["width"], "width"), number(r["height"], "height")
    phrase = clean(r["phrase"])
    if not phrase:
        raise Rejected("empty_text", "the region's phrase is empty")
    rid = r["region_id"]
    box = box_text(ctx.pixel_box(x, y, x + w, y + h, width, height))
    meta = {"image_id": iid, "region_id": rid}
    out = []
    if "rec" in tasks:
        out.append(ctx.sample(f"vg-rec-{rid}", "rec", [("image", image)],
                              [(ctx.question("rec", f"rec-{rid}", exp=phrase), box)], meta))
    if "reg" in tasks:
        out.append(ctx.sample(f"vg-reg-{rid}", "reg", [("image", image)],
                              [(ctx.question("reg", f"reg-{rid}", region=box), as_answer(phrase))], meta))
    return out
