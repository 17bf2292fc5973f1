"""The synthetic world's test sets, now in groundinggpt.eval.benchmarks.synthetic."""

from __future__ import annotations

from groundinggpt.eval.benchmarks.synthetic import (  # noqa: F401 - re-exported
    SyntheticTask, read_synthetic,
)

__all__ = [
    "SyntheticTask", "read_synthetic",
]
