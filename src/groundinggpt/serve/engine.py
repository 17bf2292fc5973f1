"""Loading the engine every front end shares."""

from __future__ import annotations

from typing import Any


def load_engine(model: str, device: str = "auto", dtype: str = "auto") -> Any:
    """A model folder, or ``tiny`` for the random-init preset (answers are noise), through
    :meth:`groundinggpt.api.GroundingGPT.load` (``auto``: bfloat16 on CUDA, float32 on CPU)."""
    from ..api import GroundingGPT

    return GroundingGPT.load(model, device=device, dtype=dtype)
