"""Flickr30k Entities (BryanPlummer/flickr30k_entities) -> grounded captions (stage 3).

Files: ``Sentences/<image id>.txt`` — five sentences, phrases marked
``[/EN#<entity id>/<type>[/<type>...] words]`` — and ``Annotations/<image id>.xml``
(PASCAL-VOC style: ``<size><width><height>``, ``<object>`` with one or more ``<name>``
entity ids and a ``<bndbox>`` ``xmin ymin xmax ymax``, or ``<nobndbox>``/``<scene>``).
Option ``split`` (default ``train``) reads the ids of ``<split>.txt``; images
``<image_dir>/<id>.jpg`` (default ``flickr30k-images``).

Conventions: box corners are 1-based pixel indices, both inclusive (the publisher's
``flickr30k_entities_utils.get_annotations`` subtracts 1 from each); in continuous
coordinates the box spans ``[xmin - 1, xmax]`` (pixel ``xmax`` ends at ``xmax``), relative
to the XML ``<size>``. A phrase whose entity has several boxes gets their UNION (the
enclosing box), as the dataset paper's phrase-localisation protocol does. An object
listing several ``<name>`` ids belongs to each of them. Phrases without a box (``nobndbox``,
``scene``, entity 0 ``notvisual``) stay plain text.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._text import clean
from .base import Context, Rejected, box_text, guarded

STAGE = 3
FILES = "Sentences/*.txt + Annotations/*.xml (+ train.txt); images flickr30k-images/"
_PHRASE = re.compile(r"\[/EN#(\d+)((?:/[^\s\]]+)*)\s+([^\]]*)\]")


def read_boxes(path: Path) -> tuple[tuple[float, float], dict[str, list[tuple[float, float, float, float]]]]:
    """``((width, height), {entity id: [continuous pixel boxes]})`` from one annotation XML."""
    try:
        root = ET.parse(path).getroot()
        size = root.find("size")
        width, height = float(size.findtext("width")), float(size.findtext("height"))
    except (ET.ParseError, AttributeError, TypeError, ValueError) as e:
        raise Rejected("malformed", f"{path}: not an annotation XML with <size><width><height> ({e})") from None
    boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            continue
        try:
            xmin, ymin, xmax, ymax = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise Rejected("malformed", f"{path}: a <bndbox> lacks numeric xmin/ymin/xmax/ymax") from None
        for name in obj.findall("name"):
            boxes.setdefault((name.text or "").strip(), []).append((xmin - 1, ymin - 1, xmax, ymax))
    return (width, height), boxes


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    sentences = ctx.path("sentences_dir", "Sentences")
    annotations = ctx.path("annotations_dir", "Annotations")
    image_dir = ctx.path("image_dir", "flickr30k-images")
    split = ctx.opt("split", "train")
    split_file = ctx.root / f"{split}.txt"
    if split_file.is_file():
        ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    else:
        ids = sorted(p.stem for p in sentences.glob("*.txt"))
    for iid in ids:
        yield from guarded(ctx, f"{sentences / (iid + '.txt')}", iid,
                           lambda: _image(ctx, iid, sentences, annotations, image_dir))


def _image(ctx: Context, iid: str, sentences: Path, annotations: Path, image_dir: Path) -> Iterator[dict]:
    spath, apath = sentences / f"{iid}.txt", annotations / f"{iid}.xml"
    if not spath.is_file() or not apath.is_file():
        raise Rejected("missing_annotation", f"{spath if not spath.is_file() else apath} does not exist")
    (width, height), boxes = read_boxes(apath)
    media = ctx.media(image_dir, f"{iid}.jpg")
    union: dict[str, str] = {}
    for eid, bs in boxes.items():
        x1, y1 = min(b[0] for b in bs), min(b[1] for b in bs)
        x2, y2 = max(b[2] for b in bs), max(b[3] for b in bs)
        union[eid] = box_text(ctx.pixel_box(x1, y1, x2, y2, width, height))
    for lineno, line in enumerate(spath.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        used = []

        def render(m: re.Match) -> str:
            eid, words = m.group(1), clean(m.group(3))
            if eid in union:
                used.append(eid)
                return f"{words}{union[eid]}"
            return words

        text = clean(_PHRASE.sub(render, line))
        if "[/EN#" in text:
            ctx.reject(f"{spath}:{lineno}", "malformed", "unbalanced phrase markup", iid)
            continue
        sid = f"{iid}-{lineno}"
        yield ctx.sample(f"flickr30k-{sid}", "grounded_caption", [("image", media)],
                         [(ctx.question("grounded_caption", sid), text[0].upper() + text[1:] if text else text)],
                         {"image_id": iid, "sentence": lineno, "entities": used})
