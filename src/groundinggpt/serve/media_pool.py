"""Media decoding and preprocessing on a few worker threads, off the inference thread.

Decoding a long video takes seconds of CPU. Done on the one inference thread (as the
static micro-batcher does), it stops every other answer for that long: one request with a
1-minute 720p video raised the latency of image requests overlapping it from ~0.1 s to
~3.6 s. Here each request is prepared (:meth:`GroundingGPT.prepare`: media decoded,
resized, tokenised, prompt length checked) by a small pool of threads while the inference
thread keeps generating; a request joins the running batch only once it is prepared.

The pool is bounded (``workers`` threads; the worker's ``max_queue`` bounds what waits for
them) and its threads run at a lower scheduling priority (``nice``, Linux: per thread), so
on a machine with few cores the decoding of a long video takes the CPU the model leaves
idle rather than slowing every token of the answers being generated. PyAV, Pillow and
torch release the GIL while they decode and resize, so threads run in parallel with the
model; no process pool (and no copy of the decoded frames between processes) is needed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger("groundinggpt.serve")


def _lower_priority(nice: int) -> None:
    """Raise this thread's nice value by ``nice`` (Linux schedules threads one by one)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
    except OSError as e:  # not permitted or not supported: decoding still works, only at equal priority
        log.debug("media worker keeps its priority (%s)", e)


class MediaPool:
    """Runs ``prepare(conversation_list)`` for requests on ``workers`` threads.

    Args:
        prepare: what prepares one request (``GroundingGPT.prepare``).
        workers: threads decoding at once.
        nice: how much lower than the server the threads' priority is (0 keeps it).
    """

    def __init__(self, prepare: Callable[[list[Any]], Any], workers: int = 2, nice: int = 5):
        self.prepare = prepare
        self.workers = max(1, workers)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="groundinggpt-media",
                                            initializer=_lower_priority, initargs=(nice,))

    def submit(self, messages: list[dict[str, Any]], done: Callable[[Any, BaseException | None], None],
               skip: Callable[[], bool] | None = None) -> Future:
        """Prepare one conversation; ``done(prepared, None)`` or ``done(None, error)`` is then
        called on the pool's thread — or ``done(None, None)`` if ``skip()`` is true when a
        thread takes it (its client left while it waited)."""
        def run() -> None:
            if skip is not None and skip():
                done(None, None)
                return
            try:
                prepared = self.prepare([messages])
            except Exception as e:  # noqa: BLE001 - the request's failure goes back to the request
                done(None, e)
                return
            done(prepared, None)

        return self._executor.submit(run)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
