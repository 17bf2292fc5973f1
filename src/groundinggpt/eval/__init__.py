"""Benchmark evaluation for GroundingGPT (``groundinggpt eval TASK``; docs/evaluation.md).

* :mod:`groundinggpt.eval.metrics` -- the published metric definitions (REC Acc@0.5,
  Charades-STA R@1/mIoU, POPE, VQAv2 accuracy, VGG-SS cIoU/AUC) on plain numbers.
* :mod:`groundinggpt.eval.formats` -- readers for the benchmarks' published
  annotation files and for a JSONL predictions file.
* :mod:`groundinggpt.eval.tasks` -- the task interface and registry; the tasks live in
  ``task_image`` (rec, pope, vqav2), ``task_video`` (charades-sta, video-qa),
  ``task_sound`` (vggss) and ``task_synthetic``.
* :mod:`groundinggpt.eval.runner` -- model or predictions file → scored records,
  :class:`~groundinggpt.eval.summary.EvalSummary` (``summary.json``), example grid
  (:mod:`groundinggpt.eval.report`), with resume.
* :mod:`groundinggpt.eval.judge` -- the GPT judge of open-ended video QA.
* :mod:`groundinggpt.eval.lmms_eval_plugin` -- the ``groundinggpt`` model for lmms-eval.

``metrics`` and ``formats`` are independent of the model code; ``metrics`` takes its IoU and
Acc@τ from :mod:`groundinggpt.grounding` (one rule for the whole project).
"""

from __future__ import annotations

__all__ = ["formats", "metrics"]
