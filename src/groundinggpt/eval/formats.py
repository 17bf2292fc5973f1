"""Readers for the benchmarks' published annotation files and for predictions files.

Each reader returns a list of small frozen dataclasses made of plain values and
raises :class:`FormatError` (a :class:`~groundinggpt.errors.InputError`) naming the
file -- and the line or record -- and the field it expected when a file does not
have the published form.

Formats (as published by the benchmark authors):

* RefCOCO / RefCOCO+ / RefCOCOg (lichengunc/refer): ``refs(unc).p``,
  ``refs(umd).p`` or ``refs(google).p`` -- a pickle (written by Python 2) of a list
  of dicts ``{ref_id, ann_id, image_id, split, sentences: [{sent, raw, tokens,
  sent_id}], category_id, file_name}`` -- plus ``instances.json`` in COCO format
  (``images: [{id, file_name, width, height}]``, ``annotations: [{id, image_id,
  bbox: [x, y, w, h], category_id}]``).  The image to load is
  ``instances.json images[].file_name`` (``COCO_train2014_%012d.jpg``, in COCO
  ``train2014``), as ``REFER.showRef`` in lichengunc/refer ``refer.py`` does; the
  ``file_name`` in the refs entries (``COCO_train2014_<12 digits>_<n>.jpg``) is not
  an image on disk.
* Charades-STA (jiyanggao/TALL): ``charades_sta_test.txt`` with lines
  ``VIDEOID START END##SENTENCE`` (seconds); optional ``Charades_v1_test.csv``
  (Charades release) whose ``id``/``length`` columns give the durations.
* POPE (RUCAIBox/POPE ``output/coco/coco_pope_<split>.json``): JSON lines
  ``{"question_id", "image", "text", "label"}``.
* VQAv2 (visualqa.org): questions JSON ``{"questions": [{"image_id", "question",
  "question_id"}], "data_subtype": ...}`` and annotations JSON ``{"annotations":
  [{"question_id", "image_id", "answers": [{"answer", "answer_confidence",
  "answer_id"}], "multiple_choice_answer", "answer_type", "question_type"}]}``;
  images ``COCO_<subtype>_%012d.jpg``.
* VGG-SS (hche11/Localizing-Visual-Sounds-the-Hard-Way ``metadata/vggss.json``): a
  JSON list of ``{"file": "<youtube id>_<start>", "class": str, "bbox": [[x1, y1,
  x2, y2], ...]}`` with coordinates RELATIVE to the frame (fractions in [0, 1];
  the official code rasterises them with ``int(224 * max(x, 0))``), one or more
  boxes per clip.
* Video QA: ActivityNet-QA (MILVLG/activitynet-qa ``dataset/<split>_q.json`` with
  entries ``{"video_name", "question", "question_id"}`` and ``<split>_a.json`` with
  ``{"answer", "type", "question_id"}``; the Video-ChatGPT/Video-LLaVA copies of
  MSVD-QA / MSRVTT-QA use the same two-file shape), and the original MSVD-QA /
  MSRVTT-QA release (xudejing/video-question-answering ``<split>_qa.json``: a JSON
  list of ``{"answer", "id", "question", "video_id": int}``, MSRVTT adding
  ``"category_id"``; MSVD clips are named through ``youtube_mapping.txt`` lines
  ``<clip name> vid<N>``, MSRVTT videos are ``video<N>.mp4``).
* Predictions (this project): JSON lines ``{"id": ..., "answer": "raw text"}``;
  ``"answer": null`` records a missing answer.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundinggpt import jsonsafe
from groundinggpt.errors import InputError

__all__ = [
    "FormatError",
    "RefSample",
    "CharadesSample",
    "PopeSample",
    "VQASample",
    "VGGSSSample",
    "Prediction",
    "load_refs_pickle",
    "read_refcoco",
    "read_charades_sta",
    "read_charades_durations",
    "read_pope",
    "read_vqav2",
    "read_vggss",
    "VideoQASample",
    "read_video_qa",
    "read_youtube_mapping",
    "read_predictions",
    "predictions_by_id",
]

PathLike = str | os.PathLike[str]


class FormatError(InputError):
    """A benchmark or predictions file does not have its published form."""


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _require(record: Any, key: str, where: str, expected: str) -> Any:
    if not isinstance(record, Mapping):
        raise FormatError(
            f"{where}: expected a JSON object/dict with {key!r}, got {type(record).__name__}"
        )
    if key not in record:
        raise FormatError(f"{where}: missing field {key!r} (expected {expected})")
    return record[key]


def _number(value: Any, where: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FormatError(f"{where}: field {field!r} is {value!r}; expected a number")
    out = float(value)
    if not math.isfinite(out):
        raise FormatError(f"{where}: field {field!r} is {value!r}; expected a finite number")
    return out


def _read_json(path: Path, expected: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return jsonsafe.load(f)
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found (expected {expected})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: not valid JSON ({e}); expected {expected}") from None


def _iter_json_lines(path: Path, expected: str) -> Iterable[tuple[int, Any]]:
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


def _join(root: PathLike | None, name: str) -> str | None:
    return None if root is None else os.path.join(os.fspath(root), name)


# ---------------------------------------------------------------------------
# RefCOCO / RefCOCO+ / RefCOCOg
# ---------------------------------------------------------------------------


class _RefsUnpickler(pickle.Unpickler):
    """Unpickler that builds only the builtin containers and scalars.

    The refs files hold only lists, dicts, strings and numbers, which every pickle
    protocol (0-2 from Python 2, 3+ from Python 3) encodes with dedicated opcodes
    (``EMPTY_LIST``, ``EMPTY_DICT``, ``SHORT_BINSTRING``/``BINUNICODE``,
    ``BININT``/``LONG1``, ``BINFLOAT``, ...).  No ``GLOBAL``/``STACK_GLOBAL`` (hence
    no ``find_class`` call) is needed -- not even ``copy_reg._reconstructor``, which
    only instances of user classes use.  Any global reference is therefore refused,
    which blocks every code-execution payload (``os.system`` via ``REDUCE`` ...).
    """

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        # Python 2 ``str`` objects arrive as bytes; decoded in _decode_py2 below.
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        raise FormatError(
            f"{self._source}: refused to unpickle global '{module}.{name}'; a refs file "
            "may contain only lists, dicts, strings and numbers (is this really a "
            "refs(<splitBy>).p file?)"
        )

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise FormatError(f"{self._source}: refused persistent id {pid!r} in a refs file")


def _decode_py2(obj: Any) -> Any:
    # Python 2 byte strings (keys and values) -> str: UTF-8 when valid, else Latin-1
    # (Latin-1 is what pickle's own encoding="latin1" would give).
    if isinstance(obj, bytes):
        try:
            return obj.decode("utf-8")
        except UnicodeDecodeError:
            return obj.decode("latin-1")
    if isinstance(obj, list):
        return [_decode_py2(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_decode_py2(v) for v in obj)
    if isinstance(obj, dict):
        return {_decode_py2(k): _decode_py2(v) for k, v in obj.items()}
    return obj


#: A refs file's budget. The file: at most this many bytes (a refs file of ~10^5 sentences
#: is tens of MB). Nesting: refs → ref → sentences → sentence → tokens is 5 levels.
MAX_REFS_BYTES = 512 * 2**20
MAX_REFS_DEPTH = 32


def _check_refs_budget(refs: Any, source: str, size: int, max_depth: int = MAX_REFS_DEPTH) -> None:
    """Refuse a "memo bomb" and absurd nesting before anything walks the unpickled value.

    A pickle may push an object it built earlier again (``BINGET``, 2 bytes): a list that
    holds the same list twice, 22 levels down, is 189 bytes that decode (and later read) as
    4 million lists. In a plain tree, which is what refs files are, every object is reached
    through an opcode of its own, so a value reaching more objects than the file has bytes
    shares containers. Counted iteratively, as often as each is reached, stopping at the budget.
    """
    budget = max(size, 1)
    reached = 0
    stack = [(refs, 1)]
    while stack:
        obj, depth = stack.pop()
        reached += 1
        if reached > budget:
            raise FormatError(
                f"{source}: the pickle reaches more than {budget} objects from its {size} bytes, so it shares "
                "containers (a 'memo bomb'); a refs file is a plain tree of lists, dicts, strings and numbers")
        if isinstance(obj, (list, tuple, dict)):
            if depth > max_depth:
                raise FormatError(f"{source}: lists/dicts nested more than {max_depth} deep; a refs file nests 5 "
                                  "(refs, ref, sentences, sentence, tokens)")
            items = [*obj.keys(), *obj.values()] if isinstance(obj, dict) else obj
            stack.extend((item, depth + 1) for item in items)


def load_refs_pickle(path: PathLike, max_bytes: int = MAX_REFS_BYTES) -> list[dict[str, Any]]:
    """Load a ``refs(<splitBy>).p`` file with a restricted unpickler and a budget.

    Budget: at most ``max_bytes`` bytes; no object reached twice (more objects than bytes,
    see :func:`_check_refs_budget`); at most :data:`MAX_REFS_DEPTH` levels of nesting.

    Args:
        path: The pickle file.
        max_bytes: The largest file read.

    Returns:
        The list of ref dicts, with every Python 2 byte string decoded to ``str``.

    Raises:
        FormatError: The file is missing, too large, not a pickle, refers to any global
            (class/function), is over its budget, or is not a list of dicts.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FormatError(f"{path}: {size} bytes, more than the {max_bytes} a refs(<splitBy>).p file may have")
        data = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found (expected a refs(<splitBy>).p pickle)") from None
    try:
        refs = _RefsUnpickler(io.BytesIO(data), str(path)).load()
    except FormatError:
        raise
    except Exception as e:  # corrupt or truncated pickle
        raise FormatError(
            f"{path}: not a readable pickle ({type(e).__name__}: {e}); "
            "expected a refs(<splitBy>).p file"
        ) from None
    _check_refs_budget(refs, str(path), len(data))
    refs = _decode_py2(refs)
    if not isinstance(refs, list):
        raise FormatError(f"{path}: expected a pickled list of ref dicts, got a {type(refs).__name__}")
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict):
            raise FormatError(f"{path}: expected a pickled list of ref dicts; item {i} is a {type(ref).__name__}")
    return refs


