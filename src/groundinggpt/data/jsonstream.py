"""Stream the items of large JSON files instead of loading them whole.

Visual Genome's ``region_descriptions.json`` (~700 MB), LLaVA's mix665k, Valley-703K
and WavCaps are single JSON documents; ``json.load`` holds the whole parsed tree (several
times the file size) in memory. :func:`iter_array` / :func:`iter_object` yield one
top-level item at a time through ``ijson`` (its C backend when built), with the item's
JSON path (``$[17]``, ``$["v_abc"]``) for error messages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ijson

from .. import jsonsafe
from ..errors import InputError

__all__ = ["MalformedJSON", "iter_array", "iter_object", "iter_array_at"]


class MalformedJSON(InputError):
    """The file is not valid JSON (or not of the expected top-level shape) from some point on."""

    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.where = where


def _open(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    # Nesting past jsonsafe.MAX_DEPTH is refused as it is read: ijson's cost grows with its square.
    return jsonsafe.DepthGuard(path.open("rb"))


def iter_array_at(path: str | os.PathLike, prefix: str, json_prefix: str = "$") -> Iterator[tuple[str, Any]]:
    """Yield ``(json_path, item)`` for each element of the array at ijson ``prefix``.

    ``prefix`` is ijson's dotted path to the array *items* (``"item"`` for a top-level
    array, ``"data.item"`` for ``{"data": [...]}``); ``json_prefix`` is how the array is
    named in messages (``$`` or ``$.data``).

    Raises:
        MalformedJSON: the text stops being valid JSON (the path of the last good item is named).
    """
    index = -1
    with _open(path) as f:
        try:
            for index, item in enumerate(ijson.items(f, prefix, use_float=True)):
                yield f"{json_prefix}[{index}]", item
        except (ijson.JSONError, jsonsafe.NestingError) as e:
            where = f"{path}:{json_prefix}[{index + 1}]"
            raise MalformedJSON(f"{where}: invalid JSON after item {index} ({e})", where) from None
    if index < 0:
        _check_shape(path, prefix)


def iter_array(path: str | os.PathLike) -> Iterator[tuple[str, Any]]:
    """Yield ``(json_path, item)`` for each element of a top-level JSON array."""
    return iter_array_at(path, "item")


def iter_object(path: str | os.PathLike) -> Iterator[tuple[str, Any]]:
    """Yield ``(json_path, (key, value))`` for each member of a top-level JSON object."""
    count = -1
    with _open(path) as f:
        try:
            for count, (key, value) in enumerate(ijson.kvitems(f, "", use_float=True)):
                yield f"$[{key!r}]".replace("'", '"'), (key, value)
        except (ijson.JSONError, jsonsafe.NestingError) as e:
            where = f"{path}:$ (after member {count + 1})"
            raise MalformedJSON(f"{where}: invalid JSON ({e})", where) from None
    if count < 0:
        _check_shape(path, "")


def _check_shape(path: str | os.PathLike, prefix: str) -> None:
    """Nothing was yielded: tell an empty container from a file of another shape."""
    with _open(path) as f:
        try:
            for p, event, _ in ijson.parse(f):
                if p == "":
                    if prefix == "" and event == "start_map":
                        return
                    if prefix == "item" and event == "start_array":
                        return
                    if prefix not in ("", "item"):
                        return
                    expected = "an object" if prefix == "" else "an array"
                    raise MalformedJSON(f"{path}: top level is {event.replace('start_', '')}; expected {expected}",
                                        str(path))
        except (ijson.JSONError, jsonsafe.NestingError) as e:
            raise MalformedJSON(f"{path}: invalid JSON ({e})", str(path)) from None
