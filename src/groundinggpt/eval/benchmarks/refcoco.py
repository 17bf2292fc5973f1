"""RefCOCO / RefCOCO+ / RefCOCOg referring expression comprehension.

The refs pickle and COCO instances reader, Acc@0.5, the ``rec`` task.

The files, as published: RefCOCO / RefCOCO+ / RefCOCOg (lichengunc/refer): ``refs(unc).p``, ``refs(umd).p`` or
``refs(google).p`` -- a pickle (written by Python 2) of a list of dicts ``{ref_id, ann_id,
image_id, split, sentences: [{sent, raw, tokens, sent_id}], category_id, file_name}`` -- plus
``instances.json`` in COCO format (``images: [{id, file_name, width, height}]``, ``annotations:
[{id, image_id, bbox: [x, y, w, h], category_id}]``). The image to load is ``instances.json
images[].file_name`` (``COCO_train2014_%012d.jpg``, in COCO ``train2014``), as ``REFER.showRef``
in lichengunc/refer ``refer.py`` does; the ``file_name`` in the refs entries
(``COCO_train2014_<12 digits>_<n>.jpg``) is not an image on disk.

Reader, scorer and task of one benchmark, top to bottom; the shared file helpers are
:mod:`groundinggpt.eval.io`. Moved here from ``eval/formats.py``, ``eval/metrics.py`` and
``eval/task_*.py`` (which re-export these names).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundinggpt import grounding
from groundinggpt.eval.io import (
    BoxLike, FormatError, PathLike, as_box, check_lengths, gt_box, join_root, number, read_json, require,
)
from groundinggpt.eval.tasks import Sample, Task, TaskInputs, register_task

__all__ = ["RefCOCOInputs", 
    "MAX_REFS_BYTES", "MAX_REFS_DEPTH", "RefCOCOTask", "RefSample", "box_iou", "load_refs_pickle",
    "read_refcoco", "rec_accuracy",
]


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
    instances = read_json(instances_path, "a COCO instances.json with 'images' and 'annotations'")
    where = str(instances_path)
    images_list = require(instances, "images", where, "a list of {id, file_name, width, height}")
    anns_list = require(instances, "annotations", where, "a list of {id, image_id, bbox}")
    if not isinstance(images_list, list) or not isinstance(anns_list, list):
        raise FormatError(f"{where}: 'images' and 'annotations' must be lists")
    images: dict[int, dict[str, Any]] = {}
    for k, img in enumerate(images_list):
        w = f"{where}: images[{k}]"
        for field in ("id", "file_name", "width", "height"):
            require(img, field, w, "COCO image fields id, file_name, width, height")
        images[img["id"]] = img
    anns: dict[int, dict[str, Any]] = {}
    for k, ann in enumerate(anns_list):
        w = f"{where}: annotations[{k}]"
        for field in ("id", "image_id", "bbox"):
            require(ann, field, w, "COCO annotation fields id, image_id, bbox [x, y, w, h]")
        anns[ann["id"]] = ann

    splits_seen: set[str] = set()
    samples: list[RefSample] = []
    for k, ref in enumerate(refs):
        w = f"{refs_path}: ref #{k}"
        for field in ("ref_id", "ann_id", "image_id", "split", "sentences"):
            require(ref, field, w, "refs fields ref_id, ann_id, image_id, split, sentences")
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
        x, y, bw, bh = (number(v, aw, "bbox") for v in bbox)
        width = number(img["width"], f"{instances_path}: image {img['id']!r}", "width")
        height = number(img["height"], f"{instances_path}: image {img['id']!r}", "height")
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
            text = require(sent, "sent", sw, "the sentence text")
            sent_id = require(sent, "sent_id", sw, "the sentence id")
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
                    image_path=join_root(image_root, str(img["file_name"])),
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
# REC (RefCOCO / RefCOCO+ / RefCOCOg): Acc@0.5
# ---------------------------------------------------------------------------


def box_iou(a: BoxLike, b: BoxLike) -> float:
    """Intersection over union of two axis-aligned boxes (continuous coordinates).

    Boxes are ``(x1, y1, x2, y2)`` in any single coordinate frame (pixels or
    relative); reversed corners are put in order first (the rule of
    :func:`groundinggpt.grounding.box_iou`, which this calls).  Area is
    ``max(0, x2 - x1) * max(0, y2 - y1)`` -- continuous coordinates, no "+1" pixel convention,
    as in the REC evaluations of Shikra /
    MiniGPT-v2 / Ferret that GroundingGPT compares against.

    Args:
        a: First box (4-sequence or object with ``x1..y2``).
        b: Second box.

    Returns:
        IoU in [0, 1]; 0.0 when either box is unusable (``None``, malformed) or the
        union is empty.
    """
    ba, bb = as_box(a), as_box(b)
    if ba is None or bb is None:
        return 0.0
    return grounding.box_iou(ba, bb)


def rec_accuracy(
    preds: Sequence[BoxLike | None],
    gts: Sequence[BoxLike],
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Referring-expression comprehension accuracy (Acc@0.5).

    Definition (RefCOCO/RefCOCO+/RefCOCOg REC protocol, e.g. Mao et al. 2016,
    Yu et al. 2016; the protocol GroundingGPT's Table uses): one predicted box per
    expression; it is correct when IoU(pred, gt) >= ``threshold`` with the ground
    truth box, both in ORIGINAL-image coordinates.  An unparseable prediction
    (``None``) is a miss.

    Args:
        preds: One predicted box (or ``None``) per expression.
        gts: The ground-truth box per expression, same frame as ``preds``.
        threshold: IoU needed for a hit (0.5 in every published table).

    Returns:
        ``{"accuracy": % correct, "n": count, "correct": count, "misses": count of
        None/malformed predictions, "ious": per-sample IoU list}``.
    """
    check_lengths(preds, gts, "rec_accuracy")
    misses = 0
    ious: list[float] = []  # a miss scores IoU 0, as in temporal_grounding_metrics
    for i, (pred, gt) in enumerate(zip(preds, gts)):
        g = gt_box(gt, i)
        p = as_box(pred)
        if p is None:
            misses += 1
            ious.append(0.0)
            continue
        ious.append(box_iou(p, g))
    n = len(gts)
    return {
        "accuracy": grounding.accuracy_at(ious, threshold),
        "n": n,
        "correct": sum(1 for v in ious if v >= threshold),
        "misses": misses,
        "ious": ious,
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@dataclass(frozen=True)
class RefCOCOInputs(TaskInputs):
    """What ``RefCOCOTask`` reads, one typed field per flag:
    ``--refs``, ``--instances``, ``--images``, ``--split``."""

    refs: str
    instances: str
    images: str | None = None
    split: str = "val"


@register_task
class RefCOCOTask(Task):
    """Referring expression comprehension, Acc@0.5 in original-image coordinates."""

    Inputs = RefCOCOInputs

    name = "rec"
    help = "RefCOCO / RefCOCO+ / RefCOCOg referring expression comprehension (Acc@0.5)"
    grounding = "box"
    prompt_key = "rec"
    id_scheme = '"{ref_id}_{sent_id}" (one sample per sentence)'

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--refs", required=True, help="refs(unc).p / refs(umd).p / refs(google).p")
        parser.add_argument("--instances", required=True, help="the dataset's instances.json (COCO format)")
        parser.add_argument("--images", help="folder of the COCO train2014 images (needed with --model)")
        parser.add_argument("--split", default="val", help="val, testA, testB, test ... (default: val)")

    def load(self) -> list[Sample]:
        a = self.inputs
        refs = read_refcoco(a.refs, a.instances, split=a.split, image_root=a.images)
        return [
            Sample(
                id=f"{r.ref_id}_{r.sent_id}",
                media=[("image", r.image_path or r.image_file)],
                fields={"exp": r.expression},
                target=list(r.box_rel),
                image_size=(r.width, r.height),
                extra={"expression": r.expression, "split": r.split},
            )
            for r in refs
        ]

    def parse(self, answer, sample, boxes_frame, observed):
        return self.first_box(answer, sample, boxes_frame, observed)

    def score_sample(self, sample, parsed, observed):
        iou = box_iou(parsed, sample.target) if parsed is not None else 0.0
        return {"correct": iou >= 0.5, "score": round(iou, 6)}

    def summarize(self, samples, records):
        out = rec_accuracy([r.get("parsed") for r in records], [s.target for s in samples])
        return {"metrics": {"Acc@0.5": out["accuracy"], "mean IoU": 100 * _mean(out["ious"])},
                "correct": out["correct"]}
