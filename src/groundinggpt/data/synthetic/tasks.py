"""Stage data mirroring the paper, built from synthetic scenes.

- Stage 1 (coarse alignment): captions of images, videos and audio — no
  coordinates, no timestamps, no digits at all.
- Stage 2 (fine-grained, single turn), the paper's Table 11 families: REC, REG,
  object attribute (colour, count), temporal grounding, video dense captioning,
  sound localisation.
- Stage 3 (multi-turn): conversations that mix grounded descriptions with
  questions of the stage-2 kinds.

Every builder returns a :class:`Record` whose media paths are relative to the
world's root. Boxes in text are relative to the ORIGINAL image (the processor
converts them to the model's padded square) and spans are relative to the video's
duration. Questions are drawn from :data:`groundinggpt.prompts.TEMPLATES`; for the
evaluated tasks half of the questions are the exact evaluation prompt
(:data:`groundinggpt.prompts.EVAL_PROMPTS`), so that training and inference ask
the same way (a defect of the original release was that they did not).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from groundinggpt.grounding import format_box, format_span
from groundinggpt.prompts import EVAL_PROMPTS, TEMPLATES

from .language import (
    coarse_position,
    join_phrases,
    object_phrase,
    plural,
    referring_expression,
    sentence,
)
from .sound import SOUNDS, AudioScene, SoundingScene
from .video import VideoScene
from .world import COLOURS, SHAPES, SIZES, ImageScene

__all__ = ["TASKS", "Record", "TaskSpec"]

#: Share of questions that use the evaluation prompt verbatim (REC, temporal, sound).
EVAL_PROMPT_RATE = 0.5

# Stage-3 questions that have no Table 11 family of their own.
_GROUNDED_DESCRIPTION = (
    "Describe the image and give the coordinates of every object.",
    "List the objects in the image with their bounding boxes.",
)
_VIDEO_EVENTS = (
    "What happens in the video? Give the time of each event.",
    "Describe the events in the video with their timestamps.",
)
_SOUNDING_OBJECT = ("Which object is making the sound?", "What makes the sound you hear?")


@dataclass
class Record:
    """One sample before it gets its id.

    Attributes:
        task: Task family, e.g. ``"rec"``.
        stage: Training stage (1-3), or ``None`` for a test record.
        messages: Hugging Face chat messages with media parts.
        meta: Ground truth and provenance (``meta["scene"]`` is always set).
    """

    task: str
    stage: int | None
    messages: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _user(text: str, media: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": kind, kind: path} for kind, path in media or []]
    parts.append({"type": "text", "text": text})
    return {"role": "user", "content": parts}


def _assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def _chat(turns: list[tuple[str, str]], media: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Alternating user/assistant messages; the media go with the first question."""
    messages = []
    for k, (question, answer) in enumerate(turns):
        messages.append(_user(question, media if k == 0 else None))
        messages.append(_assistant(answer))
    return messages


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _question(rng: np.random.Generator, family: str, eval_prompt: bool = False, **slots: str) -> str:
    if eval_prompt or (family in EVAL_PROMPTS and rng.random() < EVAL_PROMPT_RATE):
        return EVAL_PROMPTS[family].format(**slots)
    return _pick(rng, TEMPLATES[family]).format(**slots)


def _finish(record: Record, test: bool) -> Record:
    """Test records belong to no stage; their last (assistant) message is the reference answer.

    The evaluation task (``groundinggpt.eval.task_synthetic``) drops that message before
    asking the model and scores against the one ground truth in ``meta`` (``box`` or
    ``span``), so a test record carries no other of its truth keys (``answer``).
    """
    if test:
        record.stage = None
    return record


def _reading_order(scene: ImageScene) -> list[int]:
    return sorted(range(len(scene.objects)), key=lambda i: (scene.objects[i].center()[1] // (scene.height / 3),
                                                            scene.objects[i].center()[0]))


# ---------------------------------------------------------------- answers and parts


