"""The grounding text contract: boxes and time spans written as plain text.

GroundingGPT writes a box ``[x1, y1, x2, y2]`` (relative, 3 decimals, top-left then
bottom-right) right after the phrase it grounds, and a time span ``{t1, t2}``
(relative to the clip's duration, 2 decimals) after the event it times.

Two coordinate frames exist and must never be mixed: numbers IN MODEL TEXT are
relative to the image padded to a square (LLaVA's ``expand2square``); numbers a
user gives or gets are relative to the ORIGINAL image. Convert with
:func:`original_to_square` / :func:`square_to_original` (or :func:`replace_boxes`
for whole prompts).

Example:
    >>> ents = parse_grounding("A dog[0.1, 0.2, 0.5, 0.9] chases a cat[0.6,0.5,0.9,0.8].")
    >>> [(e.phrase, e.box.as_list()) for e in ents]
    [('A dog', [0.1, 0.2, 0.5, 0.9]), ('a cat', [0.6, 0.5, 0.9, 0.8])]
    >>> format_box(square_to_original(ents[0].box, 640, 480))
    '[0.100, 0.100, 0.500, 1.000]'
    >>> parse_grounding("The baby stretches in {0.16, 0.36}.")[0].phrase
    'The baby stretches'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from numbers import Real
from typing import Any

import numpy as np

__all__ = [
    "Box", "Span", "GroundedEntity", "format_box", "format_span", "parse_boxes",
    "parse_spans", "parse_grounding", "original_to_square", "square_to_original",
    "span_to_seconds", "seconds_to_span", "box_iou", "temporal_iou", "replace_boxes",
    "invalid_coordinates", "box_iou_array", "span_iou_array", "accuracy_at",
]


def _clip01(v: float) -> float:
    # min/max order matters: max(0.0, nan) is 0.0, so NaN also ends up in range.
    return min(1.0, max(0.0, v))


def _coerce_fields(obj: object) -> None:
    # Store plain floats (also from ints / numpy scalars) so equality and
    # formatting behave the same whatever the caller passed in.
    for f in fields(obj):  # type: ignore[arg-type]
        v = getattr(obj, f.name)
        if isinstance(v, bool) or not isinstance(v, Real):
            raise TypeError(f"{type(obj).__name__}.{f.name} must be a real number, got {v!r}")
        object.__setattr__(obj, f.name, float(v))


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in relative coordinates (fractions of width / height)."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        _coerce_fields(self)

    @property
    def area(self) -> float:
        """Area as a fraction of the frame (corner order does not matter)."""
        return abs(self.x2 - self.x1) * abs(self.y2 - self.y1)

    def clipped(self) -> Box:
        """Return the box with every coordinate clipped to [0, 1]."""
        return Box(*(_clip01(v) for v in self.as_list()))

    def normalized(self) -> Box:
        """Return the box with corners swapped so that x1 <= x2 and y1 <= y2."""
        return Box(min(self.x1, self.x2), min(self.y1, self.y2),
                   max(self.x1, self.x2), max(self.y1, self.y2))

    def to_pixels(self, width: float, height: float) -> tuple[float, float, float, float]:
        """Return ``(x1, y1, x2, y2)`` in pixels of a ``width`` x ``height`` image."""
        _check_size(width, height)
        return (self.x1 * width, self.y1 * height, self.x2 * width, self.y2 * height)

    @classmethod
    def from_pixels(cls, x1: float, y1: float, x2: float, y2: float,
                    width: float, height: float) -> Box:
        """Build a relative box from pixel corners of a ``width`` x ``height`` image."""
        _check_size(width, height)
        return cls(x1 / width, y1 / height, x2 / width, y2 / height)

    def as_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]


@dataclass(frozen=True)
class Span:
    """A time span relative to the clip's duration (0 = start, 1 = end)."""

    start: float
    end: float

    def __post_init__(self) -> None:
        _coerce_fields(self)

    @property
    def length(self) -> float:
        return abs(self.end - self.start)

    def normalized(self) -> Span:
        return Span(min(self.start, self.end), max(self.start, self.end))

    def clipped(self) -> Span:
        return Span(_clip01(self.start), _clip01(self.end))

    def as_list(self) -> list[float]:
        return [self.start, self.end]


