"""Published metric definitions for the benchmarks GroundingGPT reports.

The GroundingGPT authors released no evaluation code, so every metric here follows
the definition published with (or the official code released for) the benchmark
itself; the source is named next to each function.  The functions work on plain
numbers: a *box* is any object with ``x1, y1, x2, y2`` attributes or any
4-sequence ``(x1, y1, x2, y2)``; a *span* is any object with ``start, end``
attributes or any 2-sequence ``(start, end)``.  Nothing here imports the model or
:mod:`groundinggpt.grounding`.

Conventions shared by every ``*_metrics`` function:

* A prediction that is ``None`` (the model's answer could not be parsed) or is
  malformed (wrong length, non-numeric, NaN/inf) is a *miss*: it is scored as wrong
  (IoU 0, accuracy 0, ...), counted in ``"misses"`` and never raises.
* Ground truth must be well formed; a malformed ground truth raises ``ValueError``.
* ``preds`` and ground truths must have the same length (``ValueError`` otherwise).
* Rates are reported in percent (as the benchmarks' papers and official scripts
  print them), VGG-SS cIoU@0.5/AUC/mean cIoU too: its official code prints fractions
  in [0, 1], but one unit across every task keeps a summary table and a plot honest
  (0.35 beside 62.1 reads as a collapse). Per-sample IoUs and cIoUs stay fractions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import grounding

__all__ = [
    "box_iou",
    "rec_accuracy",
    "temporal_iou",
    "temporal_grounding_metrics",
    "pope_parse_answer",
    "pope_metrics",
    "pope_metrics_by_split",
    "vqa_normalize_answer",
    "vqa_accuracy",
    "vqav2_metrics",
    "rasterize_boxes",
    "ciou",
    "vggss_thresholds",
    "success_auc",
    "vggss_metrics",
]

BoxLike = Any
SpanLike = Any


# ---------------------------------------------------------------------------
# Coercion helpers
# ---------------------------------------------------------------------------


def _finite4(values: Sequence[Any]) -> tuple[float, float, float, float] | None:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
    if len(out) != 4 or not all(math.isfinite(v) for v in out):
        return None
    return out  # type: ignore[return-value]


def _as_box(box: BoxLike) -> tuple[float, float, float, float] | None:
    """Return ``(x1, y1, x2, y2)`` floats, or ``None`` when ``box`` is not a usable box."""
    if box is None:
        return None
    if all(hasattr(box, a) for a in ("x1", "y1", "x2", "y2")):
        return _finite4((box.x1, box.y1, box.x2, box.y2))
    if isinstance(box, (str, bytes, Mapping)):
        return None
    try:
        values = list(box)
    except TypeError:
        return None
    if len(values) != 4:
        return None
    return _finite4(values)


def _as_span(span: SpanLike) -> tuple[float, float] | None:
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


def _gt_box(box: BoxLike, index: int) -> tuple[float, float, float, float]:
    out = _as_box(box)
    if out is None:
        raise ValueError(
            f"ground-truth box #{index} is {box!r}; expected (x1, y1, x2, y2) finite numbers "
            "or an object with x1, y1, x2, y2"
        )
    return out


def _gt_span(span: SpanLike, index: int) -> tuple[float, float]:
    out = _as_span(span)
    if out is None:
        raise ValueError(
            f"ground-truth span #{index} is {span!r}; expected (start, end) finite numbers "
            "or an object with start, end"
        )
    return out


def _check_lengths(preds: Sequence[Any], gts: Sequence[Any], what: str) -> None:
    if len(preds) != len(gts):
        raise ValueError(
            f"{what}: {len(preds)} predictions but {len(gts)} ground truths; "
            "expected one prediction per ground truth (use None for a missing one)"
        )


# ---------------------------------------------------------------------------
# REC (RefCOCO / RefCOCO+ / RefCOCOg): Acc@0.5
# ---------------------------------------------------------------------------


def box_iou(a: BoxLike, b: BoxLike) -> float:
    """Intersection over union of two axis-aligned boxes (continuous coordinates).

    Boxes are ``(x1, y1, x2, y2)`` in any single coordinate frame (pixels or
    relative); reversed corners are put in order first (the rule of
    :func:`groundinggpt.grounding.box_iou`, which this calls).  Area is ``max(0, x2 - x1) * max(0, y2 - y1)`` -- continuous
    coordinates, no "+1" pixel convention, as in the REC evaluations of Shikra /
    MiniGPT-v2 / Ferret that GroundingGPT compares against.

    Args:
        a: First box (4-sequence or object with ``x1..y2``).
        b: Second box.

    Returns:
        IoU in [0, 1]; 0.0 when either box is unusable (``None``, malformed) or the
        union is empty.
    """
    ba, bb = _as_box(a), _as_box(b)
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
    _check_lengths(preds, gts, "rec_accuracy")
    misses = 0
    ious: list[float] = []  # a miss scores IoU 0, as in temporal_grounding_metrics
    for i, (pred, gt) in enumerate(zip(preds, gts)):
        g = _gt_box(gt, i)
        p = _as_box(pred)
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


# ---------------------------------------------------------------------------
# Charades-STA: R@1 IoU=m, mIoU
# ---------------------------------------------------------------------------


def temporal_iou(a: SpanLike, b: SpanLike) -> float:
    """Temporal IoU of two ``[start, end]`` spans.

    ``inter = max(0, min(e1, e2) - max(s1, s2))`` and ``union = max(e1, e2) -
    min(s1, s2)``, as in the LLM Charades-STA evaluation of VTimeLLM
    (huangb23/VTimeLLM ``vtimellm/eval/eval.py``: ``iou``, without its rounding to
    2 decimals) and the 2D-TAN-family ``iou`` helpers.  For overlapping spans
    this union equals ``len1 + len2 - inter``; for disjoint spans the IoU is 0 either
    way.  A reversed span (start > end) has its ends put in order first: the rule of
    :func:`groundinggpt.grounding.temporal_iou`, which this calls, and of the parser,
    which orders every span it reads from model text (so parsed answers were never
    reversed here; only direct calls with raw pairs see the rule).

    Args:
        a: First span (2-sequence or object with ``start``/``end``).
        b: Second span, same unit (seconds or fraction of the duration).

    Returns:
        tIoU in [0, 1]; 0.0 when a span is unusable or the union is empty.
    """
    sa, sb = _as_span(a), _as_span(b)
    if sa is None or sb is None:
        return 0.0
    return grounding.temporal_iou(sa, sb)


def temporal_grounding_metrics(
    preds: Sequence[SpanLike | None],
    gts: Sequence[SpanLike],
    thresholds: Iterable[float] = (0.3, 0.5, 0.7),
) -> dict[str, Any]:
    """Charades-STA temporal grounding metrics: R@1 at tIoU thresholds and mIoU.

    Definition (Gao et al., TALL / Charades-STA, ICCV 2017; the LLM variant as in
    huangb23/VTimeLLM ``vtimellm/eval/metric.py``: ``grounding_metrics``):
    ``R1@m`` = percentage of queries whose top-1 span has tIoU >= m;
    ``mIoU`` = mean tIoU over all queries x 100, with a miss counting tIoU 0.

    Args:
        preds: Top-1 span (or ``None``) per query.
        gts: Ground-truth span per query, same unit as ``preds``.
        thresholds: tIoU thresholds m.

    Returns:
        ``{"R1@0.3": %, "R1@0.5": %, "R1@0.7": %, "mIoU": %, "n", "misses",
        "ious": per-query tIoU list}`` (one ``R1@m`` key per threshold, the key
        formatted with ``{m:g}``).
    """
    _check_lengths(preds, gts, "temporal_grounding_metrics")
    thresholds = tuple(float(t) for t in thresholds)
    ious: list[float] = []
    misses = 0
    for i, (pred, gt) in enumerate(zip(preds, gts)):
        g = _gt_span(gt, i)
        p = _as_span(pred)
        if p is None:
            misses += 1
            ious.append(0.0)
        else:
            ious.append(temporal_iou(p, g))
    n = len(gts)
    out: dict[str, Any] = {}
    for t in thresholds:
        out[f"R1@{t:g}"] = grounding.accuracy_at(ious, t)
    out["mIoU"] = 100.0 * sum(ious) / n if n else 0.0
    out["n"] = n
    out["misses"] = misses
    out["ious"] = ious
    return out


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
    _check_lengths(pred_texts, labels, "pope_metrics")
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
    _check_lengths(pred_texts, labels, "pope_metrics_by_split")
    _check_lengths(splits, labels, "pope_metrics_by_split (splits)")
    groups: dict[str, tuple[list[Any], list[Any]]] = {}
    for text, label, split in zip(pred_texts, labels, splits):
        p, g = groups.setdefault(str(split), ([], []))
        p.append(text)
        g.append(label)
    return {split: pope_metrics(p, g) for split, (p, g) in groups.items()}


# ---------------------------------------------------------------------------
# VQAv2
# ---------------------------------------------------------------------------

# Tables reproduced (as data) from the official VQA evaluation code,
# GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py (HEAD a013f00,
# "Fixed processing answers bug", 2021; identical tables in EvalAI's VQA challenge
# processor as mirrored by lmms-eval lmms_eval/tasks/_task_utils/vqa_eval_metric.py).
_CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's",
    "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't",
    "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've",
    "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd",
    "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all",
    "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}  # fmt: skip
_NUMBER_MAP: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = frozenset({"a", "an", "the"})
# The official pattern is "(?!<=\d)(\.)(?!\d)": its first group is a (mis-typed)
# negative LOOKAHEAD, always true before a ".", so in effect every "." that is not
# followed by a digit is removed.  Same pattern, same behaviour.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_PUNCT = (
    ";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
    ">", "<", "@", "`", ",", "?", "!",
)  # fmt: skip
# vqaEval.py calls ``periodStrip.sub("", outText, re.UNICODE)``: the flag lands in the
# positional ``count`` argument, so at most re.UNICODE == 32 periods are removed.
_PERIOD_STRIP_COUNT = int(re.UNICODE)


def _process_punctuation(in_text: str) -> str:
    # vqaEval.py processPunctuation: a punctuation mark next to a space (or any text
    # containing "digit,digit") is deleted, otherwise it becomes a space; then periods
    # not followed by a digit are deleted.
    out_text = in_text
    has_digit_comma = _COMMA_STRIP.search(in_text) is not None
    for p in _PUNCT:
        if (p + " " in in_text or " " + p in in_text) or has_digit_comma:
            out_text = out_text.replace(p, "")
        else:
            out_text = out_text.replace(p, " ")
    return _PERIOD_STRIP.sub("", out_text, count=_PERIOD_STRIP_COUNT)


def _process_digit_article(in_text: str) -> str:
    # vqaEval.py processDigitArticle: lower-case, number words -> digits, drop
    # articles, then expand contractions word by word.
    words = []
    for word in in_text.lower().split():
        word = _NUMBER_MAP.get(word, word)
        if word not in _ARTICLES:
            words.append(word)
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


def _clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def vqa_normalize_answer(text: str) -> str:
    """Standard VQA answer normalisation (official ``vqaEval.py``).

    Steps, in the official order (GT-Vision-Lab/VQA
    ``PythonEvaluationTools/vqaEvaluation/vqaEval.py``): newlines/tabs -> spaces and
    strip; ``processPunctuation`` (``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !``
    deleted when next to a space or when the text has a ``digit,digit``, else
    replaced by a space; periods not followed by a digit deleted);
    ``processDigitArticle`` (lower-case, ``zero..ten``/``none`` -> digits, articles
    ``a/an/the`` removed, contractions such as ``dont`` -> ``don't`` fixed).
    Apostrophes and colons are kept, as in the official HEAD version.

    Args:
        text: A raw answer.

    Returns:
        The normalised answer.
    """
    return _process_digit_article(_process_punctuation(_clean_whitespace(text)))


def vqa_accuracy(pred: str | None, gt_answers: Sequence[str]) -> float:
    """VQA accuracy of one answer against the human answers (usually 10).

    Definition (Antol et al. 2015; official GT-Vision-Lab/VQA ``vqaEval.py``
    ``evaluate``): ``acc = mean over each human answer h of
    min(1, #{other human answers equal to pred} / 3)`` -- i.e. min(1, matches/3)
    averaged over the leave-one-out subsets of the human answers.

    Normalisation follows the official HEAD code: human answers are
    whitespace-cleaned; when they are NOT all identical, both the human answers
    and the prediction are normalised (:func:`vqa_normalize_answer`).  The
    prediction is always normalised first, as the raw-text pipelines do before
    scoring (LLaVA's ``convert_vqav2_for_submission.py`` and lmms-eval's
    ``vqav2_process_results`` run the EvalAI answer processor on every prediction),
    so "Yes." matches ten "yes" answers.

    Args:
        pred: The model's answer (``None`` scores 0).
        gt_answers: The human answers.

    Returns:
        Accuracy in [0, 1].
    """
    if not gt_answers:
        raise ValueError("vqa_accuracy: gt_answers is empty; expected the human answers")
    if not isinstance(pred, str):
        return 0.0
    res = vqa_normalize_answer(pred)
    gts = [_clean_whitespace(str(a)) for a in gt_answers]
    if len(set(gts)) > 1:
        gts = [_process_digit_article(_process_punctuation(a)) for a in gts]
        res = _process_digit_article(_process_punctuation(res))
    total = 0.0
    for i in range(len(gts)):
        matches = sum(1 for j, a in enumerate(gts) if j != i and a == res)
        total += min(1.0, matches / 3.0)
    return total / len(gts)


def vqav2_metrics(
    preds: Sequence[str | None],
    gt_answer_lists: Sequence[Sequence[str]],
    answer_types: Sequence[str] | None = None,
    question_types: Sequence[str] | None = None,
) -> dict[str, Any]:
    """VQAv2 accuracy, overall and per answer / question type.

    Mirrors ``setAccuracy`` in the official ``vqaEval.py``: the mean of the
    per-question :func:`vqa_accuracy` x 100, overall and grouped by
    ``answer_type`` (``yes/no``, ``number``, ``other``) and ``question_type``.
    Values are not rounded (the official code rounds to 2 decimals for display).

    Args:
        preds: Raw answers (``None`` = miss, scores 0).
        gt_answer_lists: The human answers of each question.
        answer_types: Optional ``answer_type`` per question.
        question_types: Optional ``question_type`` per question.

    Returns:
        ``{"overall": %, "n", "misses", "per_question": [accuracy in [0,1], ...]}``
        plus ``"per_answer_type": {type: %}`` / ``"per_question_type": {type: %}``
        when the types are given.
    """
    _check_lengths(preds, gt_answer_lists, "vqav2_metrics")
    if answer_types is not None:
        _check_lengths(answer_types, gt_answer_lists, "vqav2_metrics (answer_types)")
    if question_types is not None:
        _check_lengths(question_types, gt_answer_lists, "vqav2_metrics (question_types)")
    accs: list[float] = []
    misses = 0
    for i, (pred, answers) in enumerate(zip(preds, gt_answer_lists)):
        if isinstance(answers, str) or not answers:
            raise ValueError(
                f"vqav2_metrics: ground truth #{i} is {answers!r}; expected a non-empty "
                "list of human answers"
            )
        if not isinstance(pred, str):
            misses += 1
        accs.append(vqa_accuracy(pred, answers))
    n = len(accs)
    out: dict[str, Any] = {
        "overall": 100.0 * sum(accs) / n if n else 0.0,
        "n": n,
        "misses": misses,
        "per_question": accs,
    }
    for key, types in (("per_answer_type", answer_types), ("per_question_type", question_types)):
        if types is None:
            continue
        groups: dict[str, list[float]] = {}
        for t, a in zip(types, accs):
            groups.setdefault(str(t), []).append(a)
        out[key] = {t: 100.0 * sum(v) / len(v) for t, v in groups.items()}
    return out


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
        b = _as_box(box)
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
    _check_lengths(pred_boxes, gt_box_lists, "vggss_metrics")
    if sizes is not None:
        _check_lengths(sizes, gt_box_lists, "vggss_metrics (sizes)")
    cious: list[float] = []
    misses = 0
    for i, (pred, gts) in enumerate(zip(pred_boxes, gt_box_lists)):
        size = sizes[i] if sizes is not None else None
        w, h = (1.0, 1.0) if size is None else (float(size[0]), float(size[1]))
        if isinstance(gts, (str, bytes)) or not gts:
            raise ValueError(
                f"vggss_metrics: ground truth #{i} is {gts!r}; expected a non-empty list of boxes"
            )
        gt_boxes = [_gt_box(b, i) for b in gts]
        gt_map = rasterize_boxes(gt_boxes, w, h, grid)
        p = _as_box(pred)
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
