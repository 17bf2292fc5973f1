"""The unified training-sample schema: one JSON object per line (JSONL).

Every dataset the trainer reads — captions, referring expressions, temporal grounding,
sound localisation, instruction conversations — is first converted to this one shape::

    {"id": "coco-rec-000017",            # str, unique across everything read together
     "task": "rec",                      # str: caption, rec, reg, temporal_grounding, ...
     "stage": 2,                         # int >= 1 or null: the training stage it belongs to
     "source": "refcoco",                # str or null: the dataset it came from
     "messages": [                       # Hugging Face chat messages
        {"role": "user", "content": [
            {"type": "image", "image": "coco/train2017/000000000017.jpg"},
            {"type": "text", "text": "Output the coordinate of the man in red."}]},
        {"role": "assistant", "content": "[0.120, 0.305, 0.480, 0.990]"}],
     "meta": {"split": "train"}}         # object or null: anything else, carried along untouched

Rules (checked by :meth:`Sample.from_dict`, which names file, line and field on error):

- ``role`` is ``user``, ``assistant`` or ``system`` (a system message only first);
  ``content`` is a string or a list of parts: ``{"type": "text", "text": str}`` or a
  media part ``{"type": "image"|"video"|"audio", "<type>": "relative/path"}``. Media
  parts are allowed in user messages only; their paths are relative to a *media root*
  given to the dataset, so a data set can move between machines.
- Boxes ``[x1, y1, x2, y2]`` in messages are fractions of the ORIGINAL image (what
  annotators and users see); the processor converts them to the model's padded-square
  frame. Spans ``{t1, t2}`` are fractions of the medium's duration.

:func:`read_jsonl` validates every line before anything trains; :func:`from_llava_style`
converts the authors' (LLaVA-style) ``conversations`` records. See ``docs/data.md``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import jsonsafe
from ..errors import InputError
from ..grounding import invalid_coordinates
from ..modalities import MEDIA_KINDS, PART_TYPES_IN_WORDS

__all__ = [
    "DataError", "Sample", "KNOWN_TASKS", "MEDIA_KINDS", "read_jsonl", "write_jsonl", "from_llava_style",
]

ROLES = ("system", "user", "assistant")
FIELDS = ("id", "task", "stage", "source", "messages", "meta")
#: Task names used by the project's converters. Other non-empty names are accepted
#: (the trainer only reads messages); these are the ones reports group by.
KNOWN_TASKS = (
    "caption", "rec", "reg", "grounded_caption", "vqa", "conversation",
    "video_caption", "temporal_grounding", "dense_caption", "video_qa",
    "audio_caption", "sound_localization", "audio_qa",
)


class DataError(InputError):
    """A data file or sample is malformed. The message names the file, line and field.

    Attributes:
        errors: every problem found (the message shows the first few).
    """

    def __init__(self, message: str, errors: Sequence[str] | None = None):
        super().__init__(message)
        self.errors = list(errors) if errors is not None else [message]


# JSON may escape half of a UTF-16 pair ("\ud800"); Python decodes it into a str that
# no tokenizer or UTF-8 writer accepts, so such a line would crash a run mid-way.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return d


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _fail(where: str, field_name: str, expected: str) -> DataError:
    return DataError(f"{where}: field {field_name!r} {expected}")


def _check_coordinates(text: str, where: str, name: str) -> None:
    bad = invalid_coordinates(text)
    if bad:
        raise _fail(where, name, f"holds {', '.join(bad[:3])}: boxes must be [x1, y1, x2, y2] of plain finite "
                                 "decimals (no nan, inf or exponent) with "
                                 "0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1 (relative to the original image, "
                                 "not pixels), spans {t1, t2} with 0 <= t1 <= t2 <= 1 (fractions of the "
                                 "duration); the processor reads any such bracket as coordinates")


def _validate_part(part: Any, where: str, name: str, role: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _fail(where, name, f"must be an object (a content part), got {type(part).__name__}")
    kind = part.get("type")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise _fail(where, f"{name}.text", "must be a string")
        _check_coordinates(part["text"], where, f"{name}.text")
        return part
    if kind in MEDIA_KINDS:
        if role != "user":
            raise _fail(where, name, f"is a {kind} part in a {role!r} message; media may only appear in user messages")
        path = part.get(kind)
        if not isinstance(path, str) or not path.strip():
            raise _fail(where, f"{name}.{kind}", "must be a non-empty string (a path relative to the media root)")
        return part
    raise _fail(where, f"{name}.type", f"must be {PART_TYPES_IN_WORDS}, got {kind!r}")


def _validate_messages(messages: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise _fail(where, "messages", "must be a non-empty list")
    for i, message in enumerate(messages):
        name = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _fail(where, name, f"must be an object with 'role' and 'content', got {type(message).__name__}")
        role = message.get("role")
        if role not in ROLES:
            raise _fail(where, f"{name}.role", f"must be 'user', 'assistant' or 'system', got {role!r}")
        if role == "system" and i != 0:
            raise _fail(where, f"{name}.role", "is 'system', but a system message may only come first")
        content = message.get("content")
        if isinstance(content, str):
            _check_coordinates(content, where, f"{name}.content")
            continue
        if not isinstance(content, list):
            raise _fail(where, f"{name}.content", f"must be a string or a list of parts, got {type(content).__name__}")
        if not content and role == "user":
            raise _fail(where, f"{name}.content", "is an empty list; a user message needs at least one part")
        for j, part in enumerate(content):
            _validate_part(part, where, f"{name}.content[{j}]", role)
    return messages


@dataclass
class Sample:
    """One training conversation in the unified schema (see the module docstring).

    Attributes:
        id: unique id.
        task: task family (``caption``, ``rec``, ``temporal_grounding`` ...).
        messages: Hugging Face chat messages; media paths relative to a media root.
        stage: training stage (1, 2, 3) or ``None``.
        source: dataset name or ``None``.
        meta: free-form extra information or ``None``.
    """

    id: str
    task: str
    messages: list[dict[str, Any]]
    stage: int | None = None
    source: str | None = None
    meta: dict[str, Any] | None = field(default=None)
    #: ``file:line`` it was read from (by :func:`read_jsonl`), for error messages; not in the schema.
    origin: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Any, where: str = "<sample>") -> Sample:
        """Validate a decoded JSON object and build a Sample.

        Args:
            d: the object.
            where: location for error messages, e.g. ``"train.jsonl:17"``.

        Raises:
            DataError: naming ``where`` and the offending field.
        """
        if not isinstance(d, dict):
            raise DataError(f"{where}: expected a JSON object (a sample), got {type(d).__name__}")
        unknown = sorted(set(d) - set(FIELDS))
        if unknown:
            # Unknown keys are almost always typos ("mesages"); silently ignoring them loses data.
            raise DataError(f"{where}: unknown field(s) {unknown}; expected only {list(FIELDS)} (put extras in 'meta')")
        for name in ("id", "task"):
            if not isinstance(d.get(name), str) or not d[name].strip():
                raise _fail(where, name, f"must be a non-empty string, got {d.get(name)!r}")
        stage = d.get("stage")
        if stage is not None and (isinstance(stage, bool) or not isinstance(stage, int) or stage < 1):
            raise _fail(where, "stage", f"must be a positive integer or null, got {stage!r}")
        source = d.get("source")
        if source is not None and not isinstance(source, str):
            raise _fail(where, "source", f"must be a string or null, got {source!r}")
        meta = d.get("meta")
        if meta is not None and not isinstance(meta, dict):
            raise _fail(where, "meta", f"must be an object or null, got {type(meta).__name__}")
        messages = _validate_messages(d.get("messages"), where)
        return cls(id=d["id"], task=d["task"], messages=messages, stage=stage, source=source, meta=meta)

    @property
    def label(self) -> str:
        """How errors name the sample: ``sample 'rec-3' (train.jsonl:4)`` when read from a file."""
        return f"sample {self.id!r}" + (f" ({self.origin})" if self.origin else "")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this sample, fields in schema order."""
        return {"id": self.id, "task": self.task, "stage": self.stage, "source": self.source,
                "messages": self.messages, "meta": self.meta}

    def media(self) -> list[tuple[str, str]]:
        """``(kind, relative path)`` of every media part, in the order they appear."""
        out = []
        for message in self.messages:
            if isinstance(message["content"], list):
                for part in message["content"]:
                    if part.get("type") in MEDIA_KINDS:
                        out.append((part["type"], part[part["type"]]))
        return out

    @property
    def has_answer(self) -> bool:
        """True if at least one assistant turn exists (something to train on)."""
        return any(m["role"] == "assistant" for m in self.messages)


