"""The recipe's ``training`` section → ``TrainingArguments``, and DeepSpeed without a launcher.

What :func:`groundinggpt.train.run.train` hands the Hugging Face ``Trainer``: the recipe's
keys plus what the runner needs whatever the recipe says (see :func:`make_training_arguments`),
across the transformers releases we meet.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .recipe import RecipeError, TrainConfig

__all__ = ["checkpointing_arguments", "launch_single_process_deepspeed", "make_training_arguments"]


def _argument_names(arguments_class: type) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(arguments_class)}


def checkpointing_arguments(enabled: bool, names: set[str]) -> dict[str, Any]:
    """``TrainingArguments`` keywords for activation checkpointing, by transformers release.

    Newer transformers 5 releases call it ``activation_checkpointing`` (with
    ``gradient_checkpointing`` a deprecated alias); earlier ones (5.17 on the GPU image
    we tried) only know ``gradient_checkpointing``, whose default there is the reentrant
    kind, which gives no gradient when the LLM's inputs need none: ask for the other.

    >>> checkpointing_arguments(True, {"activation_checkpointing", "gradient_checkpointing"})
    {'activation_checkpointing': True}
    >>> checkpointing_arguments(True, {"gradient_checkpointing"})
    {'gradient_checkpointing': True, 'gradient_checkpointing_kwargs': {'use_reentrant': False}}
    """
    if "activation_checkpointing" in names:
        return {"activation_checkpointing": enabled}
    return {"gradient_checkpointing": enabled, "gradient_checkpointing_kwargs": {"use_reentrant": False} if enabled else None}


def make_training_arguments(config: TrainConfig):
    """``TrainingArguments`` from the recipe's ``training`` section plus what this runner needs.

    Set here, whatever the recipe says:

    - ``remove_unused_columns=False``: the collator already emits exactly the model's inputs
      (text, media or cached features); the Trainer's column filter keeps only names it finds
      in ``forward``'s signature and would silently drop anything passed through ``**kwargs``;
    - ``label_names=["labels"]``;
    - ``activation_checkpointing`` from ``groundinggpt.gradient_checkpointing`` (the
      non-reentrant kind, which also works when the LLM's inputs need no gradient; see
      :func:`checkpointing_arguments` for transformers releases that predate the name).

    Defaults (a recipe may change them):

    - ``ddp_find_unused_parameters=True``: a batch without video (or audio) runs no video
      (audio) branch, so those trainable parameters get no gradient in that step; DDP
      without it waits for their gradients forever, or errors at the next step;
    - ``report_to=[]``: no experiment tracker unless asked;
    - ``include_num_input_tokens_seen="non_padding"``: for tokens/s in ``run_log.json``;
    - ``dataloader_pin_memory`` only with CUDA; ``use_cpu=True`` under ``torchrun`` without CUDA.

    (``save_safetensors`` is gone from transformers 5: checkpoints are always safetensors.)
    """
    from transformers import TrainingArguments

    kw = dict(config.training)
    kw.setdefault("report_to", [])
    kw.setdefault("ddp_find_unused_parameters", True)
    kw.setdefault("include_num_input_tokens_seen", "non_padding")
    # transformers hides NaN/inf step losses in the logs by default (a diverged run then
    # reads "loss 0"); show them as they are.
    kw.setdefault("logging_nan_inf_filter", False)
    kw.setdefault("dataloader_pin_memory", torch.cuda.is_available())  # pinning is a GPU-only gain
    if not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # accelerate only sets up multi-process CPU training (gloo DDP, or DeepSpeed with
        # DS_ACCELERATOR=cpu) when told the run is on CPU; otherwise every torchrun process
        # silently trains alone on all the data (and DeepSpeed's batch check fails).
        kw.setdefault("use_cpu", True)
    kw.update(
        output_dir=str(config.output),
        remove_unused_columns=False,
        label_names=["labels"],
        **checkpointing_arguments(bool(config.gradient_checkpointing), _argument_names(TrainingArguments)),
    )
    if kw.get("deepspeed") and config.lora and _zero_stage(kw["deepspeed"]) == 3:
        raise RecipeError("--lora with ZeRO-3 is not supported (the merge needs whole weights); use ZeRO-2")
    if kw.get("deepspeed"):
        launch_single_process_deepspeed()
    try:
        return TrainingArguments(**kw)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"invalid training arguments (recipe {config.recipe}): {e}") from e


def launch_single_process_deepspeed() -> None:
    """Let a DeepSpeed recipe run as one plain process (``groundinggpt train`` on one GPU).

    Without a launcher (torchrun, ``deepspeed``) the rank variables are missing, and DeepSpeed
    then looks for MPI and fails with ``No module named 'mpi4py'``. Set them for a world of
    one, as transformers' DeepSpeed guide does for single-GPU use; a launcher's own values
    are left alone.
    """
    if "LOCAL_RANK" in os.environ or "RANK" in os.environ:
        return
    import socket

    with socket.socket() as s:  # a free port for the one-process rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def _zero_stage(deepspeed: Any) -> int | None:
    try:
        ds = deepspeed if isinstance(deepspeed, dict) else json.loads(Path(deepspeed).read_text())
        return int(ds.get("zero_optimization", {}).get("stage", 0))
    except (OSError, ValueError, TypeError):
        return None