@dataclass(frozen=True)
class GroundedEntity:
    """A box or span found in text, with the phrase it follows.

    ``start`` / ``end`` are the character offsets of the box / span text itself.
    """

    phrase: str
    box: Box | None = None
    span: Span | None = None
    start: int = 0
    end: int = 0

    def to_dict(self) -> dict:
        return {"phrase": self.phrase,
                "box": self.box.as_list() if self.box is not None else None,
                "span": self.span.as_list() if self.span is not None else None,
                "start": self.start, "end": self.end}


# --- text format ---------------------------------------------------------------
# A number: optional sign, "1", "1.", ".5", "0.25". A trailing "%" is tolerated but
# NOT interpreted: units are never guessed, so percentages / pixel values > 1 are
# simply clipped to 1 like any other out-of-range value. ASCII digits only, because
# \d would also accept digits from other scripts.
_NUM = r"([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))%?"
# Commas or semicolons with any spacing; bare whitespace also separates numbers.
_SEP = r"(?:\s*[,;]\s*|\s+)"
# Doubled / odd brackets ("[[...]]", "{0.71, 1.0}}") and a trailing separator are
# tolerated. The look-behind starts a match only at the first of a run of opening
# brackets, which keeps matching linear on inputs like "[[[[[[...".
_BOX_RE = re.compile(r"(?<!\[)\[+\s*" + _SEP.join([_NUM] * 4) + r"\s*[,;]?\s*\]+")
_SPAN_RE = re.compile(r"(?<!\{)\{+\s*" + _SEP.join([_NUM] * 2) + r"\s*[,;]?\s*\}+")
# The same shapes with any number-like word: "nan", "inf", "1e-1". Model output with them
# is no box (the patterns above do not read it); training data with them would teach
# such text as an answer in silence, so :func:`invalid_coordinates` names them.
_ANY_NUM = r"[-+]?(?:nan|inf(?:inity)?|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e[-+]?[0-9]+)?)%?"
_ANY_BOX_RE = re.compile(r"(?<!\[)\[+\s*" + _SEP.join([_ANY_NUM] * 4) + r"\s*[,;]?\s*\]+", re.IGNORECASE)
_ANY_SPAN_RE = re.compile(r"(?<!\{)\{+\s*" + _SEP.join([_ANY_NUM] * 2) + r"\s*[,;]?\s*\}+", re.IGNORECASE)
# Where a phrase can begin: sentence punctuation or a newline; a "." only when it
# is not the decimal point of a number such as "3.5".
_DELIM_RE = re.compile(r"[!?;:,\n]|\.(?![0-9])")

_PHRASE_STRIP = " \t\r\"'`*()“”‘’"
# Words after which a box's noun phrase starts ("... is sitting ON the bed[...]").
_BOX_CONNECTIVES = frozenset(
    "is are was were and or on in at of with by near to from into onto under over "
    "above below behind beside between has have".split())
_ARTICLES = frozenset({"a", "an", "the"})
# Words that link an event to its span ("... stretches IN {..}") or chain events.
_SPAN_TRAILING = frozenset("in at during from between within around".split())
_SPAN_LEADING = frozenset("and then while but also".split())


def format_box(box: Box) -> str:
    """Format a box as model text, e.g. ``"[0.100, 0.200, 0.300, 0.400]"``.

    The box is clipped to [0, 1] and its corners normalised first.
    """
    b = box.clipped().normalized()
    return "[" + ", ".join(f"{v:.3f}" for v in b.as_list()) + "]"


def format_span(span: Span) -> str:
    """Format a span as model text, e.g. ``"{0.10, 0.25}"`` (clipped, normalised)."""
    s = span.clipped().normalized()
    return "{" + f"{s.start:.2f}, {s.end:.2f}" + "}"


def _check_text(text: object) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")