@dataclass(frozen=True)
class RefSample:
    """One referring expression (one sentence of one ref).

    Attributes:
        ref_id: The ref's id.
        ann_id: The COCO annotation the expression refers to.
        sent_id: The sentence id.
        image_id: The COCO image id.
        split: The ref's split (``train``, ``val``, ``testA``, ``testB``, ``test``).
        expression: The processed sentence (``sent``).
        raw_expression: The raw sentence (``raw``; ``sent`` when absent).
        image_file: ``instances.json`` file name of the image (``COCO_train2014_...jpg``).
        image_path: ``image_root/image_file`` when an image root was given.
        width: Original image width in pixels.
        height: Original image height in pixels.
        box: Ground-truth box ``(x1, y1, x2, y2)`` in original-image pixels
            (``x2 = x + w``, ``y2 = y + h``).
        box_rel: The same box relative to the original image size.
        category_id: COCO category id of the referred object.
    """

    ref_id: int
    ann_id: int
    sent_id: int
    image_id: int
    split: str
    expression: str
    raw_expression: str
    image_file: str
    image_path: str | None
    width: int
    height: int
    box: tuple[float, float, float, float]
    box_rel: tuple[float, float, float, float]
    category_id: int | None


def read_refcoco(
    refs_path: PathLike,
    instances_path: PathLike,
    split: str | None = None,
    image_root: PathLike | None = None,
) -> list[RefSample]:
    """Read RefCOCO / RefCOCO+ / RefCOCOg (one sample per sentence).

    Args:
        refs_path: ``refs(unc).p`` / ``refs(umd).p`` / ``refs(google).p``.
        instances_path: The dataset's ``instances.json``.
        split: Keep only refs whose ``split`` equals this (``val``, ``testA``,
            ``testB``, ``test``...); ``None`` keeps all.
        image_root: Folder holding the COCO ``train2014`` images.

    Returns:
        The samples, in refs-file order then sentence order.

    Raises:
        FormatError: A file lacks a published field, a ref points to a missing
            annotation or image, or ``split`` names no ref.
    """
    refs_path, instances_path = Path(refs_path), Path(instances_path)
    refs = load_refs_pickle(refs_path)
    instances = _read_json(instances_path, "a COCO instances.json with 'images' and 'annotations'")
    where = str(instances_path)
    images_list = _require(instances, "images", where, "a list of {id, file_name, width, height}")
    anns_list = _require(instances, "annotations", where, "a list of {id, image_id, bbox}")
    if not isinstance(images_list, list) or not isinstance(anns_list, list):
        raise FormatError(f"{where}: 'images' and 'annotations' must be lists")
    images: dict[int, dict[str, Any]] = {}
    for k, img in enumerate(images_list):
        w = f"{where}: images[{k}]"
        for field in ("id", "file_name", "width", "height"):
            _require(img, field, w, "COCO image fields id, file_name, width, height")
        images[img["id"]] = img
    anns: dict[int, dict[str, Any]] = {}
    for k, ann in enumerate(anns_list):
        w = f"{where}: annotations[{k}]"
        for field in ("id", "image_id", "bbox"):
            _require(ann, field, w, "COCO annotation fields id, image_id, bbox [x, y, w, h]")
        anns[ann["id"]] = ann

    splits_seen: set[str] = set()
    samples: list[RefSample] = []
    for k, ref in enumerate(refs):
        w = f"{refs_path}: ref #{k}"
        for field in ("ref_id", "ann_id", "image_id", "split", "sentences"):
            _require(ref, field, w, "refs fields ref_id, ann_id, image_id, split, sentences")
        splits_seen.add(str(ref["split"]))
        if split is not None and ref["split"] != split:
            continue
        ann = anns.get(ref["ann_id"])
        if ann is None:
            raise FormatError(f"{w}: ann_id {ref['ann_id']!r} is not in {instances_path} annotations")
        img = images.get(ref["image_id"])
        if img is None:
            raise FormatError(f"{w}: image_id {ref['image_id']!r} is not in {instances_path} images")
        bbox = ann["bbox"]
        aw = f"{instances_path}: annotation {ann['id']!r}"
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise FormatError(f"{aw}: field 'bbox' is {bbox!r}; expected [x, y, w, h] in pixels")
        x, y, bw, bh = (_number(v, aw, "bbox") for v in bbox)
        width = _number(img["width"], f"{instances_path}: image {img['id']!r}", "width")
        height = _number(img["height"], f"{instances_path}: image {img['id']!r}", "height")
        if width <= 0 or height <= 0:
            raise FormatError(
                f"{instances_path}: image {img['id']!r} has size {width}x{height}; expected > 0"
            )
        box = (x, y, x + bw, y + bh)
        box_rel = (box[0] / width, box[1] / height, box[2] / width, box[3] / height)
        sentences = ref["sentences"]
        if not isinstance(sentences, list):
            raise FormatError(
                f"{w}: field 'sentences' must be a list of {{sent, raw, tokens, sent_id}}"
            )
        for j, sent in enumerate(sentences):
            sw = f"{w} sentence #{j}"
            text = _require(sent, "sent", sw, "the sentence text")
            sent_id = _require(sent, "sent_id", sw, "the sentence id")
            samples.append(
                RefSample(
                    ref_id=ref["ref_id"],
                    ann_id=ref["ann_id"],
                    sent_id=sent_id,
                    image_id=ref["image_id"],
                    split=str(ref["split"]),
                    expression=str(text),
                    raw_expression=str(sent.get("raw", text)),
                    image_file=str(img["file_name"]),
                    image_path=_join(image_root, str(img["file_name"])),
                    width=int(width),
                    height=int(height),
                    box=box,
                    box_rel=box_rel,
                    category_id=ref.get("category_id", ann.get("category_id")),
                )
            )
    if split is not None and split not in splits_seen:
        raise FormatError(
            f"{refs_path}: no ref has split {split!r}; the file has splits {sorted(splits_seen)}"
        )
    return samples


