"""LoRA on the language model (stages 2–3), merged back before saving.

The adapters are injected *in place* into ``model.language_model`` with
``peft.inject_adapter_in_model`` instead of wrapping the whole model in a
``PeftModel``: the Trainer then sees a plain ``GroundingGPTForCausalLM``, so its
checkpoints hold every weight (branches, LLM, LoRA), ``--resume`` restores them
all, and the modality branches keep training next to the adapters. A
``PeftModel`` checkpoint would hold only the LoRA tensors and lose the branches,
the same trap as the authors' stage-1 save that kept only the image projector.

At the end :func:`merge_lora` folds ``B·A·alpha/r`` into each base weight and
puts the plain ``nn.Linear`` back, so the saved folder is an ordinary GroundingGPT
(no ``lora_`` keys) that the next stage and :class:`groundinggpt.GroundingGPT` load.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

#: The LLaMA projections the authors target (every Linear but ``lm_head``).
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraSettings:
    """LoRA hyper-parameters (defaults: the authors' ``train.py``: r 64, alpha 16, dropout 0.05)."""

    r: int = 64
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = field(default=DEFAULT_TARGET_MODULES)


def _require_peft():
    try:
        import peft  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("LoRA training needs the 'peft' package: pip install peft") from e


def add_lora(model: nn.Module, settings: LoraSettings) -> int:
    """Freeze the LLM's weights and inject trainable LoRA adapters into it.

    Args:
        model: a ``GroundingGPTForCausalLM`` (the freeze plan is applied before or after;
            either way the LLM's own weights end up frozen and the adapters trainable).
        settings: rank, alpha, dropout and target module names.

    Returns:
        The number of LoRA parameters added.
    """
    _require_peft()
    from peft import LoraConfig, inject_adapter_in_model

    llm = model.language_model
    llm.requires_grad_(False)
    config = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules), bias="none",
    )
    # Only inside the LLM: CLIP also has q_proj/k_proj/v_proj, and it must stay untouched.
    inject_adapter_in_model(config, llm)
    n = 0
    for name, param in llm.named_parameters():
        is_lora = "lora_" in name
        param.requires_grad_(is_lora)
        n += param.numel() if is_lora else 0
    if n == 0:
        raise ValueError(f"no LoRA adapters were injected: none of {settings.target_modules} is a module of the LLM")
    return n


def has_lora(model: nn.Module) -> bool:
    """True if any LoRA layer is still in ``model``."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return False
    return any(isinstance(m, LoraLayer) for m in model.modules())


def merge_lora(model: nn.Module) -> int:
    """Fold every LoRA adapter into its base layer and remove the adapter modules.

    Returns:
        How many layers were merged.
    """
    _require_peft()
    from peft.tuners.lora import LoraLayer

    merged = 0
    for name, module in list(model.named_modules()):
        if not isinstance(module, LoraLayer):
            continue
        # safe_merge checks for NaN/inf before writing into the base weights.
        module.merge(safe_merge=True)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module.get_base_layer())
        merged += 1
    return merged
