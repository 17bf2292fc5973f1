"""JSON parsing with a nesting limit, for every reader of files a user (or an attacker) hands us.

``json.loads`` recurses once per ``[`` or ``{``: a line of 100 000 ``[`` ends in an uncaught
``RecursionError`` (no file, no line), and a document nested a few hundred levels deep
parses but breaks whatever walks it next (a worker's pickle, a recursive converter). No
data set, predictions file or annotation file this project reads nests more than a dozen
levels, so :data:`MAX_DEPTH` levels are refused as malformed JSON.

:func:`loads` raises :class:`NestingError`, a ``json.JSONDecodeError``: each reader's
existing ``except json.JSONDecodeError`` turns it into that reader's usual ``file:line``
message, with the column where the nesting goes too deep.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

__all__ = ["MAX_DEPTH", "NestingError", "loads", "load", "check_depth", "DepthGuard"]

#: Arrays/objects inside each other, at most. The training schema needs 5, COCO/RefCOCO
#: annotation files 4; the margin is for free-form ``meta``.
MAX_DEPTH = 100

# A JSON string (skipped whole: brackets inside it are text) or a bracket.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


class NestingError(json.JSONDecodeError):
    """The text nests arrays/objects deeper than the limit (or than Python can parse)."""

    def __str__(self) -> str:  # raised on a stream (no document): the message says where
        return super().__str__() if self.doc else self.msg


def _too_deep(text: str | bytes, max_depth: int) -> NestingError:
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    depth, pos = 0, 0
    for m in _TOKEN.finditer(text):  # only on the error path: where does it go too deep?
        token = m.group(0)
        if token in "[{":
            depth += 1
            if depth > max_depth:
                pos = m.start()
                break
        elif token in "]}":
            depth -= 1
    return NestingError(f"arrays/objects nested more than {max_depth} deep", text, pos)


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """Whether a decoded value nests at most ``max_depth`` lists/dicts (iterative: never recurses)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > max_depth:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, tuple)))
    return True


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, **kwargs: Any) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth`` with a :class:`NestingError`.

    Keyword arguments go to ``json.loads`` (``object_pairs_hook`` ...).
    """
    try:
        value = json.loads(text, **kwargs)
    except RecursionError:
        raise _too_deep(text, max_depth) from None
    # Counting brackets is C-fast; only a text with more of them than the limit can be too deep.
    opens = text.count("[") + text.count("{") if isinstance(text, str) else text.count(b"[") + text.count(b"{")
    if opens > max_depth and not check_depth(value, max_depth):
        raise _too_deep(text, max_depth)
    return value


def load(fp: Any, *, max_depth: int = MAX_DEPTH, **kwargs: Any) -> Any:
    """:func:`loads` of a whole open file."""
    return loads(fp.read(), max_depth=max_depth, **kwargs)


class DepthGuard:
    """A binary file for streaming parsers (ijson) that fails once the JSON nests too deep.

    ijson's C backend keeps one path string per open level, each longer than the last:
    memory and time grow with the square of the depth ('[' x 30 000 took 13 s and 2.2 GB,
    x 100 000 was killed). Each chunk read is checked first, at C speed: escaped
    backslashes and quotes are dropped, everything but quotes and brackets is deleted, and
    over what is left the string state is the parity of quotes (brackets inside strings
    are text) and the depth a cumulative sum. The string state and a trailing run of
    backslashes carry over to the next chunk.
    """

    _STEP = np.zeros(256, dtype=np.int64)
    _STEP[[ord("["), ord("{")]] = 1
    _STEP[[ord("]"), ord("}")]] = -1
    _KEEP = bytes(range(256)).translate(None, b'"[]{}')  # everything else is deleted before counting

    def __init__(self, raw: Any, max_depth: int = MAX_DEPTH):
        self._raw = raw
        self._max = max_depth
        self._depth = 0
        self._in_string = 0
        self._tail = b""  # trailing backslashes of the last chunk: they may escape the next quote
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self._check(bytes(data))
        self._read += len(data)
        return data

    def _check(self, data: bytes) -> None:
        text = self._tail + data
        body = text.rstrip(b"\\")
        self._tail = text[len(body):]
        # Escaped backslashes first (left to right, as a run pairs up), then escaped quotes:
        # every quote left opens or closes a string. Then only quotes and brackets are kept.
        marks = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, self._KEEP)
        if not marks:
            return
        a = np.frombuffer(marks, dtype=np.uint8)
        inside = (np.cumsum(a == 34) + self._in_string) & 1  # a quote's own flag never matters
        depth = np.cumsum(self._STEP[a] * (1 - inside)) + self._depth
        if int(depth.max()) > self._max:
            raise NestingError(f"arrays/objects nested more than {self._max} deep (within bytes "
                               f"{self._read + 1}-{self._read + len(data)})", "", 0)
        self._depth = int(depth[-1])
        self._in_string = int(inside[-1])

    def __enter__(self) -> DepthGuard:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._raw.close()

    def close(self) -> None:
        self._raw.close()

    # Nothing else of the file is exposed: a reader that found readinto() would read past the guard.
