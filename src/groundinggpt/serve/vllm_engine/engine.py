""":class:`VLLMEngine`: vLLM running a GroundingGPT folder, behind this project's front end.

What the server needs of an engine is kept: ``processor`` (request checks, media limits),
``prepare`` (media decoded and the prompt built by this project, on the media pool's
threads), ``finish`` (the answer cut at its stops, boxes converted to the user's frame,
usage), ``config`` (the context check) and ``make_worker`` (the server's worker:
:class:`~.worker.VLLMWorker`). The model runs in vLLM: the prompt goes as token ids with
one placeholder per medium plus the preprocessed media (:mod:`.prompt`), decoding settings
as ``SamplingParams``; tokens come back as ids and are decoded here, so stop strings,
streaming and the answer's text are exactly the HF path's.

Greedy decoding matches the HF path token for token given equal logits: media placeholder
ids (and the generation config's ``suppress_tokens``) are excluded from sampling as
``GroundingGPTForCausalLM.generate`` excludes them, the stop checks are the same, and a
sampled request uses the generation config's top-k as ``generate`` does (its random draws
are vLLM's, so a seeded sampled answer differs from the HF path's).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ...api import GenerationSettings, GroundingGPT
from ...processor import GroundedOutput, GroundingGPTProcessor
from .prompt import vllm_prompt


def _default_dtype() -> str:
    """As :mod:`groundinggpt.loading`'s ``auto``: bfloat16 on CUDA, float32 on the CPU."""
    import torch

    return "bfloat16" if torch.cuda.is_available() else "float32"


