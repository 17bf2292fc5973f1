"""Blind baselines: the best answer a model could give without looking.

A grounding result means something only next to what a *blind* predictor scores:
one that answers the same box (or span) to every question. The constant is chosen
to maximise Acc@0.5 on the training answers and scored on the test set, exactly
what a model that learnt only the answer format and the answers' distribution
would reach. With ``train_keys`` / ``test_keys`` a constant is fitted per key (for
instance per relation word of the question), a text-only predictor.

Accuracies are in percent, like :mod:`groundinggpt.eval.metrics`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ...grounding import accuracy_at, box_iou_array, span_iou_array

__all__ = ["ConstantBaseline", "best_constant_box", "best_constant_span"]


@dataclass(frozen=True)
class ConstantBaseline:
    """A fitted constant predictor and its scores.

    Attributes:
        constant: The global constant (box ``[x1, y1, x2, y2]`` or span ``[t1, t2]``).
        train_accuracy: Acc@threshold on the training targets, percent.
        test_accuracy: Acc@threshold on the test targets, percent.
        test_mean_iou: Mean IoU on the test targets (0-1).
        constants: Per-key constants when keys were given, else empty.
    """

    constant: list[float]
    train_accuracy: float
    test_accuracy: float
    test_mean_iou: float
    constants: dict[Hashable, list[float]] = field(default_factory=dict)


def _box_iou_matrix(cands: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of every candidate (rows) with every box (columns); corners ``x1, y1, x2, y2``."""
    return box_iou_array(cands[:, None, :], boxes[None, :, :])


def _span_iou_matrix(cands: np.ndarray, spans: np.ndarray) -> np.ndarray:
    return span_iou_array(cands[:, None, :], spans[None, :, :])


def _box_candidates(train: np.ndarray) -> np.ndarray:
    """A grid of centres times the sizes seen in training, plus training boxes themselves."""
    centres = np.linspace(0.1, 0.9, 17)
    wh = train[:, 2:] - train[:, :2]
    order = np.argsort(wh[:, 0] * wh[:, 1])
    sizes = wh[order[np.linspace(0, len(order) - 1, 15).round().astype(int)]]
    cx, cy, k = np.meshgrid(centres, centres, np.arange(len(sizes)), indexing="ij")
    w, h = sizes[k.ravel(), 0], sizes[k.ravel(), 1]
    grid = np.stack([cx.ravel() - w / 2, cy.ravel() - h / 2, cx.ravel() + w / 2, cy.ravel() + h / 2], axis=1)
    # Only boxes a model could answer: the parser clips every answer to the image.
    grid = np.unique(np.clip(grid, 0.0, 1.0), axis=0)
    grid = grid[(grid[:, 2] > grid[:, 0]) & (grid[:, 3] > grid[:, 1])]
    step = max(1, len(train) // 500)
    return np.concatenate([grid, train[::step]])


def _span_candidates(train: np.ndarray) -> np.ndarray:
    ticks = np.linspace(0, 1, 41)
    a, b = np.meshgrid(ticks, ticks, indexing="ij")
    grid = np.stack([a.ravel(), b.ravel()], axis=1)
    grid = grid[grid[:, 0] < grid[:, 1]]
    return np.concatenate([grid, np.unique(train, axis=0)])


def _best(cands: np.ndarray, train: np.ndarray, iou, threshold: float) -> np.ndarray:
    hits = np.zeros(len(cands))
    for lo in range(0, len(cands), 512):  # chunks keep the IoU matrix small
        hits[lo : lo + 512] = (iou(cands[lo : lo + 512], train) >= threshold).sum(axis=1)
    return cands[int(np.argmax(hits))]  # first best: deterministic


def _fit(train, test, train_keys, test_keys, iou, candidates, threshold: float) -> ConstantBaseline:
    train = np.asarray(train, dtype=np.float64).reshape(len(train), -1)
    test = np.asarray(test, dtype=np.float64).reshape(len(test), -1)
    if len(train) == 0 or len(test) == 0:
        raise ValueError("need at least one training and one test target")
    best = _best(candidates(train), train, iou, threshold)
    constants: dict[Hashable, list[float]] = {}
    if train_keys is not None:
        if test_keys is None or len(train_keys) != len(train) or len(test_keys) != len(test):
            raise ValueError("train_keys and test_keys must both be given, one per target")
        for key in dict.fromkeys(train_keys):
            group = train[np.array([k == key for k in train_keys])]
            constants[key] = _best(candidates(group), group, iou, threshold).tolist()
    train_pred = np.array([constants.get(k, best) for k in train_keys]) if constants else best[None]
    test_pred = np.array([constants.get(k, best) for k in test_keys]) if constants else best[None]
    train_iou = np.diagonal(iou(train_pred, train)) if constants else iou(train_pred, train)[0]
    test_iou = np.diagonal(iou(test_pred, test)) if constants else iou(test_pred, test)[0]
    return ConstantBaseline(
        constant=[round(float(v), 4) for v in best],
        train_accuracy=accuracy_at(train_iou, threshold),
        test_accuracy=accuracy_at(test_iou, threshold),
        test_mean_iou=float(np.mean(test_iou)),
        constants=constants,
    )


def best_constant_box(train_boxes: Sequence[Sequence[float]], test_boxes: Sequence[Sequence[float]], *,
                      threshold: float = 0.5, train_keys: Sequence[Hashable] | None = None,
                      test_keys: Sequence[Hashable] | None = None) -> ConstantBaseline:
    """The box that maximises training Acc@``threshold``, scored on the test boxes.

    Args:
        train_boxes: ``[x1, y1, x2, y2]`` targets of the training set (one frame, e.g. original-relative).
        test_boxes: Targets of the test set, same frame.
        threshold: IoU that counts as a hit.
        train_keys: Optional key per training target (e.g. the question's relation
            word): fits one constant per key; unseen test keys get the global one.
        test_keys: Key per test target (needed with ``train_keys``).

    Example:
        >>> r = best_constant_box([[0.4, 0.4, 0.6, 0.6]] * 3, [[0.4, 0.4, 0.6, 0.6], [0, 0, 0.1, 0.1]])
        >>> r.test_accuracy
        50.0
    """
    return _fit(train_boxes, test_boxes, train_keys, test_keys, _box_iou_matrix, _box_candidates, threshold)


def best_constant_span(train_spans: Sequence[Sequence[float]], test_spans: Sequence[Sequence[float]], *,
                       threshold: float = 0.5, train_keys: Sequence[Hashable] | None = None,
                       test_keys: Sequence[Hashable] | None = None) -> ConstantBaseline:
    """The span ``[t1, t2]`` that maximises training R@1 tIoU≥``threshold``, scored on the test spans.

    Same arguments as :func:`best_constant_box`, with spans relative to the duration.
    """
    return _fit(train_spans, test_spans, train_keys, test_keys, _span_iou_matrix, _span_candidates, threshold)
