"""VGG-SS sound-source localisation: the ``vggss.json`` reader, cIoU and AUC, the ``vggss`` task.

The files, as published: VGG-SS (hche11/Localizing-Visual-Sounds-the-Hard-Way ``metadata/vggss.json``): a JSON list of
``{"file": "<youtube id>_<start>", "class": str, "bbox": [[x1, y1, x2, y2], ...]}`` with
coordinates RELATIVE to the frame (fractions in [0, 1]; the official code rasterises them with
``int(224 * max(x, 0))``), one or more boxes per clip.

Reader, scorer and task of one benchmark, top to bottom; the shared file helpers are
:mod:`groundinggpt.eval.io`. Moved here from ``eval/formats.py``, ``eval/metrics.py`` and
``eval/task_*.py`` (which re-export these names).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundinggpt.errors import InputError
from groundinggpt.eval.io import (
    BoxLike, FormatError, PathLike, as_box, check_lengths, gt_box, join_root, number, read_json, require,
)
from groundinggpt.eval.tasks import Sample, Task, TaskInputs, register_task

__all__ = ["VGGSSInputs", 
    "VGGSSSample", "VGGSSTask", "ciou", "rasterize_boxes", "read_vggss", "success_auc", "vggss_metrics",
    "vggss_thresholds",
]


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
    data = read_json(path, expected)
    if not isinstance(data, list):
        raise FormatError(f"{path}: got JSON {type(data).__name__}; expected {expected}")
    samples: list[VGGSSSample] = []
    for k, rec in enumerate(data):
        w = f"{path}: entry #{k}"
        file = require(rec, "file", w, "the clip id")
        cls = require(rec, "class", w, "the VGGSound class name")
        bboxes = require(rec, "bbox", w, "a list of [x1, y1, x2, y2] relative boxes")
        if not isinstance(bboxes, list) or not bboxes:
            raise FormatError(
                f"{w}: field 'bbox' is {bboxes!r}; expected a non-empty list of [x1, y1, x2, y2]"
            )
        boxes = []
        for b in bboxes:
            if not isinstance(b, list) or len(b) != 4:
                raise FormatError(f"{w}: box {b!r} in field 'bbox'; expected [x1, y1, x2, y2]")
            x1, y1, x2, y2 = (number(v, w, "bbox") for v in b)
            boxes.append((x1, y1, x2, y2))
        samples.append(
            VGGSSSample(
                file=str(file),
                cls=str(cls),
                boxes=tuple(boxes),
                frame_path=join_root(frame_root, f"{file}.jpg"),
            )
        )
    return samples


# ---------------------------------------------------------------------------
# VGG-SS sound source localisation: cIoU@0.5, AUC
# ---------------------------------------------------------------------------


def rasterize_boxes(
    boxes: Iterable[BoxLike],
    width: float = 1.0,
    height: float = 1.0,
    grid: int = 224,
) -> np.ndarray:
    """Rasterise the union of boxes onto a ``grid x grid`` binary map.

    Each box ``(x1, y1, x2, y2)`` is given in a frame ``width`` x ``height``
    (``1 x 1`` for relative boxes, the image size for pixel boxes).  It is
    normalised, clipped to [0, 1], scaled by ``grid`` and truncated to integers,
    then ``map[y1:y2, x1:x2] = 1`` -- the VGG-SS ground-truth rasterisation of the
    official code (hche11/Localizing-Visual-Sounds-the-Hard-Way ``utils.py``
    ``testset_gt``: ``int(224 * max(x, 0))`` and ``gt_map[gt_map > 0] = 1``;
    stoneMo/EZ-VSL ``datasets.py`` clips to [0, 1] the same way).  Unusable boxes
    are skipped; an empty map is returned when none is usable.

    Args:
        boxes: Boxes (4-sequences or objects with ``x1..y2``).
        width: Width of the boxes' frame.
        height: Height of the boxes' frame.
        grid: Side of the square map (224 in the benchmark).

    Returns:
        ``float64`` array of shape ``(grid, grid)`` with values 0/1, indexed
        ``[y, x]``.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"rasterize_boxes: width and height must be > 0, got {width}x{height}")
    out = np.zeros((grid, grid), dtype=np.float64)
    for box in boxes:
        b = as_box(box)
        if b is None:
            continue
        rel = (b[0] / width, b[1] / height, b[2] / width, b[3] / height)
        x1, y1, x2, y2 = (int(grid * min(max(v, 0.0), 1.0)) for v in rel)
        out[y1:y2, x1:x2] = 1.0
    return out


