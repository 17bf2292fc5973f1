"""Run a task: generate answers with a model (or read a predictions file), score, report.

Output folder::

    predictions.jsonl   one record per sample, in sample order:
                        {"id", "answer", "parsed", "status", "correct", "score", "truth", ...}
    summary.json        metrics, counts, the misses and the run's settings
    summary.md          the same as a markdown table
    examples.png        grounding tasks: predicted vs true boxes / spans
    run.json            what produced the records (task, source, prompt, boxes frame, and a
                        digest of the test samples: another file's records are never reused)

``answer`` is the model's text with its boxes already in original-image coordinates
(what :meth:`GroundingGPT.generate` returns), so a model run's ``predictions.jsonl``
is itself a valid ``--predictions`` file.

Resume: records that already hold an answer are kept and their samples are not
generated again; records without one (missing media, media errors) are retried.
Records of samples outside the current run (after ``--limit``) are kept in the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from groundinggpt import jsonsafe
from groundinggpt.errors import InputError, MediaError
from groundinggpt.eval import formats
from groundinggpt.eval.report import draw_examples, summary_markdown
from groundinggpt.eval.summary import EvalSummary
from groundinggpt.eval.tasks import BOXES_FRAMES, Sample, Task

__all__ = ["evaluate", "PREDICTIONS_FILE", "SUMMARY_FILE", "EXAMPLES_FILE"]

PREDICTIONS_FILE = "predictions.jsonl"
SUMMARY_FILE = "summary.json"
SUMMARY_MD_FILE = "summary.md"
EXAMPLES_FILE = "examples.png"
RUN_FILE = "run.json"
# Statuses whose record holds a scored answer; anything else is a miss.
_SCORED = ("ok",)
# Statuses of an answer that was read: scored (right, wrong or unparsed) or left for a judge.
# A run in which no record has one scored nothing: every sample failed before its answer.
_ANSWERED = ("ok", "unparsed", "not_judged")


class NothingScored(InputError):
    """Every sample of an evaluation failed before its answer could be scored (a forgotten
    option, a wrong media folder ...). The outputs are written; ``summary`` is theirs."""

    def __init__(self, message: str, summary: dict[str, Any]):
        super().__init__(message)
        self.summary = summary
_KEEP_ON_RESUME = ("ok", "unparsed")


def evaluate(
    task: Task,
    output_dir: str | os.PathLike,
    *,
    model: Any = None,
    predictions: str | os.PathLike | None = None,
    source: str | None = None,
    prompt: str | None = None,
    settings: Any = None,
    batch_size: int = 8,
    boxes_frame: str = "original",
    limit: int | None = None,
    num_examples: int = 12,
    progress: bool = True,
) -> EvalSummary:
    """Evaluate a model, or score a predictions file, on one task.

    Args:
        task: The task (already given its command-line arguments).
        output_dir: Where the outputs go (created; an earlier run there is resumed).
        model: A :class:`groundinggpt.GroundingGPT`; exclusive with ``predictions``.
        predictions: A JSONL file of ``{"id", "answer"}`` records.
        source: How the summary names the model or file (default: a generic name).
        prompt: Prompt template overriding the paper's (``"...{exp}..."``).
        settings: :class:`groundinggpt.api.GenerationSettings` (greedy by default).
        batch_size: Conversations per ``generate`` call (left-padded).
        boxes_frame: Frame of boxes in a predictions file: ``original`` or ``square``.
        limit: Evaluate only the first ``limit`` samples.
        num_examples: How many examples the grid shows (0: no grid).
        progress: Show a tqdm progress bar.

    Returns:
        The :class:`~groundinggpt.eval.summary.EvalSummary` (also written to ``summary.json`` and
        ``summary.md``).

    Raises:
        InputError / FormatError: Bad arguments or benchmark files.
        NothingScored: No sample could be scored (the outputs are written first).
    """
    if (model is None) == (predictions is None):
        raise InputError("evaluate needs exactly one of a model or a predictions file")
    if boxes_frame not in BOXES_FRAMES:
        raise InputError(f"boxes_frame must be one of {BOXES_FRAMES}, got {boxes_frame!r}")
    if model is not None and boxes_frame != "original":
        raise InputError("--boxes-frame applies to predictions files: the model's answers are converted already")
    if boxes_frame != "original" and not task.takes_boxes_frame():
        raise InputError(f"--boxes-frame applies to tasks whose answers hold boxes; {task.name} answers hold none")
    if predictions is not None:
        task.check_scoring_options(boxes_frame)
    if batch_size < 1:
        raise InputError(f"batch size must be >= 1, got {batch_size}")
    if model is not None and settings is None:
        from groundinggpt.api import GenerationSettings

        settings = GenerationSettings()
    started = time.time()
    samples = task.load()
    data = _samples_digest(samples)  # before --limit: a limited run resumes the same data
    if limit is not None:
        samples = samples[:limit]
    _check_unique(task, samples)
    template = None if samples and samples[0].messages is not None else (prompt or task.default_prompt())
    if samples and template is not None:
        task.prompt_text(samples[0], template)  # a bad --prompt fails before any work
    mode = "model" if model is not None else "predictions"
    source = source or (str(Path(predictions).resolve()) if predictions is not None else "model")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_run(out, {"task": task.name, "mode": mode, "source": source, "prompt": template,
                     "boxes_frame": boxes_frame, "data": data})
    previous = _read_records(out / PREDICTIONS_FILE)

    extra: dict[str, Any] = {}
    if model is not None:
        records = _run_model(task, samples, template, model, settings, batch_size, previous, out, progress)
    else:
        records, extra = _score_predictions(task, samples, predictions, boxes_frame, previous, progress)
    ordered = [records[s.id] for s in samples]
    # Records of samples outside this run (e.g. after --limit) stay in the file, after ours.
    others = [r for pid, r in previous.items() if pid not in records]
    _write_records(out / PREDICTIONS_FILE, ordered + others)

    examples = None
    if task.grounding and num_examples > 0:
        if draw_examples(task, samples, ordered, out / EXAMPLES_FILE, num_examples):
            examples = EXAMPLES_FILE
    summary = _summarize(task, samples, ordered, mode, source, template, boxes_frame, settings, extra, examples,
                         round(time.time() - started, 2))
    summary.write(out / SUMMARY_FILE)
    (out / SUMMARY_MD_FILE).write_text(summary_markdown(summary.to_dict(), task.metric_digits))
    _check_scored(task, ordered, out, summary.to_dict())
    return summary


def _check_scored(task: Task, records: list[dict[str, Any]], out: Path, summary: dict[str, Any]) -> None:
    """Raise :class:`NothingScored` when not one record holds a read answer.

    Its metrics would read 0.00 for a run that measured nothing (a forgotten option marks
    every sample an error), which an exit status 0 would pass off as a result.
    """
    if any(r["status"] in _ANSWERED for r in records):
        return
    if not records:
        raise NothingScored(f"task {task.name}: no sample to evaluate (an empty file, split or --limit 0)", summary)
    counts = ", ".join(f"{status}: {n}" for status, n in summary["status_counts"].items())
    first = next((r for r in records if r.get("error")), records[0])
    reason = f"; e.g. sample {first['id']}: {first['error']}" if first.get("error") else ""
    raise NothingScored(f"task {task.name}: no sample was scored, all {len(records)} failed before their answer "
                        f"({counts}){reason}. Outputs are in {out}", summary)


# ---- records ---------------------------------------------------------------------------
def make_record(task: Task, sample: Sample, answer: str | None, boxes_frame: str = "original",
                observed: dict[str, Any] | None = None, status: str | None = None,
                error: str | None = None) -> dict[str, Any]:
    """Parse and score one answer → its predictions.jsonl record (never raises on a bad answer)."""
    observed = observed or {}
    record: dict[str, Any] = {"id": sample.id, "answer": answer}
    if answer is None:
        record.update(parsed=None, status=status or "no_prediction", correct=False, score=0.0)
    else:
        try:
            parsed = task.parse(answer, sample, boxes_frame, observed)
        except InputError as e:  # e.g. a square-frame box without an image size
            parsed, status, error = None, "error", str(e)
        record["parsed"] = parsed
        record["status"] = status or ("ok" if parsed is not None else "unparsed")
        scored = task.score_sample(sample, parsed, observed)
        if record["status"] != "ok":
            scored.pop("status", None)  # the first problem found is the one reported
        record.update(scored)
    if error and not record.get("error"):
        record["error"] = error
    record["truth"] = sample.target
    if observed:
        record["observed"] = observed
    return record


def _check_unique(task: Task, samples: list[Sample]) -> None:
    seen: set[str] = set()
    for s in samples:
        if s.id in seen:
            raise InputError(f"task {task.name}: two samples share the id {s.id!r}; ids are {task.id_scheme}")
        seen.add(s.id)


def _samples_digest(samples: list[Sample]) -> str:
    """A fingerprint of the test data: ids, questions, truths and media file names.

    Two files with the same ids (a test set and its blind copy, POPE's random and
    adversarial splits) differ here, so one's answers are never resumed as the other's.
    Media are named by file name only: moving the media folder is not another test.
    """
    digest = hashlib.sha256()
    for s in samples:
        media = [(kind, os.path.basename(path)) for kind, path in s.media]
        digest.update(json.dumps([s.id, media, s.fields, s.target, s.messages], sort_keys=True,
                                 default=str).encode())
    return digest.hexdigest()[:16]


def _check_run(out: Path, run: dict[str, Any]) -> None:
    # Resuming mixes records of two runs; refuse when they would not be comparable.
    path = out / RUN_FILE
    if path.is_file():
        try:
            old = jsonsafe.loads(path.read_text())
        except json.JSONDecodeError:
            old = None
        if isinstance(old, dict):
            for key in ("task", "mode", "source", "prompt", "boxes_frame", "data"):
                if key == "data" and key not in old:
                    continue  # written before the digest was recorded
                if old.get(key) != run[key]:
                    what = "other test data (another file, split or content)" if key == "data" else \
                        f"{key} {old.get(key)!r}, not {run[key]!r}"
                    raise InputError(
                        f"{out} holds a run with {what}; its answers would be reused for these samples: "
                        "choose another --output (or delete that folder)"
                    )
    path.write_text(json.dumps(run, indent=2) + "\n")


def _read_records(path: Path) -> dict[str, dict[str, Any]]:
    """Earlier records by id; a line cut short by a crash is ignored (its sample is redone)."""
    records: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = jsonsafe.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "id" in rec:
            records[str(rec["id"])] = rec  # a later line wins
    return records


def _write_records(path: Path, records: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, default=str) + "\n")
    os.replace(tmp, path)  # atomic: an interrupted write never loses the old file


# ---- model mode --------------------------------------------------------------------------
def _run_model(task, samples, template, model, settings, batch_size, previous, out, progress):
    missing = [s for s in samples if s.missing_media()]
    if samples and len(missing) == len(samples):
        # Not one file found: a wrong or forgotten media folder, not missing samples.
        raise InputError(
            f"none of the {len(samples)} {task.name} samples has its media files, e.g. "
            f"{missing[0].missing_media()[0]}: check {task.media_flags}"
        )
    records: dict[str, dict[str, Any]] = {}
    todo: list[Sample] = []
    for s in samples:
        old = previous.get(s.id)
        if old is not None and old.get("answer") is not None:
            # Generated before: keep the answer and score it again (a judge's verdict is kept).
            keep = task.keeps_scores_on_resume and old.get("status") in _KEEP_ON_RESUME and "correct" in old
            records[s.id] = old if keep else make_record(task, s, old["answer"], observed=old.get("observed"))
        elif s.missing_media():
            records[s.id] = make_record(task, s, None, status="missing_media",
                                        error="missing media file: " + ", ".join(s.missing_media()))
        else:
            todo.append(s)
    bar = tqdm(total=len(todo), desc=f"eval {task.name}", unit="sample", disable=not progress)
    with open(out / PREDICTIONS_FILE, "a", encoding="utf-8") as log:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            conversations = [task.build_messages(s, template) for s in batch]
            for s, (output, error) in zip(batch, _generate(model, conversations, settings)):
                if output is None:  # a medium that would not decode, or a prompt too long for the model
                    status = "media_error" if isinstance(error, MediaError) else "error"
                    rec = make_record(task, s, None, status=status, error=f"{type(error).__name__}: {error}")
                else:
                    observed = {k: v for k, v in (("image_size", output.image_size),
                                                  ("duration", output.duration)) if v is not None}
                    rec = make_record(task, s, output.text, observed=observed)
                records[s.id] = rec
                log.write(json.dumps(rec, default=str) + "\n")
            log.flush()  # what is on disk survives a crash and is resumed
            bar.update(len(batch))
    bar.close()
    return records


def _generate(model, conversations, settings):
    """→ [(GroundedOutput | None, the sample's error | None)]; a bad medium fails its own sample only."""
    try:
        return [(o, None) for o in model.generate(conversations, settings)]
    except (MediaError, InputError) as e:
        if len(conversations) == 1:
            return [(None, e)]
    # One medium broke the batch: find it by answering one by one.
    return [pair for conv in conversations for pair in _generate(model, [conv], settings)]


# ---- predictions mode ------------------------------------------------------------------
def _score_predictions(task, samples, path, boxes_frame, previous, progress):
    answers = formats.predictions_by_id(formats.read_predictions(path))
    if not answers and samples:
        raise formats.FormatError(f"{path}: holds no predictions (expected one JSON line "
                                  '{"id": ..., "answer": ...} per sample)')
    ids = {s.id for s in samples}
    unknown = [pid for pid in answers if pid not in ids]
    if answers and len(unknown) == len(answers):
        raise formats.FormatError(
            f"{path}: none of its {len(answers)} ids is a {task.name} sample id; ids are "
            f"{task.id_scheme}, e.g. {', '.join(repr(s.id) for s in samples[:3])}; "
            f"the file has e.g. {', '.join(repr(u) for u in unknown[:3])}"
        )
    records: dict[str, dict[str, Any]] = {}
    for s in tqdm(samples, desc=f"score {task.name}", unit="sample", disable=not progress):
        old = previous.get(s.id)
        if s.id not in answers:
            records[s.id] = make_record(task, s, None, status="no_prediction", error="no prediction with this id")
        elif (task.keeps_scores_on_resume and old is not None and old.get("answer") == answers[s.id]
              and old.get("status") in _KEEP_ON_RESUME):
            records[s.id] = old  # judged before: the call is saved
        elif answers[s.id] is None:
            records[s.id] = make_record(task, s, None, status="no_prediction", error="answer is null")
        else:
            records[s.id] = make_record(task, s, answers[s.id], boxes_frame)
    extra: dict[str, Any] = {}
    if unknown:
        extra["unknown_prediction_ids"] = {"count": len(unknown), "examples": unknown[:10]}
    return records, extra


# ---- summary -----------------------------------------------------------------------------
def _summarize(task, samples, records, mode, source, template, boxes_frame, settings, extra, examples,
               elapsed_s) -> EvalSummary:
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    misses = [_miss(r) for r in records if r["status"] not in _SCORED and r["status"] != "not_judged"]
    details = dict(task.summarize(samples, records)) if samples else {}
    return EvalSummary(
        task=task.name, mode=mode, source=source, prompt=template,
        # Only box answers have a frame; the line would mislead for spans and text.
        boxes_frame=boxes_frame if task.takes_boxes_frame() else None,
        n=len(samples), answered=sum(1 for r in records if r.get("answer") is not None),
        misses=len(misses), status_counts=counts, metrics=details.pop("metrics", {}), details=details,
        generation=dict(settings.__dict__) if mode == "model" and settings is not None else None,
        miss_list=misses, extra=extra, examples=examples, elapsed_s=elapsed_s,
    )


def _miss(record: dict[str, Any]) -> dict[str, Any]:
    miss = {"id": record["id"], "status": record["status"]}
    if record.get("error"):
        miss["error"] = record["error"]
    elif record.get("answer") is not None:  # unparsed: show what the model said instead
        answer = record["answer"]
        miss["answer"] = answer if len(answer) <= 100 else answer[:97] + "..."
    return miss
