"""The server's worker when vLLM is the engine: same interface as the continuous worker.

vLLM schedules (continuous batching over a paged KV cache, chunked prefill, tensor
parallelism); this worker only feeds it and reads it back, keeping every guarantee the
HTTP layer relies on (:class:`~groundinggpt.serve.continuous.ContinuousWorker`): a future
per request, media prepared off the inference thread by the
:class:`~groundinggpt.serve.media_pool.MediaPool`, ``on_text`` streaming (``""`` once the
request's prompt went through, then settled pieces, boxes whole and converted), stop
strings and the template's stops found on the token ids as the HF path finds them, a
client that left ending its answer at the next token, ``QueueFull`` beyond ``max_queue``
waiting requests, and one request's failure never failing another.

The engine (:class:`~.engine.VLLMEngine`) is driven from one thread through three calls:
``add(request_id, prepared, settings)``, ``step()`` → ``[(request_id, token_ids, finished)]``
(token ids so far) and ``abort(request_id)``.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ...stopping import TailStopMatcher
from ...streaming import AnswerStream
from ..continuous import _STOP, ContinuousWorker, _fail
from ..worker import Job

log = logging.getLogger("groundinggpt.serve")


@dataclass(eq=False)
class _Answer:
    """A request vLLM is answering, and what was read back of it so far."""

    job: Job
    stops: TailStopMatcher
    stream: AnswerStream | None
    ids: list[int] = field(default_factory=list)


class VLLMWorker(ContinuousWorker):
    """Answers requests through a vLLM engine; :meth:`submit` returns a future per request.

    The callers' side (``submit``, ``abandon``, ``close``, the media pool, ``QueueFull``) is
    the continuous worker's; the inference thread drives vLLM instead of a running batch.

    Args:
        engine: a :class:`~.engine.VLLMEngine` (``prepare`` / ``finish`` / ``stop_strings``
            and the three calls above).
        max_queue: the most requests waiting to be handed to vLLM; beyond,
            :meth:`submit` raises :class:`~groundinggpt.serve.worker.QueueFull` (vLLM's own ``max_num_seqs``
            bounds the rows running at once).
        media_workers: threads preparing requests (decoding their media) at once.
    """

    def __init__(self, engine: Any, max_queue: int = 64, media_workers: int = 2):
        self._ids = itertools.count()  # before the thread starts (the base class starts it)
        super().__init__(engine, max_queue=max_queue, media_workers=media_workers)

    @property
    def alive(self) -> bool:
        """Its inference thread runs (not closed)."""
        return self._thread.is_alive()

    # ---- the inference thread -------------------------------------------------------------
    def _run(self) -> None:
        running: dict[str, _Answer] = {}
        stopping = False
        while not stopping:
            for item in self._take_ready(block=not running):  # waits only when vLLM has nothing to do
                if item is _STOP:
                    stopping = True
                    continue
                self._settled()
                if stopping:
                    _fail(item, RuntimeError("server shutting down"))
                else:
                    self._add(item, running)
            if running and not stopping:
                self._step(running)
        for rid, answer in running.items():
            self._abort(rid)
            _fail(answer.job, RuntimeError("server shutting down"))
        for item in self._take_ready(block=False):
            if item is not _STOP:
                self._settled()
                _fail(item, RuntimeError("server shutting down"))

    def _add(self, job: Job, running: dict[str, _Answer]) -> None:
        if not job.future.set_running_or_notify_cancel():
            return  # cancelled while it waited
        rid = f"gg-{next(self._ids)}"
        try:
            self.engine.add(rid, job.prepared, job.settings)
        except Exception as e:  # noqa: BLE001 - the request's failure (its prompt, its media) goes back to it
            _fail(job, e)
            return
        job.started, job.batch_size = time.perf_counter(), len(running) + 1
        processor = self.engine.processor
        stream = AnswerStream(processor, job.prepared.media_info[0], job.settings.stop) if job.on_text else None
        running[rid] = _Answer(job, TailStopMatcher(processor.tokenizer, self.engine.stop_strings(job.settings)),
                               stream)

    def _step(self, running: dict[str, _Answer]) -> None:
        try:
            outputs = self.engine.step()
        except Exception as e:  # noqa: BLE001 - this thread must outlive any request
            log.exception("vLLM step failed")
            for rid, answer in list(running.items()):
                self._abort(rid)
                _fail(answer.job, e)
            running.clear()
            return
        for rid, token_ids, finished in outputs:
            answer = running.get(rid)
            if answer is None:
                continue
            done = self._read(answer, token_ids) or finished
            if done:
                del running[rid]
                if not finished:
                    self._abort(rid)
                self._complete(answer)

    def _read(self, answer: _Answer, token_ids: list[int]) -> bool:
        """Take the new tokens; True once the answer is over on our side (as the HF path decides)."""
        job = answer.job
        if answer.stream is not None and not job.streamed:
            job.streamed = True
            job.on_text("")  # the prompt and its media went through the model
        eos = self.engine.processor.tokenizer.eos_token_id
        for token in token_ids[len(answer.ids):]:
            answer.ids.append(token)
            if answer.stream is not None:
                piece = answer.stream.push(token)
                if piece:
                    job.on_text(piece)
            if (token == eos or len(answer.ids) >= job.settings.max_new_tokens or job.abandoned.is_set()
                    or answer.stops.hit(answer.ids)):
                return True
        return job.abandoned.is_set()

    def _complete(self, answer: _Answer) -> None:
        job, p = answer.job, answer.job.prepared
        try:
            output = self.engine.finish(answer.ids, p.media_info[0], p.prompt_lengths[0], job.settings)
        except Exception as e:  # noqa: BLE001
            _fail(job, e)
            return
        if not job.future.done():
            job.future.set_result(output)

    def _abort(self, rid: str) -> None:
        try:
            self.engine.abort(rid)
        except Exception:  # noqa: BLE001 - already finished on vLLM's side
            log.debug("abort of %s ignored", rid, exc_info=True)

