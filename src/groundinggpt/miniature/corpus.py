"""Pretraining data of the miniature parts: the world's captions and plain text, nothing more.

What each part is pretrained on mirrors what its full-size counterpart saw:

- the "CLIP" image tower: images of the synthetic world paired with captions that name
  every object's size, colour, shape and *coarse* position in words ("a small red circle
  in the top left, ...") — like CLIP's alt-texts, no numbers. Plus a dense, label-free
  auxiliary per 8x8 patch: what covers that patch (the covering object's colour, shape and
  size class, or background) and which of its 2x2-pixel cells are covered. No box, no
  coordinate, no question and no answer is ever shown;
- the "ImageBind" audio tower: synthetic sound clips paired with their captions
  ("A rising chirp followed by a low buzzing sound.");
- the "Vicuna" LLM: text-only chats in the Vicuna template about the world — random scene
  descriptions, the Table 11 questions answered in words, the shapes' sounds, and the
  number formats (decimals, lists) — never tied to a medium.

All scenes come from seeds disjoint from the quickstart world (its train *and* test
scenes): :data:`PRETRAIN_SEED` streams, whatever the world's seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.synthetic.language import coarse_position, join_phrases, object_phrase, plural, sentence
from ..data.synthetic.sound import SAMPLE_RATE, SOUNDS, sample_audio_scene
from ..data.synthetic.tasks import _image_caption_text
from ..data.synthetic.video import sample_video_scene
from ..data.synthetic.world import COLOURS, SHAPES, SIZES, ImageScene, sample_image_scene
from ..media.image import CLIP_MEAN, CLIP_STD

__all__ = [
    "PRETRAIN_SEED", "PATCH", "ImageCorpus", "image_corpus", "audio_corpus", "chat_corpus",
    "normalise_pixels", "patch_targets", "scene_caption",
]

#: Seed of every pretraining stream (the quickstart world uses small seeds; streams are
#: also keyed by a distinct tag, so no pretraining scene is a world scene by construction).
PRETRAIN_SEED = 20_240_117
PATCH = 8
_COLOUR_IDS = {c: i + 1 for i, c in enumerate(COLOURS)}  # 0 = background
_SHAPE_IDS = {s: i + 1 for i, s in enumerate(SHAPES)}
_SIZE_IDS = {s: i + 1 for i, s in enumerate(SIZES)}
NUM_COLOUR_CLASSES = len(COLOURS) + 1
NUM_SHAPE_CLASSES = len(SHAPES) + 1
NUM_SIZE_CLASSES = len(SIZES) + 1


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([PRETRAIN_SEED, *key])


def normalise_pixels(images: np.ndarray, mean: Sequence[float] = CLIP_MEAN,
                     std: Sequence[float] = CLIP_STD) -> torch.Tensor:
    """``uint8 [N, H, W, 3]`` → CLIP-normalised ``float32 [N, 3, H, W]`` (what the processor makes of
    a square image of the tower's size: padding and resizing are the identity there)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s


def scene_caption(scene: ImageScene, rng: np.random.Generator) -> str:
    """Every object with size, colour, shape and a coarse position word, in random order."""
    order = rng.permutation(len(scene.objects))
    parts = [f"{object_phrase(scene.objects[i], article='a')} {coarse_position(scene.objects[i], scene.width, scene.height)}"
             for i in order]
    return sentence(join_phrases(parts))


def _object_map(scene: ImageScene) -> np.ndarray:
    """``[H, W]`` index of the object covering each pixel, -1 for the background."""
    out = np.full((scene.height, scene.width), -1, dtype=np.int64)
    for k, obj in enumerate(scene.objects):
        mask = obj.mask
        h, w = mask.shape
        x0, y0 = max(obj.x, 0), max(obj.y, 0)
        x1, y1 = min(obj.x + w, scene.width), min(obj.y + h, scene.height)
        if x0 < x1 and y0 < y1:
            sub = mask[y0 - obj.y : y1 - obj.y, x0 - obj.x : x1 - obj.x]
            out[y0:y1, x0:x1][sub] = k
    return out


def patch_targets(scene: ImageScene, patch: int = PATCH) -> dict[str, np.ndarray]:
    """What covers each patch: colour / shape / size class of the object holding most of its
    pixels (0 = background), and a 4x4 map of which 2x2-pixel cells are mostly covered."""
    omap = _object_map(scene)
    gh, gw = scene.height // patch, scene.width // patch
    tiles = omap[: gh * patch, : gw * patch].reshape(gh, patch, gw, patch).transpose(0, 2, 1, 3)
    tiles = tiles.reshape(gh * gw, patch, patch)
    colour = np.zeros(gh * gw, dtype=np.int64)
    shape = np.zeros(gh * gw, dtype=np.int64)
    size = np.zeros(gh * gw, dtype=np.int64)
    for p, tile in enumerate(tiles):
        ids = tile[tile >= 0]
        if ids.size:
            k = int(np.bincount(ids).argmax())
            obj = scene.objects[k]
            colour[p], shape[p], size[p] = _COLOUR_IDS[obj.colour], _SHAPE_IDS[obj.shape], _SIZE_IDS[obj.size]
    cell = patch // 4
    fg = (tiles >= 0).reshape(gh * gw, 4, cell, 4, cell).mean(axis=(2, 4)) >= 0.5
    return {"colour": colour, "shape": shape, "size": size, "cells": fg.reshape(gh * gw, 16).astype(np.float32)}


@dataclass
class ImageCorpus:
    """Pretraining images (uint8), captions and patch targets."""

    images: np.ndarray  # [N, H, W, 3] uint8
    captions: list[str]
    colour: np.ndarray  # [N, P]
    shape: np.ndarray
    size: np.ndarray
    cells: np.ndarray  # [N, P, 16]

    def __len__(self) -> int:
        return len(self.captions)


def _video_frame_scene(rng: np.random.Generator, index: int, width: int, height: int) -> tuple[np.ndarray, ImageScene]:
    """One frame of a random world clip, as an image scene (objects may be off screen)."""
    video = sample_video_scene(rng, f"pretrain-video-{index}", width, height)
    frame = int(rng.integers(video.num_frames))
    objects = tuple(o for o in video.state_at(frame) if o is not None)
    scene = ImageScene(f"pretrain-frame-{index}", width, height, objects)
    return scene.render(), scene


def image_corpus(n: int, stream: int = 0, width: int = 64, height: int = 64, video_frames: float = 0.15,
                 progress: bool = False) -> ImageCorpus:
    """``n`` random world images (a share of them video frames) with captions and patch targets.

    Args:
        n: how many.
        stream: separates corpora (0 = training, 1 = validation).
        video_frames: share of frames of random clips (moving / recoloured / missing objects).
    """
    from tqdm.auto import tqdm

    images = np.empty((n, height, width, 3), dtype=np.uint8)
    captions, colour, shape, size, cells = [], [], [], [], []
    for i in tqdm(range(n), desc="images", disable=not progress, leave=False):
        rng = _rng(1, stream, i)
        if rng.random() < video_frames:
            pixels, scene = _video_frame_scene(rng, i, width, height)
            if not scene.objects:
                scene = sample_image_scene(rng, f"pretrain-{i}", width, height, (1, 4))
                pixels = scene.render()
        else:
            scene = sample_image_scene(rng, f"pretrain-{i}", width, height, (1, 4))
            pixels = scene.render()
        images[i] = pixels
        captions.append(scene_caption(scene, rng))
        t = patch_targets(scene)
        colour.append(t["colour"]); shape.append(t["shape"]); size.append(t["size"]); cells.append(t["cells"])  # noqa: E702
    return ImageCorpus(images, captions, np.stack(colour), np.stack(shape), np.stack(size), np.stack(cells))


def audio_corpus(n: int, stream: int = 0, seconds: float = 2.0) -> tuple[list[np.ndarray], list[str]]:
    """``n`` random clips of one sound or two in sequence, with their captions."""
    waves, captions = [], []
    for i in range(n):
        scene = sample_audio_scene(_rng(2, stream, i), f"pretrain-audio-{i}", seconds)
        waves.append(scene.render())
        captions.append(scene.caption())
    return waves, captions


# ------------------------------------------------------------------------------------------ LLM text

_DESCRIBE = (
    "Provide a brief description of the given image.", "Write a terse but informative summary of the picture.",
    "Share a concise interpretation of the image provided.", "Describe a scene with a few shapes.",
    "Imagine a picture of coloured shapes and describe it.",
)
_DESCRIBE_VIDEO = (
    "Relay a brief, clear account of the video shown.", "Offer a succinct explanation of the footage presented.",
    "Present a compact description of the clip's key features.", "Describe a short clip of moving shapes.",
)
_DESCRIBE_AUDIO = (
    "Analyze the audio and provide a description of its content.",
    "Examine the audio and describe the different sounds present.",
    "Provide a detailed summary of the auditory elements in the audio clip.", "Describe a short sound.",
)


def _fmt3(v: float) -> str:
    return f"{v:.3f}"


def _chat_text(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return turns


def chat_corpus(n: int, stream: int = 0) -> list[list[tuple[str, str]]]:
    """``n`` text-only conversations (lists of (user, assistant) turns) about the world.

    Kinds: random scene / clip / sound descriptions (answers to the stage-1 questions, but
    about no medium: a text model can only make one up); shape ↔ sound knowledge; questions
    about objects *described in the question itself* (which one is red, what colour is the
    star, where — in words — is the blue square, how many circles: in-context reading, as
    any chat LLM can do); repeating a phrase; and number formats (decimals with three / two
    digits, lists in brackets and braces), never tied to a medium.
    """
    out = []
    for i in range(n):
        rng = _rng(3, stream, i)
        kind = rng.random()
        if kind < 0.22:
            scene = sample_image_scene(rng, f"text-{i}", 64, 64, (1, 4))
            # Reading order, as the world's stage-1 captions (random order half the time).
            caption = _image_caption_text(scene) if rng.random() < 0.5 else scene_caption(scene, rng)
            out.append([(_pick(rng, _DESCRIBE), caption)])
        elif kind < 0.30:
            video = sample_video_scene(rng, f"text-video-{i}", 64, 64)
            out.append([(_pick(rng, _DESCRIBE_VIDEO), video.caption())])
        elif kind < 0.36:
            audio = sample_audio_scene(rng, f"text-audio-{i}")
            out.append([(_pick(rng, _DESCRIBE_AUDIO), audio.caption())])
        elif kind < 0.44:
            out.append(_sound_knowledge(rng))
        elif kind < 0.72:
            out.append(_in_context(rng, i))
        elif kind < 0.86:
            out.append(_numbers(rng))
        else:
            out.append(_repeat(rng, i))
    return out


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _sound_knowledge(rng: np.random.Generator) -> list[tuple[str, str]]:
    turns = []
    for _ in range(int(rng.integers(1, 4))):
        shape = _pick(rng, SHAPES)
        spec = SOUNDS[shape]
        q = rng.random()
        if q < 0.4:
            turns.append((f"What sound does a {shape} make?", sentence(spec.caption)))
        elif q < 0.8:
            turns.append((f"Which shape makes {spec.caption}?", sentence(f"the {shape}")))
        else:
            turns.append((f"What makes the sound of {spec.name}?", sentence(f"a {shape}")))
    return turns


def _in_context(rng: np.random.Generator, i: int) -> list[tuple[str, str]]:
    """A scene described in words, then questions answered by reading that description."""
    from ..data.synthetic.language import referring_expression, unique_attribute_sets

    scene = sample_image_scene(rng, f"text-ctx-{i}", 64, 64, (2, 4))
    objs = scene.objects
    context = scene_caption(scene, rng)
    turns: list[tuple[str, str]] = []
    for _ in range(int(rng.integers(1, 4))):
        k = int(rng.integers(len(objs)))
        obj = objs[k]
        q = rng.random()
        exp = referring_expression(objs, k, rng, relation_rate=0.0)
        if q < 0.3 and exp is not None:
            where = coarse_position(obj, scene.width, scene.height)
            turns.append((f"Where is {exp.text}?", sentence(where)))
        elif q < 0.55:
            no_colour = referring_expression(objs, k, rng, relation_rate=0.0, use_colour=False)
            if no_colour is not None:
                turns.append((f"What color is {no_colour.text}?", sentence(obj.colour)))
        elif q < 0.75:
            sets = unique_attribute_sets(objs, k, (("colour",), ("size", "colour")))
            if sets:
                words = " ".join(getattr(obj, a) for a in ("size", "colour") if a in sets[0])
                turns.append((f"Which object is {words}?", object_phrase(obj, ("size", "colour", "shape"))))
        elif q < 0.9:
            count = sum(o.shape == obj.shape for o in objs)
            turns.append((f"How many {plural(obj.shape)} are there?", str(count)))
        elif exp is not None:
            turns.append((f"Name the object: {exp.text}.", exp.text))
    if not turns:
        turns.append(("How many objects are there?", str(len(objs))))
    first_q, first_a = turns[0]
    turns[0] = (f"{context} {first_q}", first_a)
    return turns


def _numbers(rng: np.random.Generator) -> list[tuple[str, str]]:
    q = rng.random()
    if q < 0.4:
        values = sorted(rng.integers(0, 1001, size=4) / 1000)
        vals = [values[0], values[1], values[2], values[3]]
        rng.shuffle(vals)
        words = ", ".join(f"{v:g}" for v in vals)
        return [(f"Write the numbers {words} with three decimals, in brackets.",
                 "[" + ", ".join(_fmt3(v) for v in vals) + "]")]
    if q < 0.7:
        a, b = sorted(rng.integers(0, 101, size=2) / 100)
        return [(f"Write the interval from {a:g} to {b:g} with two decimals, in braces.",
                 "{" + f"{a:.2f}, {b:.2f}" + "}")]
    if q < 0.85:
        n = int(rng.integers(2, 9))
        k = int(rng.integers(0, n + 1))
        return [(f"What is {k} out of {n} as a decimal with two digits?", f"{k / n:.2f}")]
    a, b = int(rng.integers(0, 10)), int(rng.integers(0, 10))
    return [(f"What is {a} plus {b}?", str(a + b))]


def _repeat(rng: np.random.Generator, i: int) -> list[tuple[str, str]]:
    scene = sample_image_scene(rng, f"text-rep-{i}", 64, 64, (2, 4))
    from ..data.synthetic.language import referring_expression

    index = int(rng.integers(len(scene.objects)))
    exp = referring_expression(scene.objects, index, rng)
    text = exp.text if exp is not None else object_phrase(scene.objects[index])
    q = _pick(rng, ("Repeat the phrase: {e}.", "Say again: {e}.", "Quote this expression: {e}."))
    return [(q.format(e=text), text)]


def audio_clip_features(waves: Sequence[np.ndarray], processor) -> torch.Tensor:
    """Waves → the processor's fbank clips ``[N, clips, 1, mel, frames]`` (the model's audio input)."""
    import io

    import soundfile as sf

    out = []
    for w in waves:
        buf = io.BytesIO()
        sf.write(buf, w, SAMPLE_RATE, format="WAV", subtype="PCM_16")
        tensor, _ = processor.load_medium("audio", buf.getvalue())
        out.append(tensor)
    return torch.stack(out)
