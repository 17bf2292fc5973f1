"""Charades-STA temporal grounding.

The ``VIDEOID START END##SENTENCE`` reader, R@1 at tIoU m and mIoU, the ``charades-sta`` task.

The files, as published: Charades-STA (jiyanggao/TALL): ``charades_sta_test.txt`` with lines ``VIDEOID START
END##SENTENCE`` (seconds); optional ``Charades_v1_test.csv`` (Charades release) whose
``id``/``length`` columns give the durations.

Reader, scorer and task of one benchmark, top to bottom; the shared file helpers are
:mod:`groundinggpt.eval.io`. Moved here from ``eval/formats.py``, ``eval/metrics.py`` and
``eval/task_*.py`` (which re-export these names).
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundinggpt import grounding
from groundinggpt.errors import InputError
from groundinggpt.eval.io import FormatError, PathLike, SpanLike, as_span, check_lengths, gt_span, join_root
from groundinggpt.eval.tasks import Sample, Task, TaskInputs, register_task
from groundinggpt.grounding import parse_grounding

__all__ = ["CharadesSTAInputs", 
    "CharadesSTATask", "CharadesSample", "read_charades_durations", "read_charades_sta",
    "temporal_grounding_metrics", "temporal_iou",
]


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
                    video_path=join_root(video_root, f"{vid}.mp4"),
                )
            )
    return samples


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
    sa, sb = as_span(a), as_span(b)
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
    check_lengths(preds, gts, "temporal_grounding_metrics")
    thresholds = tuple(float(t) for t in thresholds)
    ious: list[float] = []
    misses = 0
    for i, (pred, gt) in enumerate(zip(preds, gts)):
        g = gt_span(gt, i)
        p = as_span(pred)
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




def _probe_duration(path: str) -> float | None:
    """Seconds of a video file (one frame is decoded), or None when unreadable."""
    from groundinggpt.errors import MediaError
    from groundinggpt.media.video import load_video

    try:
        return float(load_video(path, 1).duration) or None
    except (MediaError, OSError):
        return None


def _event_phrase(sentence: str) -> str:
    # Charades sentences read "person turns on the light." — the paper's prompt embeds
    # the event mid-sentence ("When did {event} occur in the video?").
    s = sentence.strip().rstrip(".").strip()
    return s[:1].lower() + s[1:] if s[:1].isupper() and not s[:2].isupper() else s


@dataclass(frozen=True)
class CharadesSTAInputs(TaskInputs):
    """What ``CharadesSTATask`` reads, one typed field per flag:
    ``--annotations``, ``--videos``, ``--durations``."""

    annotations: str
    videos: str | None = None
    durations: str | None = None


@register_task
class CharadesSTATask(Task):
    """Charades-STA: R@1 at tIoU 0.3/0.5/0.7 and mIoU, spans compared in seconds."""

    Inputs = CharadesSTAInputs

    name = "charades-sta"
    media_flags = "--videos"
    help = "Charades-STA temporal grounding (R@1 IoU=0.3/0.5/0.7, mIoU)"
    grounding = "span"
    prompt_key = "temporal_grounding"
    id_scheme = '"{VIDEOID}_{n}", n = 0-based index of the query among that video\'s lines'
    scoring_needs = "scoring needs --annotations and --durations or --videos: the clip lengths"

    def __init__(self, args):
        super().__init__(args)
        self._durations: dict[str, float | None] = {}

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--annotations", required=True, help="charades_sta_test.txt")
        parser.add_argument("--videos", help="folder of <VIDEOID>.mp4 (needed with --model; with --predictions, "
                                             "it or --durations gives the clip lengths)")
        parser.add_argument("--durations", help="Charades_v1_test.csv (id/length columns): the clip lengths; else "
                                                "read from the videos (--predictions needs one of the two)")

    def check_scoring_options(self, boxes_frame):
        if not self.inputs.durations and not self.inputs.videos:
            raise InputError("charades-sta --predictions needs --durations Charades_v1_test.csv or --videos: "
                             "answers are fractions of each clip and the truth is in seconds")

    def load(self) -> list[Sample]:
        a = self.inputs
        queries = read_charades_sta(a.annotations, video_info_csv=a.durations, video_root=a.videos)
        seen: dict[str, int] = defaultdict(int)
        samples = []
        for q in queries:
            n = seen[q.video_id]
            seen[q.video_id] += 1
            samples.append(Sample(
                id=f"{q.video_id}_{n}",
                media=[("video", q.video_path or f"{q.video_id}.mp4")],
                fields={"event": _event_phrase(q.sentence)},
                target=[q.start, q.end],
                duration=q.duration,
                extra={"sentence": q.sentence, "video_id": q.video_id},
            ))
        return samples

    def duration(self, sample: Sample, observed: dict[str, Any]) -> float | None:
        """The clip length: the annotations' CSV, else what the model decoded, else a probe."""
        if sample.duration:
            return sample.duration
        if observed.get("duration"):
            return float(observed["duration"])
        path = sample.first_path("video")
        if path not in self._durations:
            self._durations[path] = _probe_duration(path) if path and os.path.isfile(path) else None
        return self._durations[path]

    def parse(self, answer, sample, boxes_frame, observed):
        span = next((e.span for e in parse_grounding(answer) if e.span is not None), None)
        return None if span is None else [round(span.start, 6), round(span.end, 6)]

    def score_sample(self, sample, parsed, observed):
        d = self.duration(sample, observed)
        if d is None:
            # Spans are fractions of the clip; the ground truth is in seconds.
            return {"correct": False, "score": 0.0, "status": "error",
                    "error": f"no duration for video {sample.extra['video_id']}: pass --durations "
                             "Charades_v1_test.csv or --videos"}
        gt = self.truth_seconds(sample, d)
        # Seconds are kept unrounded: summarize() recomputes R@1 from them, and a rounded
        # span can cross a threshold that the exact one does not (0.49995 -> 0.5).
        out: dict[str, Any] = {"duration": d, "truth_seconds": gt}
        if parsed is None:
            return {**out, "correct": False, "score": 0.0}
        pred = [parsed[0] * d, parsed[1] * d]
        iou = temporal_iou(pred, gt)
        return {**out, "seconds": pred, "correct": iou >= 0.5, "score": iou}

    @staticmethod
    def truth_seconds(sample: Sample, duration: float) -> list[float]:
        # Annotations may end after the video; clip as the Charades-STA loaders do.
        s, e = sample.target
        return [min(max(s, 0.0), duration), min(max(e, 0.0), duration)]

    def summarize(self, samples, records):
        preds, gts = [], []
        for s, r in zip(samples, records):
            gts.append(r.get("truth_seconds") or list(s.target))
            preds.append(r.get("seconds"))
        out = temporal_grounding_metrics(preds, gts)
        return {"metrics": {k: out[k] for k in ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU")}}
