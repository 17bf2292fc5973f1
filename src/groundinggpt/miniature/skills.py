"""Text skills that grounding builds on in a real LLM, as text-only pretraining chats.

Vicuna reaches GroundingGPT's stage 2 already able, from text alone, to pick the item that
matches a description among many and report what is attached to it, to read positions in
tables and grids, and to write numbers, boxes and spans. The miniature LLM learns them here,
from text only — never from an image, an image feature or a box or span of a quickstart
world (every chat comes from :func:`~groundinggpt.miniature.corpus._rng` streams keyed by
:data:`~groundinggpt.miniature.corpus.PRETRAIN_SEED` and a tag of its own):

- ``recall`` — associative recall: several items described with a number attached, then
  "What is the number of the blue star?";
- ``grid`` — an 8×8 grid of words written *one token per cell, row by row, without
  separators* (the layout of the miniature's 64 image tokens), 2-4 rectangular items in
  it; "Output the coordinate of the red one." → ``"the red one[0.250, 0.125, 0.500, 0.375]"``
  (the cells' box as fractions of the grid, the REC answer format). Half the time the grid
  holds colour words and the question names the item by its shape, through a legend
  ("The red one is a circle."): selection by an attribute the cells do not spell;
- ``sequence`` — a row of words with one run of the same word; "Where is the run of red?"
  → ``"{0.25, 0.50}"`` (its span as fractions of the row, the temporal answer format);
- ``order`` — ordering and comparing: which of two spans comes first, which of two boxes
  lies further left / higher;
- ``formats`` — boxes and spans written from numbers given in words.

:data:`SKILLS` lists them with one example each (``parts.json`` and docs/quickstart.md
show the same).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..data.synthetic.world import COLOURS, SHAPES, SIZES

__all__ = ["GRID", "HELD_OUT_STREAM", "SKILLS", "SKILL_MAX_LENGTH", "held_out_chats", "skill_accuracy", "skill_chat",
           "skill_examples", "skills_corpus"]

#: The grid task's side: the miniature's image tokens are an 8×8 grid of patches, row-major.
GRID = 8
#: Token limit of an encoded skill chat (the grid alone is 64 tokens; the longest chats are ~175).
SKILL_MAX_LENGTH = 224
#: The stream of the held-out chats that measure the skills (training uses streams below it).
HELD_OUT_STREAM = 9
#: The word of an empty cell (one token of the tiny tokenizer, as every colour and shape word).
EMPTY = "o"
_COLOURS = tuple(COLOURS)
Chat = list[tuple[str, str]]


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _box(x1: float, y1: float, x2: float, y2: float) -> str:
    return f"[{x1:.3f}, {y1:.3f}, {x2:.3f}, {y2:.3f}]"


def _span(a: float, b: float) -> str:
    return "{" + f"{a:.2f}, {b:.2f}" + "}"


def _items(rng: np.random.Generator, n: int) -> list[tuple[str, str, str]]:
    """``n`` (size, colour, shape) with distinct colours and distinct shapes."""
    colours = rng.choice(len(_COLOURS), n, replace=False)
    shapes = rng.choice(len(SHAPES), n, replace=False)
    return [(str(_pick(rng, SIZES)), _COLOURS[int(c)], SHAPES[int(s)]) for c, s in zip(colours, shapes)]


def recall(rng: np.random.Generator) -> Chat:
    """Items with a number each, then the number of one (asked by colour + shape, or by colour, or by shape)."""
    items = _items(rng, int(rng.integers(3, 7)))
    values = [int(v) for v in rng.choice(1001, len(items), replace=False)]
    facts = " ".join(f"The {c} {s} has {v / 1000:.3f}." for (_, c, s), v in zip(items, values))
    k = int(rng.integers(len(items)))
    _, c, s = items[k]
    name = _pick(rng, (f"the {c} {s}", f"the {c} one", f"the {s}"))
    return [(f"{facts} What number does {name} have?", f"{values[k] / 1000:.3f}")]


def _rectangles(rng: np.random.Generator, n: int) -> list[tuple[int, int, int, int]]:
    """Up to ``n`` non-overlapping cell rectangles ``(col1, row1, col2, row2)`` (inclusive) in the grid."""
    taken = np.zeros((GRID, GRID), bool)
    out = []
    for _ in range(40):
        if len(out) == n:
            break
        w, h = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        c1, r1 = int(rng.integers(0, GRID - w + 1)), int(rng.integers(0, GRID - h + 1))
        if taken[r1:r1 + h, c1:c1 + w].any():
            continue
        taken[r1:r1 + h, c1:c1 + w] = True
        out.append((c1, r1, c1 + w - 1, r1 + h - 1))
    return out


def grid(rng: np.random.Generator) -> Chat:
    """An 8×8 grid of one-token words, row by row; the box of the named item as fractions of the grid."""
    rects = _rectangles(rng, int(rng.integers(2, 5)))
    items = _items(rng, len(rects))
    by_shape = rng.random() < 0.5  # the cells spell colours; the question names the shape (through the legend)
    cells = [[EMPTY] * GRID for _ in range(GRID)]
    for (c1, r1, c2, r2), (_, colour, shape) in zip(rects, items):
        word = colour if by_shape or rng.random() < 0.5 else shape
        for r in range(r1, r2 + 1):
            for c in range(c1, c2 + 1):
                cells[r][c] = word
    words = " ".join(w for row in cells for w in row)
    k = int(rng.integers(len(rects)))
    c1, r1, c2, r2 = rects[k]
    _, colour, shape = items[k]
    if by_shape:
        legend = " ".join(f"The {c} one is a {s}." for _, c, s in items)
        context = f"An {GRID} by {GRID} grid of words, row by row: {words}. {legend}"
        name = f"the {shape}"
    else:
        context = f"An {GRID} by {GRID} grid of words, row by row: {words}."
        word = cells[r1][c1]
        name = f"the {word} one"
    box = _box(c1 / GRID, r1 / GRID, (c2 + 1) / GRID, (r2 + 1) / GRID)
    return [(f"{context} Output the coordinate of {name}.", f"{name}{box}")]


def sequence(rng: np.random.Generator) -> Chat:
    """A row of words with one run of the same word; the run's span as fractions of the row."""
    n = int(_pick(rng, (8, 16)))
    length = int(rng.integers(1, 4))
    start = int(rng.integers(0, n - length + 1))
    word = _pick(rng, _COLOURS)
    fillers = [w for w in SHAPES]
    row = [str(_pick(rng, fillers)) for _ in range(n)]
    row[start:start + length] = [word] * length
    question = _pick(rng, ("Where is the run of {w} in this row?", "When does {w} occur in this sequence?"))
    return [(f"A row of {n} words: {' '.join(row)}. " + question.format(w=word), _span(start / n, (start + length) / n))]


