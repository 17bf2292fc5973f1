"""Three-stage coarse-to-fine training on the Hugging Face ``Trainer``.

- :mod:`.freeze`: which modules train in which stage (``STAGE_PLANS``, as data).
- :mod:`.lora`: LoRA adapters on the LLM (stages 2–3), merged before saving.
- :mod:`.recipe`: YAML recipes (``training:`` + ``groundinggpt:``), validated, with overrides.
- :mod:`.run`: :func:`train`, one stage end to end; :mod:`.callbacks`: the loss curve.
- :mod:`.cli`: ``groundinggpt train``; :mod:`.toy`: a tiny synthetic data set for smoke runs.

Imports stay lazy: ``import groundinggpt.train`` does not load the Trainer.
"""

from __future__ import annotations

from .freeze import ALWAYS_FROZEN, STAGE_PLANS, FreezePlan, apply_freeze_plan, plan_for_stage

__all__ = ["FreezePlan", "STAGE_PLANS", "ALWAYS_FROZEN", "apply_freeze_plan", "plan_for_stage"]
