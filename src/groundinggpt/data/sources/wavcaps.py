"""WavCaps (XinhaoMei/WavCaps) -> audio caption samples (stage 1).

Files: ``json_files/<subset>/*.json`` for the four subsets ``AudioSet_SL``,
``BBC_Sound_Effects``, ``FreeSound``, ``SoundBible`` — each ``{"data": [{"id", "caption",
"duration", ...}]}`` (other keys differ per subset and go to ``meta``). Audio:
``<audio_dir>/<subset>/<id without extension><audio_ext>`` (the release ships FLAC,
``audio_ext`` default ``.flac``); the release's zips unpack to ``.../waveforms/<subset>_flac/``,
so ``<audio_dir>/<subset>_flac/`` is used when ``<audio_dir>/<subset>/`` does not exist. Optional ``blacklist``: a JSON file of ids to leave
out (the release's lists of clips overlapping AudioCaps/Clotho test sets), counted as
skipped. Streamed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..jsonstream import iter_array_at
from ._text import as_answer
from .base import Context, Rejected, field_of, guarded

STAGE = 1
FILES = "json_files/{AudioSet_SL,BBC_Sound_Effects,FreeSound,SoundBible}/*.json; audio"
SUBSETS = ("AudioSet_SL", "BBC_Sound_Effects", "FreeSound", "SoundBible")


def _blacklist(ctx: Context) -> set[str]:
    if not ctx.opt("blacklist"):
        return set()
    data = json.loads(ctx.path("blacklist").read_text(encoding="utf-8"))
    ids: set[str] = set()
    for v in (data.values() if isinstance(data, dict) else [data]):
        ids.update(str(i) for i in v)
    return ids


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    base = ctx.path("json_dir", "json_files")
    audio_dir = ctx.path("audio_dir", "audio")
    ext = ctx.opt("audio_ext", ".flac")
    black = _blacklist(ctx)
    subsets = ctx.opt("subsets", list(SUBSETS))
    for subset in subsets:
        folder = base / subset
        files = sorted(folder.glob("*.json"))
        if not files:
            raise FileNotFoundError(f"source 'wavcaps': no {folder}/*.json (expected the release's json_files)")
        audio = audio_dir / subset
        if not audio.is_dir() and (audio_dir / f"{subset}_flac").is_dir():
            audio = audio_dir / f"{subset}_flac"  # the folder name inside the release's zip
        for path in files:
            for where, item in iter_array_at(path, "data.item", "$.data"):
                w = f"{path}:{where}"
                yield from guarded(ctx, w, item.get("id") if isinstance(item, dict) else None,
                                   lambda: _one(ctx, subset, item, audio, ext, black))


def _one(ctx: Context, subset: str, item: dict, audio: Path, ext: str, black: set[str]) -> Iterator[dict]:
    iid = item.get("id")
    if isinstance(iid, bool) or not isinstance(iid, (str, int)) or str(iid) == "":
        raise Rejected("malformed", f"field 'id' is {iid!r}; expected the clip id")
    iid = str(iid)
    stem = Path(iid).stem if Path(iid).suffix.lower() in (".wav", ".flac", ".mp3") else iid
    if iid in black or stem in black:
        ctx.skip("blacklisted")
        return
    caption = as_answer(field_of(item, "caption", str, "the caption"))
    if not caption:
        raise Rejected("empty_text", "empty caption")
    media = ctx.media(audio, stem + ext)
    meta = {"subset": subset, "id": iid, **{k: v for k, v in item.items() if k in ("duration", "title", "description")}}
    yield ctx.sample(f"wavcaps-{subset}-{stem}", "audio_caption", [("audio", media)],
                     [(ctx.question("audio_caption", f"{subset}-{stem}"), caption)], meta)