def ciou(pred_map: np.ndarray, gt_map: np.ndarray) -> float:
    """Consensus IoU of a predicted map against a ground-truth map.

    ``cIoU = sum(P * G) / (sum(G) + sum(P * [G == 0]))`` with ``P`` the binary
    predicted map (``pred_map >= 0.5``, as ``cal_CIOU(pred, gt_map, 0.5)`` in
    hche11/Localizing-Visual-Sounds-the-Hard-Way ``test.py``; identical formula in
    stoneMo/EZ-VSL ``utils.py``) and ``G`` the ground-truth map.  When the
    denominator is 0 (both maps empty) the result is 0.0 (the official code yields
    NaN, which fails every threshold).

    Args:
        pred_map: Predicted map (binary, or scores where >= 0.5 is "on").
        gt_map: Ground-truth map, same shape.

    Returns:
        cIoU in [0, 1].
    """
    pred_map = np.asarray(pred_map, dtype=np.float64)
    gt_map = np.asarray(gt_map, dtype=np.float64)
    if pred_map.shape != gt_map.shape:
        raise ValueError(f"ciou: map shapes differ, {pred_map.shape} vs {gt_map.shape}")
    p = (pred_map >= 0.5).astype(np.float64)
    inter = float(np.sum(p * gt_map))
    denom = float(np.sum(gt_map) + np.sum(p * (gt_map == 0)))
    if denom <= 0.0:
        return 0.0
    return inter / denom


def vggss_thresholds() -> list[float]:
    """The 21 cIoU thresholds of the official code, computed as it does: ``0.05 * i``."""
    return [0.05 * i for i in range(21)]


def success_auc(cious: Sequence[float]) -> float:
    """Area under the success-rate curve over the 21 thresholds ``0, 0.05, ..., 1``.

    Official code (hche11/Localizing-Visual-Sounds-the-Hard-Way ``test.py`` and
    ``utils.py`` ``cal_AUC``; stoneMo/EZ-VSL ``utils.py`` ``finalize_AUC``):
    ``results[i] = mean(cious >= 0.05 * i)`` then ``sklearn.metrics.auc(x,
    results)`` with ``x = [0.05 * i]`` -- i.e. the TRAPEZOID rule over the
    thresholds, not ``sum(results) / 21``.

    Args:
        cious: Per-sample cIoU values.

    Returns:
        AUC in [0, 1] (0.0 for no samples).
    """
    if len(cious) == 0:
        return 0.0
    values = np.asarray(cious, dtype=np.float64)
    x = vggss_thresholds()
    y = [float(np.sum(values >= t)) / len(values) for t in x]
    return float(sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2.0 for i in range(len(x) - 1)))


