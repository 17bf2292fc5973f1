"""Run one source converter into a JSONL file: validation, rejections, resume, report.

``convert_source`` streams the converter's samples into ``OUTPUT.partial`` (one line
each, flushed), validates every sample with the schema's own checks, refuses duplicate
ids, and writes every rejection to ``OUTPUT.rejected.jsonl``. The finished file is
renamed into place with a ``OUTPUT.report.json`` of the counts. When a run is killed,
the next run with the same output reads the ids already in ``.partial`` (dropping a
line cut in half) and appends only the rest: converters are deterministic, so the
result equals an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .schema import DataError, Sample
from .sources import load_source, stage_of
from ..grounding import invalid_coordinates
from .sources.base import Checked, Context, ConversionError, Serialized

__all__ = ["ConvertReport", "convert_source", "partial_path", "rejected_path", "report_path"]


def _dumps(d: dict[str, Any]) -> bytes:
    # orjson: ~5x json.dumps on these small objects; same JSON (UTF-8, no ASCII escapes).
    return orjson.dumps(d) + b"\n"


def _check(d: dict[str, Any], name: str, sid: Any) -> None:
    """The schema's checks, cheaper for samples built by :meth:`Context.sample`.

    Those have the schema's structure by construction (roles, parts, types), so only
    their texts are checked for coordinates a reader would misread (an out-of-range box
    in a data set's own text, say). Anything else goes through :meth:`Sample.from_dict`.
    """
    if d.pop("_built", False):
        for m in d["messages"]:
            c = m["content"]
            texts = [c] if isinstance(c, str) else [p["text"] for p in c if p["type"] == "text"]
            for t in texts:
                if type(t) is not Checked and ("[" in t or "{" in t) and invalid_coordinates(t):
                    Sample.from_dict({k: v for k, v in d.items()}, f"{name} sample {sid!r}")  # names the field
        return
    Sample.from_dict(d, f"{name} sample {sid!r}")


def _new_id(sid: Any, done: set[str], seen: set[int], ctx: Context, name: str) -> bool:
    """Whether ``sid`` is to be written: not done by an interrupted run, not produced before
    (a ``duplicate_id`` rejection); a new id is added to ``seen``.

    ``seen`` holds 64-bit hashes, not the ids: VG's 5M ids take ~300 MB less; a collision
    (odds ~1e-6 at 5M) would show as a duplicate_id rejection, never a silent loss.
    """
    if done and sid in done:
        return False
    key = hash(sid)
    if key in seen:
        ctx.reject(f"{name} sample {sid!r}", "duplicate_id", f"id {sid!r} was produced twice", sid)
        return False
    seen.add(key)
    return True


def partial_path(output: Path) -> Path:
    return output.with_name(output.name + ".partial")


def rejected_path(output: Path) -> Path:
    return output.with_name(output.stem + ".rejected.jsonl")


def report_path(output: Path) -> Path:
    return output.with_name(output.stem + ".report.json")


@dataclass
class ConvertReport:
    """Counts of one conversion (also written as ``OUTPUT.report.json``)."""

    source: str
    output: str
    written: int = 0
    resumed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    fixed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def summary(self) -> str:
        rej = sum(self.rejected.values())
        parts = [f"{self.source}: {self.written} samples -> {self.output}"]
        if self.resumed:
            parts.append(f"({self.resumed} kept from an interrupted run)")
        parts.append(f"{rej} rejected" + (f" {dict(sorted(self.rejected.items()))}" if rej else ""))
        if self.fixed:
            parts.append(f"adjusted {dict(sorted(self.fixed.items()))}")
        if self.skipped:
            parts.append(f"skipped {dict(sorted(self.skipped.items()))}")
        return "; ".join(parts)


def _read_done(partial: Path) -> tuple[set[str], Counter]:
    """Ids (and tasks) of the complete lines of an interrupted run; a cut last line is dropped."""
    done: set[str] = set()
    tasks: Counter = Counter()
    good_bytes = 0
    with partial.open("rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                d = json.loads(raw)
            except ValueError:
                break
            done.add(d["id"])
            tasks[d["task"]] += 1
            good_bytes += len(raw)
    with partial.open("r+b") as f:
        f.truncate(good_bytes)
    return done, tasks


def convert_source(
    name: str,
    root: str | os.PathLike,
    output: str | os.PathLike,
    *,
    media_root: str | os.PathLike | None = None,
    options: dict[str, Any] | None = None,
    stage: int | None = None,
    seed: int = 0,
    strict: bool = False,
    check_media: bool = True,
    resume: bool = True,
    progress: bool = False,
    image_sizes: Any = None,
) -> ConvertReport:
    """Convert one source into ``output`` (JSONL) and return the counts.

    Args:
        name: registry name (``refcoco``, ``didemo`` ...).
        root: the folder with the source's files as published.
        output: the JSONL file to write.
        media_root: media paths are written relative to it (default ``root``).
        options: the source's options (``split``, ``image_dir`` ...; see docs/data-sources.md).
        stage: ``stage`` of the samples (default: the source's stage in the paper).
        seed: phrasing choice seed.
        strict: stop at the first rejection (:class:`ConversionError`).
        check_media: reject samples whose media file is missing.
        resume: continue an interrupted run of the same output (else start over).
        progress: show a progress bar.
        image_sizes: an :class:`~groundinggpt.data.imagesize.ImageSizeCache` for sources
            that need image sizes the annotations lack.
    """
    module = load_source(name)
    output = Path(output)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"source {name!r}: {root} is not a folder (expected the dataset's files)")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(output)
    done: set[str] = set()
    report = ConvertReport(source=name, output=str(output))
    tasks: Counter = Counter()
    if resume and partial.is_file():
        done, tasks = _read_done(partial)
        report.resumed = len(done)
    elif partial.exists():
        partial.unlink()
    if image_sizes is None:
        from .imagesize import ImageSizeCache

        image_sizes = ImageSizeCache(media_root or root, output.with_name(output.stem + ".image_sizes.jsonl"))
    start = time.perf_counter()
    seen: set[int] = {hash(i) for i in done}
    rejected = rejected_path(output).open("w", encoding="utf-8")
    ctx = Context(source=name, root=root, media_root=Path(media_root) if media_root else root,
                  options=dict(options or {}), stage=stage if stage is not None else stage_of(name),
                  seed=seed, strict=strict, check_media=check_media, rejected=rejected,
                  image_sizes=image_sizes)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc=name, unit=" samples", file=sys.stderr, disable=None, mininterval=1.0)
    try:
        with partial.open("ab") as out:
            buffer: list[bytes] = []
            for d in module.convert(ctx):
                if type(d) is Serialized:  # checked and serialised by the converter (VG's hot loop)
                    keys = [hash(i) for i in d.ids]
                    if not done and seen.isdisjoint(keys) and len(set(keys)) == len(keys):
                        seen.update(keys)  # no resume, no duplicate: the whole batch at C speed
                        buffer.extend(d.lines)
                        for task, n in Counter(d.tasks).items():
                            tasks[task] = tasks.get(task, 0) + n
                    else:
                        for sid, task, line in zip(d.ids, d.tasks, d.lines):
                            if _new_id(sid, done, seen, ctx, name):
                                buffer.append(line)
                                tasks[task] = tasks.get(task, 0) + 1
                else:
                    sid = d["id"]
                    if not _new_id(sid, done, seen, ctx, name):
                        continue
                    try:
                        _check(d, name, sid)
                    except DataError as e:
                        seen.discard(hash(sid))
                        ctx.reject(f"{name} sample {sid!r}", "invalid_sample", str(e), sid)
                        continue
                    buffer.append(_dumps(d))
                    task = d["task"]
                    tasks[task] = tasks.get(task, 0) + 1
                if len(buffer) >= 1024:
                    out.write(b"".join(buffer))
                    report.written += len(buffer)
                    if bar is not None:
                        bar.update(len(buffer))
                    buffer.clear()
            out.write(b"".join(buffer))
            report.written += len(buffer)
    finally:
        rejected.close()
        if bar is not None:
            bar.close()
    os.replace(partial, output)
    report.written += report.resumed
    report.rejected = dict(ctx.counts)
    report.fixed = dict(ctx.fixes)
    report.skipped = dict(ctx.skipped)
    report.tasks = dict(tasks)
    report.seconds = round(time.perf_counter() - start, 3)
    report_path(output).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return report


__all__ += ["ConversionError"]
