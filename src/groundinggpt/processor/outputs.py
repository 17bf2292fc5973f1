"""What the processor tells about media and answers: :class:`MediaInfo` (kept to convert an answer
back) and :class:`GroundedOutput` (an answer with its boxes and spans in the user's frame)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..grounding import Box, GroundedEntity

__all__ = ["GroundedOutput", "MediaInfo"]


@dataclass
class MediaInfo:
    """What the processor learnt about one medium; needed to convert the model's answer back."""

    kind: str
    original_size: tuple[int, int] | None = None  # (width, height) of an image / video frame
    duration: float | None = None  # seconds, for video and audio

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GroundedOutput:
    """A model answer with its grounding in the user's frame.

    ``entities`` carry boxes relative to the *original* image, ``boxes_pixels``
    the same boxes in pixels, ``spans_seconds`` the spans in seconds.
    """

    text: str
    entities: list[GroundedEntity]
    image_size: tuple[int, int] | None = None
    duration: float | None = None
    # Filled by GroundingGPT.generate: token usage and why decoding stopped ("stop" | "length").
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None

    @property
    def boxes(self) -> list[Box]:
        return [e.box for e in self.entities if e.box is not None]

    @property
    def boxes_pixels(self) -> list[tuple[float, float, float, float]]:
        if self.image_size is None:
            return []
        return [b.to_pixels(*self.image_size) for b in self.boxes]

    @property
    def spans_seconds(self) -> list[tuple[float, float]]:
        if self.duration is None:
            return []
        return [(e.span.start * self.duration, e.span.end * self.duration) for e in self.entities if e.span]

    def to_dict(self) -> dict[str, Any]:
        entities = []
        for e in self.entities:
            d = e.to_dict()
            if e.box is not None and self.image_size is not None:
                d["box_pixels"] = [round(v, 2) for v in e.box.to_pixels(*self.image_size)]
            if e.span is not None and self.duration is not None:
                d["span_seconds"] = [round(e.span.start * self.duration, 3), round(e.span.end * self.duration, 3)]
            entities.append(d)
        return {"text": self.text, "entities": entities, "image_size": self.image_size, "duration": self.duration}
