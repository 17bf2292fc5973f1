"""Where a model runs and in which precision, decided once for every front end.

``GroundingGPT.load(spec, device="auto", dtype="auto")`` (in :mod:`groundinggpt.api`) is the
one loader; the API, chat, serve, web, eval, the lmms-eval plugin, info and train call it
or the checks here, so ``--device`` / ``--dtype`` mean the same everywhere:

- ``device="auto"``: ``cuda`` when a GPU is visible, else ``cpu``;
- ``dtype="auto"``: bfloat16 on CUDA (the released model's precision), float32 on CPU
  (bfloat16 matmuls are slow on most CPUs).

A released (``model_type`` LEGO) folder given where a project folder is expected gets one
error that names ``groundinggpt convert lego``.

Example:
    >>> import torch
    >>> resolve_dtype("auto", "cpu"), resolve_dtype("bfloat16", "cpu"), resolve_dtype(torch.float16, "cuda")
    (torch.float32, torch.bfloat16, torch.float16)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(device: str | torch.device | None = "auto") -> str:
    """``"auto"`` / ``None`` → ``cuda`` when available, else ``cpu``; anything else as given."""
    if device is None or str(device) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: str | torch.device) -> torch.dtype:
    """``"auto"`` / ``None`` → bfloat16 on CUDA, float32 elsewhere; a name or a ``torch.dtype`` as given."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def check_project_folder(path: str | Path, flag: str = "--model") -> Path:
    """``path`` if it is a project model folder; a clear error for a released (LEGO) folder
    or anything without a config.json."""
    from .convert.lego import is_lego_folder, lego_folder_error

    path = Path(path)
    if is_lego_folder(path):
        raise lego_folder_error(path, flag)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{flag} {path} is not a model folder (no config.json)")
    return path


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--dtype``, as every command that loads a model has them."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: auto = cuda when available)")
    parser.add_argument("--dtype", default="auto", choices=DTYPES,
                        help="weights dtype (default: auto = bfloat16 on CUDA, float32 on CPU)")


def device_kwargs(args: Any) -> dict[str, Any]:
    """``device`` / ``dtype`` of parsed arguments, for :meth:`groundinggpt.api.GroundingGPT.load`."""
    return {"device": getattr(args, "device", None) or "auto", "dtype": getattr(args, "dtype", None) or "auto"}
