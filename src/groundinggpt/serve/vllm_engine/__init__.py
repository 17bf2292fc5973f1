"""vLLM as the engine behind ``groundinggpt serve --engine vllm``.

vLLM (paged KV cache, its continuous batching, tensor parallelism over GPUs) runs the
model; this package keeps the protocol layer (requests, media decoding and limits,
grounding, streaming). Nothing here is imported unless vLLM is used, so the project
works without vLLM installed.

- :func:`register` — the plugin vLLM loads in each of its processes (entry point
  ``vllm.general_plugins: groundinggpt``): GroundingGPT folders
  (``architectures: ["GroundingGPTForCausalLM"]``) run as :mod:`.model`.
- :mod:`.processing` — vLLM's multimodal processor: preprocessed media in, placeholders out.
- :mod:`.prompt` — a prepared conversation → vLLM's token prompt.
- :mod:`.engine` — :class:`~.engine.VLLMEngine`, what the server and tests drive.
- :mod:`.worker` — the server's worker over it.
"""

from __future__ import annotations

import json
from typing import Any

#: The ``architectures`` entry of a project model folder's config.json.
ARCHITECTURE = "GroundingGPTForCausalLM"


def register() -> None:
    """vLLM's plugin hook: map the architecture to :class:`~.model.GroundingGPTForVLLM` (lazily,
    by name, so that loading the plugin imports no model code)."""
    from vllm import ModelRegistry

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, "groundinggpt.serve.vllm_engine.model:GroundingGPTForVLLM")


def parse_engine_args(pairs: list[str]) -> dict[str, Any]:
    """``--vllm-arg KEY=VALUE`` options → keyword arguments for vLLM's ``EngineArgs`` (VALUE as
    JSON when it parses, else as text).

    >>> parse_engine_args(["enforce_eager=true", "max_model_len=4096", 'compilation_config={"mode": 0}', "x=a b"])
    {'enforce_eager': True, 'max_model_len': 4096, 'compilation_config': {'mode': 0}, 'x': 'a b'}
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--vllm-arg {pair!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def load_vllm_engine(model: str, **kwargs: Any) -> Any:
    """:meth:`.engine.VLLMEngine.load`, with a clear error when vLLM is not installed."""
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"--engine vllm needs vLLM in this environment ({e}); install it in its own venv "
                         "(see docs/vllm.md), or use the default --engine hf") from None
    from .engine import VLLMEngine

    return VLLMEngine.load(model, **kwargs)
