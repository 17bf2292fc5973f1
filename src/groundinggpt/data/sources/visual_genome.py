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

from ..jsonstream import iter_array
from ._text import as_answer, clean
from .base import Checked, Context, Rejected, box_text, number

_MISSING = object()

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


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    images = _images(ctx)
    path = ctx.require_file(ctx.opt("regions", "region_descriptions.json"), "Visual Genome region_descriptions.json")
    tasks = set(ctx.opt("tasks", ["rec", "reg"]))
    image_dir = ctx.path("image_dir", ".")
    rec, reg = "rec" in tasks, "reg" in tasks
    (rec_pool, rec_state), (reg_pool, reg_state) = ctx.pool("rec"), ctx.pool("reg")
    stage, source = ctx.stage, ctx.source
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
        fits = width > 0 and height > 0
        for j, region in enumerate(entry["regions"]):
            # The hot loop of the largest source (5M regions). A region of whole-pixel numbers
            # well inside its image (nearly all of VG) is built here inline; any other goes
            # through _region, whose checks, rejections and clipping decide it. Both give the
            # same bytes for the regions the fast path takes (tests/test_data_sources.py).
            if fits and type(region) is dict:
                x, y, w, h = region.get("x"), region.get("y"), region.get("width"), region.get("height")
                phrase, rid = region.get("phrase"), region.get("region_id", _MISSING)
                if (type(x) is int and type(y) is int and type(w) is int and type(h) is int
                        and type(phrase) is str and rid is not _MISSING
                        and 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= width and y + h <= height):
                    phrase = " ".join(phrase.split())
                    a, b, c, d = f"{x / width:.3f}", f"{y / height:.3f}", f"{(x + w) / width:.3f}", f"{(y + h) / height:.3f}"
                    if phrase and a < c and b < d:
                        box = Checked(f"[{a}, {b}, {c}, {d}]")
                        meta = {"image_id": iid, "region_id": rid}
                        if rec:
                            q = rec_pool[crc32(f"rec-{rid}".encode(), rec_state) % len(rec_pool)].format(exp=phrase)
                            yield {"id": f"vg-rec-{rid}", "task": "rec", "stage": stage, "source": source,
                                   "messages": [{"role": "user", "content": [{"type": "image", "image": image},
                                                                             {"type": "text", "text": q}]},
                                                {"role": "assistant", "content": box}],
                                   "meta": meta, "_built": True}
                        if reg:
                            q = reg_pool[crc32(f"reg-{rid}".encode(), reg_state) % len(reg_pool)].format(region=box)
                            yield {"id": f"vg-reg-{rid}", "task": "reg", "stage": stage, "source": source,
                                   "messages": [{"role": "user", "content": [{"type": "image", "image": image},
                                                                             {"type": "text", "text": q}]},
                                                {"role": "assistant", "content": as_answer(phrase)}],
                                   "meta": meta, "_built": True}
                        continue
            try:
                yield from _region(ctx, region, iid, image, width, height, tasks)
            except Rejected as r:
                ctx.reject(f"{path}:{where}.regions[{j}]", r.reason, r.detail,
                           region.get("region_id") if isinstance(region, dict) else None)
            except (KeyError, TypeError, AttributeError) as e:
                ctx.reject(f"{path}:{where}.regions[{j}]", "malformed", f"{type(e).__name__}: {e}",
                           region.get("region_id") if isinstance(region, dict) else None)


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
