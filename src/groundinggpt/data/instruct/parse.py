"""Parse and filter a generated answer; every rejection has a reason that is counted.

Checks (issue 17): the format (a description, or ``{'question': ..., 'answer': ...}``
pairs / ``Question: ... Answer: ...`` lines), boxes valid (``0 <= x1 < x2 <= 1``) and
among the boxes given in the prompt (within ``box_tol``: models reprint 0.31 as
0.310), spans valid and inside the video and among those given (within
``span_tol``), no coordinates at all where some were expected, length, duplicates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...grounding import Box, Span, format_box, format_span

__all__ = ["Parsed", "Rejection", "parse_answer"]

_QA = re.compile(r"""['"]question['"]\s*:\s*(['"])(?P<q>.*?)\1\s*,\s*['"]answer['"]\s*:\s*(['"])(?P<a>.*?)\3\s*\}""",
                 re.S)
_QA_LINES = re.compile(r"^\s*(?:Q(?:uestion)?)\s*[:：]\s*(?P<q>.+?)\s*\n\s*(?:A(?:nswer)?)\s*[:：]\s*(?P<a>.+?)\s*$",
                       re.M | re.I)


_N = r"\s*([-+]?\d*\.?\d+)\s*"
# Generated text is held to the plain syntax of the prompts ("[0.1, 0.2, 0.3, 0.4]", "{0.21,0.74}");
# anything else bracketed with numbers is caught by the validation of the written sample.
_BOX_RE = re.compile(r"\[" + ",".join([_N] * 4) + r"\]")
_SPAN_RE = re.compile(r"\{" + ",".join([_N] * 2) + r"\}")


class Rejection(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Parsed:
    turns: list[tuple[str, str]]   # (question, answer); a description is one turn with question ""


def _fix_coordinates(text: str, boxes, spans, box_tol: float, span_tol: float) -> str:
    def box(m: re.Match) -> str:
        x1, y1, x2, y2 = (float(g) for g in m.groups())
        if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
            raise Rejection("invalid_box", m.group(0))
        if not any(max(abs(x1 - b[0]), abs(y1 - b[1]), abs(x2 - b[2]), abs(y2 - b[3])) <= box_tol for b in boxes):
            raise Rejection("invented_box", f"{m.group(0)} is not one of the {len(boxes)} boxes given")
        return format_box(Box(x1, y1, x2, y2))

    def span(m: re.Match) -> str:
        t1, t2 = (float(g) for g in m.groups())
        if not 0 <= t1 <= t2 <= 1:
            raise Rejection("span_outside_video", m.group(0))
        if not any(abs(t1 - s[0]) <= span_tol and abs(t2 - s[1]) <= span_tol for s in spans):
            raise Rejection("invented_span", f"{m.group(0)} is not one of the {len(spans)} spans given")
        return format_span(Span(t1, t2))

    return _SPAN_RE.sub(span, _BOX_RE.sub(box, text))


def parse_answer(text: str, *, style: str, boxes=(), spans=(), box_tol: float = 0.006, span_tol: float = 0.011,
                 max_words: int = 120, need_coordinates: bool = True) -> Parsed:
    """Turn a model's answer into turns, or raise :class:`Rejection` with the reason.

    Args:
        style: ``description`` (one text) or ``qa`` (question/answer pairs).
        boxes / spans: those the prompt gave; any other in the answer is ``invented_*``.
        max_words: per description, or per question + answer.
        need_coordinates: the answer must use at least one box or span.
    """
    if not isinstance(text, str) or not text.strip():
        raise Rejection("empty", "no text")
    if style == "description":
        turns = [("", text.strip())]
    else:
        turns = [(m.group("q").strip(), m.group("a").strip()) for m in _QA.finditer(text)]
        if not turns:
            turns = [(m.group("q").strip(), m.group("a").strip()) for m in _QA_LINES.finditer(text)]
        if not turns or any(not q or not a for q, a in turns):
            raise Rejection("format", "no {'question': ..., 'answer': ...} pairs")
    out, coords = [], 0
    for q, a in turns:
        if len((q + " " + a).split()) > max_words:
            raise Rejection("too_long", f"{len((q + ' ' + a).split())} words > {max_words}")
        coords += len(_BOX_RE.findall(q + a)) + len(_SPAN_RE.findall(q + a))
        out.append((_fix_coordinates(q, boxes, spans, box_tol, span_tol),
                    _fix_coordinates(a, boxes, spans, box_tol, span_tol)))
    if need_coordinates and coords == 0:
        raise Rejection("no_coordinates", "the answer grounds nothing")
    return Parsed(turns=out)
