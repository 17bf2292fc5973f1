"""Whether bfloat16 mixed precision pays on the device at hand (``bf16: auto`` in recipes).

bfloat16 autocast is a large gain on GPUs and on CPUs with bf16 instructions (AVX512-BF16,
AMX), and a large loss elsewhere: on an AVX2-only CPU a bf16 matmul runs through PyTorch's
reference loops, ~30x slower than float32 (measured on the 2-core development machine). A
CPU-bound run (the quickstart, the miniature pretraining) must therefore ask the CPU, not
assume. The answer is measured once per process: flags alone do not tell (oneDNN may
emulate bf16 on AVX512 without it being faster).
"""

from __future__ import annotations

import functools
import time

import torch

__all__ = ["AUTO", "bf16_is_fast", "cpu_bf16_is_fast", "resolve_bf16"]

#: The recipe value that asks for bf16 only where it is fast.
AUTO = "auto"


def _matmul_seconds(dtype: torch.dtype, size: int, reps: int) -> float:
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b  # warm-up: kernel selection, first-touch allocation
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return best


@functools.lru_cache(maxsize=None)
def cpu_bf16_is_fast(size: int = 256, reps: int = 3) -> bool:
    """True when a bf16 matmul on this CPU is at most 1.5x as slow as float32 (best of ``reps``).

    Costs a few milliseconds where bf16 is fast and ~0.1 s where it is not; cached.
    """
    return _matmul_seconds(torch.bfloat16, size, reps) <= 1.5 * _matmul_seconds(torch.float32, size, reps)


def bf16_is_fast(device: str | torch.device = "cpu") -> bool:
    """bf16 pays on ``device``: a CUDA device that supports it, or a CPU measured to be fast at it."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_bf16_is_fast()
    return False


def resolve_bf16(value: bool | str, *, use_cpu: bool = False) -> bool:
    """A recipe's ``bf16`` setting as a bool: ``"auto"`` becomes :func:`bf16_is_fast` on the device
    the run will use (CUDA when available and not ``use_cpu``, else the CPU)."""
    if value != AUTO:
        return bool(value)
    on_gpu = torch.cuda.is_available() and not use_cpu
    return bf16_is_fast("cuda" if on_gpu else "cpu")
