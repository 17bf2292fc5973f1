"""Small text helpers shared by converters: slot values that read well inside a phrasing."""

from __future__ import annotations


def clean(text: str) -> str:
    """Collapse runs of whitespace and strip (split/join: C speed on VG's 5M phrases)."""
    return " ".join(text.split())


def as_slot(text: str) -> str:
    """A description used inside a question: no trailing period, first letter lowered
    unless the first word is an acronym or "I" ("The dog jumps." -> "the dog jumps")."""
    t = clean(text).rstrip(" .")
    if len(t) > 1 and t[0].isupper() and t[1].islower() and not t.startswith("I "):
        t = t[0].lower() + t[1:]
    return t


def as_answer(text: str) -> str:
    """A description used as an answer: first letter upper, ends with a period."""
    t = clean(text)
    if not t:
        return t
    t = t[0].upper() + t[1:]
    return t if t[-1] in ".!?" else t + "."
