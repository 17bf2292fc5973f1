"""Image tasks (rec, pope, vqav2), now in groundinggpt.eval.benchmarks."""

from __future__ import annotations

from groundinggpt.eval.benchmarks.pope import (  # noqa: F401 - re-exported
    PopeTask,
)
from groundinggpt.eval.benchmarks.refcoco import (  # noqa: F401 - re-exported
    RefCOCOTask,
)
from groundinggpt.eval.benchmarks.vqav2 import (  # noqa: F401 - re-exported
    VQAv2Task,
)

__all__ = [
    "RefCOCOTask", "PopeTask", "VQAv2Task",
]