def _image_caption_text(scene: ImageScene) -> str:
    objs = scene.objects
    parts = [f"{object_phrase(objs[i], article='a')} {coarse_position(objs[i], scene.width, scene.height)}"
             for i in _reading_order(scene)]
    return sentence(join_phrases(parts))


def _grounded_description(scene: ImageScene) -> str:
    parts = [object_phrase(scene.objects[i], article="a") + format_box(scene.box(i)) for i in _reading_order(scene)]
    return sentence(join_phrases(parts))


def _rec_turn(scene: ImageScene, index: int, rng: np.random.Generator, eval_prompt: bool = False):
    exp = referring_expression(scene.objects, index, rng)
    question = _question(rng, "rec", eval_prompt, exp=exp.text)
    return question, exp.text + format_box(scene.box(index)), exp


def _reg_turn(scene: ImageScene, index: int, rng: np.random.Generator):
    question = _question(rng, "reg", region=format_box(scene.box(index)))
    return question, sentence(object_phrase(scene.objects[index], article="a"))


def _colour_turn(scene: ImageScene, rng: np.random.Generator):
    """"What color is this <exp>?" for an object named without its colour (or ``None``)."""
    for index in rng.permutation(len(scene.objects)):
        exp = referring_expression(scene.objects, int(index), rng, use_colour=False)
        if exp is not None:
            question = TEMPLATES["object_attribute"][0].format(exp=exp.text.removeprefix("the "))
            return question, sentence(scene.objects[int(index)].colour), int(index)
    return None


def _count_turn(scene: ImageScene, rng: np.random.Generator):
    """"How many <plural> ...?" about attributes of a present object, sometimes absent ones."""
    ref = _pick(rng, scene.objects)
    attrs = _pick(rng, (("shape",), ("colour",), ("colour", "shape"), ("size", "shape")))
    values = {a: getattr(ref, a) for a in attrs}
    if rng.random() < 0.15:  # ask about something that may not be there: "0" is an answer too
        choices = {"shape": SHAPES, "colour": tuple(COLOURS), "size": SIZES}
        values = {a: str(_pick(rng, choices[a])) for a in attrs}
    count = sum(all(getattr(o, a) == v for a, v in values.items()) for o in scene.objects)
    if "shape" in values:
        words = (values.get("size"), values.get("colour"), plural(values["shape"]))
        phrase = " ".join(w for w in words if w)
    else:
        phrase = f"{values['colour']} objects"
    template = _pick(rng, TEMPLATES["object_attribute"][1:])
    return template.format(exp=phrase), str(count)


def _event_lines(scene: VideoScene) -> str:
    parts = [ev.phrase(scene.objects) + format_span(ev.span(scene.grid)) for ev in scene.events]
    return sentence(", then ".join(parts))


# ---------------------------------------------------------------------- stage 1


def image_caption(scene: ImageScene, image: str, rng: np.random.Generator, test: bool = False) -> Record:
    turns = [(_pick(rng, TEMPLATES["image_caption"]), _image_caption_text(scene))]
    return _finish(Record("image_caption", 1, _chat(turns, [("image", image)]), {"scene": scene.id}), test)


def video_caption(scene: VideoScene, video: str, rng: np.random.Generator, test: bool = False) -> Record:
    turns = [(_pick(rng, TEMPLATES["video_caption"]), scene.caption())]
    return _finish(Record("video_caption", 1, _chat(turns, [("video", video)]), {"scene": scene.id}), test)


def audio_caption(scene: AudioScene, audio: str, rng: np.random.Generator, test: bool = False) -> Record:
    turns = [(_pick(rng, TEMPLATES["audio_caption"]), scene.caption())]
    return _finish(Record("audio_caption", 1, _chat(turns, [("audio", audio)]), {"scene": scene.id}), test)


# ---------------------------------------------------------------------- stage 2


