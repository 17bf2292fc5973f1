"""Loading the engine every front end shares."""

from __future__ import annotations

from typing import Any


def load_engine(model: str) -> Any:
    """A model folder, or ``tiny`` for the random-init preset (answers are noise)."""
    from ..api import GroundingGPT

    engine = GroundingGPT.from_preset("tiny") if model == "tiny" else GroundingGPT.from_pretrained(model)
    return engine
