"""Benchmark scoring for GroundingGPT.

* :mod:`groundinggpt.eval.metrics` -- the published metric definitions (REC Acc@0.5,
  Charades-STA R@1/mIoU, POPE, VQAv2 accuracy, VGG-SS cIoU/AUC) on plain numbers.
* :mod:`groundinggpt.eval.formats` -- readers for the benchmarks' published
  annotation files and for a JSONL predictions file.

Both modules are independent of the model code and of :mod:`groundinggpt.grounding`.
"""

from __future__ import annotations

__all__ = ["formats", "metrics"]