def _box_of(m: re.Match[str]) -> Box:
    # float() cannot fail on what _NUM matched; huge values become inf -> clipped.
    return Box(*(float(g) for g in m.groups())).clipped().normalized()


def _span_of(m: re.Match[str]) -> Span:
    return Span(*(float(g) for g in m.groups())).clipped().normalized()


def parse_boxes(text: str) -> list[Box]:
    """Return every well-formed box in ``text``, clipped and normalised, in order.

    Exactly four numbers make a box (``"[1, 2, 3]"`` is not one). Never raises on a
    ``str``; raises TypeError on anything else.
    """
    _check_text(text)
    return [_box_of(m) for m in _BOX_RE.finditer(text)]


def parse_spans(text: str) -> list[Span]:
    """Return every well-formed ``{t1, t2}`` span in ``text``, clipped and normalised."""
    _check_text(text)
    return [_span_of(m) for m in _SPAN_RE.finditer(text)]


def invalid_coordinates(text: str) -> list[str]:
    """The boxes and spans in ``text`` that are not valid relative coordinates.

    Model *output* is parsed tolerantly (clipped, corners swapped); training *data* must
    be right as written, or the model learns clipped or swapped labels in silence. A valid
    box has ``0 <= x1 < x2 <= 1`` and ``0 <= y1 < y2 <= 1``; a valid span ``0 <= t1 <= t2 <= 1``.

    >>> invalid_coordinates("the cat[0.1, 0.2, 0.5, 0.9] sleeps {0.2, 0.4}")
    []
    >>> invalid_coordinates("the cat[12, 30, 55, 60] at {0.8, 0.2}")
    ['box [12, 30, 55, 60]', 'span {0.8, 0.2}']

    Coordinates that are not plain finite decimals are not read as a box or span at all:

    >>> invalid_coordinates("the cat[nan, 0.1, 0.2, 0.3] at {1e-1, inf}")
    ['box [nan, 0.1, 0.2, 0.3] (not plain finite decimals)', 'span {1e-1, inf} (not plain finite decimals)']
    """
    _check_text(text)
    bad = []
    for pattern, strict, kind in ((_ANY_BOX_RE, _BOX_RE, "box"), (_ANY_SPAN_RE, _SPAN_RE, "span")):
        for m in pattern.finditer(text):
            if not strict.fullmatch(m.group(0)):
                bad.append((m.start(), f"{kind} {m.group(0).strip()} (not plain finite decimals)"))
    for m in _BOX_RE.finditer(text):
        if not _is_valid_box(m):
            bad.append((m.start(), f"box {m.group(0).strip()}"))
    for m in _SPAN_RE.finditer(text):
        t1, t2 = (float(g) for g in m.groups())
        if not 0.0 <= t1 <= t2 <= 1.0:
            bad.append((m.start(), f"span {m.group(0).strip()}"))
    return [what for _, what in sorted(bad)]


def _words(segment: str) -> list[str]:
    return [w for w in (w.strip(_PHRASE_STRIP) for w in segment.split()) if w]


def _box_phrase(segment: str) -> str:
    words = _words(segment)
    while words and words[-1].lower() in _BOX_CONNECTIVES:
        words.pop()
    cut = [i for i, w in enumerate(words) if w.lower() in _BOX_CONNECTIVES]
    if cut:
        words = words[cut[-1] + 1:]  # non-empty: trailing connectives were dropped
    arts = [i for i, w in enumerate(words[:-1]) if w.lower() in _ARTICLES]
    if arts:
        words = words[arts[-1]:]
    return " ".join(words)


def _span_phrase(segment: str) -> str:
    words = _words(segment)
    while words and words[-1].lower() in _SPAN_TRAILING:
        words.pop()
    while words and words[0].lower() in _SPAN_LEADING:
        words.pop(0)
    return " ".join(words)


