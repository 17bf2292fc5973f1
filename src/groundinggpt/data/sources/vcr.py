"""VCR (rowanz/r2c) -> visual reasoning with coordinates (stage 3).

Files: ``train.jsonl`` (option ``split``) — one JSON object per line with ``objects``
(class names), ``img_fn``, ``metadata_fn``, ``question``, ``answer_choices``,
``answer_label``, ``rationale_choices``, ``rationale_label``, ``annot_id``; the text
fields are token lists in which a list of integers refers to ``objects`` by index. Per
image, ``vcr1images/<metadata_fn>`` holds ``{"boxes": [[x1, y1, x2, y2, score], ...],
"width", "height"}``; the image is ``vcr1images/<img_fn>`` (option ``image_dir``).

Conventions: metadata boxes are corners in continuous pixels of the original image
(the detector's output), relative to the metadata ``width``/``height``. An object
reference becomes ``<class><index + 1><box>`` ("person1[0.120, ...]"), several joined by
"and". Two turns: the question and the correct answer, then "Why?" and the correct
rationale. Records without labels (the test split) are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ... import jsonsafe
from .base import Context, Rejected, box_text, field_of, number

STAGE = 3
FILES = "train.jsonl (val.jsonl) + vcr1images/<movie>/<frame>.json; images vcr1images/"
_NO_SPACE_BEFORE = {".", ",", "?", "!", "'s", "n't", ";", ":", "'"}


def render(tokens: list, names: list[str]) -> str:
    """Join VCR tokens into text; object references become ``name<k>[box]``."""
    out = ""
    for tok in tokens:
        if isinstance(tok, list):
            piece = " and ".join(names[i] for i in tok)
        elif isinstance(tok, str):
            piece = tok
        else:
            raise Rejected("malformed", f"token {tok!r}; expected a string or a list of object indices")
        if out and piece not in _NO_SPACE_BEFORE:
            out += " "
        out += piece
    return out


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    split = ctx.opt("split", "train")
    path = ctx.require_file(ctx.opt("file", f"{split}.jsonl"), "a VCR annotation jsonl")
    image_dir = ctx.path("image_dir", "vcr1images")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = jsonsafe.loads(line)
                yield from _one(ctx, rec, image_dir)
            except ValueError as e:
                ctx.reject(where, "malformed", f"invalid JSON ({e})")
            except Rejected as r:
                ctx.reject(where, r.reason, r.detail, rec.get("annot_id") if isinstance(rec, dict) else None)
            except (KeyError, TypeError, IndexError) as e:
                ctx.reject(where, "malformed", f"{type(e).__name__}: {e}")


def read_record(ctx: Context, rec: dict, image_dir: Path) -> tuple[str, list[tuple[float, ...]], str, str, str]:
    """``(image path, object boxes, question, answer, rationale)`` of a labelled record,
    object references rendered ``person1[box]`` (also used by ``data instruct vcr-reasoning``)."""
    meta_path = image_dir / field_of(rec, "metadata_fn", str, "the per-image metadata json")
    if not meta_path.is_file():
        raise Rejected("missing_annotation", f"{meta_path} does not exist")
    md = jsonsafe.loads(meta_path.read_text(encoding="utf-8"))
    width, height = number(md.get("width"), "width"), number(md.get("height"), "height")
    objects = field_of(rec, "objects", list, "object class names")
    boxes = md.get("boxes")
    if not isinstance(boxes, list) or len(boxes) < len(objects):
        raise Rejected("malformed", f"{meta_path}: {len(boxes or [])} boxes for {len(objects)} objects")
    names, rel = [], []
    for i, (cls, b) in enumerate(zip(objects, boxes)):
        x1, y1, x2, y2 = (number(v, "boxes") for v in b[:4])
        text = box_text(ctx.pixel_box(x1, y1, x2, y2, width, height))
        names.append(f"{cls}{i + 1}{text}")
        rel.append(tuple(float(v) for v in text.strip("[]").split(", ")))
    image = ctx.media(image_dir, field_of(rec, "img_fn", str, "the image file"))
    q = render(rec["question"], names)
    a = render(rec["answer_choices"][rec["answer_label"]], names)
    r = render(rec["rationale_choices"][rec["rationale_label"]], names)
    return image, rel, q, a, r


def _one(ctx: Context, rec: dict, image_dir: Path) -> Iterator[dict]:
    if rec.get("answer_label") is None or rec.get("rationale_label") is None:
        ctx.skip("no labels (test split)")
        return
    image, _, q, a, r = read_record(ctx, rec, image_dir)
    aid = rec.get("annot_id", f"{rec.get('img_fn')}-{rec.get('question_number')}")
    yield ctx.sample(f"vcr-{aid}", "vqa", [("image", image)], [(q, a), ("Why?", r)],
                     {"annot_id": aid, "img_fn": rec["img_fn"], "movie": rec.get("movie")})