# ---------------------------------------------------------------------------
# Charades-STA
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CharadesSample:
    """One Charades-STA query.

    Attributes:
        video_id: Charades video id (``3MSZA``).
        start: Annotated start in seconds.
        end: Annotated end in seconds, as in the file.
        sentence: The query sentence (stripped, trailing period kept).
        duration: Video length in seconds when known (CSV or given mapping).
        video_path: ``video_root/<video_id>.mp4`` when a video root was given.
    """

    video_id: str
    start: float
    end: float
    sentence: str
    duration: float | None = None
    video_path: str | None = None

    def relative_span(self) -> tuple[float, float]:
        """The span as fractions of the duration, end clipped to the duration.

        Clipping follows the widely copied Charades-STA loader of the 2D-TAN family
        (``e_time = min(float(e_time), self.durations[vid])`` with durations from
        ``Charades_v1_<split>.csv``), needed because a few annotations end after
        the video.

        Raises:
            ValueError: The duration is unknown.
        """
        if not self.duration:
            raise ValueError(
                f"Charades-STA query for video {self.video_id!r} has no duration; pass "
                "Charades_v1_test.csv (or durations) to read_charades_sta or read the video"
            )
        d = self.duration
        return (min(max(self.start, 0.0), d) / d, min(max(self.end, 0.0), d) / d)


