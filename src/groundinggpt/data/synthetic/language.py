"""Words for scenes: referring expressions, plural phrases, coarse positions, captions.

Referring expressions name an object with the fewest attributes that single it out
among the scene's objects ("the circle" when there is one circle, "the red circle"
or "the small circle" when there are two circles, ...). When attributes cannot
(identical twins) a spatial relation to a uniquely named landmark is added: "the
small red circle left of the blue square". No expression mentions an absolute
position, so the text alone says nothing about where the target is beyond what a
relation implies (see docs/synthetic.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .world import SceneObject

__all__ = [
    "ATTRIBUTE_SETS",
    "RELATIONS",
    "Expression",
    "coarse_position",
    "join_phrases",
    "object_phrase",
    "plural",
    "referring_expression",
    "relation_holds",
    "sentence",
]

#: Attribute combinations, shortest first; every one names the shape.
ATTRIBUTE_SETS: tuple[tuple[str, ...], ...] = (
    ("shape",), ("colour", "shape"), ("size", "shape"), ("size", "colour", "shape"),
)

#: Spatial relations between two objects' pixel boxes (entirely beside, not overlapping).
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")

_PLURALS = {"cross": "crosses"}


@dataclass(frozen=True)
class Expression:
    """A referring expression and how it was built.

    Attributes:
        text: E.g. ``"the small red circle left of the blue square"``.
        attributes: Attributes used for the target.
        relation: The relation word(s), or ``None``.
        landmark: Index of the landmark object, or ``None``.
    """

    text: str
    attributes: tuple[str, ...]
    relation: str | None = None
    landmark: int | None = None


def object_phrase(obj: SceneObject, attributes: Sequence[str] = ("size", "colour", "shape"),
                  article: str = "the") -> str:
    """``"the small red circle"``: the object's attributes in English order."""
    words = [getattr(obj, a) for a in ("size", "colour", "shape") if a in attributes]
    if article == "a" and words[0][0] in "aeiou":  # "an orange star"
        article = "an"
    return " ".join([article, *words] if article else words)


def plural(shape: str) -> str:
    return _PLURALS.get(shape, shape + "s")


def _matches(obj: SceneObject, ref: SceneObject, attributes: Sequence[str]) -> bool:
    return all(getattr(obj, a) == getattr(ref, a) for a in attributes)


def unique_attribute_sets(objects: Sequence[SceneObject], index: int,
                          allowed: Sequence[tuple[str, ...]] = ATTRIBUTE_SETS) -> list[tuple[str, ...]]:
    """The attribute sets (of ``allowed``) that match object ``index`` and no other."""
    target = objects[index]
    return [attrs for attrs in allowed
            if not any(_matches(o, target, attrs) for j, o in enumerate(objects) if j != index)]


def relation_holds(a: SceneObject, b: SceneObject, relation: str) -> bool:
    """Whether ``a`` is entirely ``relation`` ``b`` (e.g. entirely left of it)."""
    ax1, ay1, ax2, ay2 = a.pixel_box
    bx1, by1, bx2, by2 = b.pixel_box
    if relation == "left of":
        return ax2 <= bx1
    if relation == "right of":
        return ax1 >= bx2
    if relation == "above":
        return ay2 <= by1
    if relation == "below":
        return ay1 >= by2
    raise ValueError(f"unknown relation {relation!r}")


def _relational(objects: Sequence[SceneObject], index: int,
                allowed: Sequence[tuple[str, ...]]) -> list[Expression]:
    """Every "<target> <relation> <landmark>" that picks out object ``index`` alone."""
    target = objects[index]
    out = []
    for attrs in allowed:
        rivals = [o for j, o in enumerate(objects) if j != index and _matches(o, target, attrs)]
        for k, landmark in enumerate(objects):
            if k == index:
                continue
            landmark_sets = unique_attribute_sets(objects, k)
            if not landmark_sets:
                continue
            for rel in RELATIONS:
                if relation_holds(target, landmark, rel) and not any(relation_holds(r, landmark, rel) for r in rivals):
                    text = f"{object_phrase(target, attrs)} {rel} {object_phrase(landmark, landmark_sets[0])}"
                    out.append(Expression(text, attrs, rel, k))
    return out


def referring_expression(objects: Sequence[SceneObject], index: int, rng: np.random.Generator, *,
                         relation_rate: float = 0.15, use_colour: bool = True) -> Expression | None:
    """An expression that refers to ``objects[index]`` and to no other object.

    Args:
        objects: The scene's objects.
        index: The target.
        rng: Picks among equally valid expressions.
        relation_rate: Chance of a relational expression even when attributes
            alone would do (variety; relations are always used when needed).
        use_colour: ``False`` for questions that ask for the colour.

    Returns:
        The expression, or ``None`` when no expression is unambiguous.
    """
    allowed = [a for a in ATTRIBUTE_SETS if use_colour or "colour" not in a]
    plain = unique_attribute_sets(objects, index, allowed)
    # Relations are only computed when they may be used: they cost O(n^2).
    if plain and (relation_rate <= 0 or rng.random() >= relation_rate):
        # Mostly the shortest description; sometimes an over-specified one, as people do.
        attrs = plain[0] if rng.random() < 0.7 else plain[int(rng.integers(len(plain)))]
        return Expression(object_phrase(objects[index], attrs), attrs)
    relational = _relational(objects, index, allowed)
    if relational:
        return relational[int(rng.integers(len(relational)))]
    if plain:
        return Expression(object_phrase(objects[index], plain[0]), plain[0])
    return None


def coarse_position(obj: SceneObject, width: int, height: int) -> str:
    """Where the object is, in words on a 3x3 grid ("in the top left", "in the middle")."""
    cx, cy = obj.center()
    col = min(2, int(3 * cx / width))
    row = min(2, int(3 * cy / height))
    names = {
        (0, 0): "in the top left", (0, 1): "at the top", (0, 2): "in the top right",
        (1, 0): "on the left", (1, 1): "in the middle", (1, 2): "on the right",
        (2, 0): "in the bottom left", (2, 1): "at the bottom", (2, 2): "in the bottom right",
    }
    return names[(row, col)]


def join_phrases(phrases: Sequence[str], last: str = "and") -> str:
    """``"a, b and c"``."""
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + f" {last} " + phrases[-1]


def sentence(text: str) -> str:
    """Capitalise the first letter and end with a full stop."""
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."
