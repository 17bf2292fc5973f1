"""The run record, ``train_run.json``: what a ``--resume`` must match, written when a run starts.

A checkpoint resumed with other data or other settings trains on in silence: an edited
data file mixes old and new samples (the sampler's order is the old run's), a new batch
size skips or repeats samples, a new learning rate is ignored (the scheduler's state
comes from the checkpoint). So the record holds a streamed SHA-256 of every data file and
the settings that change what the run computes, and :func:`differences` names each one
that changed.

It also holds the torch thread count the run started with: a resume on another count
sums in another order and rounds differently (see :func:`pin_threads`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from .. import jsonsafe
from .recipe import RecipeError, TrainConfig

RUN_START = "train_run.json"

#: ``TrainingArguments`` that change which samples each step sees or how it updates.
TRAINING_SETTINGS = (
    "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type",
    "lr_scheduler_kwargs", "warmup_steps", "warmup_ratio", "weight_decay", "max_grad_norm", "optim",
    "seed", "data_seed", "max_steps", "num_train_epochs",
)
#: ``groundinggpt`` settings that do (the stage picks the freeze plan).
RUN_SETTINGS = ("stage", "model", "recipe", "alpha", "max_length", "lora", "lora_r", "lora_alpha",
                "lora_dropout", "lora_target_modules")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in chunks (a data file may be larger than memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _files(paths: list[str]) -> list[dict[str, str]]:
    return [{"path": str(Path(p).resolve()), "sha256": file_sha256(p)} for p in paths]


def run_identity(config: TrainConfig) -> dict[str, Any]:
    """What a resume must match: the settings above and every data file's path and content hash."""
    identity = {k: getattr(config, k) for k in RUN_SETTINGS}
    identity["data"] = _files(config.data)
    identity["previous_data"] = _files(config.previous_data)
    identity["training"] = {k: config.training.get(k) for k in TRAINING_SETTINGS}
    return json.loads(json.dumps(identity, default=str))  # as it reads back (tuples → lists)


def read(output: str | os.PathLike) -> dict[str, Any] | None:
    """The record a run left in ``output`` (``None`` where there is none)."""
    started = Path(output) / RUN_START
    if not started.is_file():
        return None
    try:
        record = jsonsafe.loads(started.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RecipeError(f"{started}: unreadable run record ({e}); choose another --output") from e
    if not isinstance(record, dict):
        raise RecipeError(f"{started}: expected a JSON object (the run record), got {type(record).__name__}")
    return record


def write(output: str | os.PathLike, identity: dict[str, Any]) -> Path:
    """Write the record (atomically) with this process's torch thread count."""
    path = Path(output) / RUN_START
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({**identity, "torch_threads": torch.get_num_threads()}, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _file_changes(key: str, before: list[Any], now: list[dict[str, str]]) -> list[str]:
    # Records written before the hashes hold plain paths: only the paths are compared then.
    old_paths = [e if isinstance(e, str) else e.get("path") for e in before]
    new_paths = [e["path"] for e in now]
    if old_paths != new_paths:
        return [f"{key}: {old_paths!r} there, {new_paths!r} now"]
    return [f"{key} file {e['path']} changed since the run started (sha256 {b['sha256'][:12]}... there, "
            f"{e['sha256'][:12]}... now)"
            for b, e in zip(before, now) if isinstance(b, dict) and b.get("sha256") not in (None, e["sha256"])]


def differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Each way ``now`` differs from the record ``before``, named; keys an older record
    lacks are not compared (it was written before they were recorded)."""
    changed: list[str] = []
    for key, value in now.items():
        if key not in before:
            continue
        if key in ("data", "previous_data") and isinstance(before[key], list):
            changed += _file_changes(key, before[key], value)
        elif key == "training" and isinstance(before[key], dict):
            changed += [f"{k}: {before[key][k]!r} there, {v!r} now"
                        for k, v in value.items() if k in before[key] and before[key][k] != v]
        elif before[key] != value:
            changed.append(f"{key}: {before[key]!r} there, {value!r} now")
    return changed


def pin_threads(record: dict[str, Any] | None, say=None) -> None:
    """Resume with the torch CPU thread count the run started with.

    A matrix product or a sum split over another number of threads adds in another order,
    so the resumed steps round differently (1e-7..1e-6 after a few Adam steps) from the
    same run left alone: a resume is bit-identical only with the same count. Where the
    recorded count exceeds this machine's cores it is left as it is (said, not silent).
    """
    threads = (record or {}).get("torch_threads")
    if not isinstance(threads, int) or threads < 1 or threads == torch.get_num_threads():
        return
    if threads <= (os.cpu_count() or 1):
        torch.set_num_threads(threads)
        message = f"--resume: {threads} torch threads, as the run started (this process had another count)"
    else:
        message = (f"--resume: the run started with {threads} torch threads, more than this machine's cores; "
                   f"continuing with {torch.get_num_threads()} (results differ from an uninterrupted run in rounding)")
    if say is not None:
        say(message)
