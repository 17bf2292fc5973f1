"""``groundinggpt data question-pool TASK --endpoint URL``: more phrasings for a Table 11 family.

§3.2.2: "we ... use GPT to generate a variety of templates". The request gives the
task's description, its slots and the pool's phrasings as examples; the answer's lines
are cleaned (numbering, bullets, quotes), then filtered: the slots must be exactly the
family's, length 12-200 characters, one sentence or question, and no duplicate of the
pool or of each other (compared lower-cased without punctuation). The result is the
pool followed by the new phrasings.
"""

from __future__ import annotations

import re
from collections import Counter

from ..templates import QUESTION_POOLS, SLOTS, TABLE11, slots_of
from .client import ChatClient

__all__ = ["TASK_DESCRIPTIONS", "generate_question_pool", "filter_phrasings"]

TASK_DESCRIPTIONS = {
    "image_caption": "ask for a brief description of an image",
    "reg": "ask what object is inside a given region of an image; the region's coordinates are the slot {region}, "
           "written right after the word naming the region",
    "rec": "ask where the object described by the slot {exp} is in an image (its coordinates)",
    "object_attribute": "ask about an attribute (colour, count, material ...) of the object named by the slot {exp}",
    "video_caption": "ask for a brief description of a video",
    "video_dense_caption": "ask what happens in a video during the time span given by the slot {time}, "
                           "written right after the word naming the segment",
    "temporal_grounding": "ask when the event described by the slot {event} happens in a video",
    "audio_caption": "ask for a description of the sounds in an audio clip",
    "sound_localization": "ask where the source of the sound is in an image",
}

_LEAD = re.compile(r"^\s*(?:[-*•]+|\(?\d+[.)]|\d+\s*-)\s*")
_NORM = re.compile(r"[^a-z0-9{} ]+")


def _norm(t: str) -> str:
    return " ".join(_NORM.sub(" ", t.lower()).split())


def filter_phrasings(task: str, text: str, existing: tuple[str, ...] | list[str] = ()) -> tuple[list[str], Counter]:
    """New phrasings from a model's answer, and the reasons lines were dropped."""
    want = SLOTS[task]
    seen = {_norm(t) for t in existing}
    out, dropped = [], Counter()
    for raw in text.splitlines():
        line = _LEAD.sub("", raw).strip().strip('"“”\'`').strip()
        if not line:
            continue
        try:
            slots = slots_of(line)
        except ValueError:
            dropped["bad braces"] += 1
            continue
        if slots != want:
            dropped["wrong slots"] += 1
            continue
        if not 12 <= len(line) <= 200 or line.count("\n") or sum(line.count(c) for c in ".?!") > 2:
            dropped["length"] += 1
            continue
        key = _norm(line)
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        out.append(line)
    return out, dropped


def generate_question_pool(task: str, *, endpoint: str, model: str = "gpt-3.5-turbo", n: int = 20, rounds: int = 1,
                           api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0,
                           client: ChatClient | None = None) -> list[str]:
    """The family's pool plus the new phrasings the endpoint wrote (deduplicated, filtered)."""
    if task not in TABLE11:
        raise KeyError(f"unknown task family {task!r}; Table 11 has {', '.join(TABLE11)}")
    client = client or ChatClient(endpoint, model, api_key_env=api_key_env, timeout=timeout)
    pool = list(QUESTION_POOLS[task])
    slots = ", ".join("{" + s + "}" for s in sorted(SLOTS[task])) or "none"
    for _ in range(rounds):
        examples = "\n".join(pool[:10])
        prompt = (f"Write {n} different phrasings of an instruction to a multimodal assistant that "
                  f"{TASK_DESCRIPTIONS[task]}. Placeholders to keep exactly as written: {slots}. "
                  f"One phrasing per line, no numbering, no other text.\nExamples:\n{examples}")
        result = client.chat([{"role": "user", "content": prompt}], temperature=1.0)
        new, _ = filter_phrasings(task, result.text, pool)
        pool.extend(new)
    return pool
