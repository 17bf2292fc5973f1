"""What every source converter shares: the conversion context, rejections, sample building.

A converter is a generator ``convert(ctx) -> Iterator[dict]`` that reads one public
dataset in the form its publisher ships it and yields samples of the project's schema
(``docs/data.md``). Everything it cannot convert faithfully goes through
:meth:`Context.reject` with a reason code and a location (``file:line`` or
``file:$[12].regions[3]``): counted, written to ``rejected.jsonl``, never kept silently
and never silently fixed. ``strict`` turns the first rejection into an error.
"""

from __future__ import annotations

import json
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from ...errors import InputError
from ...grounding import Box
from ..templates import QUESTION_POOLS

__all__ = ["ConversionError", "Context", "Rejected", "Serialized", "fmt_box", "fmt_span", "number"]


class ConversionError(InputError):
    """``--strict``: the first rejected record stops the conversion (the message names it)."""


class Rejected(Exception):
    """Raised inside a converter's per-record code: the record is rejected with this reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def number(value: Any, what: str) -> float:
    """A finite JSON number (bool refused), else :class:`Rejected` ``malformed``."""
    t = type(value)
    if t is float:
        if value - value == 0.0:  # false for inf and nan
            return value
    elif t is int:
        return float(value)
    raise Rejected("malformed", f"field {what!r} is {value!r}; expected a finite number")


class Checked(str):
    """A text that is exactly one box or span formatted here from checked numbers.

    convert.py skips re-parsing these (a REC answer is one box: parsing it again for
    every one of VG's 5M regions cost a fifth of the conversion time).
    """

    __slots__ = ()


class Serialized(NamedTuple):
    """Samples their converter has already checked and written as JSONL lines (ids, tasks, lines in order).

    The hot loop of the largest source (VG, 5M regions) builds each line from pre-serialised
    pieces, and hands over one image's lines at once, instead of dicts that convert.py would
    re-check and serialise one by one: every line must be byte-for-byte what ``orjson.dumps``
    of the :meth:`Context.sample` dict gives (tested), and hold no text a check could reject
    (convert.py checks only the ids: resume, duplicates).
    """

    ids: list[str]
    tasks: list[str]
    lines: list[bytes]  # each ends with b"\n"


def fmt_box(x1: float, y1: float, x2: float, y2: float) -> str:
    """``[x1, y1, x2, y2]`` with 3 decimals; the caller has checked 0 <= x1 < x2 <= 1 (and y)."""
    return f"[{x1:.3f}, {y1:.3f}, {x2:.3f}, {y2:.3f}]"


def fmt_span(t1: float, t2: float) -> str:
    """``{t1, t2}`` with 2 decimals; the caller has checked 0 <= t1 <= t2 <= 1."""
    return f"{{{t1:.2f}, {t2:.2f}}}"


def pixel_box(x1: float, y1: float, x2: float, y2: float, width: float, height: float) -> Box:
    """A box given by continuous pixel corners, relative to a ``width`` x ``height`` image.

    Raises :class:`Rejected` when the size is not positive, the box is empty, or it
    leaves the image (``box_outside_image``): the publisher's frame is the image.
    Returns plain floats ``(x1, y1, x2, y2)`` (the hot path of 5M VG regions: no dataclass per box).
    """
    if not (width > 0 and height > 0):
        raise Rejected("bad_image_size", f"image size {width!r}x{height!r}; expected positive numbers")
    if not (x2 > x1 and y2 > y1):
        raise Rejected("empty_box", f"box corners ({x1:g}, {y1:g}, {x2:g}, {y2:g}) enclose no area")
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise Rejected("box_outside_image", f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) px leaves the "
                                            f"{width:g}x{height:g} image")
    # + 0.0 turns a -0.0 from the file into 0.0 (it would print as "-0.000").
    return (x1 / width + 0.0, y1 / height + 0.0, x2 / width, y2 / height)


def box_text(box: Box | tuple[float, float, float, float]) -> str:
    """Format a relative box; refuses one that rounds to nothing (``[0.500, 0.2, 0.500, ...]``)."""
    x1, y1, x2, y2 = box.as_list() if isinstance(box, Box) else box
    a, b, c, d = f"{x1:.3f}", f"{y1:.3f}", f"{x2:.3f}", f"{y2:.3f}"
    # Values in [0, 1] format to the same width ("0.123", "1.000"): string order is numeric order.
    if not (a < c and b < d):
        raise Rejected("box_too_small", f"box {[x1, y1, x2, y2]} is empty at 3 decimals")
    return Checked(f"[{a}, {b}, {c}, {d}]")


def span_text(start_s: float, end_s: float, duration: float) -> str:
    """A span in seconds as a fraction of ``duration`` (2 decimals).

    Raises :class:`Rejected` ``span_outside_video`` when it starts before 0 or ends after
    the duration, ``empty_span`` when end < start, ``bad_duration`` for duration <= 0.
    """
    if not duration > 0:
        raise Rejected("bad_duration", f"duration {duration!r}; expected > 0 seconds")
    if end_s < start_s:
        raise Rejected("empty_span", f"span {start_s:g}-{end_s:g} s ends before it starts")
    if start_s < 0 or end_s > duration:
        raise Rejected("span_outside_video", f"span {start_s:g}-{end_s:g} s leaves the {duration:g} s video")
    return Checked(fmt_span(start_s / duration, end_s / duration))


@dataclass
class Context:
    """One source's conversion: its options, where its media are, and its rejections.

    Attributes:
        source: registry name (``refcoco`` ...), written in every sample's ``source``.
        root: the folder holding the source's annotation files, as its publisher ships them.
        media_root: media paths in samples are written relative to this folder.
        options: the source's options from ``sources.yaml`` (``split``, ``image_dir`` ...).
        stage: value of every sample's ``stage``.
        seed: template choice is a hash of (seed, sample id): the same for a sample
            whatever order or subset the build converts.
        strict: raise :class:`ConversionError` at the first rejection.
        check_media: reject samples whose media file does not exist.
        rejected: open file to write rejections to (JSONL), or None.
    """

    source: str
    root: Path
    media_root: Path
    options: dict[str, Any] = field(default_factory=dict)
    stage: int | None = None
    seed: int = 0
    strict: bool = False
    check_media: bool = True
    rejected: IO[str] | None = None
    counts: Counter = field(default_factory=Counter)
    fixes: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    image_sizes: Callable[[Sequence[str]], Mapping[str, tuple[int, int]]] | None = None
    _prefix: dict[str, int] = field(default_factory=dict, repr=False)

    # --- options -------------------------------------------------------------------
    def opt(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def path(self, name: str, default: str | None = None) -> Path:
        """Option ``name`` as a path (relative to ``root``), or ``root/default``."""
        value = self.options.get(name, default)
        if value is None:
            raise InputError(f"source {self.source!r}: option {name!r} is required")
        p = Path(value)
        return p if p.is_absolute() else self.root / p

    def require_file(self, name: str, what: str) -> Path:
        p = self.root / name if not Path(name).is_absolute() else Path(name)
        if not p.is_file():
            raise FileNotFoundError(f"source {self.source!r}: {p} not found (expected {what})")
        return p

    # --- media ---------------------------------------------------------------------
    def media(self, folder: Path, name: str) -> str:
        """The path written in a sample for ``folder/name``, relative to the media root.

        Raises :class:`Rejected` ``missing_media`` when ``check_media`` and the file is absent.
        """
        full = Path(os.path.normpath(folder / name))
        if self.check_media and not full.is_file():
            raise Rejected("missing_media", f"{full} does not exist (or pass check_media: false to "
                                            "convert annotations without their media)")
        try:
            return full.relative_to(os.path.normpath(self.media_root)).as_posix()
        except ValueError:
            return os.path.relpath(full, os.path.normpath(self.media_root)).replace(os.sep, "/")

    # --- coordinates ---------------------------------------------------------------
    def pixel_box(self, x1: float, y1: float, x2: float, y2: float, width: float, height: float) -> tuple:
        """A box from continuous pixel corners, relative to the ORIGINAL ``width`` x ``height`` image.

        A corner outside the image by at most ``tolerance_px`` (option, default 1 pixel:
        float round-off and border pixels of polygon-derived boxes) is clipped to the
        image edge and counted (``box_clipped_to_image``); further out, the record is
        rejected ``box_outside_image``.
        """
        tol = float(self.options.get("tolerance_px", 1.0))
        if width > 0 and height > 0 and x2 > x1 and y2 > y1:
            if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
                if x1 >= -tol and y1 >= -tol and x2 <= width + tol and y2 <= height + tol:
                    self.fixed("box_clipped_to_image")
                    x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, width), min(y2, height)
        return pixel_box(x1, y1, x2, y2, width, height)

    # --- templates -----------------------------------------------------------------
    def question(self, family: str, sample_id: str, **slots: str) -> str:
        """A phrasing from the family's pool, chosen by (seed, sample id)."""
        pool, prefix = self.pool(family)
        k = zlib.crc32(sample_id.encode(), prefix) % len(pool)
        return pool[k].format(**slots) if slots else pool[k]

    def pool(self, family: str) -> tuple[Sequence[str], int]:
        """The family's phrasings and the crc32 state the choice continues with the sample id.

        :meth:`question` is ``pool[crc32(id, state) % len(pool)]``; a hot loop (VG's 5M
        regions) takes both once and picks inline.
        """
        prefix = self._prefix.get(family)
        if prefix is None:  # crc32 of "seed NUL family NUL", continued with the id
            prefix = self._prefix[family] = zlib.crc32(f"{self.seed}\x00{family}\x00".encode())
        return QUESTION_POOLS[family], prefix

    # --- bookkeeping ---------------------------------------------------------------
    def reject(self, where: str, reason: str, detail: str, record_id: Any = None) -> None:
        """Count and log one rejected record; raise :class:`ConversionError` when strict."""
        self.counts[reason] += 1
        if self.rejected is not None:
            self.rejected.write(json.dumps({"source": self.source, "where": where, "reason": reason,
                                            "detail": detail, "id": record_id}, ensure_ascii=False) + "\n")
        if self.strict:
            raise ConversionError(f"{where}: {reason}: {detail} (--strict stops at the first rejection)")

    def fixed(self, what: str) -> None:
        """Count a documented, publisher-defined adjustment (a Charades end clipped to the video)."""
        self.fixes[what] += 1

    def skip(self, what: str) -> None:
        """Count a record that holds nothing for this task (a HiREST video with no moment)."""
        self.skipped[what] += 1

    def sample(self, sample_id: str, task: str, media: Iterable[tuple[str, str]],
               turns: Sequence[tuple[str, str]], meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """A schema sample: the media parts first in the first user turn, then the text."""
        messages: list[dict[str, Any]] = []
        for i, (question, answer) in enumerate(turns):
            content: list[dict[str, Any]] = []
            if i == 0:
                content.extend({"type": kind, kind: path} for kind, path in media)
            content.append({"type": "text", "text": question})
            messages.append({"role": "user", "content": content})
            messages.append({"role": "assistant", "content": answer})
        # "_built": structure correct by construction; convert.py checks only the texts and drops the key.
        return {"id": sample_id, "task": task, "stage": self.stage, "source": self.source,
                "messages": messages, "meta": meta, "_built": True}


def guarded(ctx: Context, where: str, record_id: Any, fn: Callable[[], Iterable[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run one record's conversion; a :class:`Rejected` becomes a rejection, not a crash."""
    try:
        return list(fn())
    except Rejected as r:
        ctx.reject(where, r.reason, r.detail, record_id)
        return []
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        # A record of another shape than the published one.
        ctx.reject(where, "malformed", f"{type(e).__name__}: {e}", record_id)
        return []


def field_of(record: Any, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """``record[key]`` of the given type, else :class:`Rejected` ``malformed`` naming the field."""
    if not isinstance(record, dict):
        raise Rejected("malformed", f"expected an object with {key!r}, got {type(record).__name__}")
    if key not in record:
        raise Rejected("malformed", f"missing field {key!r} ({what})")
    value = record[key]
    # JSON true/false are not numbers: bool passes only where it is asked for by name.
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise Rejected("malformed", f"field {key!r} is {value!r}; expected {what}")
    return value
