"""Video tasks: Charades-STA temporal grounding and GPT-judged open-ended video QA."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from groundinggpt.errors import InputError
from groundinggpt.eval import formats, metrics
from groundinggpt.eval.tasks import Sample, Task, register_task
from groundinggpt.grounding import parse_grounding

_VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".avi", ".mov")


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


@register_task
class CharadesSTATask(Task):
    """Charades-STA: R@1 at tIoU 0.3/0.5/0.7 and mIoU, spans compared in seconds."""

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
        if not self.args.durations and not self.args.videos:
            raise InputError("charades-sta --predictions needs --durations Charades_v1_test.csv or --videos: "
                             "answers are fractions of each clip and the truth is in seconds")

    def load(self) -> list[Sample]:
        a = self.args
        queries = formats.read_charades_sta(a.annotations, video_info_csv=a.durations, video_root=a.videos)
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
        iou = metrics.temporal_iou(pred, gt)
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
        out = metrics.temporal_grounding_metrics(preds, gts)
        return {"metrics": {k: out[k] for k in ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU")}}


@register_task
class VideoQATask(Task):
    """MSVD-QA / MSRVTT-QA / ActivityNet-QA, judged by a chat model (Video-ChatGPT protocol)."""

    name = "video-qa"
    keeps_scores_on_resume = True  # a verdict is a paid judge call on (question, truth, answer)
    media_flags = "--videos"
    help = "MSVD-QA / MSRVTT-QA / ActivityNet-QA, GPT-judged accuracy and score"
    id_scheme = "the file's question_id (ActivityNet-QA shape) or id (MSVD/MSRVTT-QA shape)"
    scoring_needs = "scoring needs --questions (+ --answers); --judge-endpoint to judge the answers"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--questions", required=True, help="test_q.json (ActivityNet-QA shape) or test_qa.json")
        parser.add_argument("--answers", help="test_a.json (ActivityNet-QA shape)")
        parser.add_argument("--video-mapping", help="MSVD's youtube_mapping.txt")
        parser.add_argument("--videos", help="folder of the videos (needed with --model)")
        parser.add_argument("--judge-endpoint", help="OpenAI-compatible base URL, e.g. https://api.openai.com/v1")
        parser.add_argument("--judge-model", default="gpt-3.5-turbo", help="judge model (default: gpt-3.5-turbo)")
        parser.add_argument("--judge-api-key", help="judge API key (default: $OPENAI_API_KEY)")

    def load(self) -> list[Sample]:
        a = self.args
        qs = formats.read_video_qa(a.questions, a.answers, a.video_mapping)
        return [
            Sample(
                id=q.question_id,
                media=[("video", self._video_path(q.video))],
                fields={"question": q.question},
                target=q.answer,
                extra={"question": q.question, "answer": q.answer, "answer_type": q.answer_type},
            )
            for q in qs
        ]

    def _video_path(self, stems: tuple[str, ...]) -> str:
        root = self.args.videos or ""
        for stem in stems:
            for ext in _VIDEO_EXTS:
                path = os.path.join(root, stem + ext)
                if os.path.isfile(path):
                    return path
        return os.path.join(root, stems[0] + ".mp4")

    def parse(self, answer, sample, boxes_frame, observed):
        return answer.strip()

    def score_sample(self, sample, parsed, observed):
        if self.judge is None:
            return {"correct": None, "score": None, "status": "not_judged"}
        from groundinggpt.eval.judge import JudgeError

        try:
            verdict = self.judge(sample.extra["question"], sample.target, parsed or "")
        except JudgeError as e:
            return {"correct": False, "score": 0.0, "status": "error", "error": str(e)}
        return {"correct": verdict["pred"] == "yes", "score": float(verdict["score"]), "judge": verdict}

    def summarize(self, samples, records):
        judged = [r for r in records if r.get("status") != "not_judged"]
        if not judged and records:
            return {"metrics": {}, "note": "not judged: rerun with --predictions and --judge-endpoint"}
        n = len(records)
        yes = sum(1 for r in records if r.get("correct"))
        score = sum(float(r.get("score") or 0.0) for r in records)
        return {"metrics": {"accuracy": 100.0 * yes / n if n else 0.0, "score": score / n if n else 0.0},
                "not_judged": n - len(judged)}