def _as_paths(path_or_paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    if isinstance(path_or_paths, (str, os.PathLike)):
        return [Path(path_or_paths)]
    return [Path(p) for p in path_or_paths]


def _raise_collected(errors: list[str]) -> None:
    if not errors:
        return
    if len(errors) == 1:
        raise DataError(errors[0], errors)
    shown = "\n  ".join(errors[:20])
    more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
    raise DataError(f"{len(errors)} problems in the data:\n  {shown}{more}", errors)


def read_jsonl(path_or_paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Sample]:
    """Read and validate every line of one or more JSONL files.

    All lines are checked before returning, so a typo on line 90 000 stops the run
    before training starts rather than hours into it. Blank lines are skipped.

    Args:
        path_or_paths: a file or a list of files; ids must be unique across all of them.

    Returns:
        The samples, in file then line order.

    Raises:
        DataError: malformed JSON, an invalid sample or a duplicate id; the message names
            ``file:line`` (and the field) of every problem, up to 20 shown.
        FileNotFoundError: a file does not exist.
    """
    samples: list[Sample] = []
    errors: list[str] = []
    seen: dict[str, str] = {}
    for path in _as_paths(path_or_paths):
        if path.is_dir():
            raise FileNotFoundError(f"{path}: is a folder; expected a JSONL data file (one sample per line)")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: data file not found")
        # Bytes, decoded line by line: a file that is not UTF-8 is reported at its line.
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, start=1):
                where = f"{path}:{lineno}"
                try:
                    # utf-8-sig on line 1: a byte-order mark some editors write.
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    errors.append(f"{where}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1} "
                                  "of the line); expected a UTF-8 text file")
                    continue
                if not line.strip():
                    continue
                try:
                    # Without its newline: a line cut short is reported at its own end,
                    # not at "column 1" of the next line.
                    d = jsonsafe.loads(line.rstrip("\r\n"), object_pairs_hook=_no_duplicate_keys)
                except json.JSONDecodeError as e:
                    errors.append(f"{where}: invalid JSON ({e.msg} at column {e.colno})")
                    continue
                except _DuplicateKey as e:
                    errors.append(f"{where}: key {e.args[0]!r} appears twice in one object; JSON readers "
                                  "disagree on which one wins, so give it once")
                    continue
                if _SURROGATE_ESCAPE.search(line) and _has_lone_surrogate(d):
                    errors.append(f"{where}: holds a lone surrogate escape (such as \\ud800), which is not "
                                  "text; expected valid Unicode")
                    continue
                try:
                    sample = Sample.from_dict(d, where)
                except DataError as e:
                    errors.append(str(e))
                    continue
                if sample.id in seen:
                    errors.append(f"{where}: field 'id' {sample.id!r} is a duplicate (first at {seen[sample.id]})")
                    continue
                seen[sample.id] = where
                sample.origin = where
                samples.append(sample)
    _raise_collected(errors)
    return samples


