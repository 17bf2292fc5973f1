"""VQAv2: the questions + annotations reader, the official answer normalisation and accuracy, the ``vqav2`` task.

The files, as published: VQAv2 (visualqa.org): questions JSON ``{"questions": [{"image_id", "question", "question_id"}],
"data_subtype": ...}`` and annotations JSON ``{"annotations": [{"question_id", "image_id",
"answers": [{"answer", "answer_confidence", "answer_id"}], "multiple_choice_answer",
"answer_type", "question_type"}]}``; images ``COCO_<subtype>_%012d.jpg``.

Reader, scorer and task of one benchmark, top to bottom; the shared file helpers are
:mod:`groundinggpt.eval.io`. Moved here from ``eval/formats.py``, ``eval/metrics.py`` and
``eval/task_*.py`` (which re-export these names).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundinggpt.eval.io import FormatError, PathLike, check_lengths, join_root, read_json, require
from groundinggpt.eval.tasks import Sample, Task, TaskInputs, register_task

__all__ = [
    "VQAv2Inputs", "VQASample", "VQAv2Task", "read_vqav2", "vqa_accuracy", "vqa_normalize_answer",
    "vqav2_metrics",
]


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
    qdata = read_json(questions_path, 'a VQA questions JSON {"questions": [...]}')
    qwhere = str(questions_path)
    qlist = require(qdata, "questions", qwhere, "a list of {image_id, question, question_id}")
    if not isinstance(qlist, list):
        raise FormatError(f"{qwhere}: field 'questions' must be a list")
    subtype = _image_subtype(qdata, image_subtype)

    ann_by_qid: dict[Any, dict[str, Any]] | None = None
    if annotations_path is not None:
        annotations_path = Path(annotations_path)
        adata = read_json(annotations_path, 'a VQA annotations JSON {"annotations": [...]}')
        awhere = str(annotations_path)
        alist = require(
            adata, "annotations", awhere, "a list of {question_id, answers, answer_type, ...}"
        )
        if not isinstance(alist, list):
            raise FormatError(f"{awhere}: field 'annotations' must be a list")
        ann_by_qid = {}
        for k, ann in enumerate(alist):
            w = f"{awhere}: annotations[{k}]"
            qid = require(ann, "question_id", w, "the question id")
            answers = require(ann, "answers", w, "a list of {answer, answer_confidence, answer_id}")
            if not isinstance(answers, list) or not answers:
                raise FormatError(f"{w}: field 'answers' must be a non-empty list of {{answer, ...}}")
            for j, a in enumerate(answers):
                require(a, "answer", f"{w} answers[{j}]", "the human answer string")
            ann_by_qid[qid] = ann

    samples: list[VQASample] = []
    for k, q in enumerate(qlist):
        w = f"{qwhere}: questions[{k}]"
        qid = require(q, "question_id", w, "the question id")
        image_id = require(q, "image_id", w, "the COCO image id")
        text = require(q, "question", w, "the question text")
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
                image_path=join_root(image_root, image_file),
                **kwargs,
            )
        )
    return samples


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
    check_lengths(preds, gt_answer_lists, "vqav2_metrics")
    if answer_types is not None:
        check_lengths(answer_types, gt_answer_lists, "vqav2_metrics (answer_types)")
    if question_types is not None:
        check_lengths(question_types, gt_answer_lists, "vqav2_metrics (question_types)")
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


@dataclass(frozen=True)
class VQAv2Inputs(TaskInputs):
    """What ``VQAv2Task`` reads, one typed field per flag:
    ``--questions``, ``--annotations``, ``--images``, ``--image-subtype``."""

    questions: str
    annotations: str
    images: str | None = None
    image_subtype: str | None = None


@register_task
class VQAv2Task(Task):
    """VQAv2 open-ended accuracy (official normalisation, 10 human answers)."""

    Inputs = VQAv2Inputs

    name = "vqav2"
    help = "VQAv2 open-ended VQA accuracy"
    prompt_key = "vqa"
    id_scheme = "the file's question_id"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--questions", required=True, help="v2_OpenEnded_mscoco_<subtype>_questions.json")
        parser.add_argument("--annotations", required=True, help="v2_mscoco_<subtype>_annotations.json")
        parser.add_argument("--images", help="folder of the COCO images of that subtype (needed with --model)")
        parser.add_argument("--image-subtype", help="image naming subtype, e.g. val2014 (default: from the file)")

    def load(self) -> list[Sample]:
        a = self.inputs
        qs = read_vqav2(a.questions, a.annotations, image_root=a.images,
                                image_subtype=a.image_subtype)
        return [
            Sample(
                id=str(q.question_id),
                media=[("image", q.image_path or q.image_file)],
                fields={"question": q.question},
                target=list(q.answers),
                extra={"question": q.question, "answer_type": q.answer_type,
                       "question_type": q.question_type, "reference": q.multiple_choice_answer},
            )
            for q in qs
        ]

    def parse(self, answer, sample, boxes_frame, observed):
        return answer.strip()

    def score_sample(self, sample, parsed, observed):
        acc = vqa_accuracy(parsed, sample.target)
        return {"correct": acc >= 1.0, "score": round(acc, 6)}

    def summarize(self, samples, records):
        out = vqav2_metrics(
            [r.get("parsed") for r in records], [s.target for s in samples],
            answer_types=[s.extra.get("answer_type") or "unknown" for s in samples],
        )
        return {"metrics": {"accuracy": out["overall"],
                            **{f"accuracy ({t})": v for t, v in out["per_answer_type"].items()}}}
