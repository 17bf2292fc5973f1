"""The scene model of the synthetic world: coloured shapes on a plain background.

A scene is a handful of :class:`SceneObject` s (shape, colour, size class, pixel
position) on a ``width`` x ``height`` canvas. Shapes are drawn aliased (no
anti-aliasing), so every object is a set of pixels of exactly its colour and its
ground-truth box is the tight box of those pixels — tests can check boxes against
the decoded image pixel by pixel.

Why the sampling looks the way it does (the "honesty rules", docs/synthetic.md):

- positions are uniform over the whole frame, so a target's box cannot be guessed
  from the question and the mean target box sits at the centre;
- sizes come in two classes with a jitter inside each, as fractions of the
  shorter image side, so the same world works at 64x64 and at 80x64;
- later objects often copy the shape (and sometimes the colour, or everything) of
  an earlier one, so referring expressions need a second attribute or a spatial
  relation to single out their target.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from groundinggpt.grounding import Box

__all__ = [
    "BACKGROUND",
    "COLOURS",
    "SHAPES",
    "SIZES",
    "SIZE_RANGES",
    "ImageScene",
    "SceneObject",
    "render_objects",
    "sample_image_scene",
    "sample_objects",
    "shape_mask",
]

#: Shape names, in the words the tiny tokenizer was built from.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring", "diamond")

#: Colour names and their RGB values. Chosen far apart (also after H.264's 4:2:0
#: chroma subsampling) and far from the dark background; no "black" or "gray", which
#: would be hard to tell from the background and from the padding colour.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 220, 40),
    "purple": (140, 60, 190),
    "orange": (245, 140, 20),
    "white": (245, 245, 245),
    "pink": (250, 130, 200),
    "cyan": (40, 210, 220),
    "brown": (130, 80, 40),
}

#: Canvas colour.
BACKGROUND: tuple[int, int, int] = (24, 24, 24)

#: Size classes.
SIZES: tuple[str, ...] = ("small", "large")

#: Side of an object's drawing square as a fraction of the shorter image side.
#: The classes are far apart (at 64 px: 10-14 px vs 19-25 px) so "small" and
#: "large" are visible facts, with a jitter so that box sizes must be read off.
SIZE_RANGES: dict[str, tuple[float, float]] = {"small": (0.16, 0.22), "large": (0.30, 0.40)}

# Minimum free pixels between two objects' boxes: boxes never overlap, and a box
# grown by one pixel still holds no other object's pixels (what the tests check).
_GAP = 2


@functools.lru_cache(maxsize=None)
def shape_mask(shape: str, side: int) -> np.ndarray:
    """Boolean mask of ``shape`` drawn in a ``side`` x ``side`` square, cropped tight.

    Cached: a scene draws from a few hundred distinct (shape, side) pairs.
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    if side < 4:
        raise ValueError(f"side must be >= 4 pixels, got {side}")
    canvas = Image.new("1", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    s = side - 1
    if shape == "circle":
        draw.ellipse((0, 0, s, s), fill=1)
    elif shape == "square":
        draw.rectangle((0, 0, s, s), fill=1)
    elif shape == "triangle":
        draw.polygon([(s / 2, 0), (s, s), (0, s)], fill=1)
    elif shape == "diamond":
        draw.polygon([(s / 2, 0), (s, s / 2), (s / 2, s), (0, s / 2)], fill=1)
    elif shape == "ring":
        draw.ellipse((0, 0, s, s), fill=1)
        # A hole of a third of the diameter keeps the ring visibly hollow when small.
        inset = max(2, round(side / 3.2))
        draw.ellipse((inset, inset, s - inset, s - inset), fill=0)
    elif shape == "cross":
        third = max(2, round(side / 3))
        lo = (side - third) // 2
        draw.rectangle((lo, 0, lo + third - 1, s), fill=1)
        draw.rectangle((0, lo, s, lo + third - 1), fill=1)
    elif shape == "star":
        angles = np.pi / 2 + np.arange(10) * np.pi / 5  # points up
        radii = np.where(np.arange(10) % 2 == 0, s / 2, s / 4.6)
        draw.polygon([(s / 2 + r * np.cos(a), s / 2 - r * np.sin(a)) for r, a in zip(radii, angles)], fill=1)
    mask = np.asarray(canvas, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    mask = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    mask.setflags(write=False)
    return mask


@dataclass(frozen=True)
class SceneObject:
    """One drawn object.

    Attributes:
        shape: One of :data:`SHAPES`.
        colour: One of :data:`COLOURS`.
        size: ``"small"`` or ``"large"``.
        side: Side of the drawing square in pixels.
        x: Left pixel column of the object's tight box.
        y: Top pixel row of the object's tight box.
    """

    shape: str
    colour: str
    size: str
    side: int
    x: int
    y: int

    @property
    def mask(self) -> np.ndarray:
        return shape_mask(self.shape, self.side)

    @property
    def pixel_box(self) -> tuple[int, int, int, int]:
        """``(x1, y1, x2, y2)`` in pixels, ``x2``/``y2`` exclusive (pixel edges)."""
        h, w = self.mask.shape
        return (self.x, self.y, self.x + w, self.y + h)

    def box(self, width: int, height: int) -> Box:
        """The ground-truth box relative to a ``width`` x ``height`` image."""
        return Box.from_pixels(*self.pixel_box, width, height)

    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.pixel_box
        return ((x1 + x2) / 2, (y1 + y2) / 2)

    def moved_to(self, x: int, y: int) -> SceneObject:
        return replace(self, x=x, y=y)

    def recoloured(self, colour: str) -> SceneObject:
        return replace(self, colour=colour)

    def key(self) -> tuple:
        """Everything that defines the object (for signatures)."""
        return (self.shape, self.colour, self.size, self.side, self.x, self.y)


@dataclass(frozen=True)
class ImageScene:
    """A still scene: objects on a ``width`` x ``height`` canvas.

    Attributes:
        id: Scene id, unique within a world (e.g. ``"train-img-00042"``).
        width: Image width in pixels.
        height: Image height in pixels.
        objects: The objects, in drawing order (they never overlap).
    """

    id: str
    width: int
    height: int
    objects: tuple[SceneObject, ...]

    def box(self, index: int) -> Box:
        """Ground-truth box of object ``index``, relative to this image."""
        return self.objects[index].box(self.width, self.height)

    def render(self) -> np.ndarray:
        """The image as a ``uint8`` ``H x W x 3`` RGB array."""
        return render_objects(self.objects, self.width, self.height)

    def to_image(self) -> Image.Image:
        return Image.fromarray(self.render(), "RGB")

    def signature(self) -> tuple:
        """Content identity (ignores the id): equal signatures draw equal images."""
        return (self.width, self.height, tuple(o.key() for o in self.objects))


def render_objects(objects: Sequence[SceneObject | None], width: int, height: int) -> np.ndarray:
    """Draw objects (``None`` entries are skipped) on a fresh background canvas."""
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    for obj in objects:
        if obj is None:
            continue
        mask = obj.mask
        h, w = mask.shape
        # Objects may reach outside the frame only while moving in a video; clip.
        x0, y0 = max(obj.x, 0), max(obj.y, 0)
        x1, y1 = min(obj.x + w, width), min(obj.y + h, height)
        if x0 >= x1 or y0 >= y1:
            continue
        sub = mask[y0 - obj.y : y1 - obj.y, x0 - obj.x : x1 - obj.x]
        canvas[y0:y1, x0:x1][sub] = COLOURS[obj.colour]
    return canvas


# ----------------------------------------------------------------------------- sampling


def boxes_apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int = _GAP) -> bool:
    """Whether two pixel boxes are separated by at least ``gap`` free pixels."""
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def _pick(rng: np.random.Generator, items: Sequence):
    return items[int(rng.integers(len(items)))]


def _side(rng: np.random.Generator, size: str, width: int, height: int) -> int:
    lo, hi = SIZE_RANGES[size]
    short = min(width, height)
    return max(5, int(round(rng.uniform(lo, hi) * short)))


def _attributes(rng: np.random.Generator, placed: Sequence[SceneObject],
                colours: Sequence[str]) -> tuple[str, str, str]:
    """Attributes of the next object, often copying an earlier one's.

    Copies make distractors that share the target's shape (needs colour or size to
    tell apart), shape and colour (needs size), or everything (needs a relation).
    """
    shape, colour, size = _pick(rng, SHAPES), _pick(rng, colours), _pick(rng, SIZES)
    if placed and rng.random() < 0.5:
        model = _pick(rng, placed)
        shape = model.shape
        r = rng.random()
        if r < 0.45:
            colour = model.colour
            if r < 0.2:  # a twin: only a spatial relation can tell them apart
                size = model.size
    return shape, colour, size


def _place(rng: np.random.Generator, shape: str, side: int, width: int, height: int,
           taken: Sequence[tuple[int, int, int, int]], tries: int = 60) -> tuple[int, int] | None:
    h, w = shape_mask(shape, side).shape
    if w > width or h > height:
        return None
    for _ in range(tries):
        # Uniform over every position where the object fits: no position prior.
        x = int(rng.integers(0, width - w + 1))
        y = int(rng.integers(0, height - h + 1))
        box = (x, y, x + w, y + h)
        if all(boxes_apart(box, t) for t in taken):
            return x, y
    return None


def sample_objects(rng: np.random.Generator, width: int, height: int, count: int,
                   colours: Sequence[str] = tuple(COLOURS), distinct_shapes: bool = False) -> list[SceneObject]:
    """Place up to ``count`` non-overlapping objects uniformly over the frame.

    An object that finds no free spot is retried small, then dropped, so crowded
    frames may hold fewer than ``count`` objects.
    """
    objects: list[SceneObject] = []
    for _ in range(count):
        if distinct_shapes:
            free = [s for s in SHAPES if s not in {o.shape for o in objects}]
            shape, colour, size = _pick(rng, free), _pick(rng, colours), _pick(rng, SIZES)
        else:
            shape, colour, size = _attributes(rng, objects, colours)
        taken = [o.pixel_box for o in objects]
        for attempt_size in (size, "small"):
            side = _side(rng, attempt_size, width, height)
            spot = _place(rng, shape, side, width, height, taken)
            if spot is not None:
                objects.append(SceneObject(shape, colour, attempt_size, side, *spot))
                break
    return objects


def sample_image_scene(rng: np.random.Generator, scene_id: str, width: int = 64, height: int = 64,
                       num_objects: tuple[int, int] = (2, 4), max_tries: int = 50) -> ImageScene:
    """Sample a still scene in which every object has a referring expression.

    Args:
        rng: Source of randomness (the scene is a pure function of its state).
        scene_id: Id to give the scene.
        width: Image width in pixels.
        height: Image height in pixels.
        num_objects: Inclusive range of the number of objects.
        max_tries: Scenes to try before giving up.

    Raises:
        RuntimeError: No valid scene in ``max_tries`` (the frame is far too small).
    """
    from .language import referring_expression  # language builds on this module

    lo, hi = num_objects
    for _ in range(max_tries):
        count = int(rng.integers(lo, hi + 1))
        objects = tuple(sample_objects(rng, width, height, count))
        if len(objects) < lo:
            continue
        # Twins without a usable landmark have no unambiguous description: resample.
        if all(referring_expression(objects, i, rng, relation_rate=0.0) is not None for i in range(len(objects))):
            return ImageScene(scene_id, width, height, objects)
    raise RuntimeError(f"could not sample a {width}x{height} scene with {lo}-{hi} describable objects")