def rec(scene: ImageScene, image: str, rng: np.random.Generator, test: bool = False) -> Record:
    """Referring expression comprehension: expression → ``"{exp}[x1, y1, x2, y2]"``."""
    index = int(rng.integers(len(scene.objects)))  # uniform: no object is favoured
    question, answer, exp = _rec_turn(scene, index, rng, eval_prompt=test)
    meta = {"scene": scene.id, "expression": exp.text, "box": scene.box(index).as_list(),
            "image_size": [scene.width, scene.height], "relation": exp.relation,
            "num_objects": len(scene.objects)}
    return _finish(Record("rec", 2, _chat([(question, answer)], [("image", image)]), meta), test)


def reg(scene: ImageScene, image: str, rng: np.random.Generator, test: bool = False) -> Record:
    """Referring expression generation: region → ``"A small red circle."``."""
    index = int(rng.integers(len(scene.objects)))
    question, answer = _reg_turn(scene, index, rng)
    meta = {"scene": scene.id, "box": scene.box(index).as_list(), "image_size": [scene.width, scene.height]}
    return _finish(Record("reg", 2, _chat([(question, answer)], [("image", image)]), meta), test)


def object_attribute(scene: ImageScene, image: str, rng: np.random.Generator, test: bool = False) -> Record:
    """Colour of a named object, or how many objects have some attributes."""
    turn = _colour_turn(scene, rng) if rng.random() < 0.5 else None
    if turn is not None:
        question, answer, index = turn
        meta = {"scene": scene.id, "attribute": "colour", "box": scene.box(index).as_list()}
    else:
        question, answer = _count_turn(scene, rng)
        meta = {"scene": scene.id, "attribute": "count"}
    return _finish(Record("object_attribute", 2, _chat([(question, answer)], [("image", image)]), meta), test)


def temporal_grounding(scene: VideoScene, video: str, rng: np.random.Generator, test: bool = False) -> Record:
    """Event → ``"{t1, t2}"`` (relative to the duration)."""
    event = _pick(rng, scene.events)
    phrase = event.noun_phrase(scene.objects)
    span = event.span(scene.grid)
    question = _question(rng, "temporal_grounding", eval_prompt=test, event=phrase)
    meta = {"scene": scene.id, "event": phrase, "kind": event.kind, "span": span.as_list(),
            "span_seconds": [span.start * scene.duration, span.end * scene.duration],
            "duration": scene.duration, "num_frames": scene.num_frames, "fps": scene.fps}
    return _finish(Record("temporal_grounding", 2, _chat([(question, format_span(span))], [("video", video)]), meta),
                   test)


def video_dense_caption(scene: VideoScene, video: str, rng: np.random.Generator, test: bool = False) -> Record:
    """Span → what happens in it."""
    event = _pick(rng, scene.events)
    span = event.span(scene.grid)
    question = _question(rng, "video_dense_caption", time=format_span(span))
    meta = {"scene": scene.id, "span": span.as_list(), "duration": scene.duration}
    turns = [(question, sentence(event.phrase(scene.objects)))]
    return _finish(Record("video_dense_caption", 2, _chat(turns, [("video", video)]), meta), test)


def sound_localization(scene: SoundingScene, image: str, audio: str, rng: np.random.Generator,
                       test: bool = False) -> Record:
    """Image + sound → ``"{exp}[x1, y1, x2, y2]"`` of the sounding object."""
    exp = referring_expression(scene.image.objects, scene.source, rng)
    question = _question(rng, "sound_localization", eval_prompt=test)
    box = scene.image.box(scene.source)
    meta = {"scene": scene.id, "box": box.as_list(), "expression": exp.text,
            "sound": SOUNDS[scene.image.objects[scene.source].shape].caption,
            "image_size": [scene.image.width, scene.image.height]}
    messages = _chat([(question, exp.text + format_box(box))], [("image", image), ("audio", audio)])
    return _finish(Record("sound_localization", 2, messages, meta), test)


# ---------------------------------------------------------------------- stage 3


