"""One inference thread in front of the model, with micro-batching.

The model is not thread-safe and one CPU/GPU is shared, so every request goes
through a queue to a single thread. Requests that wait while the model is busy are
answered together by one ``GroundingGPT.generate`` call when they can be:

- only greedy requests (``temperature == 0``) are batched — a sampled request runs
  alone so that its ``seed`` gives the same answer as when sent alone;
- only requests with the same ``max_new_tokens`` and ``stop`` share a call;
- if a batch fails (one request's medium cannot be decoded, say), each request is
  retried alone, so one bad request never fails its neighbours — except a request
  whose answer had started streaming (a retry would send its text twice).

A request may stream: its ``on_text(piece)`` is called on this thread with ``""`` when
generation starts, then with each settled piece of the answer (see
:mod:`groundinggpt.streaming`); the future still gets the whole output. A streamed
request whose client leaves is :meth:`~InferenceWorker.abandon`-ed: its row stops at the
next token instead of running to ``max_tokens``. The same holds for a non-streamed
request whose client disconnects while it waits (every row gets its stop signal).

Left padding makes a batched greedy answer equal to the same request sent alone
(checked by the serve tests).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..api import GenerationSettings

log = logging.getLogger("groundinggpt.serve")


class QueueFull(RuntimeError):
    """More requests are waiting than the server accepts."""


@dataclass
class Job:
    messages: list[dict[str, Any]]
    settings: GenerationSettings
    on_text: Callable[[str], None] | None = None
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)
    started: float = 0.0
    batch_size: int = 0
    streamed: bool = False  # generation started and on_text was told
    abandoned: threading.Event = field(default_factory=threading.Event)  # its client left
    prepared: Any = None  # its model inputs, once the media pool prepared them (continuous scheduler)

    @property
    def key(self) -> tuple | None:
        """Requests with equal non-None keys may share a ``generate`` call."""
        s = self.settings
        return None if s.temperature > 0 else (s.max_new_tokens, tuple(s.stop))


_STOP = object()


class InferenceWorker:
    """Runs ``engine.generate`` on one thread; :meth:`submit` returns a future per request.

    Args:
        engine: a :class:`~groundinggpt.api.GroundingGPT`.
        max_batch: the most requests one ``generate`` call answers (1 disables batching).
        max_queue: the most requests waiting; :meth:`submit` raises :class:`QueueFull` beyond.
    """

    def __init__(self, engine: Any, max_batch: int = 8, max_queue: int = 64):
        self.engine = engine
        self.max_batch = max(1, max_batch)
        self.max_queue = max_queue
        self._queue: queue.Queue = queue.Queue()
        self._pending: deque = deque()
        self._thread = threading.Thread(target=self._run, name="groundinggpt-inference", daemon=True)
        self._thread.start()

    def submit(self, messages: list[dict[str, Any]], settings: GenerationSettings,
               on_text: Callable[[str], None] | None = None) -> Future:
        """Queue one conversation; ``on_text`` (optional) streams its answer (see above)."""
        if self._queue.qsize() + len(self._pending) >= self.max_queue:
            raise QueueFull(f"{self.max_queue} requests are already waiting")
        job = Job(messages, settings, on_text)
        job.future.job = job  # lets the caller log queue wait and batch size
        self._queue.put(job)
        return job.future

    def abandon(self, future: Future) -> None:
        """The client is gone: drop the request if it still waits, or end its answer at the
        next token if it is being generated (its batch-mates go on)."""
        future.cancel()
        future.job.abandoned.set()

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # ---- the inference thread -------------------------------------------------------------
    def _next_batch(self) -> list[Job] | None:
        if not self._pending:
            self._pending.append(self._queue.get())
        while True:  # everything that arrived meanwhile may join
            try:
                self._pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        first = self._pending.popleft()
        if first is _STOP:
            return None
        batch, rest = [first], deque()
        for job in self._pending:
            if job is not _STOP and first.key is not None and job.key == first.key and len(batch) < self.max_batch:
                batch.append(job)
            else:
                rest.append(job)  # keeps arrival order for the next rounds
        self._pending = rest
        return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                break
            live = [j for j in batch if j.future.set_running_or_notify_cancel()]  # skips cancelled ones
            try:
                if live:
                    self._execute(live)
            except Exception as e:  # noqa: BLE001 - this thread must outlive any request
                log.exception("inference worker error")
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(e)
        while True:  # closing: nobody will answer what still waits
            try:
                self._pending.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for job in self._pending:
            if job is not _STOP and not job.future.done():
                job.future.set_exception(RuntimeError("server shutting down"))

    def _execute(self, batch: list[Job]) -> None:
        start = time.perf_counter()
        for job in batch:
            job.started, job.batch_size = start, len(batch)
        # Every row gets its stop signal, streamed or not: a client that left stops its row.
        extra: dict[str, Any] = {"cancel": [j.abandoned for j in batch]}
        if any(j.on_text is not None for j in batch):
            def route(row: int, piece: str) -> None:
                job = batch[row]
                job.streamed = True
                if job.on_text is not None:
                    job.on_text(piece)

            extra["on_text"] = route
        try:
            outputs = self.engine.generate([j.messages for j in batch], batch[0].settings, **extra)
            if len(outputs) != len(batch):
                raise RuntimeError(f"the engine answered {len(outputs)} of {len(batch)} conversations")
        except Exception as e:  # noqa: BLE001 - every failure goes back to its request
            if len(batch) == 1:
                batch[0].future.set_exception(e)
                return
            log.info("batch of %d failed (%s); answering its requests one by one", len(batch), e)
            for job in batch:
                if job.streamed:
                    job.future.set_exception(e)
                else:
                    self._execute([job])
            return
        for job, out in zip(batch, outputs, strict=True):
            job.future.set_result(out)
        log.debug("generated a batch of %d in %.3fs", len(batch), time.perf_counter() - start)


SCHEDULERS = ("continuous", "static")


def make_worker(engine: Any, scheduler: str = "continuous", max_batch: int = 8, max_queue: int = 64,
                media_workers: int = 2) -> Any:
    """The server's inference worker.

    ``continuous`` (default): :class:`~.continuous.ContinuousWorker` — media prepared by a
    thread pool, rows joining and leaving the running batch between tokens. It drives the
    engine's model itself, so an engine that replaces ``GroundingGPT.generate`` (a scripted
    test engine, a wrapper) is answered through its own ``generate`` by the static batcher;
    so is a model whose generation config asks for beam search, which only ``generate`` does.
    ``static``: :class:`InferenceWorker`, the micro-batcher above (the baseline of
    ``bench/serve_load.py``). An engine with its own ``make_worker`` (the vLLM engine,
    which does its own scheduling) gets its own worker whatever the scheduler.
    """
    from ..api import GroundingGPT

    own = getattr(engine, "make_worker", None)
    if callable(own):  # an engine that schedules itself (the vLLM engine)
        return own(max_batch=max_batch, max_queue=max_queue, media_workers=media_workers)
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    own_generate = isinstance(engine, GroundingGPT) and type(engine).generate is GroundingGPT.generate
    beams = (getattr(getattr(engine, "model", None), "generation_config", None) and
             engine.model.generation_config.num_beams) or 1
    if scheduler == "continuous" and beams > 1:
        log.info("the generation config asks for beam search (num_beams=%d): static scheduler", beams)
    if scheduler == "continuous" and own_generate and beams == 1:
        from .continuous import ContinuousWorker

        return ContinuousWorker(engine, max_batch=max_batch, max_queue=max_queue, media_workers=media_workers)
    return InferenceWorker(engine, max_batch=max_batch, max_queue=max_queue)
