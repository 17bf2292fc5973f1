"""Sound-source localisation (vggss), now in groundinggpt.eval.benchmarks.vggss."""

from __future__ import annotations

from groundinggpt.eval.benchmarks.vggss import (  # noqa: F401 - re-exported
    VGGSSTask,
)

__all__ = [
    "VGGSSTask",
]
