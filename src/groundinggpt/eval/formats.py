"""The benchmarks' readers and the predictions file, under the name they have always had.

Each benchmark's reader now lives with its scorer and task in
:mod:`groundinggpt.eval.benchmarks` (``refcoco``, ``charades_sta``, ``pope``, ``vqav2``, ``vggss``,
``video_qa``); the shared helpers and the predictions file in :mod:`groundinggpt.eval.io`. Every
reader raises :class:`FormatError` (an :class:`~groundinggpt.errors.InputError`) naming the
file, the line or record, and the field it expected.
"""

from __future__ import annotations

from groundinggpt.eval.benchmarks.charades_sta import (  # noqa: F401 - re-exported
    CharadesSample, read_charades_durations, read_charades_sta,
)
from groundinggpt.eval.benchmarks.pope import (  # noqa: F401 - re-exported
    PopeSample, read_pope,
)
from groundinggpt.eval.benchmarks.refcoco import (  # noqa: F401 - re-exported
    MAX_REFS_BYTES, MAX_REFS_DEPTH, RefSample, load_refs_pickle, read_refcoco,
)
from groundinggpt.eval.benchmarks.vggss import (  # noqa: F401 - re-exported
    VGGSSSample, read_vggss,
)
from groundinggpt.eval.benchmarks.video_qa import (  # noqa: F401 - re-exported
    VideoQASample, read_video_qa, read_youtube_mapping,
)
from groundinggpt.eval.benchmarks.vqav2 import (  # noqa: F401 - re-exported
    VQASample, read_vqav2,
)
from groundinggpt.eval.io import (  # noqa: F401 - re-exported
    FormatError, PathLike, Prediction, predictions_by_id, read_predictions,
)

__all__ = [
    "FormatError", "RefSample", "CharadesSample", "PopeSample", "VQASample", "VGGSSSample", "Prediction",
    "load_refs_pickle", "read_refcoco", "read_charades_sta", "read_charades_durations", "read_pope",
    "read_vqav2", "read_vggss", "VideoQASample", "read_video_qa", "read_youtube_mapping", "read_predictions",
    "predictions_by_id", "MAX_REFS_BYTES", "MAX_REFS_DEPTH", "PathLike",
]
