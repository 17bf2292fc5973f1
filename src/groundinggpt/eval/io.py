"""What every benchmark module shares: reading files, the predictions file, coercing scored values.

- :class:`FormatError` and the small readers' helpers (a required key, a number, a JSON
  file or JSON lines, a path under a root), so every benchmark names file, line and field
  the same way;
- the predictions file of this project (JSON lines ``{"id": ..., "answer": "raw text"}``;
  ``"answer": null`` records a missing answer): :func:`read_predictions`, :func:`predictions_by_id`;
- coercion of predicted and ground-truth boxes and spans for the metrics (a malformed
  prediction is a miss, a malformed ground truth an error).

The benchmarks themselves, each reader + scorer + task in one file, are in
:mod:`groundinggpt.eval.benchmarks`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundinggpt import jsonsafe
from groundinggpt.errors import InputError

__all__ = [
    "VIDEO_EXTENSIONS",
    "FormatError", "PathLike", "BoxLike", "SpanLike", "Prediction", "read_predictions", "predictions_by_id",
    "require", "number", "read_json", "iter_json_lines", "join_root", "finite4", "as_box", "as_span",
    "gt_box", "gt_span", "check_lengths",
]

PathLike = str | os.PathLike[str]
#: Video file extensions tried, in order, for a video named by its id.
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
BoxLike = Any
SpanLike = Any


class FormatError(InputError):
    """A benchmark or predictions file does not have its published form."""


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def require(record: Any, key: str, where: str, expected: str) -> Any:
    if not isinstance(record, Mapping):
        raise FormatError(
            f"{where}: expected a JSON object/dict with {key!r}, got {type(record).__name__}"
        )
    if key not in record:
        raise FormatError(f"{where}: missing field {key!r} (expected {expected})")
    return record[key]


def number(value: Any, where: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FormatError(f"{where}: field {field!r} is {value!r}; expected a number")
    out = float(value)
    if not math.isfinite(out):
        raise FormatError(f"{where}: field {field!r} is {value!r}; expected a finite number")
    return out


def read_json(path: Path, expected: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return jsonsafe.load(f)
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found (expected {expected})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e}); expected {expected}") from None


def iter_json_lines(path: Path, expected: str) -> Iterable[tuple[int, Any]]:
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found (expected {expected})") from None
    with f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = jsonsafe.loads(line)
            except json.JSONDecodeError as e:
                raise FormatError(
                    f"{path}:{lineno}: not a JSON object ({e.msg}); expected {expected}"
                ) from None
            if not isinstance(record, dict):
                raise FormatError(
                    f"{path}:{lineno}: got JSON {type(record).__name__}; expected {expected}"
                )
            yield lineno, record


def join_root(root: PathLike | None, name: str) -> str | None:
    return None if root is None else os.path.join(os.fspath(root), name)


# ---------------------------------------------------------------------------
# Predictions
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """One model answer from a predictions file.

    Attributes:
        id: The sample id (string or integer, as written).
        answer: The raw model text, or ``None`` for a missing answer.
    """

    id: str | int
    answer: str | None


def read_predictions(path: PathLike) -> list[Prediction]:
    """Read a predictions JSONL file: one ``{"id": ..., "answer": "raw text"}`` per line.

    The format is strict: each non-blank line must be a JSON object with ``"id"``
    (string or integer) and ``"answer"`` (string or ``null``); extra keys are
    ignored; ids must be unique (``1`` and ``"1"`` count as the same id).

    Args:
        path: The JSONL file.

    Returns:
        The predictions in file order.

    Raises:
        FormatError: Naming the file and line of the first malformed record.
    """
    path = Path(path)
    expected = 'one JSON object per line: {"id": <string or int>, "answer": <string or null>}'
    out: list[Prediction] = []
    seen: dict[str, int] = {}
    for lineno, rec in iter_json_lines(path, expected):
        where = f"{path}:{lineno}"
        if "answer" not in rec:
            alt = [k for k in ("text", "prediction", "output", "response") if k in rec]
            hint = f" (found {alt[0]!r}: rename it to 'answer')" if alt else ""
            raise FormatError(f"{where}: missing field 'answer'{hint}; expected {expected}")
        pid = require(rec, "id", where, expected)
        if isinstance(pid, bool) or not isinstance(pid, (str, int)):
            raise FormatError(f"{where}: field 'id' is {pid!r}; expected a string or an integer")
        answer = rec["answer"]
        if answer is not None and not isinstance(answer, str):
            raise FormatError(f"{where}: field 'answer' is {answer!r}; expected a string or null")
        if str(pid) in seen:
            raise FormatError(f"{where}: duplicate id {pid!r} (first on line {seen[str(pid)]})")
        seen[str(pid)] = lineno
        out.append(Prediction(id=pid, answer=answer))
    return out


def predictions_by_id(predictions: Iterable[Prediction]) -> dict[str, str | None]:
    """Index predictions by ``str(id)`` so that ``1`` and ``"1"`` find the same answer.

    Args:
        predictions: As returned by :func:`read_predictions`.

    Returns:
        ``{str(id): answer}``.
    """
    return {str(p.id): p.answer for p in predictions}


# ---------------------------------------------------------------------------
# Coercion helpers
# ---------------------------------------------------------------------------


def finite4(values: Sequence[Any]) -> tuple[float, float, float, float] | None:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
    if len(out) != 4 or not all(math.isfinite(v) for v in out):
        return None
    return out  # type: ignore[return-value]


def as_box(box: BoxLike) -> tuple[float, float, float, float] | None:
    """Return ``(x1, y1, x2, y2)`` floats, or ``None`` when ``box`` is not a usable box."""
    if box is None:
        return None
    if all(hasattr(box, a) for a in ("x1", "y1", "x2", "y2")):
        return finite4((box.x1, box.y1, box.x2, box.y2))
    if isinstance(box, (str, bytes, Mapping)):
        return None
    try:
        values = list(box)
    except TypeError:
        return None
    if len(values) != 4:
        return None
    return finite4(values)


def as_span(span: SpanLike) -> tuple[float, float] | None:
    """Return ``(start, end)`` floats, or ``None`` when ``span`` is not a usable span."""
    if span is None:
        return None
    if hasattr(span, "start") and hasattr(span, "end"):
        values: list[Any] = [span.start, span.end]
    elif isinstance(span, (str, bytes, Mapping)):
        return None
    else:
        try:
            values = list(span)
        except TypeError:
            return None
    if len(values) != 2:
        return None
    try:
        start, end = float(values[0]), float(values[1])
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(start) and math.isfinite(end)):
        return None
    return start, end


def gt_box(box: BoxLike, index: int) -> tuple[float, float, float, float]:
    out = as_box(box)
    if out is None:
        raise ValueError(
            f"ground-truth box #{index} is {box!r}; expected (x1, y1, x2, y2) finite numbers "
            "or an object with x1, y1, x2, y2"
        )
    return out


def gt_span(span: SpanLike, index: int) -> tuple[float, float]:
    out = as_span(span)
    if out is None:
        raise ValueError(
            f"ground-truth span #{index} is {span!r}; expected (start, end) finite numbers "
            "or an object with start, end"
        )
    return out


def check_lengths(preds: Sequence[Any], gts: Sequence[Any], what: str) -> None:
    if len(preds) != len(gts):
        raise ValueError(
            f"{what}: {len(preds)} predictions but {len(gts)} ground truths; "
            "expected one prediction per ground truth (use None for a missing one)"
        )