def write_jsonl(samples: Iterable[Sample | dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write samples as JSONL (UTF-8, one object per line), atomically.

    Dicts are validated through :meth:`Sample.from_dict` first, so what is written can be read back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, s in enumerate(samples):
        if not isinstance(s, Sample):
            s = Sample.from_dict(s, f"samples[{i}]")
        lines.append(json.dumps(s.to_dict(), ensure_ascii=False))
    # Temp file + rename: a crash never leaves a half-written data file behind.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + ("\n" if lines else ""))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ---- the authors' / LLaVA training format ------------------------------------------------

#: Record key → media kind. The authors call audio "sound".
_LLAVA_MEDIA_KEYS = {"image": "image", "video": "video", "sound": "audio", "audio": "audio"}
#: Marker in the text → media kind.
_LLAVA_MARKERS = {"<image>": "image", "<video>": "video", "<sound>": "audio", "<audio>": "audio"}
_MARKER_RE = re.compile("|".join(re.escape(m) for m in _LLAVA_MARKERS))
_LLAVA_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def _square_boxes_to_original(text: str, size: tuple[int, int]) -> str:
    from ..grounding import replace_boxes, square_to_original

    w, h = size
    return replace_boxes(text, lambda b: square_to_original(b, w, h))


def from_llava_style(
    record: Any,
    where: str = "<record>",
    *,
    task: str = "conversation",
    stage: int | None = None,
    source: str | None = None,
    boxes_frame: str = "original",
    media_root: str | os.PathLike | None = None,
) -> Sample:
    """Convert a LLaVA-style record (the authors' training format) into a :class:`Sample`.

    Input::

        {"id": ..., "image"|"video"|"sound": "path",
         "conversations": [{"from": "human", "value": "<image>\\nWhere is the dog?"},
                           {"from": "gpt", "value": "[0.1, 0.2, 0.5, 0.9]"}]}

    The ``<image>`` / ``<video>`` / ``<sound>`` (or ``<audio>``) marker becomes a media part
    at the marker's position (the newline right after it is dropped: the processor adds
    its own). A record with a media file but no marker gets the part at the start of the
    first human turn, as LLaVA does. Other record keys go to ``meta["llava"]``, and other
    keys of a turn to ``meta["llava"]["conversations"][str(turn index)]``.

    Args:
        record: the decoded JSON record.
        where: location for error messages.
        task, stage, source: values for the Sample's fields.
        boxes_frame: ``"original"`` (default) if the record's boxes are fractions of the
            original image, ``"square"`` if they are fractions of the padded square (as
            LLaVA-style pipelines that pad before annotating write them); ``"square"``
            boxes are converted to the original frame with the image size read from the
            file, which needs ``media_root``.
        media_root: folder the record's media paths are relative to (for ``"square"``).

    Raises:
        DataError: malformed record, a marker without a file, more markers than files.
    """
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object (a LLaVA-style record), got {type(record).__name__}")
    if boxes_frame not in ("original", "square"):
        raise ValueError(f"boxes_frame must be 'original' or 'square', got {boxes_frame!r}")
    rid = record.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (str, int)) or str(rid).strip() == "":
        raise _fail(where, "id", f"must be a non-empty string or integer, got {rid!r}")
    files: dict[str, str] = {}
    for key, kind in _LLAVA_MEDIA_KEYS.items():
        if key in record and record[key] is not None:
            value = record[key]
            if not isinstance(value, str) or not value.strip():
                raise _fail(where, key, "must be a non-empty string path (one medium per record)")
            if kind in files:
                raise DataError(f"{where}: two audio files ('sound' and 'audio'); expected one")
            files[kind] = value
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise _fail(where, "conversations", "must be a non-empty list")

    used: dict[str, int] = {k: 0 for k in files}
    messages: list[dict[str, Any]] = []
    turn_extras: dict[str, dict[str, Any]] = {}
    for i, turn in enumerate(turns):
        name = f"conversations[{i}]"
        if not isinstance(turn, dict) or turn.get("from") not in _LLAVA_ROLES or not isinstance(turn.get("value"), str):
            raise _fail(where, name, "must be {'from': 'human'|'gpt', 'value': str}")
        extra_keys = {k: v for k, v in turn.items() if k not in ("from", "value")}
        if extra_keys:  # kept, keyed by turn index, rather than lost
            turn_extras[str(i)] = extra_keys
        role = _LLAVA_ROLES[turn["from"]]
        text = turn["value"]
        parts: list[dict[str, Any]] = []
        pos = 0
        for m in _MARKER_RE.finditer(text):
            kind = _LLAVA_MARKERS[m.group(0)]
            if role != "user":
                raise _fail(where, f"{name}.value", f"holds a {m.group(0)} marker, but only human turns may hold media")
            if kind not in files:
                raise _fail(where, f"{name}.value", f"holds a {m.group(0)} marker but the record has no {kind} file")
            used[kind] += 1
            if used[kind] > 1:
                raise _fail(where, f"{name}.value", f"holds a second {m.group(0)} marker; the record has one {kind} file")
            before = text[pos:m.start()].strip()
            if before:
                parts.append({"type": "text", "text": before})
            parts.append({"type": kind, kind: files[kind]})
            pos = m.end()
        rest = text[pos:].strip() if parts else text
        if rest or not parts:
            parts.append({"type": "text", "text": rest})
        if role == "user":
            messages.append({"role": role, "content": parts})
        else:
            messages.append({"role": role, "content": "".join(p["text"] for p in parts)})

    # The authors' loader moves every marker to the first human turn; do the same, so that
    # the answers before a later marker are not left in another frame than those after it.
    users = [m for m in messages if m["role"] == "user"]
    for later in users[1:]:
        moved = [p for p in later["content"] if p["type"] != "text"]
        if moved:
            later["content"] = [p for p in later["content"] if p["type"] == "text"] or [{"type": "text", "text": ""}]
            users[0]["content"][:0] = moved

    missing = [k for k, n in used.items() if n == 0]
    if missing:
        first_user = users[0] if users else None
        if first_user is None:
            raise DataError(f"{where}: the record has a {missing[0]} file but no human turn to attach it to")
        # LLaVA's rule: a medium without a marker goes before the first human text.
        first_user["content"][:0] = [{"type": k, k: files[k]} for k in MEDIA_KINDS if k in missing]

    if boxes_frame == "square" and "image" in files:
        if media_root is None:
            raise ValueError("boxes_frame='square' needs media_root to read the image size")
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(Path(media_root) / files["image"]) as im:
                size = im.size  # header only; no pixel decode
                # The processor applies EXIF orientation; a 90° rotation swaps width and height.
                if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):
                    size = (size[1], size[0])
        except (OSError, UnidentifiedImageError) as e:
            raise DataError(f"{where}: cannot read the image size of {files['image']!r} for boxes_frame='square' ({e})")
        for message in messages:
            if isinstance(message["content"], str):
                message["content"] = _square_boxes_to_original(message["content"], size)
            else:
                for part in message["content"]:
                    if part["type"] == "text":
                        part["text"] = _square_boxes_to_original(part["text"], size)

    extra = {k: v for k, v in record.items() if k not in ("id", "conversations", *_LLAVA_MEDIA_KEYS)}
    if turn_extras:
        extra["conversations"] = turn_extras
    return Sample.from_dict(
        {"id": str(rid), "task": task, "stage": stage, "source": source, "messages": messages,
         "meta": {"llava": extra} if extra else None},
        where,
    )
