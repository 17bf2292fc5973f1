"""The synthetic world's test sets: the project's JSONL schema with ground truth in ``meta``.

One JSON object per line (the contract the synthetic-world generator writes; see
docs/evaluation.md)::

    {"id": "rec-000017", "task": "rec",
     "messages": [{"role": "user", "content": [
                     {"type": "image", "image": "images/000017.png"},
                     {"type": "text", "text": "Output the coordinate of the red circle."}]},
                  {"role": "assistant", "content": "The red circle[0.125, 0.250, 0.375, 0.500]."}],
     "meta": {"box": [0.125, 0.25, 0.375, 0.5]}}

``meta`` holds exactly one ground truth: ``box`` (relative to the ORIGINAL image),
``span`` (fractions of the medium's duration) or ``answer`` (text, exact match after
the VQA answer normalisation). A trailing assistant message is the reference answer
and is not shown to the model. Relative media paths are resolved against the JSONL
file's folder (or ``--root``).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groundinggpt import jsonsafe
from groundinggpt.eval.benchmarks.charades_sta import temporal_grounding_metrics, temporal_iou
from groundinggpt.eval.benchmarks.refcoco import box_iou, rec_accuracy
from groundinggpt.eval.benchmarks.vqav2 import vqa_normalize_answer
from groundinggpt.eval.io import FormatError
from groundinggpt.eval.tasks import Sample, Task, TaskInputs, register_task
from groundinggpt.grounding import parse_grounding
from groundinggpt.modalities import MEDIA_KINDS

_TRUTH_KEYS = ("box", "span", "answer")


def _numbers(value: Any, n: int) -> bool:
    return (isinstance(value, list) and len(value) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))


def read_synthetic(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Read and validate a synthetic test JSONL → records with media paths made absolute.

    Raises:
        FormatError: Naming the line and the field that breaks the contract.
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    expected = 'one JSON object per line: {"id", "task", "messages": [...], "meta": {"box"|"span"|"answer": ...}}'
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found (expected {expected})") from None
    out = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            rec = jsonsafe.loads(line)
        except json.JSONDecodeError as e:
            raise FormatError(f"{where}: not JSON ({e.msg}); expected {expected}") from None
        if not isinstance(rec, dict):
            raise FormatError(f"{where}: expected {expected}")
        for key in ("task", "messages", "meta"):
            if key not in rec:
                raise FormatError(f"{where}: missing field {key!r}; expected {expected}")
        meta, messages = rec["meta"], rec["messages"]
        if not isinstance(messages, list) or not messages:
            raise FormatError(f"{where}: 'messages' must be a non-empty list of chat messages")
        truths = [k for k in _TRUTH_KEYS if isinstance(meta, dict) and k in meta]
        if len(truths) != 1:
            raise FormatError(f"{where}: 'meta' must hold exactly one of box / span / answer, got {truths}")
        kind = truths[0]
        if kind == "box" and not _numbers(meta["box"], 4) or kind == "span" and not _numbers(meta["span"], 2):
            raise FormatError(f"{where}: meta.{kind} is {meta[kind]!r}; expected {4 if kind == 'box' else 2} numbers")
        if messages[-1].get("role") == "assistant":
            messages = messages[:-1]
        if not messages:
            raise FormatError(f"{where}: 'messages' holds no user turn")
        media = []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            for part in content if isinstance(content, list) else []:
                kind_ = part.get("type") if isinstance(part, dict) else None
                if kind_ in MEDIA_KINDS and isinstance(part.get(kind_), str):
                    full = str(root / part[kind_])  # an absolute path stays itself
                    part[kind_] = full
                    media.append((kind_, full))
        out.append({"id": str(rec.get("id", lineno - 1)), "task": str(rec["task"]), "messages": messages,
                    "meta": meta, "kind": kind, "media": media})
    return out


@dataclass(frozen=True)
class SyntheticInputs(TaskInputs):
    """What ``SyntheticTask`` reads, one typed field per flag:
    ``--data``, ``--root`` (and the common ``--prompt``)."""

    data: str
    root: str | None = None
    prompt: str | None = None


@register_task
class SyntheticTask(Task):
    """Synthetic-world test sets: Acc@0.5 for boxes, R@1/mIoU for spans, accuracy for answers, per task."""

    Inputs = SyntheticInputs

    name = "synthetic"
    media_flags = "--root"
    help = "the synthetic world's test JSONL (ground truth in meta.box / meta.span / meta.answer)"
    grounding = "mixed"
    id_scheme = 'the record\'s "id" (else its 0-based line index)'

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--data", required=True, help="test JSONL file of the synthetic world")
        parser.add_argument("--root", help="folder that relative media paths start from (default: the file's)")

    def load(self) -> list[Sample]:
        if self.inputs.prompt:
            raise FormatError("--prompt does not apply to synthetic data: each sample carries its own prompt")
        return [
            Sample(id=r["id"], media=r["media"], target=r["meta"][r["kind"]], messages=r["messages"],
                   image_size=tuple(r["meta"]["image_size"]) if r["meta"].get("image_size") else None,
                   duration=r["meta"].get("duration"),
                   extra={"task": r["task"], "kind": r["kind"],
                          "text": _last_text(r["messages"])})
            for r in read_synthetic(self.inputs.data, self.inputs.root)
        ]

    def example_kind(self, sample: Sample) -> str | None:
        return {"box": "box", "span": "span"}.get(sample.extra["kind"])

    def build_messages(self, sample, template):
        return sample.messages

    def parse(self, answer, sample, boxes_frame, observed):
        kind = sample.extra["kind"]
        if kind == "box":
            return self.first_box(answer, sample, boxes_frame, observed)
        if kind == "span":
            span = next((e.span for e in parse_grounding(answer) if e.span is not None), None)
            return None if span is None else [round(span.start, 6), round(span.end, 6)]
        return answer.strip()

    def score_sample(self, sample, parsed, observed):
        kind = sample.extra["kind"]
        if kind == "box":
            iou = box_iou(parsed, sample.target) if parsed is not None else 0.0
            return {"correct": iou >= 0.5, "score": round(iou, 6)}
        if kind == "span":
            iou = temporal_iou(parsed, sample.target) if parsed is not None else 0.0
            return {"correct": iou >= 0.5, "score": round(iou, 6)}
        ok = parsed is not None and vqa_normalize_answer(parsed) == vqa_normalize_answer(
            str(sample.target))
        return {"correct": ok, "score": float(ok)}

    def summarize(self, samples, records):
        groups: dict[tuple[str, str], list[tuple[Sample, dict]]] = defaultdict(list)
        for s, r in zip(samples, records):
            groups[(s.extra["task"], s.extra["kind"])].append((s, r))
        out: dict[str, float] = {}
        for (task, kind), pairs in groups.items():
            preds = [r.get("parsed") for _, r in pairs]
            truths = [s.target for s, _ in pairs]
            if kind == "box":
                m = rec_accuracy(preds, truths)
                out[f"{task} Acc@0.5"] = m["accuracy"]
                out[f"{task} mean IoU"] = 100 * sum(m["ious"]) / len(m["ious"])
            elif kind == "span":
                m = temporal_grounding_metrics(preds, truths)
                out.update({f"{task} {k}": m[k] for k in ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU")})
            else:
                out[f"{task} accuracy"] = 100 * sum(1 for _, r in pairs if r.get("correct")) / len(pairs)
        return {"metrics": out, "samples_per_task": {f"{t} ({k})": len(p) for (t, k), p in groups.items()}}


def _last_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text"]
        if texts:
            return " ".join(texts)
    return ""
