"""Replay of previous-stage samples: counts, determinism, validation."""

from __future__ import annotations

import pytest

from groundinggpt.data import Sample, mix_with_replay


def make(prefix: str, n: int, stage: int) -> list[Sample]:
    return [Sample.from_dict({"id": f"{prefix}-{i:03d}", "task": "caption", "stage": stage, "messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) for i in range(n)]


CURRENT, PREVIOUS = make("s3", 20, 3), make("s2", 50, 2)


@pytest.mark.parametrize("alpha, used", [(0.0, 0), (0.1, 5), (0.25, 13), (0.5, 25), (1.0, 50)])
def test_counts(alpha, used):
    mixed, stats = mix_with_replay(CURRENT, PREVIOUS, alpha, seed=1)
    assert stats == {"current": 20, "previous_available": 50, "previous_used": used, "previous_overlap": 0,
                     "alpha": alpha, "seed": 1}
    ids = [s.id for s in mixed]
    assert len(ids) == len(set(ids)) == 20 + used
    assert {s.id for s in CURRENT} <= set(ids)  # every current-stage sample is kept
    assert sum(s.stage == 2 for s in mixed) == used


def test_deterministic_for_a_seed_and_input_order():
    a, _ = mix_with_replay(CURRENT, PREVIOUS, 0.3, seed=7)
    b, _ = mix_with_replay(CURRENT, list(reversed(PREVIOUS)), 0.3, seed=7)
    c, _ = mix_with_replay(CURRENT, PREVIOUS, 0.3, seed=8)
    assert [s.id for s in a] == [s.id for s in b]  # same seed: same subset, same order
    assert {s.id for s in a if s.stage == 2} != {s.id for s in c if s.stage == 2}  # other seed: other subset
    assert [s.id for s in a] != [s.id for s in CURRENT + PREVIOUS][: len(a)]  # shuffled


def test_overlapping_ids_are_not_replayed_twice():
    mixed, stats = mix_with_replay(CURRENT, CURRENT[:5] + PREVIOUS, 1.0, seed=0)
    assert stats["previous_overlap"] == 5 and stats["previous_used"] == 50
    assert len({s.id for s in mixed}) == len(mixed) == 70


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "0.5", True, None])
def test_alpha_is_checked(alpha):
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
        mix_with_replay(CURRENT, PREVIOUS, alpha, seed=0)
