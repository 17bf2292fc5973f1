"""Video tasks (charades-sta, video-qa), now in groundinggpt.eval.benchmarks."""

from __future__ import annotations

from groundinggpt.eval.benchmarks.charades_sta import (  # noqa: F401 - re-exported
    CharadesSTATask,
)
from groundinggpt.eval.benchmarks.video_qa import (  # noqa: F401 - re-exported
    VideoQATask,
)

__all__ = [
    "CharadesSTATask", "VideoQATask",
]
