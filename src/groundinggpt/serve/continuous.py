"""The server's default scheduler: media prepared by a pool, answers continuously batched.

Each request goes first to the :class:`~.media_pool.MediaPool` (decoding, preprocessing,
prompt checks on worker threads); once prepared it waits for a free row of the
:class:`~.running_batch.RunningBatch`, which the one inference thread advances a token at
a time. Between two steps the thread admits the prepared requests that fit
(``max_batch`` rows in all) and retires the finished ones, whose futures then complete:
a short answer no longer waits for the longest one of its batch, a new request no longer
waits for the whole batch, and a slow video no longer holds up the model.

It keeps the interface and the guarantees of the static micro-batcher
(:class:`~.worker.InferenceWorker`): a future per request, ``on_text`` streaming (``""``
once the prompt and its media went through the model, then settled pieces), ``abandon``
for a client that left (its row ends at the next token), ``QueueFull`` beyond
``max_queue`` waiting requests, one request's failure (its media, its prefill) never
failing another, greedy answers equal to the request's answer alone — and sampled ones,
each row drawing from its own generator seeded with its ``seed``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..api import GenerationSettings
from .media_pool import MediaPool
from .running_batch import Row, RunningBatch
from .worker import Job, QueueFull

log = logging.getLogger("groundinggpt.serve")

_STOP = object()


class ContinuousWorker:
    """Answers requests with continuous batching; :meth:`submit` returns a future per request.

    Args:
        engine: a :class:`~groundinggpt.api.GroundingGPT` (its ``prepare``, model and ``finish``).
        max_batch: the most answers generated at once (rows of the running batch).
        max_queue: the most requests waiting (being prepared or for a row); beyond,
            :meth:`submit` raises :class:`QueueFull`.
        media_workers: threads preparing requests (decoding their media) at once.
    """

    def __init__(self, engine: Any, max_batch: int = 8, max_queue: int = 64, media_workers: int = 2):
        self.engine = engine
        self.max_batch = max(1, max_batch)
        self.max_queue = max_queue
        self.pool = MediaPool(engine.prepare, workers=media_workers)
        self._ready: queue.Queue = queue.Queue()  # prepared jobs, in the order they became ready
        self._lock = threading.Lock()
        self._open: dict[int, Job] = {}  # submitted and not yet answered, by id
        self._waiting = 0              # of which not yet given a row
        self._thread = threading.Thread(target=self._run, name="groundinggpt-inference", daemon=True)
        self._thread.start()

    # ---- the callers' side ----------------------------------------------------------------
    def submit(self, messages: list[dict[str, Any]], settings: GenerationSettings,
               on_text: Callable[[str], None] | None = None) -> Future:
        """Queue one conversation; ``on_text`` (optional) streams its answer."""
        job = Job(messages, settings, on_text)
        job.future.job = job  # lets the caller log queue wait and batch size
        try:
            settings.generate_kwargs()  # bad settings fail their request, as generate() would
        except ValueError as e:
            job.future.set_exception(e)
            return job.future
        with self._lock:
            if self._waiting >= self.max_queue:
                raise QueueFull(f"{self.max_queue} requests are already waiting")
            self._waiting += 1
            self._open[id(job)] = job
        job.future.add_done_callback(lambda _: self._forget(job))
        self.pool.submit(messages, lambda prepared, error: self._prepared(job, prepared, error),
                         skip=job.future.cancelled)
        return job.future

    def abandon(self, future: Future) -> None:
        """The client is gone: drop the request if it still waits, or end its answer at the
        next token if it is being generated (the other rows go on)."""
        future.cancel()
        future.job.abandoned.set()

    def close(self, timeout: float = 5.0) -> None:
        self._ready.put(_STOP)
        self._thread.join(timeout)
        self.pool.close()
        with self._lock:
            left = list(self._open.values())
        for job in left:  # nobody will answer what still waits
            _fail(job, RuntimeError("server shutting down"))

    def _forget(self, job: Job) -> None:
        with self._lock:
            self._open.pop(id(job), None)

    def _settled(self) -> None:
        with self._lock:
            self._waiting -= 1

    def _prepared(self, job: Job, prepared: Any, error: BaseException | None) -> None:
        """On a media-pool thread: the request is ready for a row, or failed (its media)."""
        if prepared is None:
            self._settled()
            if error is None:  # skipped: cancelled before it was prepared
                job.future.cancel()
            elif job.future.set_running_or_notify_cancel():
                job.future.set_exception(error)
            return
        job.prepared = prepared
        self._ready.put(job)

    # ---- the inference thread -------------------------------------------------------------
    def _take_ready(self, block: bool) -> list[Any]:
        """Every prepared request (or stop signal) queued so far; first waits for one if ``block``."""
        items = []
        try:
            items.append(self._ready.get(block=block))
            while True:
                items.append(self._ready.get_nowait())
        except queue.Empty:
            pass
        return items

    def _run(self) -> None:
        batch = RunningBatch(self.engine)
        waiting: deque[Job] = deque()
        stopping = False
        while not stopping:
            # wait only when there is nothing to do; then take everything that is ready
            for item in self._take_ready(block=not batch.rows and not waiting):
                if item is _STOP:
                    stopping = True
                else:
                    waiting.append(item)
            if stopping:
                break
            self._admit(batch, waiting)
            if batch.rows:
                self._step(batch)
        for row in batch.fail_all():
            _fail(row.tag, RuntimeError("server shutting down"))
        for job in waiting:
            self._settled()
            _fail(job, RuntimeError("server shutting down"))

    def _admit(self, batch: RunningBatch, waiting: deque[Job]) -> None:
        jobs = []
        while waiting and len(batch) + len(jobs) < self.max_batch:
            job = waiting.popleft()
            self._settled()
            if job.future.set_running_or_notify_cancel():  # skips requests cancelled while waiting
                jobs.append(job)
        if not jobs:
            return
        start = time.perf_counter()
        try:
            self._finish(batch, batch.admit([self._row(j) for j in jobs]))
        except Exception as e:  # noqa: BLE001 - one request's prefill must not fail the others
            if len(jobs) == 1:
                _fail(jobs[0], e)
                return
            log.info("prefill of %d requests failed (%s); admitting them one by one", len(jobs), e)
            for job in jobs:
                try:
                    self._finish(batch, batch.admit([self._row(job)]))
                except Exception as e1:  # noqa: BLE001
                    _fail(job, e1)
        for job in jobs:
            job.started, job.batch_size = start, len(batch)

    def _row(self, job: Job) -> Row:
        on_text = None
        if job.on_text is not None:
            def on_text(piece: str, job: Job = job) -> None:
                job.streamed = True
                job.on_text(piece)
        return Row(job.prepared, job.settings, on_text=on_text, cancel=job.abandoned, tag=job)

    def _step(self, batch: RunningBatch) -> None:
        try:
            finished = batch.step()
        except Exception as e:  # noqa: BLE001 - this thread must outlive any request
            log.exception("inference step failed")
            for row in batch.fail_all():
                _fail(row.tag, e)
            return
        self._finish(batch, finished)

    @staticmethod
    def _finish(batch: RunningBatch, rows: list[Row]) -> None:
        for row in rows:
            try:
                output = batch.output(row)
            except Exception as e:  # noqa: BLE001 - goes back to its request
                _fail(row.tag, e)
            else:
                if not row.tag.future.done():
                    row.tag.future.set_result(output)


def _fail(job: Job, error: BaseException) -> None:
    if not job.future.done():
        try:
            job.future.set_exception(error)
        except Exception:  # noqa: BLE001 - cancelled or answered meanwhile
            pass