def vggss_metrics(
    pred_boxes: Sequence[BoxLike | None],
    gt_box_lists: Sequence[Sequence[BoxLike]],
    sizes: Sequence[tuple[float, float] | None] | None = None,
    grid: int = 224,
) -> dict[str, Any]:
    """VGG-SS sound-source localisation: cIoU@0.5 and AUC from one predicted box.

    Per sample, the ground-truth map ``G`` is the union of the annotated boxes
    rasterised on the 224x224 grid and ``P`` is the rasterised predicted box
    (:func:`rasterize_boxes`); cIoU as in :func:`ciou`.  ``cIoU@0.5`` is the
    percentage of samples with cIoU >= 0.5 (``np.mean(ciou >= 0.5)`` in the official
    code, there a fraction); ``AUC`` as in :func:`success_auc`, times 100.  A missing/malformed prediction has
    an empty ``P``, i.e. cIoU 0 (it still "passes" threshold 0, exactly as an empty
    predicted map does in the official code).

    Args:
        pred_boxes: One predicted box (or ``None``) per sample.
        gt_box_lists: The annotated boxes of each sample (VGG-SS may have several).
        sizes: Optional ``(width, height)`` per sample, the frame in which BOTH the
            predicted and the ground-truth boxes of that sample are expressed;
            ``None`` (or a ``None`` entry) means relative ``[0, 1]`` boxes, as in
            the published ``vggss.json``.
        grid: Map side (224).

    Returns:
        ``{"cIoU@0.5": percent, "AUC": percent, "mean_cIoU": percent, "n",
        "misses", "cious": per-sample list of fractions}``.
    """
    check_lengths(pred_boxes, gt_box_lists, "vggss_metrics")
    if sizes is not None:
        check_lengths(sizes, gt_box_lists, "vggss_metrics (sizes)")
    cious: list[float] = []
    misses = 0
    for i, (pred, gts) in enumerate(zip(pred_boxes, gt_box_lists)):
        size = sizes[i] if sizes is not None else None
        w, h = (1.0, 1.0) if size is None else (float(size[0]), float(size[1]))
        if isinstance(gts, (str, bytes)) or not gts:
            raise ValueError(
                f"vggss_metrics: ground truth #{i} is {gts!r}; expected a non-empty list of boxes"
            )
        gt_boxes = [gt_box(b, i) for b in gts]
        gt_map = rasterize_boxes(gt_boxes, w, h, grid)
        p = as_box(pred)
        if p is None:
            misses += 1
            pred_map = np.zeros_like(gt_map)
        else:
            pred_map = rasterize_boxes([p], w, h, grid)
        cious.append(ciou(pred_map, gt_map))
    n = len(cious)
    return {
        "cIoU@0.5": 100.0 * sum(1 for c in cious if c >= 0.5) / n if n else 0.0,
        "AUC": 100.0 * success_auc(cious),
        "mean_cIoU": 100.0 * sum(cious) / n if n else 0.0,
        "n": n,
        "misses": misses,
        "cious": cious,
    }


@dataclass(frozen=True)
class VGGSSInputs(TaskInputs):
    """What ``VGGSSTask`` reads, one typed field per flag:
    ``--annotations``, ``--images``, ``--audio``."""

    annotations: str
    images: str | None = None
    audio: str | None = None


@register_task
class VGGSSTask(Task):
    """VGG-SS: the predicted box is rasterised on the 224×224 grid against the annotated boxes."""

    Inputs = VGGSSInputs

    name = "vggss"
    media_flags = "--images / --audio"
    help = "VGG-SS sound source localisation (cIoU@0.5, AUC)"
    grounding = "box"
    prompt_key = "sound_localization"
    id_scheme = 'the clip id "file" of vggss.json'
    score_label = "cIoU"
    scoring_needs = "scoring needs --annotations; with --boxes-frame square also --images (the frame sizes)"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--annotations", required=True, help="metadata/vggss.json")
        parser.add_argument("--images", help="folder of <file>.jpg frames (needed with --model, and with "
                                             "--predictions --boxes-frame square for the frame sizes)")
        parser.add_argument("--audio", help="folder of <file>.wav audio (needed with --model)")

    def load(self) -> list[Sample]:
        a = self.inputs
        clips = read_vggss(a.annotations, frame_root=a.images)
        return [
            Sample(
                id=c.file,
                media=[("image", c.frame_path or f"{c.file}.jpg"),
                       ("audio", os.path.join(a.audio or "", f"{c.file}.wav"))],
                target=[list(b) for b in c.boxes],
                extra={"class": c.cls},
            )
            for c in clips
        ]

    def check_scoring_options(self, boxes_frame):
        if boxes_frame == "square" and not self.inputs.images:
            raise InputError("vggss --predictions --boxes-frame square needs --images: each frame's size converts "
                             "its boxes to the original frame")

    def parse(self, answer, sample, boxes_frame, observed):
        return self.first_box(answer, sample, boxes_frame, observed)

    def score_sample(self, sample, parsed, observed):
        c = vggss_metrics([parsed], [sample.target])["cious"][0]
        return {"correct": c >= 0.5, "score": round(c, 6)}

    def summarize(self, samples, records):
        out = vggss_metrics([r.get("parsed") for r in records], [s.target for s in samples])
        return {"metrics": {"cIoU@0.5": out["cIoU@0.5"], "AUC": out["AUC"], "mean cIoU": out["mean_cIoU"]}}
