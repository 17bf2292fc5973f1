"""DiDeMo (LisaAnne/LocalizingMoments) -> temporal grounding samples (stage 2).

Files: ``train_data.json`` (option ``files``; also ``val_data.json`` / ``test_data.json``)
— a JSON array of ``{"annotation_id", "description", "video", "times": [[s, e], ...],
"num_segments"}``. Videos: ``<video_dir>/<video>`` (option ``video_ext`` replaces the
extension when the videos were re-encoded). Optional ``durations``: a JSON object
``{video: seconds}``.

Conventions (data/README.md of the release): each video is cut into 5-second chunks;
``[s, e]`` names the chunks holding the start and the end, both INCLUSIVE, so the
moment is ``5*s`` to ``min(5*(e+1), video length)`` seconds; videos longer than 30 s
were truncated to 30 s for annotation (so ``num_segments`` <= 6). Spans are relative to
the video length: from ``durations``, else read from the video file's container header
(PyAV, once per video), else ``5*num_segments`` (counted as
``duration_from_num_segments``; the last chunk may be shorter than 5 s). Several annotators give one ``times`` entry each; the publisher
scores a prediction by the mean of its best three IoUs with them (utils/eval.py). The
target is the annotator span that scores best under that rule against all the
annotators' spans (ties: the most frequent, then the first), i.e. the consensus.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..jsonstream import iter_array
from ._text import as_slot
from .base import Context, Rejected, field_of, guarded, span_text

STAGE = 2
FILES = "train_data.json (val_data.json, test_data.json); videos"
CHUNK_SECONDS = 5.0


def _iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    # The publisher's chunk IoU: inclusive chunk indices.
    inter = max(0, min(a[1], b[1]) + 1 - max(a[0], b[0]))
    union = max(a[1], b[1]) + 1 - min(a[0], b[0])
    return inter / union


def consensus(times: list[tuple[int, int]]) -> tuple[int, int]:
    """The annotator span with the best mean of its top-3 IoUs against all annotations."""
    freq = Counter(times)

    def score(t: tuple[int, int]) -> tuple[float, int, int]:
        ious = sorted((_iou(t, u) for u in times), reverse=True)[:3]
        return (sum(ious) / len(ious), freq[t], -times.index(t))

    return max(times, key=score)


def probe_duration(path: Path) -> float | None:
    """Seconds of a video from its container (or stream) header; None when unreadable."""
    from ...media.containers import open_input

    try:
        with open_input(str(path)) as container:
            if container.duration:
                return container.duration / 1_000_000  # AV_TIME_BASE
            stream = container.streams.video[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
    except Exception:  # noqa: BLE001 - any demuxer failure: the length is unknown
        return None
    return None


def convert(ctx: Context) -> Iterator[dict[str, Any]]:
    durations: dict[str, float] = {}
    if ctx.opt("durations"):
        durations = {str(k): float(v) for k, v in json.loads(ctx.path("durations").read_text()).items()}
    video_dir = ctx.path("video_dir", "videos")
    for name in ctx.opt("files", ["train_data.json"]):
        path = ctx.require_file(name, "a DiDeMo annotation file")
        for where, d in iter_array(path):
            yield from guarded(ctx, f"{path}:{where}", d.get("annotation_id") if isinstance(d, dict) else None,
                               lambda: _one(ctx, d, durations, video_dir))


def _one(ctx: Context, d: dict, durations: dict[str, float], video_dir: Path) -> Iterator[dict]:
    aid = d["annotation_id"]
    video = field_of(d, "video", str, "the video file name")
    n = d.get("num_segments", 6)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 6:
        raise Rejected("malformed", f"num_segments {n!r}; expected 1..6")
    times = []
    for t in field_of(d, "times", list, "annotators' [start chunk, end chunk] pairs"):
        if not (isinstance(t, list) and len(t) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in t)):
            raise Rejected("malformed", f"times entry {t!r}; expected [start chunk, end chunk] integers")
        if not 0 <= t[0] <= t[1] < n:
            raise Rejected("span_outside_video", f"chunks {t} outside the video's {n} chunks (or end < start)")
        times.append((t[0], t[1]))
    if not times:
        raise Rejected("malformed", "no annotator times")
    s, e = consensus(times)
    stem = Path(video).stem
    ext = ctx.opt("video_ext")
    media = ctx.media(video_dir, stem + ext if ext else video)
    length = durations.get(video, durations.get(stem))
    if length is None:
        file = video_dir / (stem + ext if ext else video)
        if file.is_file():
            length = durations[video] = probe_duration(file)  # type: ignore[assignment]
        if length is None:
            length = CHUNK_SECONDS * n
            ctx.fixed("duration_from_num_segments")
        else:
            ctx.fixed("duration_from_video_header")
    end_s = min(CHUNK_SECONDS * (e + 1), length)
    span = span_text(CHUNK_SECONDS * s, end_s, length)
    event = as_slot(field_of(d, "description", str, "the description"))
    if not event:
        raise Rejected("empty_text", "empty description")
    q = ctx.question("temporal_grounding", str(aid), event=event)
    meta = {"annotation_id": aid, "video": video, "chunks": [s, e], "times": [list(t) for t in times],
            "duration": length}
    yield ctx.sample(f"didemo-{aid}", "temporal_grounding", [("video", media)], [(q, span)], meta)
