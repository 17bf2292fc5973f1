"""Evaluation tasks: what a benchmark reads, asks, parses and scores.

A task is four small pieces around one list of :class:`Sample` objects:

1. a *reader* of the benchmark's published files (:mod:`groundinggpt.eval.formats`)
   → samples, each with a stable id, its media files and its ground truth;
2. a *prompt builder* → Hugging Face chat messages with media parts;
3. an *answer parser* → the prediction (a box, a span, a label, free text), or
   ``None`` when the answer holds none (an "unparsed" miss);
4. a *scorer* built on :mod:`groundinggpt.eval.metrics`.

Coordinates: boxes are scored relative to the ORIGINAL image. Answers produced by
:meth:`groundinggpt.GroundingGPT.generate` already are (``post_process`` converted
them); answers from a predictions file are too unless ``boxes_frame="square"``,
in which case they are converted here with the image size.

The tasks themselves live in :mod:`groundinggpt.eval.benchmarks`, one module per benchmark
with its reader and scorer.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

from groundinggpt.errors import InputError
from groundinggpt.grounding import parse_grounding, square_to_original
from groundinggpt.prompts import EVAL_PROMPTS

__all__ = ["Sample", "Task", "TaskInputs", "TASKS", "register_task", "get_task", "task_names", "BOXES_FRAMES"]

#: How boxes in a predictions file are expressed: relative to the original image
#: (what GroundingGPT's API returns) or to the padded square the model sees.
BOXES_FRAMES = ("original", "square")

# Modules that define tasks; imported on first lookup so that ``tasks`` itself stays
# importable from every task module without a cycle.
_TASK_MODULES = ("benchmarks.refcoco", "benchmarks.pope", "benchmarks.vqav2", "benchmarks.charades_sta",
                 "benchmarks.video_qa", "benchmarks.vggss", "benchmarks.synthetic")


@dataclass(frozen=True)
class TaskInputs:
    """Base of each task's inputs: the benchmark's files and folders, one typed field per flag.

    The command line maps its flags onto a task's :attr:`Task.Inputs` (:meth:`from_namespace`);
    code builds one directly (``SyntheticInputs(data="test_rec.jsonl")``).
    """

    @classmethod
    def from_namespace(cls, namespace: Any) -> TaskInputs:
        """The fields read from ``namespace``'s attributes (a missing optional one keeps its default)."""
        values = {}
        for f in dataclasses.fields(cls):
            if hasattr(namespace, f.name):
                values[f.name] = getattr(namespace, f.name)
            elif f.default is dataclasses.MISSING:
                raise InputError(f"{cls.__name__}: {f.name!r} is required (the flag --{f.name.replace('_', '-')})")
        return cls(**values)


@dataclass
class Sample:
    """One question of a benchmark.

    Attributes:
        id: Stable sample id; predictions files are matched on it (see
            docs/evaluation.md for each task's scheme).
        media: ``(kind, path)`` pairs in prompt order, kind in image / video / audio.
        fields: Values for the prompt's placeholders (``{"exp": "the left man"}``).
        target: Ground truth in the form the task's scorer wants (JSON-able).
        image_size: Original ``(width, height)`` when the annotations give it (needed
            to convert ``--boxes-frame square`` answers; else read from the image).
        duration: Medium duration in seconds when the annotations give it.
        extra: Facts reported in ``predictions.jsonl`` and the example grid.
        messages: A complete message list (synthetic data carries its own prompts).
    """

    id: str
    media: list[tuple[str, str]]
    fields: dict[str, str] = field(default_factory=dict)
    target: Any = None
    image_size: tuple[int, int] | None = None
    duration: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] | None = None

    def missing_media(self) -> list[str]:
        """Paths of this sample's media files that do not exist."""
        return [path for _, path in self.media if not os.path.isfile(path)]

    def first_path(self, kind: str) -> str | None:
        return next((path for k, path in self.media if k == kind), None)