class VLLMEngine:
    """A model folder served by vLLM (see the module doc).

    Args:
        folder: the project model folder vLLM loaded.
        llm: vLLM's ``LLMEngine`` over it.
        processor: the folder's :class:`GroundingGPTProcessor`.
        config: the folder's ``GroundingGPTConfig``.
        generation_config: the folder's generation config (its ``suppress_tokens``, ``top_k``).
    """

    # The API's own request → prompt and ids → answer steps (they use only the processor
    # and, for the context check, ``config``): one code path for both engines.
    prepare = GroundingGPT.prepare
    _check_context = GroundingGPT._check_context
    stop_strings = GroundingGPT.stop_strings
    finish = GroundingGPT.finish

    def __init__(self, folder: str | Path, llm: Any, processor: GroundingGPTProcessor, config: Any,
                 generation_config: Any = None, max_num_seqs: int = 8):
        from vllm import SamplingParams

        from ..row_sampling import sampling_top_k

        self.folder = Path(folder)
        self.llm = llm
        self.processor = processor
        self.config = config
        self.max_num_seqs = max_num_seqs
        self._params = SamplingParams
        suppressed = {getattr(config, m) for m in ("image_token_id", "video_token_id", "audio_token_id")}
        suppressed |= set(getattr(generation_config, "suppress_tokens", None) or [])
        vocab = config.text_config.vocab_size
        self._allowed = [i for i in range(vocab) if i not in suppressed]
        self._top_k = sampling_top_k(generation_config) if generation_config is not None else None
        self._worker: Any = None
        self._tmp: Any = None  # the folder of a preset, removed with the engine

    @classmethod
    def load(cls, model: str | Path, dtype: str = "auto", tensor_parallel_size: int = 1, max_num_seqs: int = 8,
             seed: int = 0, **engine_args: Any) -> VLLMEngine:
        """vLLM over a project model folder, or ``tiny`` (the random-init preset, written to a
        temporary folder first: vLLM loads weights from files).

        Args:
            model: a model folder or ``"tiny"``.
            dtype: ``auto`` (bfloat16 on CUDA, float32 on CPU, as the HF engine), or a torch dtype name.
            tensor_parallel_size: GPUs the LLM is split over.
            max_num_seqs: answers generated at once (the server's ``--max-batch``).
            **engine_args: more of vLLM's ``EngineArgs`` (``max_model_len``,
                ``kv_cache_memory_bytes``, ``enforce_eager`` ...).
        """
        from transformers import GenerationConfig
        from vllm import EngineArgs, LLMEngine

        from ...loading import check_project_folder
        from ...models import GroundingGPTConfig
        from . import register

        register()
        tmp = None
        if str(model) == "tiny":
            from ...presets import build_tiny

            tmp = tempfile.TemporaryDirectory(prefix="groundinggpt-vllm-tiny-")
            tiny_model, tiny_processor = build_tiny(seed=0)
            tiny_model.save_pretrained(tmp.name)
            tiny_processor.save_pretrained(tmp.name)
            folder = Path(tmp.name)
        else:
            folder = Path(check_project_folder(model))
        processor = GroundingGPTProcessor.from_pretrained(folder)
        config = GroundingGPTConfig.from_pretrained(folder)
        try:
            generation_config = GenerationConfig.from_pretrained(folder)
        except OSError:  # a folder without generation_config.json
            generation_config = None
        args = EngineArgs(model=str(folder), tokenizer=str(folder), dtype=_default_dtype() if dtype == "auto" else dtype,
                          tensor_parallel_size=tensor_parallel_size, max_num_seqs=max_num_seqs, seed=seed,
                          **engine_args)
        engine = cls(folder, LLMEngine.from_engine_args(args), processor, config, generation_config,
                     max_num_seqs=max_num_seqs)
        engine._tmp = tmp
        return engine

    # ---- the three calls the worker drives ----------------------------------------------------
    def sampling_params(self, settings: GenerationSettings) -> Any:
        """Our decoding settings as vLLM's ``SamplingParams`` (ids back, no detokenising: the
        worker decodes, checks stop strings and streams as the HF path does)."""
        settings.generate_kwargs()  # the same checks and messages as the HF engine
        sampled = settings.temperature > 0
        return self._params(
            max_tokens=settings.max_new_tokens, temperature=settings.temperature if sampled else 0.0,
            top_p=settings.top_p if sampled else 1.0, top_k=(self._top_k or 0) if sampled else 0,
            presence_penalty=settings.presence_penalty, frequency_penalty=settings.frequency_penalty,
            seed=settings.seed, stop_token_ids=[self.processor.tokenizer.eos_token_id],
            allowed_token_ids=self._allowed, detokenize=False, skip_special_tokens=False)

    def add(self, request_id: str, prepared: Any, settings: GenerationSettings) -> None:
        """Hand one prepared conversation to vLLM."""
        self.llm.add_request(request_id, vllm_prompt(prepared, self.config), self.sampling_params(settings))

    def step(self) -> list[tuple[str, list[int], bool]]:
        """One vLLM engine step: ``(request id, generated ids so far, finished)`` per request that moved."""
        return [(out.request_id, list(out.outputs[0].token_ids), out.finished) for out in self.llm.step()]

    def abort(self, request_id: str) -> None:
        self.llm.abort_request([request_id])

    # ---- front ends ----------------------------------------------------------------------------
    def make_worker(self, max_batch: int = 8, max_queue: int = 64, media_workers: int = 2) -> Any:
        """The worker that drives this engine (``max_batch`` is vLLM's ``max_num_seqs``, fixed at
        load): one per engine, since vLLM's engine is driven from one thread — the server and
        :meth:`generate` share it; a closed one is replaced."""
        from .worker import VLLMWorker

        if self._worker is None or not self._worker.alive:
            self._worker = VLLMWorker(self, max_queue=max_queue, media_workers=media_workers)
        return self._worker

    def generate(self, conversations: list[list[dict[str, Any]]], settings: GenerationSettings | None = None,
                 **overrides: Any) -> list[GroundedOutput]:
        """Answer conversations through vLLM (all submitted at once; vLLM batches them)."""
        settings = settings or GenerationSettings()
        if overrides:
            settings = GenerationSettings(**{**settings.__dict__, **overrides})
        worker = self.make_worker(max_queue=max(64, len(conversations)))
        futures = [worker.submit(c, settings) for c in conversations]
        return [f.result() for f in futures]

    def chat(self, messages: list[dict[str, Any]], **settings: Any) -> GroundedOutput:
        return self.generate([messages], **settings)[0]

    def close(self) -> None:
        """Stop the worker and vLLM's engine core (a child process unless
        ``VLLM_ENABLE_V1_MULTIPROCESSING=0``: left running, it would outlive the server)."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        shutdown = getattr(getattr(self.llm, "engine_core", None), "shutdown", None)
        if callable(shutdown):
            shutdown()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