def parse_grounding(text: str) -> list[GroundedEntity]:
    """Return the boxes and spans in ``text``, in text order, each with its phrase.

    Phrase heuristic: the segment is the text between the previous delimiter
    (``. ! ? ; : ,``, a newline, or the previous box/span) and the box/span.
    For a box, trailing connectives are dropped, then only the words after the
    last connective (is, are, was, were, and, or, on, in, at, of, with, by, near,
    to, from, into, onto, under, over, above, below, behind, beside, between, has,
    have) are kept, then the words from the last article (a, an, the) on, so
    ``"The girl is sitting on the bed[..] and reading a book[..]"`` gives
    ``"the bed"`` and ``"a book"``. For a span, the whole segment is the event,
    minus trailing "in/at/during/from/between/within/around" and leading
    "and/then/while/but/also": ``"The baby stretches in {..}"`` gives
    ``"The baby stretches"``. A box or span with no text before it gets ``""``.
    It is a heuristic: "a man in a red shirt[..]" gives "a red shirt".

    Never raises on a ``str``; raises TypeError on anything else.
    """
    _check_text(text)
    matches = sorted([(m, True) for m in _BOX_RE.finditer(text)]
                     + [(m, False) for m in _SPAN_RE.finditer(text)],
                     key=lambda mb: mb[0].start())
    out: list[GroundedEntity] = []
    prev_end = 0
    for m, is_box in matches:
        if m.start() < prev_end:  # defensive: the two grammars cannot overlap
            continue
        segment = text[prev_end:m.start()]
        delims = list(_DELIM_RE.finditer(segment))
        if delims:
            segment = segment[delims[-1].end():]
        if is_box:
            ent = GroundedEntity(_box_phrase(segment), box=_box_of(m),
                                 start=m.start(), end=m.end())
        else:
            ent = GroundedEntity(_span_phrase(segment), span=_span_of(m),
                                 start=m.start(), end=m.end())
        out.append(ent)
        prev_end = m.end()
    return out


def _is_valid_box(m: re.Match[str]) -> bool:
    x1, y1, x2, y2 = (float(g) for g in m.groups())
    return 0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0


def replace_boxes(text: str, fn: Callable[[Box], Box], *, only_valid: bool = False) -> str:
    """Rewrite every box in ``text`` through ``fn`` and re-format it.

    Example: ``replace_boxes(prompt, lambda b: original_to_square(b, w, h), only_valid=True)``
    converts user boxes to the model's frame before the prompt reaches it.

    Args:
        only_valid: leave alone what is not a valid relative box (``0 <= x1 < x2 <= 1``, the
            same for y): in a user's text ``[120, 40, 300, 200]`` (pixels) or ``[1, 2, 3, 4]``
            is not a box of the coordinate contract, and clipping it would garble it.

    >>> replace_boxes("sum [1, 2, 3, 4] at [0.1, 0.2, 0.5, 0.6]", lambda b: b, only_valid=True)
    'sum [1, 2, 3, 4] at [0.100, 0.200, 0.500, 0.600]'
    """
    _check_text(text)
    return _BOX_RE.sub(lambda m: m.group(0) if only_valid and not _is_valid_box(m) else format_box(fn(_box_of(m))),
                       text)


# --- coordinate frames -----------------------------------------------------------
def _check_size(width: float, height: float) -> None:
    for name, v in (("width", width), ("height", height)):
        if not v > 0:
            raise ValueError(f"{name} must be > 0, got {v!r}")


def _square_geometry(width: float, height: float) -> tuple[float, float, float]:
    _check_size(width, height)
    side = max(width, height)
    # Same integer offsets as expand2square's paste at ((side-w)//2, (side-h)//2).
    return side, (side - width) // 2, (side - height) // 2


def original_to_square(box: Box, width: float, height: float) -> Box:
    """Map a box relative to the original ``width`` x ``height`` image to the padded square."""
    side, ox, oy = _square_geometry(width, height)
    return Box((box.x1 * width + ox) / side, (box.y1 * height + oy) / side,
               (box.x2 * width + ox) / side, (box.y2 * height + oy) / side).clipped()