class Task:
    """Base class: subclasses set the class attributes and override the hooks.

    Args:
        args: The parsed command-line arguments (the task reads its own flags).
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    #: ``"box"`` / ``"span"``: the task grounds, so an example grid is drawn.
    grounding: ClassVar[str | None] = None
    #: Key of the paper's prompt in :data:`groundinggpt.prompts.EVAL_PROMPTS`.
    prompt_key: ClassVar[str | None] = None
    #: Prompt used when no EVAL_PROMPTS key applies.
    fallback_prompt: ClassVar[str] = "{question}"
    #: Human-readable id scheme, shown when predictions ids do not match.
    id_scheme: ClassVar[str] = ""
    #: Decimals shown in summary.md (every task reports rates in percent).
    metric_digits: ClassVar[int] = 2
    #: Whether a resumed run keeps an answer's earlier score. Scores depend on more than
    #: the test data (``--durations``, image sizes read from the files), so they are
    #: recomputed, which costs nothing; only a judge's verdict (a paid call that depends
    #: on the question, truth and answer alone) is worth keeping.
    keeps_scores_on_resume: ClassVar[bool] = False
    #: The flag(s) that say where the media are (named when none is found).
    media_flags: ClassVar[str] = "--images"
    #: What scoring a predictions file needs besides the predictions (shown in --help).
    scoring_needs: ClassVar[str] = "scoring needs the annotation files only, no media"

    #: The task's inputs as a typed dataclass (its own flags); each task sets its own.
    Inputs: ClassVar[type[TaskInputs]]

    def __init__(self, inputs: TaskInputs | argparse.Namespace):
        """``inputs``: the task's :attr:`Inputs`; anything with those attributes (the parsed
        command line, an ``argparse.Namespace``) is read into one."""
        self.inputs = inputs if isinstance(inputs, self.Inputs) else self.Inputs.from_namespace(inputs)
        self.judge = None  # set by the runner for judged tasks (video-qa)
        self._sizes: dict[str, tuple[int, int] | None] = {}

    # ---- command line ---------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the task's own flags (benchmark files and folders)."""

    @classmethod
    def takes_boxes_frame(cls) -> bool:
        """Whether answers hold boxes, so a predictions file's ``--boxes-frame`` means something."""
        return cls.grounding in ("box", "mixed")

    def check_scoring_options(self, boxes_frame: str) -> None:
        """Refuse, before any work, a predictions run that could score no sample.

        Raises:
            InputError: naming the option that scoring mode needs.
        """

    # ---- reading ---------------------------------------------------------------------
    def load(self) -> list[Sample]:
        """Read the benchmark files → samples (raises FormatError on a bad file)."""
        raise NotImplementedError

    # ---- prompting -------------------------------------------------------------------
    def default_prompt(self) -> str:
        return EVAL_PROMPTS[self.prompt_key] if self.prompt_key else self.fallback_prompt

    def prompt_text(self, sample: Sample, template: str) -> str:
        try:
            return template.format(**sample.fields)
        except (KeyError, IndexError) as e:
            raise InputError(
                f"--prompt {template!r}: unknown placeholder {e}; task {self.name!r} "
                f"offers {', '.join('{' + k + '}' for k in sample.fields) or 'none'}"
            ) from None

    def build_messages(self, sample: Sample, template: str) -> list[dict[str, Any]]:
        """Sample → one user turn: the media parts, then the prompt text."""
        content: list[dict[str, Any]] = [{"type": kind, kind: path} for kind, path in sample.media]
        content.append({"type": "text", "text": self.prompt_text(sample, template)})
        return [{"role": "user", "content": content}]

    # ---- parsing and scoring -----------------------------------------------------------
    def parse(self, answer: str, sample: Sample, boxes_frame: str, observed: dict[str, Any]) -> Any:
        """Answer text → prediction (JSON-able), or ``None`` when it holds none.

        Args:
            answer: The answer text.
            sample: Its sample.
            boxes_frame: ``"original"`` or ``"square"`` (see :data:`BOXES_FRAMES`).
            observed: What the model run learnt about the media (``image_size``,
                ``duration``); empty when scoring a predictions file.
        """
        return answer

    def score_sample(self, sample: Sample, parsed: Any, observed: dict[str, Any]) -> dict[str, Any]:
        """→ per-sample fields for predictions.jsonl, at least ``correct`` and ``score``."""
        raise NotImplementedError

    def summarize(self, samples: list[Sample], records: list[dict[str, Any]]) -> dict[str, Any]:
        """→ ``{"metrics": {name: value}, ...}`` over all samples (misses count as wrong)."""
        raise NotImplementedError

    def example_kind(self, sample: Sample) -> str | None:
        """How the example grid draws this sample: ``"box"``, ``"span"`` or None (not drawn)."""
        return self.grounding

    # ---- helpers for box tasks -----------------------------------------------------------
    def image_size(self, sample: Sample, observed: dict[str, Any]) -> tuple[int, int] | None:
        """Original (width, height): from the run, the annotations, or the image header."""
        if observed.get("image_size"):
            return tuple(observed["image_size"])  # type: ignore[return-value]
        if sample.image_size:
            return sample.image_size
        path = sample.first_path("image")
        if path is None:
            return None
        if path not in self._sizes:
            self._sizes[path] = _read_image_size(path)
        return self._sizes[path]

    def first_box(self, answer: str, sample: Sample, boxes_frame: str,
                  observed: dict[str, Any]) -> list[float] | None:
        """The answer's first box, relative to the original image (None if it has none).

        Raises:
            InputError: ``boxes_frame="square"`` but the image size is unknown.
        """
        box = next((e.box for e in parse_grounding(answer) if e.box is not None), None)
        if box is None:
            return None
        if boxes_frame == "square":
            size = self.image_size(sample, observed)
            if size is None:
                raise InputError(
                    f"sample {sample.id}: --boxes-frame square needs the image size, but the "
                    "annotations do not give it and the image file is missing"
                )
            box = square_to_original(box, *size)
        return [round(v, 6) for v in box.as_list()]


def _read_image_size(path: str) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as img:  # reads the header only
            w, h = img.size
            # load_image applies the EXIF orientation, so answers are in the rotated
            # frame: orientations 5-8 swap width and height.
            return (h, w) if img.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (w, h)
    except OSError:
        return None


# ---- registry ---------------------------------------------------------------------------
TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available to the runner and the CLI."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    TASKS[cls.name] = cls
    return cls


def _load_all() -> None:
    for module in _TASK_MODULES:
        importlib.import_module(f"groundinggpt.eval.{module}")


def task_names() -> list[str]:
    """The registered tasks, in the order of ``_TASK_MODULES`` (whichever module was imported first)."""
    _load_all()
    order = {f"groundinggpt.eval.{m}": i for i, m in enumerate(_TASK_MODULES)}
    return sorted(TASKS, key=lambda name: order.get(TASKS[name].__module__, len(order)))


def get_task(name: str) -> type[Task]:
    """Look a task up by name, with an error that lists the known ones."""
    _load_all()
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(f"unknown evaluation task {name!r}; known: {', '.join(TASKS)}") from None
