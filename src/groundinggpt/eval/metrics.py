"""The published metric definitions, under the name they have always had.

Each metric now lives with its benchmark's reader and task in :mod:`groundinggpt.eval.benchmarks`;
the conventions shared by every ``*_metrics`` function (a malformed or missing prediction is a
miss that never raises, a malformed ground truth raises ``ValueError``, rates in percent) are
stated in :mod:`groundinggpt.eval.io`, which holds the coercion helpers. IoU and Acc@τ are
:mod:`groundinggpt.grounding`'s (one rule for reversed corners: put in order, as the parser does).
"""

from __future__ import annotations

from groundinggpt.eval.benchmarks.charades_sta import (  # noqa: F401 - re-exported
    temporal_grounding_metrics, temporal_iou,
)
from groundinggpt.eval.benchmarks.pope import (  # noqa: F401 - re-exported
    pope_metrics, pope_metrics_by_split, pope_parse_answer,
)
from groundinggpt.eval.benchmarks.refcoco import (  # noqa: F401 - re-exported
    box_iou, rec_accuracy,
)
from groundinggpt.eval.benchmarks.vggss import (  # noqa: F401 - re-exported
    ciou, rasterize_boxes, success_auc, vggss_metrics, vggss_thresholds,
)
from groundinggpt.eval.benchmarks.vqav2 import (  # noqa: F401 - re-exported
    vqa_accuracy, vqa_normalize_answer, vqav2_metrics,
)

__all__ = [
    "box_iou", "rec_accuracy", "temporal_iou", "temporal_grounding_metrics", "pope_parse_answer",
    "pope_metrics", "pope_metrics_by_split", "vqa_normalize_answer", "vqa_accuracy", "vqav2_metrics",
    "rasterize_boxes", "ciou", "vggss_thresholds", "success_auc", "vggss_metrics",
]