def order(rng: np.random.Generator) -> Chat:
    """Which of two named spans comes first, or which of two named boxes lies further left / higher."""
    (_, c1, s1), (_, c2, s2) = _items(rng, 2)
    a, b = f"the {c1} {s1}", f"the {c2} {s2}"
    if rng.random() < 0.5:
        starts = rng.choice(8, 2, replace=False)
        spans = [(int(x) / 8, (int(x) + 1) / 8) for x in starts]
        text = f"{a[0].upper()}{a[1:]} happens at {_span(*spans[0])} and {b} at {_span(*spans[1])}. Which comes first?"
        return [(text, a if starts[0] < starts[1] else b)]
    xs = rng.choice(8, 2, replace=False)
    ys = rng.choice(8, 2, replace=False)
    boxes = [_box(int(x) / 8, int(y) / 8, (int(x) + 1) / 8, (int(y) + 1) / 8) for x, y in zip(xs, ys)]
    if rng.random() < 0.5:
        text, first = "Which is further left?", xs[0] < xs[1]
    else:
        text, first = "Which is higher up?", ys[0] < ys[1]
    return [(f"{a[0].upper()}{a[1:]} is at {boxes[0]} and {b} is at {boxes[1]}. {text}", a if first else b)]


def formats(rng: np.random.Generator) -> Chat:
    """A box or a span written in the grounding formats from its numbers in words."""
    if rng.random() < 0.5:
        x1, x2 = sorted(int(v) for v in rng.choice(1001, 2, replace=False))
        y1, y2 = sorted(int(v) for v in rng.choice(1001, 2, replace=False))
        return [(f"Write the box from x {x1 / 1000:g} to {x2 / 1000:g} and y {y1 / 1000:g} to {y2 / 1000:g}.",
                 _box(x1 / 1000, y1 / 1000, x2 / 1000, y2 / 1000))]
    a, b = sorted(int(v) for v in rng.choice(101, 2, replace=False))
    return [(f"Write the span from {a / 100:g} to {b / 100:g} of the clip.", _span(a / 100, b / 100))]


#: The text skills: name → (builder, share of the skills corpus).
SKILLS: dict[str, tuple[Callable[[np.random.Generator], Chat], float]] = {
    "recall": (recall, 0.2), "grid": (grid, 0.45), "sequence": (sequence, 0.15), "order": (order, 0.1),
    "formats": (formats, 0.1),
}


def skill_chat(rng: np.random.Generator) -> Chat:
    """One chat of a skill drawn by its share."""
    names = list(SKILLS)
    shares = np.array([SKILLS[n][1] for n in names])
    name = names[int(rng.choice(len(names), p=shares / shares.sum()))]
    return SKILLS[name][0](rng)


def skills_corpus(n: int, stream: int = 0) -> list[Chat]:
    """``n`` skill chats from pretraining streams (tag 4): no quickstart world shares a seed with them."""
    from .corpus import _rng

    return [skill_chat(_rng(4, stream, i)) for i in range(n)]


def skill_examples(seed: int = 7) -> dict[str, dict[str, Any]]:
    """Each skill's share and one example chat (for ``parts.json`` and the docs)."""
    rng = np.random.default_rng([seed, 4])
    return {name: {"share": share, "example": build(rng)[0]} for name, (build, share) in SKILLS.items()}


def held_out_chats(name: str, n: int) -> list[tuple[str, str]]:
    """``n`` (question, answer) pairs of skill ``name`` from the held-out stream."""
    from .corpus import _rng

    index = list(SKILLS).index(name)
    return [SKILLS[name][0](_rng(4, HELD_OUT_STREAM, index * 10_000 + i))[0] for i in range(n)]


def skill_accuracy(answer: Callable[[str], str], n: int = 15) -> dict[str, float]:
    """Exact-match accuracy per skill of ``answer`` (question → answer text) on held-out chats.

    Example:
        >>> oracle = {q: a for name in SKILLS for q, a in held_out_chats(name, 3)}
        >>> skill_accuracy(oracle.get, n=3)["grid"]
        1.0
    """
    return {name: sum(answer(q).strip() == a for q, a in held_out_chats(name, n)) / n for name in SKILLS}
