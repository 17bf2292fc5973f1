"""Which parts of GroundingGPT train in which stage, written down as data.

The paper (Section 3.2) trains coarse to fine:

========  =====================================  ==========================================
stage     trainable                              frozen
========  =====================================  ==========================================
1         image adapter, video branch,           vision tower, audio encoder, LLM
          audio branch
2, 3      the same + the language model          vision tower, audio encoder
========  =====================================  ==========================================

The *branches* are everything between a frozen encoder and the LLM: for video and
audio that is the frame/clip position embedding, the learned Q-Former queries, the
Q-Former itself and the linear adapter (``QFormerBranch``); for images the MLP
adapter. The encoders never train.

With LoRA (stages 2–3 only) the language model's own weights stay frozen and only
the low-rank adapters injected into it train (see :mod:`groundinggpt.train.lora`).

Example:
    >>> from groundinggpt.presets import build_tiny
    >>> model, _ = build_tiny()
    >>> summary = apply_freeze_plan(model, STAGE_PLANS[1])
    >>> summary["language_model"]["trainable"], summary["image_adapter"]["frozen"]
    (0, 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

#: Top-level modules that are never trained: the pretrained encoders.
ALWAYS_FROZEN = ("vision_tower", "video_frame_encoder", "audio_encoder")
#: The modality branches: encoder output → LLM-width tokens.
BRANCHES = ("image_adapter", "video_branch", "audio_branch")


@dataclass(frozen=True)
class FreezePlan:
    """Names of the top-level modules that train; every other top-level module is frozen.

    Attributes:
        trainable: top-level child names of ``GroundingGPTForCausalLM`` that get gradients.
        description: one line for logs.
    """

    trainable: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        bad = sorted(set(self.trainable) & set(ALWAYS_FROZEN))
        if bad:
            raise ValueError(f"freeze plan makes {bad} trainable, but the encoders {ALWAYS_FROZEN} are always frozen")


STAGE_PLANS: dict[int, FreezePlan] = {
    1: FreezePlan(BRANCHES, "multi-modal pre-training: branches only (LLM and encoders frozen)"),
    2: FreezePlan((*BRANCHES, "language_model"), "fine-grained alignment tuning: branches + LLM"),
    3: FreezePlan((*BRANCHES, "language_model"), "multi-granularity instruction tuning: branches + LLM"),
}


def plan_for_stage(stage: int) -> FreezePlan:
    """The paper's freeze plan of ``stage`` (1, 2 or 3)."""
    if stage not in STAGE_PLANS:
        raise ValueError(f"stage must be one of {sorted(STAGE_PLANS)}, got {stage!r}")
    return STAGE_PLANS[stage]


def _top_level(model: nn.Module) -> dict[str, nn.Module]:
    # `named_children` skips attributes set to None (a model without a video branch).
    return dict(model.named_children())


def apply_freeze_plan(model: nn.Module, plan: FreezePlan) -> dict[str, dict[str, int]]:
    """Set ``requires_grad`` on every parameter according to ``plan``.

    Args:
        model: a ``GroundingGPTForCausalLM``.
        plan: which top-level modules train.

    Returns:
        ``{module name: {"trainable": n_params, "frozen": n_params}}`` for every top-level module
        (see :func:`freeze_summary`).

    Raises:
        ValueError: the plan names a module the model class does not have.
    """
    children = _top_level(model)
    for name in plan.trainable:
        # A model built without a video/audio branch has the attribute set to None: fine.
        if name not in children and not hasattr(model, name):
            raise ValueError(f"freeze plan names {name!r}, but the model has no such module; it has {sorted(children)}")
    for name, module in children.items():
        module.requires_grad_(name in plan.trainable)
    # Parameters registered directly on the top-level model (none today) follow the LLM.
    for name, param in model.named_parameters(recurse=False):
        param.requires_grad_("language_model" in plan.trainable)
    return freeze_summary(model)


def freeze_summary(model: nn.Module) -> dict[str, dict[str, int]]:
    """Trainable and frozen parameter counts per top-level module (LoRA adapters count as trainable)."""
    out: dict[str, dict[str, int]] = {}
    for name, module in _top_level(model).items():
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        total = sum(p.numel() for p in module.parameters())
        out[name] = {"trainable": trainable, "frozen": total - trainable}
    return out


def trainable_names(model: nn.Module) -> list[str]:
    """Names of the parameters that require gradients (for checks and logs)."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def format_summary(summary: dict[str, Any]) -> str:
    """A small table of :func:`freeze_summary` for the console."""
    lines = [f"{'module':<16} {'trainable':>14} {'frozen':>14}"]
    for name, counts in summary.items():
        lines.append(f"{name:<16} {counts['trainable']:>14,} {counts['frozen']:>14,}")
    total_t = sum(c["trainable"] for c in summary.values())
    total_f = sum(c["frozen"] for c in summary.values())
    lines.append(f"{'total':<16} {total_t:>14,} {total_f:>14,}")
    return "\n".join(lines)
