"""Benchmark evaluation for GroundingGPT (``groundinggpt eval TASK``; docs/evaluation.md).

* :mod:`groundinggpt.eval.benchmarks` -- one module per benchmark, read top to bottom:
  its reader of the published files, its published metric and its task (``refcoco``,
  ``pope``, ``vqav2``, ``charades_sta``, ``video_qa``, ``vggss``, ``synthetic``).
* :mod:`groundinggpt.eval.io` -- what they share: file helpers and :class:`FormatError`, the
  predictions file, coercion of predicted and true boxes and spans.
* :mod:`groundinggpt.eval.formats` / :mod:`groundinggpt.eval.metrics` -- the readers and
  metrics under their earlier names (re-exports).
* :mod:`groundinggpt.eval.tasks` -- the task interface and registry.
* :mod:`groundinggpt.eval.runner` -- model or predictions file → scored records,
  :class:`~groundinggpt.eval.summary.EvalSummary` (``summary.json``), example grid
  (:mod:`groundinggpt.eval.report`), with resume.
* :mod:`groundinggpt.eval.judge` -- the GPT judge of open-ended video QA.
* :mod:`groundinggpt.eval.lmms_eval_plugin` -- the ``groundinggpt`` model for lmms-eval.

Readers and metrics are independent of the model code; the metrics take their IoU and
Acc@τ from :mod:`groundinggpt.grounding` (one rule for the whole project).
"""

from __future__ import annotations

__all__ = ["formats", "metrics"]
