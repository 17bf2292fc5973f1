"""Open-ended video QA (ActivityNet-QA, MSVD-QA, MSRVTT-QA): the readers and the GPT-judged ``video-qa`` task.

The files, as published: Video QA: ActivityNet-QA (MILVLG/activitynet-qa ``dataset/<split>_q.json`` with entries
``{"video_name", "question", "question_id"}`` and ``<split>_a.json`` with ``{"answer", "type",
"question_id"}``; the Video-ChatGPT/Video-LLaVA copies of MSVD-QA / MSRVTT-QA use the same
two-file shape), and the original MSVD-QA / MSRVTT-QA release (xudejing/video-question-answering
``<split>_qa.json``: a JSON list of ``{"answer", "id", "question", "video_id": int}``, MSRVTT
adding ``"category_id"``; MSVD clips are named through ``youtube_mapping.txt`` lines ``<clip
name> vid<N>``, MSRVTT videos are ``video<N>.mp4``).

Reader, scorer and task of one benchmark, top to bottom; the shared file helpers are
:mod:`groundinggpt.eval.io`. Moved here from ``eval/formats.py``, ``eval/metrics.py`` and
``eval/task_*.py`` (which re-export these names).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundinggpt.eval.io import VIDEO_EXTENSIONS, FormatError, PathLike, read_json, require
from groundinggpt.eval.tasks import Sample, Task, TaskInputs, register_task

__all__ = ["VideoQAInputs", 'VideoQASample', 'VideoQATask', 'read_video_qa', 'read_youtube_mapping']


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
    data = read_json(questions_path, expected)
    if not isinstance(data, list):
        raise FormatError(f"{questions_path}: got JSON {type(data).__name__}; expected {expected}")
    answers: dict[str, Mapping[str, Any]] = {}
    if answers_path is not None:
        answers_path = Path(answers_path)
        adata = read_json(answers_path, 'a JSON list of {"answer", "type", "question_id"}')
        if not isinstance(adata, list):
            raise FormatError(f"{answers_path}: expected a JSON list of {{answer, type, question_id}}")
        for k, a in enumerate(adata):
            w = f"{answers_path}: entry #{k}"
            qid = require(a, "question_id", w, "the question id")
            require(a, "answer", w, "the reference answer")
            answers[str(qid)] = a
    mapping = read_youtube_mapping(video_mapping) if video_mapping is not None else None
    out: list[VideoQASample] = []
    for k, q in enumerate(data):
        w = f"{questions_path}: entry #{k}"
        question = str(require(q, "question", w, expected))
        if "video_name" in q:  # ActivityNet-QA shape
            qid = str(require(q, "question_id", w, "the question id"))
            name = str(q["video_name"])
            ans = answers.get(qid, q if "answer" in q else None)
            if ans is None:
                where = answers_path if answers_path is not None else "(no answers file given)"
                raise FormatError(f"{w}: question_id {qid!r} has no answer in {where}")
            stems = (name, f"v_{name}") if not name.startswith("v_") else (name, name[2:])
            out.append(VideoQASample(qid, stems, question, str(ans["answer"]), ans.get("type")))
        elif "video_id" in q:  # MSVD-QA / MSRVTT-QA shape
            qid = str(require(q, "id", w, "the question id"))
            answer = require(q, "answer", w, "the reference answer")
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


@dataclass(frozen=True)
class VideoQAInputs(TaskInputs):
    """What ``VideoQATask`` reads, one typed field per flag:
    ``--questions``, ``--answers``, ``--video-mapping``, ``--videos``, ``--judge-*``."""

    questions: str
    answers: str | None = None
    video_mapping: str | None = None
    videos: str | None = None
    judge_endpoint: str | None = None
    judge_model: str = "gpt-3.5-turbo"
    judge_api_key: str | None = None


@register_task
class VideoQATask(Task):
    """MSVD-QA / MSRVTT-QA / ActivityNet-QA, judged by a chat model (Video-ChatGPT protocol)."""

    Inputs = VideoQAInputs

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
        a = self.inputs
        qs = read_video_qa(a.questions, a.answers, a.video_mapping)
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
        root = self.inputs.videos or ""
        for stem in stems:
            for ext in VIDEO_EXTENSIONS:
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
