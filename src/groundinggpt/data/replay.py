"""Replay of earlier-stage data, against forgetting between training stages.

The paper trains stage ``s`` on

    L = −E_{x ∼ D_s}[log p(x)] − α · E_{x ∼ D_{s−1}}[log p(x)],

i.e. the previous stage's data weighted by α. :func:`mix_with_replay` implements it by
sampling instead of weighting: every current-stage sample plus ``round(α · |D_{s−1}|)``
previous-stage samples drawn at random without replacement. Summed over the mixed set,
the per-sample loss then has the expectation ``|D_s|·E_current + α·|D_{s−1}|·E_previous``
(up to the rounding), which is the paper's objective up to the dataset sizes the
expectations are taken over — and it needs no change to the loss or the trainer.

Everything is deterministic for a seed: the subset is drawn from the previous samples
sorted by id (so the input order does not matter), and the mix is shuffled with the same
seeded generator.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from numbers import Real
from typing import Any

from .schema import Sample

__all__ = ["mix_with_replay"]


def mix_with_replay(current: Sequence[Sample], previous: Sequence[Sample], alpha: float,
                    seed: int = 0) -> tuple[list[Sample], dict[str, Any]]:
    """All ``current`` samples plus a seeded random ``alpha`` fraction of ``previous``, shuffled.

    Args:
        current: this stage's samples (all used).
        previous: earlier stages' samples to replay. Samples whose id also appears in
            ``current`` are not candidates (they are in the mix already).
        alpha: replay ratio in [0, 1]; ``round(alpha * len(candidates))`` are drawn
            (rounded half up).
        seed: seed of the draw and of the shuffle.

    Returns:
        ``(mixed samples, stats)`` with stats ``{"current", "previous_available",
        "previous_used", "previous_overlap", "alpha", "seed"}``.

    Raises:
        ValueError: ``alpha`` is not a number in [0, 1].
    """
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not (0.0 <= float(alpha) <= 1.0):
        raise ValueError(f"replay alpha must be a number in [0, 1] (the fraction of previous-stage samples "
                         f"to replay), got {alpha!r}")
    alpha = float(alpha)
    current_ids = {s.id for s in current}
    candidates = sorted((s for s in previous if s.id not in current_ids), key=lambda s: s.id)
    overlap = len(previous) - len(candidates)
    k = min(len(candidates), math.floor(alpha * len(candidates) + 0.5))
    rng = random.Random(seed)
    replayed = rng.sample(candidates, k)
    mixed = list(current) + replayed
    rng.shuffle(mixed)
    stats = {"current": len(current), "previous_available": len(candidates), "previous_used": k,
             "previous_overlap": overlap, "alpha": alpha, "seed": seed}
    return mixed, stats