def image_conversation(scene: ImageScene, image: str, rng: np.random.Generator, test: bool = False) -> Record:
    """2-3 turns: a (grounded) description plus REC / REG / colour questions."""
    first = ((_pick(rng, _GROUNDED_DESCRIPTION), _grounded_description(scene)) if rng.random() < 0.6
             else (_pick(rng, TEMPLATES["image_caption"]), _image_caption_text(scene)))
    more: list[Callable[[], tuple[str, str] | None]] = [
        lambda: _rec_turn(scene, int(rng.integers(len(scene.objects))), rng)[:2],
        lambda: _reg_turn(scene, int(rng.integers(len(scene.objects))), rng),
        lambda: (_colour_turn(scene, rng) or (None, None))[:2],
        lambda: _count_turn(scene, rng),
    ]
    turns = [first]
    for k in rng.permutation(len(more))[: int(rng.integers(1, 3))]:
        turn = more[int(k)]()
        if turn[0] is not None:
            turns.append(turn)
    return _finish(Record("image_conversation", 3, _chat(turns, [("image", image)]), {"scene": scene.id}), test)


def video_conversation(scene: VideoScene, video: str, rng: np.random.Generator, test: bool = False) -> Record:
    """2-3 turns: events with their times, then when / what-happens-in questions."""
    first = ((_pick(rng, _VIDEO_EVENTS), _event_lines(scene)) if rng.random() < 0.6
             else (_pick(rng, TEMPLATES["video_caption"]), scene.caption()))
    turns = [first]
    for _ in range(int(rng.integers(1, 3))):
        event = _pick(rng, scene.events)
        span = event.span(scene.grid)
        if rng.random() < 0.5:
            turns.append((_question(rng, "temporal_grounding", event=event.noun_phrase(scene.objects)),
                          format_span(span)))
        else:
            turns.append((_question(rng, "video_dense_caption", time=format_span(span)),
                          sentence(event.phrase(scene.objects))))
    return _finish(Record("video_conversation", 3, _chat(turns, [("video", video)]), {"scene": scene.id}), test)


def sound_conversation(scene: SoundingScene, image: str, audio: str, rng: np.random.Generator,
                       test: bool = False) -> Record:
    """2-3 turns: what is heard, which object makes it (with its box), another object."""
    source = scene.image.objects[scene.source]
    exp = referring_expression(scene.image.objects, scene.source, rng)
    turns = [(_pick(rng, TEMPLATES["audio_caption"]), sentence(SOUNDS[source.shape].caption)),
             (_pick(rng, _SOUNDING_OBJECT), sentence(exp.text + format_box(scene.image.box(scene.source))))]
    if rng.random() < 0.5:
        others = [i for i in range(len(scene.image.objects)) if i != scene.source]
        turns.append(_rec_turn(scene.image, _pick(rng, others), rng)[:2])
    messages = _chat(turns, [("image", image), ("audio", audio)])
    return _finish(Record("sound_conversation", 3, messages, {"scene": scene.id}), test)


# ----------------------------------------------------------------------- registry


@dataclass(frozen=True)
class TaskSpec:
    """A task family: its stage, the kind of scene it needs and its builder."""

    stage: int
    scene: str  # "image" | "video" | "audio" | "sounding"
    build: Callable[..., Record]


TASKS: dict[str, TaskSpec] = {
    "image_caption": TaskSpec(1, "image", image_caption),
    "video_caption": TaskSpec(1, "video", video_caption),
    "audio_caption": TaskSpec(1, "audio", audio_caption),
    "rec": TaskSpec(2, "image", rec),
    "reg": TaskSpec(2, "image", reg),
    "object_attribute": TaskSpec(2, "image", object_attribute),
    "temporal_grounding": TaskSpec(2, "video", temporal_grounding),
    "video_dense_caption": TaskSpec(2, "video", video_dense_caption),
    "sound_localization": TaskSpec(2, "sounding", sound_localization),
    "image_conversation": TaskSpec(3, "image", image_conversation),
    "video_conversation": TaskSpec(3, "video", video_conversation),
    "sound_conversation": TaskSpec(3, "sounding", sound_conversation),
}