def square_to_original(box: Box, width: float, height: float) -> Box:
    """Map a box relative to the padded square back to the original image (clipped to it)."""
    side, ox, oy = _square_geometry(width, height)
    return Box((box.x1 * side - ox) / width, (box.y1 * side - oy) / height,
               (box.x2 * side - ox) / width, (box.y2 * side - oy) / height).clipped()


def span_to_seconds(span: Span, duration: float) -> tuple[float, float]:
    """Return ``(start_s, end_s)`` of a relative span in a clip of ``duration`` seconds."""
    if not duration > 0:
        raise ValueError(f"duration must be > 0, got {duration!r}")
    s = span.clipped().normalized()
    return (s.start * duration, s.end * duration)


def seconds_to_span(start_s: float, end_s: float, duration: float) -> Span:
    """Return the relative span of ``[start_s, end_s]`` (clipped to ``[0, duration]``)."""
    if not duration > 0:
        raise ValueError(f"duration must be > 0, got {duration!r}")
    return Span(start_s / duration, end_s / duration).clipped().normalized()


# --- overlap ---------------------------------------------------------------------
# The one IoU of the project: evaluation metrics, the blind baselines of the synthetic
# world and the quickstart all call these. The rule for reversed input: corners are put
# in order first (x1 <= x2, y1 <= y2, start <= end), the same rule the parser applies to
# every box and span it reads from model text, so a score does not depend on whether an
# answer was parsed before it was scored. Areas are continuous (no "+1" pixel rule), an
# empty union scores 0.


def box_iou_array(a: Any, b: Any) -> np.ndarray:
    """IoU of boxes ``a`` [..., 4] and ``b`` [..., 4] (``x1, y1, x2, y2``), numpy-broadcast.

    ``box_iou_array(cands[:, None], boxes[None])`` is the matrix of every candidate with every box.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ax1, ax2 = np.minimum(a[..., 0], a[..., 2]), np.maximum(a[..., 0], a[..., 2])
    ay1, ay2 = np.minimum(a[..., 1], a[..., 3]), np.maximum(a[..., 1], a[..., 3])
    bx1, bx2 = np.minimum(b[..., 0], b[..., 2]), np.maximum(b[..., 0], b[..., 2])
    by1, by2 = np.minimum(b[..., 1], b[..., 3]), np.maximum(b[..., 1], b[..., 3])
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0.0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0.0, None)
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def span_iou_array(a: Any, b: Any) -> np.ndarray:
    """Temporal IoU of spans ``a`` [..., 2] and ``b`` [..., 2] (``start, end``), numpy-broadcast."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a_start, a_end = np.minimum(a[..., 0], a[..., 1]), np.maximum(a[..., 0], a[..., 1])
    b_start, b_end = np.minimum(b[..., 0], b[..., 1]), np.maximum(b[..., 0], b[..., 1])
    inter = np.clip(np.minimum(a_end, b_end) - np.maximum(a_start, b_start), 0.0, None)
    union = (a_end - a_start) + (b_end - b_start) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box_iou(a: Box | Sequence[float], b: Box | Sequence[float]) -> float:
    """Intersection over union of two boxes (Box or 4 numbers, any one frame); corners put in order."""
    return float(box_iou_array(a.as_list() if isinstance(a, Box) else list(a),
                               b.as_list() if isinstance(b, Box) else list(b)))


def temporal_iou(a: Span | Sequence[float], b: Span | Sequence[float]) -> float:
    """Intersection over union of two time spans (Span or ``(start, end)``, any unit); ends put in order."""
    return float(span_iou_array(a.as_list() if isinstance(a, Span) else list(a),
                                b.as_list() if isinstance(b, Span) else list(b)))


def accuracy_at(ious: Sequence[float] | np.ndarray, threshold: float = 0.5) -> float:
    """Acc@τ (REC Acc@0.5, Charades-STA R@1 IoU=m): percent of IoUs ``>= threshold``; 0 for none.

    Example:
        >>> accuracy_at([0.9, 0.5, 0.2, 0.0], 0.5)
        50.0
    """
    n = len(ious)
    return 100.0 * sum(1 for v in ious if v >= threshold) / n if n else 0.0
