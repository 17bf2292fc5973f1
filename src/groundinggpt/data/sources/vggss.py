"""VGG-SS (hche11/Localizing-Visual-Sounds-the-Hard-Way) -> sound localisation samples (stage 2).

Files: ``vggss.json`` (``metadata/vggss.json`` in the release; option ``file``) — a JSON
array of ``{"file": "<youtube id>_<start>", "class": str, "bbox": [[x1, y1, x2, y2], ...]}``.
Media: ``<frame_dir>/<file>.jpg`` (the clip's middle frame) and ``<audio_dir>/<file>.wav``.

Conventions: boxes are corners RELATIVE to the frame already (fractions); the publisher's
evaluation rasterises them with ``int(224 * max(x, 0))``, i.e. it clips them to the frame:
done here, counted as ``box_clipped_to_frame``; a box empty after clipping is rejected.
All of a clip's boxes are in the answer, each after the class name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..jsonstream import iter_array
from ._text import clean
from .base import Context, Rejected, box_text, field_of, guarded, number
from ...grounding import Box

STAGE = 2
FILES = "vggss.json; frames <file>.jpg, audio <file>.wav"


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    path = ctx.require_file(ctx.opt("file", "vggss.json"), "the VGG-SS metadata json")
    frames, audio = ctx.path("frame_dir", "frames"), ctx.path("audio_dir", "audio")
    for where, d in iter_array(path):
        yield from guarded(ctx, f"{path}:{where}", d.get("file") if isinstance(d, dict) else None,
                           lambda: _one(ctx, d, frames, audio))


def _one(ctx: Context, d: dict, frames, audio) -> Iterator[dict]:
    file = field_of(d, "file", str, "the clip id")
    cls = clean(field_of(d, "class", str, "the VGGSound class"))
    boxes = []
    for b in field_of(d, "bbox", list, "a list of [x1, y1, x2, y2] relative boxes"):
        if not isinstance(b, list) or len(b) != 4:
            raise Rejected("malformed", f"box {b!r}; expected [x1, y1, x2, y2]")
        box = Box(*(number(v, "bbox") for v in b))
        if box.clipped() != box:
            ctx.fixed("box_clipped_to_frame")
            box = box.clipped()
        if not (box.x2 > box.x1 and box.y2 > box.y1):
            raise Rejected("empty_box", f"box {b!r} encloses no area of the frame")
        boxes.append(box_text(box))
    if not boxes:
        raise Rejected("malformed", "no box")
    media = [("image", ctx.media(frames, f"{file}.jpg")), ("audio", ctx.media(audio, f"{file}.wav"))]
    answer = ", ".join(f"{cls}{b}" for b in boxes)
    answer = answer[0].upper() + answer[1:] + "."
    yield ctx.sample(f"vggss-{file}", "sound_localization", media,
                     [(ctx.question("sound_localization", file), answer)], {"file": file, "class": cls})
