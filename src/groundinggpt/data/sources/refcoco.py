"""RefCOCO, RefCOCO+ and RefCOCOg (lichengunc/refer) -> REC and REG samples (stage 2).

Files (as the refer toolkit lays them out, one folder per dataset):
``refs(unc).p`` (RefCOCO, RefCOCO+) or ``refs(umd).p`` / ``refs(google).p`` (RefCOCOg) —
a Python-2 pickle of refs ``{ref_id, ann_id, image_id, split, sentences: [{sent, raw,
sent_id}], category_id}``, read with the project's restricted unpickler
(:func:`groundinggpt.eval.formats.load_refs_pickle`) — and ``instances.json`` (COCO:
``images[{id, file_name, width, height}]``, ``annotations[{id, image_id, bbox}]``).
Images: COCO ``train2014/<instances file_name>``.

Conventions: COCO ``bbox`` is ``[x, y, w, h]`` in continuous pixel coordinates of the
original image (top-left origin), so the box is ``[x/W, y/H, (x+w)/W, (y+h)/H]`` with
W, H the ``instances.json`` size. Only refs of the ``splits`` option (default
``["train"]``) are converted: val/test refs are the benchmarks. A ref whose category is
not among ``instances.json`` ``categories`` (when the file lists them) is rejected
``unknown_category``. One REC and one REG
sample per sentence (``sent``, the toolkit's processed text).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...eval.formats import load_refs_pickle
from ._text import as_answer, clean
from .base import Context, Rejected, box_text, field_of, guarded, number

STAGE = 2
FILES = "refs(unc|umd|google).p + instances.json; images COCO train2014/"
_DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}


def _index(ctx: Context) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]], set | None]:
    from ..jsonstream import iter_array_at

    path = ctx.require_file(ctx.opt("instances", "instances.json"), "COCO instances.json")
    images = {}
    for where, img in iter_array_at(path, "images.item", "$.images"):
        if isinstance(img, dict) and "id" in img:
            images[img["id"]] = img
    anns = {}
    for where, ann in iter_array_at(path, "annotations.item", "$.annotations"):
        if isinstance(ann, dict) and "id" in ann:
            anns[ann["id"]] = ann
    categories = {c.get("id") for _, c in iter_array_at(path, "categories.item", "$.categories") if isinstance(c, dict)}
    return images, anns, categories or None


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    split_by = ctx.opt("split_by", _DEFAULT_SPLIT_BY.get(ctx.source, "unc"))
    refs_path = ctx.require_file(ctx.opt("refs", f"refs({split_by}).p"), "the refer toolkit's refs pickle")
    refs = load_refs_pickle(refs_path)
    images, anns, categories = _index(ctx)
    splits = set(ctx.opt("splits", ["train"]))
    tasks = set(ctx.opt("tasks", ["rec", "reg"]))
    image_dir = ctx.path("image_dir", "train2014")
    for k, ref in enumerate(refs):
        where = f"{refs_path}:ref #{k}"
        if ref.get("split") not in splits:
            ctx.skip(f"split {ref.get('split')}")
            continue
        yield from guarded(ctx, where, ref.get("ref_id"), lambda: _ref(ctx, ref, images, anns, categories, image_dir, tasks))


def _ref(ctx: Context, ref: dict, images: dict, anns: dict, categories: set | None, image_dir,
         tasks: set[str]) -> Iterator[dict]:
    ann_id = field_of(ref, "ann_id", int, "a COCO annotation id")
    ann = anns.get(ann_id)
    if ann is None:
        raise Rejected("unknown_annotation", f"ann_id {ann_id} is not in instances.json")
    category = ref.get("category_id", ann.get("category_id"))
    if categories is not None and category not in categories:
        raise Rejected("unknown_category", f"category_id {category!r} is not in instances.json categories")
    img = images.get(ref.get("image_id"))
    if img is None:
        raise Rejected("unknown_image", f"image_id {ref.get('image_id')!r} is not in instances.json")
    bbox = field_of(ann, "bbox", list, "[x, y, w, h] in pixels")
    if len(bbox) != 4:
        raise Rejected("malformed", f"bbox {bbox!r}; expected [x, y, w, h]")
    x, y, w, h = (number(v, "bbox") for v in bbox)
    width, height = number(img.get("width"), "width"), number(img.get("height"), "height")
    box = box_text(ctx.pixel_box(x, y, x + w, y + h, width, height))
    image = ctx.media(image_dir, field_of(img, "file_name", str, "the image file name"))
    meta_base = {"ref_id": ref.get("ref_id"), "ann_id": ann_id, "image_id": img["id"], "split": ref.get("split")}
    for sent in field_of(ref, "sentences", list, "a list of {sent, sent_id}"):
        text = clean(field_of(sent, "sent", str, "the expression"))
        if not text:
            raise Rejected("empty_text", f"sentence {sent.get('sent_id')!r} is empty")
        sid = sent.get("sent_id")
        meta = {**meta_base, "sent_id": sid}
        if "rec" in tasks:
            q = ctx.question("rec", f"rec-{sid}", exp=text)
            yield ctx.sample(f"{ctx.source}-rec-{sid}", "rec", [("image", image)], [(q, box)], meta)
        if "reg" in tasks:
            q = ctx.question("reg", f"reg-{sid}", region=box)
            yield ctx.sample(f"{ctx.source}-reg-{sid}", "reg", [("image", image)], [(q, as_answer(text))], meta)
