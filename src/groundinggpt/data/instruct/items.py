"""What each kind of generated data is made from: one item per image or video.

- ``flickr30k-description`` / ``flickr30k-conversation`` (Figures 4, 5): the five
  sentences of a Flickr30k Entities image, each with its phrases' boxes (every box of a
  phrase, not their union: the figures list them one by one), as the figures print them.
- ``vcr-reasoning``: one VCR question with its correct answer and rationale, the objects
  written ``person1[box]``.
- ``video-conversation`` (Figure 6): the events of an ActivityNet Captions video (or a
  DiDeMo video's descriptions), each with its span.

An item carries the context text sent to the model, the boxes / spans that context
holds (answers may use no others) and the media part of the sample to build.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from ... import jsonsafe
from ..jsonstream import iter_object
from ..sources._text import clean
from ..sources.base import Context, Rejected, box_text, span_text
from ..sources.flickr30k import _PHRASE, read_boxes
from ..sources.vcr import read_record

__all__ = ["Item", "KINDS", "items_for"]


@dataclass
class Item:
    id: str
    context: str
    media: list[tuple[str, str]]
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)


def flickr30k_items(ctx: Context) -> Iterator[Item]:
    sentences, annotations = ctx.path("sentences_dir", "Sentences"), ctx.path("annotations_dir", "Annotations")
    image_dir = ctx.path("image_dir", "flickr30k-images")
    split_file = ctx.root / f"{ctx.opt('split', 'train')}.txt"
    ids = ([x.strip() for x in split_file.read_text().splitlines() if x.strip()] if split_file.is_file()
           else sorted(p.stem for p in sentences.glob("*.txt")))
    for iid in ids:
        try:
            (w, h), boxes = read_boxes(annotations / f"{iid}.xml")
            media = [("image", ctx.media(image_dir, f"{iid}.jpg"))]
            texts = {eid: [box_text(ctx.pixel_box(*b, w, h)) for b in bs] for eid, bs in boxes.items()}
        except Rejected as r:
            ctx.reject(str(annotations / f"{iid}.xml"), r.reason, r.detail, iid)
            continue
        blocks, allowed = [], set()
        for line in (sentences / f"{iid}.txt").read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            phrases = {}
            for m in _PHRASE.finditer(line):
                if m.group(1) in texts:
                    phrases[clean(m.group(3))] = texts[m.group(1)]
                    allowed.update(texts[m.group(1)])
            sentence = clean(_PHRASE.sub(lambda m: m.group(3), line))
            body = ", ".join(f"{json.dumps(p)}: [{', '.join(bs)}]" for p, bs in phrases.items())
            blocks.append(f"{{'sentence': {json.dumps(sentence)}, 'boxes': {{{body}}}}}")
        yield Item(id=iid, context="\n\n".join(blocks), media=media,
                   boxes=[tuple(float(v) for v in b.strip("[]").split(", ")) for b in sorted(allowed)])


def vcr_items(ctx: Context) -> Iterator[Item]:
    split = ctx.opt("split", "train")
    path = ctx.require_file(ctx.opt("file", f"{split}.jsonl"), "a VCR annotation jsonl")
    image_dir = ctx.path("image_dir", "vcr1images")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = jsonsafe.loads(line)
                if rec.get("answer_label") is None or rec.get("rationale_label") is None:
                    continue
                image, boxes, q, a, r = read_record(ctx, rec, image_dir)
                media = [("image", image)]
            except Rejected as e:
                ctx.reject(f"{path}:{lineno}", e.reason, e.detail)
                continue
            except (ValueError, KeyError, TypeError, IndexError, OSError) as e:
                ctx.reject(f"{path}:{lineno}", "malformed", f"{type(e).__name__}: {e}")
                continue
            context = f"{{'question': {json.dumps(q)}, 'answer': {json.dumps(a)}, 'rationale': {json.dumps(r)}}}"
            yield Item(id=str(rec.get("annot_id", lineno)), context=context, media=media, boxes=boxes)


def video_items(ctx: Context) -> Iterator[Item]:
    video_dir = ctx.path("video_dir", "videos")
    for name in ctx.opt("files", ["train.json"]):
        path = ctx.require_file(name, "an ActivityNet Captions json")
        for where, (vid, ann) in iter_object(path):
            try:
                duration = float(ann["duration"])
                lines, spans = [], []
                for (s, e), sentence in zip(ann["timestamps"], ann["sentences"]):
                    span = span_text(float(s), min(float(e), duration), duration)
                    spans.append(tuple(float(v) for v in span.strip("{}").split(", ")))
                    lines.append(f"{{{json.dumps(clean(sentence))}: '{span}'}}")
                media = [("video", ctx.media(video_dir, vid + ctx.opt("video_ext", ".mp4")))]
            except Rejected as r:
                ctx.reject(f"{path}:{where}", r.reason, r.detail, vid)
                continue
            except (KeyError, TypeError, ValueError) as e:
                ctx.reject(f"{path}:{where}", "malformed", f"{type(e).__name__}: {e}", vid)
                continue
            yield Item(id=vid, context="\n\n".join(lines), media=media, spans=spans)


KINDS = {
    "flickr30k-description": ("flickr30k-entities", flickr30k_items, "grounded_description"),
    "flickr30k-conversation": ("flickr30k-entities", flickr30k_items, "conversation"),
    "vcr-reasoning": ("vcr", vcr_items, "reasoning"),
    "video-conversation": ("activitynet-captions", video_items, "video_conversation"),
}


def items_for(kind: str, ctx: Context) -> Iterator[Item]:
    return KINDS[kind][1](ctx)

