"""POPE object hallucination: the JSON-lines reader, the yes/no rule and its metrics, the ``pope`` task.

The files, as published: POPE (RUCAIBox/POPE ``output/coco/coco_pope_<split>.json``): JSON lines ``{"question_id",
"image", "text", "label"}``.

Reader, scorer and task of one benchmark, top to bottom; the shared file helpers are
:mod:`groundinggpt.eval.io`. Moved here from ``eval/formats.py``, ``eval/metrics.py`` and
``eval/task_*.py`` (which re-export these names).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundinggpt.eval.io import FormatError, PathLike, check_lengths, iter_json_lines, join_root, require
from groundinggpt.eval.tasks import Sample, Task, TaskInputs, register_task

__all__ = ["PopeInputs", 
    "PopeSample", "PopeTask", "pope_metrics", "pope_metrics_by_split", "pope_parse_answer", "read_pope",
]


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
    for lineno, rec in iter_json_lines(path, expected):
        where = f"{path}:{lineno}"
        qid = require(rec, "question_id", where, expected)
        image = require(rec, "image", where, expected)
        text = require(rec, "text", where, expected)
        label = require(rec, "label", where, expected)
        if not isinstance(label, str) or label.strip().lower() not in ("yes", "no"):
            raise FormatError(f"{where}: field 'label' is {label!r}; expected 'yes' or 'no'")
        samples.append(
            PopeSample(
                question_id=qid,
                image=str(image),
                image_path=join_root(image_root, str(image)),
                question=str(text),
                label=label.strip().lower(),
                split=split,
            )
        )
    return samples


# ---------------------------------------------------------------------------
# POPE
# ---------------------------------------------------------------------------


def pope_parse_answer(text: str) -> str:
    """Map a free-form answer to ``"yes"`` / ``"no"`` exactly as the official POPE code.

    Source: RUCAIBox/POPE ``evaluate.py`` (identical in haotian-liu/LLaVA
    ``llava/eval/eval_pope.py``)::

        if text.find('.') != -1: text = text.split('.')[0]   # first sentence
        text = text.replace(',', '')
        words = text.split(' ')
        if 'No' in words or 'not' in words or 'no' in words: 'no' else 'yes'

    One addition: the whole answer is ``strip()``-ed first, as LLaVA's
    ``llava/eval/model_vqa_loader.py`` does to every generated answer before it is
    written to the answers file that ``eval_pope.py`` reads (so ``"No\\n"`` is
    "no", as in LLaVA's pipeline).  Everything else is kept verbatim, including the
    official quirks: the match is case-sensitive and word-level after splitting on a
    single space, so ``"NO"``, ``"Not sure"`` and ``"There isn't"`` all parse as
    "yes", while a bare ``"no"``/``"No."`` parses as "no".

    Args:
        text: The model's raw answer.

    Returns:
        ``"yes"`` or ``"no"``.
    """
    if not isinstance(text, str):
        raise TypeError(f"pope_parse_answer expects a str answer, got {type(text).__name__}")
    text = text.strip()
    if text.find(".") != -1:
        text = text.split(".")[0]
    text = text.replace(",", "")
    words = text.split(" ")
    if "No" in words or "not" in words or "no" in words:
        return "no"
    return "yes"


def _pope_label(label: Any, index: int) -> str:
    if isinstance(label, str) and label.strip().lower() in ("yes", "no"):
        return label.strip().lower()
    raise ValueError(f"POPE label #{index} is {label!r}; expected 'yes' or 'no'")


def pope_metrics(pred_texts: Sequence[str | None], labels: Sequence[str]) -> dict[str, Any]:
    """POPE accuracy / precision / recall / F1 / yes-ratio for one split.

    Source: RUCAIBox/POPE ``evaluate.py`` (and haotian-liu/LLaVA
    ``llava/eval/eval_pope.py``): answers parsed by :func:`pope_parse_answer`,
    "yes" is the positive class, ``precision = TP/(TP+FP)``,
    ``recall = TP/(TP+FN)``, ``F1 = 2PR/(P+R)``, ``accuracy = (TP+TN)/N``,
    ``yes_ratio`` = fraction of PREDICTIONS that are "yes".

    A ``None`` (or non-string) or empty prediction is a miss and is scored as the
    wrong answer (a "no" for a "yes" question -> FN, a "yes" for a "no" question ->
    FP) in accuracy, precision, recall and F1. ``yes_ratio`` is over the answers
    given, misses excluded: a model that answered nothing has no yes-bias to report.
    (The official code reads an empty answer as "yes"; here it is a miss, as every
    unusable answer is.) Where the official code would divide by zero (no positive
    predictions, ...), the value is 0.0.

    Args:
        pred_texts: Raw model answers (or ``None``), one per question.
        labels: Ground-truth labels, ``"yes"``/``"no"``.

    Returns:
        ``{"accuracy", "precision", "recall", "f1", "yes_ratio"}`` in percent, plus
        ``"TP", "FP", "TN", "FN", "n", "misses"``.
    """
    check_lengths(pred_texts, labels, "pope_metrics")
    tp = fp = tn = fn = 0
    misses = 0
    n_yes = 0
    for i, (text, label) in enumerate(zip(pred_texts, labels)):
        gold = _pope_label(label, i)
        if isinstance(text, str) and text.strip():
            pred = pope_parse_answer(text)
            n_yes += pred == "yes"
        else:
            misses += 1
            pred = "no" if gold == "yes" else "yes"
        if pred == "yes":
            if gold == "yes":
                tp += 1
            else:
                fp += 1
        else:
            if gold == "no":
                tn += 1
            else:
                fn += 1
    n = len(labels)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = (tp + tn) / n if n else 0.0
    yes_ratio = n_yes / (n - misses) if n - misses else 0.0
    return {
        "accuracy": 100.0 * accuracy,
        "precision": 100.0 * precision,
        "recall": 100.0 * recall,
        "f1": 100.0 * f1,
        "yes_ratio": 100.0 * yes_ratio,
        "TP": tp,
        "FP": fp,
        "TN": tn,
        "FN": fn,
        "n": n,
        "misses": misses,
    }


def pope_metrics_by_split(
    pred_texts: Sequence[str | None],
    labels: Sequence[str],
    splits: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """:func:`pope_metrics` computed separately per POPE split.

    POPE reports each split (``random``, ``popular``, ``adversarial``) on its own
    (RUCAIBox/POPE README; LLaVA ``eval_pope.py`` loops over the
    ``coco_pope_<split>.json`` files).

    Args:
        pred_texts: Raw answers (or ``None``).
        labels: ``"yes"``/``"no"`` labels.
        splits: The split name of each question.

    Returns:
        ``{split: pope_metrics(...)}`` in first-seen split order.
    """
    check_lengths(pred_texts, labels, "pope_metrics_by_split")
    check_lengths(splits, labels, "pope_metrics_by_split (splits)")
    groups: dict[str, tuple[list[Any], list[Any]]] = {}
    for text, label, split in zip(pred_texts, labels, splits):
        p, g = groups.setdefault(str(split), ([], []))
        p.append(text)
        g.append(label)
    return {split: pope_metrics(p, g) for split, (p, g) in groups.items()}


@dataclass(frozen=True)
class PopeInputs(TaskInputs):
    """What ``PopeTask`` reads, one typed field per flag:
    ``--questions``, ``--images``, ``--split``."""

    questions: str
    images: str | None = None
    split: str | None = None


@register_task
class PopeTask(Task):
    """POPE object hallucination (accuracy, precision, recall, F1, yes-ratio)."""

    Inputs = PopeInputs

    name = "pope"
    help = "POPE object hallucination probing (one coco_pope_<split>.json file)"
    prompt_key = "pope"
    id_scheme = "the file's question_id"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--questions", required=True, help="coco_pope_<split>.json (JSON lines)")
        parser.add_argument("--images", help="folder of the images (COCO val2014; needed with --model)")
        parser.add_argument("--split", help="random / popular / adversarial (default: from the file name)")

    def load(self) -> list[Sample]:
        a = self.inputs
        questions = read_pope(a.questions, split=a.split, image_root=a.images)
        return [
            Sample(
                id=str(q.question_id),
                media=[("image", q.image_path or q.image)],
                fields={"question": q.question},
                target=q.label,
                extra={"question": q.question, "label": q.label, "split": q.split},
            )
            for q in questions
        ]

    def parse(self, answer, sample, boxes_frame, observed):
        # An empty answer is unusable (a miss), not the official code's implicit "yes".
        return pope_parse_answer(answer) if answer.strip() else None

    def score_sample(self, sample, parsed, observed):
        correct = parsed == sample.target
        return {"correct": correct, "score": float(correct)}

    def summarize(self, samples, records):
        out = pope_metrics([r.get("answer") for r in records], [s.target for s in samples])
        split = samples[0].extra.get("split") if samples else None
        keys = ("accuracy", "precision", "recall", "f1", "yes_ratio")
        return {"metrics": {k: out[k] for k in keys}, "split": split,
                "confusion": {k: out[k] for k in ("TP", "FP", "TN", "FN")}}