def read_charades_durations(csv_path: PathLike) -> dict[str, float]:
    """Read video durations from the Charades release's ``Charades_v1_<split>.csv``.

    Args:
        csv_path: The CSV (header ``id,subject,scene,...,actions,length``).

    Returns:
        ``{video_id: length in seconds}``.
    """
    csv_path = Path(csv_path)
    try:
        f = open(csv_path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise FormatError(f"{csv_path}: file not found (expected Charades_v1_<split>.csv)") from None
    with f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        for col in ("id", "length"):
            if col not in fields:
                raise FormatError(
                    f"{csv_path}: missing column {col!r} (expected the Charades CSV header with "
                    f"'id' and 'length'; got {fields})"
                )
        out: dict[str, float] = {}
        for lineno, row in enumerate(reader, start=2):
            try:
                out[row["id"]] = float(row["length"])
            except (TypeError, ValueError):
                raise FormatError(
                    f"{csv_path}:{lineno}: column 'length' is {row.get('length')!r}; expected seconds"
                ) from None
    return out


def read_charades_sta(
    path: PathLike,
    video_info_csv: PathLike | None = None,
    durations: Mapping[str, float] | None = None,
    video_root: PathLike | None = None,
) -> list[CharadesSample]:
    """Read ``charades_sta_<split>.txt`` (``VIDEOID START END##SENTENCE`` per line).

    Args:
        path: The Charades-STA annotation file.
        video_info_csv: Optional ``Charades_v1_<split>.csv`` for the durations.
        durations: Optional ``{video_id: seconds}`` (wins over the CSV).
        video_root: Optional folder of ``<video_id>.mp4`` files.

    Returns:
        One sample per non-blank line.

    Raises:
        FormatError: A line does not match the format, or a duration source was
            given but lacks a video.
    """
    path = Path(path)
    known: dict[str, float] | None = None
    if video_info_csv is not None:
        known = read_charades_durations(video_info_csv)
    if durations is not None:
        known = {**(known or {}), **{str(k): float(v) for k, v in durations.items()}}
    expected = "'VIDEOID START END##SENTENCE' with START/END in seconds"
    try:
        f = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found (expected lines {expected})") from None
    samples: list[CharadesSample] = []
    with f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            head, sep, sentence = line.partition("##")
            parts = head.split()
            if not sep or len(parts) != 3:
                raise FormatError(f"{path}:{lineno}: {line!r} is not {expected}")
            vid, s, e = parts
            try:
                start, end = float(s), float(e)
            except ValueError:
                raise FormatError(
                    f"{path}:{lineno}: START/END {s!r} {e!r} are not numbers; expected {expected}"
                ) from None
            duration = None
            if known is not None:
                if vid not in known:
                    src = video_info_csv if video_info_csv is not None else "durations"
                    raise FormatError(f"{path}:{lineno}: video {vid!r} has no duration in {src}")
                duration = known[vid]
            samples.append(
                CharadesSample(
                    video_id=vid,
                    start=start,
                    end=end,
                    sentence=sentence.strip(),
                    duration=duration,
                    video_path=_join(video_root, f"{vid}.mp4"),
                )
            )
    return samples


# ---------------------------------------------------------------------------
# POPE
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PopeSample:
    """One POPE question.

    Attributes:
        question_id: The question id.
        image: The image file name (``COCO_val2014_000000310196.jpg``).
        image_path: ``image_root/image`` when an image root was given.
        question: The question text (``Is there a snowboard in the image?``).
        label: ``"yes"`` or ``"no"``.
        split: ``random`` / ``popular`` / ``adversarial`` (or the given name).
    """

    question_id: Any
    image: str
    image_path: str | None
    question: str
    label: str
    split: str | None


def read_pope(
    path: PathLike,
    split: str | None = None,
    image_root: PathLike | None = None,
) -> list[PopeSample]:
    """Read an official POPE question file (JSON lines).

    Args:
        path: ``coco_pope_<split>.json`` (or any file of that format).
        split: Split name; inferred from a ``*_pope_<split>.json`` file name when
            ``None``.
        image_root: Folder of the images (COCO ``val2014`` for the COCO files).

    Returns:
        The questions in file order.
    """
    path = Path(path)
    if split is None:
        stem = path.stem
        if "_pope_" in stem:
            split = stem.rsplit("_pope_", 1)[1].split("_")[-1]
    expected = 'JSON lines {"question_id", "image", "text", "label": "yes"|"no"}'
    samples: list[PopeSample] = []
    for lineno, rec in _iter_json_lines(path, expected):
        where = f"{path}:{lineno}"
        qid = _require(rec, "question_id", where, expected)
        image = _require(rec, "image", where, expected)
        text = _require(rec, "text", where, expected)
        label = _require(rec, "label", where, expected)
        if not isinstance(label, str) or label.strip().lower() not in ("yes", "no"):
            raise FormatError(f"{where}: field 'label' is {label!r}; expected 'yes' or 'no'")
        samples.append(
            PopeSample(
                question_id=qid,
                image=str(image),
                image_path=_join(image_root, str(image)),
                question=str(text),
                label=label.strip().lower(),
                split=split,
            )
        )
    return samples


# ---------------------------------------------------------------------------
# VQAv2
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VQASample:
    """One VQAv2 question (with its annotation when one was given).

    Attributes:
        question_id: The question id.
        image_id: The COCO image id.
        question: The question text.
        image_file: ``COCO_<subtype>_%012d.jpg``.
        image_path: ``image_root/image_file`` when an image root was given.
        answers: The (usually 10) human answers, empty without annotations.
        multiple_choice_answer: The most common answer (``None`` without annotations).
        answer_type: ``yes/no`` / ``number`` / ``other`` (``None`` without annotations).
        question_type: e.g. ``what color is the`` (``None`` without annotations).
    """

    question_id: int
    image_id: int
    question: str
    image_file: str
    image_path: str | None
    answers: tuple[str, ...] = ()
    multiple_choice_answer: str | None = None
    answer_type: str | None = None
    question_type: str | None = None


def _image_subtype(questions: Mapping[str, Any], given: str | None) -> str:
    if given is not None:
        return given
    sub = questions.get("data_subtype")
    if isinstance(sub, str) and sub:
        # test-dev questions ("test-dev2015") use the test2015 images.
        return "test2015" if sub.startswith("test-dev") else sub
    return "val2014"


def read_vqav2(
    questions_path: PathLike,
    annotations_path: PathLike | None = None,
    image_root: PathLike | None = None,
    image_subtype: str | None = None,
) -> list[VQASample]:
    """Read official VQAv2 questions (and, optionally, annotations) JSON files.

    Args:
        questions_path: ``v2_OpenEnded_mscoco_<subtype>_questions.json``.
        annotations_path: ``v2_mscoco_<subtype>_annotations.json`` (none for test).
        image_root: Folder of the COCO images of that subtype.
        image_subtype: Image naming subtype (``val2014``...); defaults to the
            questions file's ``data_subtype`` (``test-dev2015`` -> ``test2015``),
            else ``val2014``.

    Returns:
        One sample per question, in questions-file order.

    Raises:
        FormatError: A field is missing, or a question has no annotation.
    """
    questions_path = Path(questions_path)
    qdata = _read_json(questions_path, 'a VQA questions JSON {"questions": [...]}')
    qwhere = str(questions_path)
    qlist = _require(qdata, "questions", qwhere, "a list of {image_id, question, question_id}")
    if not isinstance(qlist, list):
        raise FormatError(f"{qwhere}: field 'questions' must be a list")
    subtype = _image_subtype(qdata, image_subtype)

    ann_by_qid: dict[Any, dict[str, Any]] | None = None
    if annotations_path is not None:
        annotations_path = Path(annotations_path)
        adata = _read_json(annotations_path, 'a VQA annotations JSON {"annotations": [...]}')
        awhere = str(annotations_path)
        alist = _require(
            adata, "annotations", awhere, "a list of {question_id, answers, answer_type, ...}"
        )
        if not isinstance(alist, list):
            raise FormatError(f"{awhere}: field 'annotations' must be a list")
        ann_by_qid = {}
        for k, ann in enumerate(alist):
            w = f"{awhere}: annotations[{k}]"
            qid = _require(ann, "question_id", w, "the question id")
            answers = _require(ann, "answers", w, "a list of {answer, answer_confidence, answer_id}")
            if not isinstance(answers, list) or not answers:
                raise FormatError(f"{w}: field 'answers' must be a non-empty list of {{answer, ...}}")
            for j, a in enumerate(answers):
                _require(a, "answer", f"{w} answers[{j}]", "the human answer string")
            ann_by_qid[qid] = ann

    samples: list[VQASample] = []
    for k, q in enumerate(qlist):
        w = f"{qwhere}: questions[{k}]"
        qid = _require(q, "question_id", w, "the question id")
        image_id = _require(q, "image_id", w, "the COCO image id")
        text = _require(q, "question", w, "the question text")
        if isinstance(image_id, bool) or not isinstance(image_id, int):
            raise FormatError(f"{w}: field 'image_id' is {image_id!r}; expected an integer")
        image_file = f"COCO_{subtype}_{image_id:012d}.jpg"
        kwargs: dict[str, Any] = {}
        if ann_by_qid is not None:
            ann = ann_by_qid.get(qid)
            if ann is None:
                raise FormatError(f"{w}: question_id {qid!r} has no entry in {annotations_path}")
            kwargs = {
                "answers": tuple(str(a["answer"]) for a in ann["answers"]),
                "multiple_choice_answer": ann.get("multiple_choice_answer"),
                "answer_type": ann.get("answer_type"),
                "question_type": ann.get("question_type"),
            }
        samples.append(
            VQASample(
                question_id=qid,
                image_id=image_id,
                question=str(text),
                image_file=image_file,
                image_path=_join(image_root, image_file),
                **kwargs,
            )
        )
    return samples


# ---------------------------------------------------------------------------
# VGG-SS
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VGGSSSample:
    """One VGG-SS clip.

    Attributes:
        file: Clip id ``<youtube id>_<start, 6 digits>`` (frame ``<file>.jpg``,
            audio ``<file>.wav`` in the LVS/EZ-VSL layout).
        cls: VGGSound class name.
        boxes: Annotated boxes ``(x1, y1, x2, y2)``, relative to the frame, as
            published (not clipped).
        frame_path: ``frame_root/<file>.jpg`` when a frame root was given.
    """

    file: str
    cls: str
    boxes: tuple[tuple[float, float, float, float], ...]
    frame_path: str | None = None


def read_vggss(path: PathLike, frame_root: PathLike | None = None) -> list[VGGSSSample]:
    """Read the published ``vggss.json``.

    Args:
        path: ``metadata/vggss.json`` (LVS release).
        frame_root: Optional folder of ``<file>.jpg`` frames.

    Returns:
        The clips in file order.

    Raises:
        FormatError: Not a list of ``{"file", "class", "bbox": [[x1, y1, x2, y2], ...]}``.
    """
    path = Path(path)
    expected = (
        'a JSON list of {"file", "class", "bbox": [[x1, y1, x2, y2], ...]} (relative coordinates)'
    )
    data = _read_json(path, expected)
    if not isinstance(data, list):
        raise FormatError(f"{path}: got JSON {type(data).__name__}; expected {expected}")
    samples: list[VGGSSSample] = []
    for k, rec in enumerate(data):
        w = f"{path}: entry #{k}"
        file = _require(rec, "file", w, "the clip id")
        cls = _require(rec, "class", w, "the VGGSound class name")
        bboxes = _require(rec, "bbox", w, "a list of [x1, y1, x2, y2] relative boxes")
        if not isinstance(bboxes, list) or not bboxes:
            raise FormatError(
                f"{w}: field 'bbox' is {bboxes!r}; expected a non-empty list of [x1, y1, x2, y2]"
            )
        boxes = []
        for b in bboxes:
            if not isinstance(b, list) or len(b) != 4:
                raise FormatError(f"{w}: box {b!r} in field 'bbox'; expected [x1, y1, x2, y2]")
            x1, y1, x2, y2 = (_number(v, w, "bbox") for v in b)
            boxes.append((x1, y1, x2, y2))
        samples.append(
            VGGSSSample(
                file=str(file),
                cls=str(cls),
                boxes=tuple(boxes),
                frame_path=_join(frame_root, f"{file}.jpg"),
            )
        )
    return samples


# ---------------------------------------------------------------------------
# Video QA: ActivityNet-QA, MSVD-QA, MSRVTT-QA
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoQASample:
    """One open-ended video question.

    Attributes:
        question_id: The question id, as a string (``v_1QIUV7WYKXg_1``, ``30933``).
        video: Candidate video file stems, most likely first (``v_<name>`` and
            ``<name>`` for ActivityNet, the clip name for MSVD, ``video<N>`` for
            MSRVTT); the runner looks for ``<stem>.mp4/.mkv/.webm/.avi``.
        question: The question text.
        answer: The reference answer.
        answer_type: ActivityNet-QA ``type`` or MSRVTT-QA ``category_id`` when given.
    """

    question_id: str
    video: tuple[str, ...]
    question: str
    answer: str
    answer_type: Any = None


def read_youtube_mapping(path: PathLike) -> dict[str, str]:
    """Read MSVD's ``youtube_mapping.txt`` (``<clip name> vid<N>`` per line).

    Returns:
        ``{"vid<N>": clip name}``.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found (expected lines '<clip name> vid<N>')") from None
    out: dict[str, str] = {}
    for lineno, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].startswith("vid"):
            raise FormatError(f"{path}:{lineno}: {line!r} is not '<clip name> vid<N>'")
        out[parts[1]] = parts[0]
    return out


def read_video_qa(
    questions_path: PathLike,
    answers_path: PathLike | None = None,
    video_mapping: PathLike | None = None,
) -> list[VideoQASample]:
    """Read video QA questions in either published shape (detected per file).

    Args:
        questions_path: ``<split>_q.json`` (ActivityNet-QA shape) or ``<split>_qa.json``
            (MSVD-QA / MSRVTT-QA shape).
        answers_path: ``<split>_a.json``; required for the ActivityNet-QA shape unless
            the question entries carry an ``"answer"``.
        video_mapping: MSVD's ``youtube_mapping.txt`` (names the clip of ``video_id``).

    Returns:
        The questions in file order.

    Raises:
        FormatError: Neither shape, a missing field, or a question with no answer.
    """
    questions_path = Path(questions_path)
    expected = ('a JSON list of {"video_name", "question", "question_id"} (ActivityNet-QA) or '
                '{"video_id", "id", "question", "answer"} (MSVD-QA / MSRVTT-QA)')
    data = _read_json(questions_path, expected)
    if not isinstance(data, list):
        raise FormatError(f"{questions_path}: got JSON {type(data).__name__}; expected {expected}")
    answers: dict[str, Mapping[str, Any]] = {}
    if answers_path is not None:
        answers_path = Path(answers_path)
        adata = _read_json(answers_path, 'a JSON list of {"answer", "type", "question_id"}')
        if not isinstance(adata, list):
            raise FormatError(f"{answers_path}: expected a JSON list of {{answer, type, question_id}}")
        for k, a in enumerate(adata):
            w = f"{answers_path}: entry #{k}"
            qid = _require(a, "question_id", w, "the question id")
            _require(a, "answer", w, "the reference answer")
            answers[str(qid)] = a
    mapping = read_youtube_mapping(video_mapping) if video_mapping is not None else None
    out: list[VideoQASample] = []
    for k, q in enumerate(data):
        w = f"{questions_path}: entry #{k}"
        question = str(_require(q, "question", w, expected))
        if "video_name" in q:  # ActivityNet-QA shape
            qid = str(_require(q, "question_id", w, "the question id"))
            name = str(q["video_name"])
            ans = answers.get(qid, q if "answer" in q else None)
            if ans is None:
                where = answers_path if answers_path is not None else "(no answers file given)"
                raise FormatError(f"{w}: question_id {qid!r} has no answer in {where}")
            stems = (name, f"v_{name}") if not name.startswith("v_") else (name, name[2:])
            out.append(VideoQASample(qid, stems, question, str(ans["answer"]), ans.get("type")))
        elif "video_id" in q:  # MSVD-QA / MSRVTT-QA shape
            qid = str(_require(q, "id", w, "the question id"))
            answer = _require(q, "answer", w, "the reference answer")
            vid = q["video_id"]
            if mapping is not None:
                clip = mapping.get(f"vid{vid}")
                if clip is None:
                    raise FormatError(f"{w}: video_id {vid!r} (vid{vid}) is not in {video_mapping}")
                stems: tuple[str, ...] = (clip,)
            else:
                stems = (f"video{vid}", f"vid{vid}", str(vid))
            out.append(VideoQASample(qid, stems, question, str(answer), q.get("category_id")))
        else:
            raise FormatError(f"{w}: has neither 'video_name' nor 'video_id'; expected {expected}")
    return out


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
    for lineno, rec in _iter_json_lines(path, expected):
        where = f"{path}:{lineno}"
        if "answer" not in rec:
            alt = [k for k in ("text", "prediction", "output", "response") if k in rec]
            hint = f" (found {alt[0]!r}: rename it to 'answer')" if alt else ""
            raise FormatError(f"{where}: missing field 'answer'{hint}; expected {expected}")
        pid = _require(rec, "id", where, expected)
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
