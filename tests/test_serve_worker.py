"""The inference worker with a fake engine: batching rules, failure isolation, back-pressure."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from groundinggpt.api import GenerationSettings
from groundinggpt.serve.worker import InferenceWorker, QueueFull

pytestmark = pytest.mark.timeout(60)


class FakeEngine:
    """Echoes each conversation's text; 'boom' fails its whole batch; waits on a gate."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def generate(self, conversations, settings=None, cancel=None):
        self.gate.wait(10)
        texts = [c[-1]["content"] for c in conversations]
        self.calls.append(texts)
        if "boom" in texts:
            raise ValueError("boom")
        return [f"answer to {t}" for t in texts]


def wait_running(future):
    """Until the worker has taken ``future``'s job (it then blocks on the gate)."""
    for _ in range(1000):
        if future.running():
            return
        time.sleep(0.01)
    raise AssertionError("the worker never started the job")


def msg(text):
    return [{"role": "user", "content": text}]


@contextlib.contextmanager
def running(engine, **kwargs):
    """An InferenceWorker for ``engine``, closed afterwards."""
    worker = InferenceWorker(engine, **kwargs)
    try:
        yield worker
    finally:
        worker.close()


def busy(worker, engine, settings, text="hold"):
    """Submit ``text`` and wait until the worker is blocked on it (its gate closed), so
    what is submitted next queues up behind it."""
    engine.gate.clear()
    future = worker.submit(msg(text), settings)
    wait_running(future)
    return future


def test_waiting_greedy_requests_share_a_call_sampled_ones_do_not():
    engine = FakeEngine()
    with running(engine, max_batch=3) as worker:
        engine.gate.clear()  # hold the first call so the others queue up behind it
        greedy = GenerationSettings(max_new_tokens=4)
        first = worker.submit(msg("first"), greedy)
        wait_running(first)
        futures = [worker.submit(msg(f"g{i}"), greedy) for i in range(4)]
        sampled = [worker.submit(msg(f"s{i}"), GenerationSettings(max_new_tokens=4, temperature=1.0, seed=i))
                   for i in range(2)]
        other = worker.submit(msg("longer"), GenerationSettings(max_new_tokens=8))
        engine.gate.set()
        for i, f in enumerate(futures):
            assert f.result(10) == f"answer to g{i}"
        assert other.result(10) == "answer to longer" and first.result(10) == "answer to first"
        assert [f.result(10) for f in sampled] == ["answer to s0", "answer to s1"]
        assert ["g0", "g1", "g2"] in engine.calls and ["g3"] in engine.calls  # max_batch = 3
        assert ["s0"] in engine.calls and ["s1"] in engine.calls and ["longer"] in engine.calls
        assert futures[0].job.batch_size == 3


def test_a_failing_request_does_not_fail_its_batch():
    engine = FakeEngine()
    with running(engine, max_batch=8) as worker:
        s = GenerationSettings(max_new_tokens=4)
        busy(worker, engine, s)
        ok1, bad, ok2 = (worker.submit(msg(t), s) for t in ("a", "boom", "b"))
        engine.gate.set()
        assert ok1.result(10) == "answer to a" and ok2.result(10) == "answer to b"
        with pytest.raises(ValueError, match="boom"):
            bad.result(10)
        assert ["a", "boom", "b"] in engine.calls and ["a"] in engine.calls  # batch, then one by one


def test_queue_limit_raises_queue_full():
    engine = FakeEngine()
    with running(engine, max_batch=1, max_queue=2) as worker:
        engine.gate.clear()
        s = GenerationSettings(max_new_tokens=4)
        hold = worker.submit(msg("hold"), s)
        wait_running(hold)
        waiting = [worker.submit(msg(str(i)), s) for i in range(2)]
        with pytest.raises(QueueFull):
            worker.submit(msg("one too many"), s)
        engine.gate.set()
        assert [f.result(10) for f in waiting] == ["answer to 0", "answer to 1"]


def test_a_broken_engine_never_kills_the_worker():
    class Broken(FakeEngine):
        def generate(self, conversations, settings=None, cancel=None):
            if conversations[0][-1]["content"] == "short":
                return []  # answers missing
            return super().generate(conversations, settings, cancel)

    with running(Broken()) as worker:
        s = GenerationSettings(max_new_tokens=4)
        with pytest.raises(RuntimeError, match="answered 0 of 1"):
            worker.submit(msg("short"), s).result(10)
        assert worker.submit(msg("next"), s).result(10) == "answer to next"


def test_close_fails_what_still_waits():
    engine = FakeEngine()
    worker = InferenceWorker(engine, max_batch=1)
    engine.gate.clear()
    s = GenerationSettings(max_new_tokens=4)
    hold = worker.submit(msg("hold"), s)
    wait_running(hold)
    waiting = worker.submit(msg("late"), GenerationSettings(max_new_tokens=4, temperature=1.0))
    closer = threading.Thread(target=worker.close)
    closer.start()
    engine.gate.set()
    closer.join(10)
    assert hold.result(10) == "answer to hold"
    # "late" was either answered before the stop signal or failed by the shutdown
    assert waiting.done()


class StreamingEngine(FakeEngine):
    """Streams each answer word by word through ``on_text``; 'late-boom' fails after starting."""

    def generate(self, conversations, settings=None, on_text=None, cancel=None):
        self.gate.wait(10)
        texts = [c[-1]["content"] for c in conversations]
        self.calls.append(texts)
        if "boom" in texts:
            raise ValueError("boom")  # before generation: nothing streamed yet
        answers = [f"answer to {t}" for t in texts]
        if on_text is not None:
            for row in range(len(texts)):
                on_text(row, "")
            for row, answer in enumerate(answers):
                for word in answer.split(" "):
                    on_text(row, word + " ")
        if "late-boom" in texts:
            raise ValueError("late boom")
        return answers


def test_streamed_pieces_reach_their_own_request():
    engine = StreamingEngine()
    with running(engine, max_batch=4) as worker:
        s = GenerationSettings(max_new_tokens=4)
        busy(worker, engine, s)
        got: dict[str, list[str]] = {"a": [], "b": []}
        fa = worker.submit(msg("a"), s, on_text=got["a"].append)
        fb = worker.submit(msg("b"), s, on_text=got["b"].append)
        plain = worker.submit(msg("c"), s)  # shares the call without streaming
        engine.gate.set()
        assert [f.result(10) for f in (fa, fb, plain)] == ["answer to a", "answer to b", "answer to c"]
        assert engine.calls[-1] == ["a", "b", "c"]  # one batch
        assert got["a"] == ["", "answer ", "to ", "a "] and got["b"] == ["", "answer ", "to ", "b "]


def test_a_failure_before_streaming_is_retried_alone_but_not_after():
    engine = StreamingEngine()
    with running(engine, max_batch=4) as worker:
        s = GenerationSettings(max_new_tokens=4)
        busy(worker, engine, s)
        pieces: list[str] = []
        good = worker.submit(msg("good"), s, on_text=pieces.append)
        bad = worker.submit(msg("boom"), s)
        engine.gate.set()
        assert good.result(10) == "answer to good"  # retried alone: nothing had been streamed
        assert pieces == ["", "answer ", "to ", "good "]
        with pytest.raises(ValueError, match="boom"):
            bad.result(10)

        busy(worker, engine, s)
        streamed: list[str] = []
        victim = worker.submit(msg("victim"), s, on_text=streamed.append)
        late = worker.submit(msg("late-boom"), s)
        calls_before = len(engine.calls)
        engine.gate.set()
        with pytest.raises(ValueError, match="late boom"):
            victim.result(10)  # its text had gone out: a retry would send it twice
        with pytest.raises(ValueError, match="late boom"):
            late.result(10)
        assert streamed == ["", "answer ", "to ", "victim "]
        assert len(engine.calls) == calls_before + 2  # "hold", then the failed batch; no retries


def test_abandoned_requests_never_run_or_stop_early():
    engine = StreamingEngine()
    with running(engine, max_batch=1) as worker:
        s = GenerationSettings(max_new_tokens=4)
        busy(worker, engine, s)
        gone = worker.submit(msg("gone"), s, on_text=lambda piece: None)
        worker.abandon(gone)  # still waiting: dropped
        engine.gate.set()
        assert worker.submit(msg("next"), s).result(10) == "answer to next"
        assert gone.cancelled() and ["gone"] not in engine.calls
    seen = {}

    class Recording(StreamingEngine):
        def generate(self, conversations, settings=None, on_text=None, cancel=None):
            seen["cancel"] = cancel
            return super().generate(conversations, settings, on_text, cancel)

    with running(Recording()) as worker:
        f = worker.submit(msg("x"), GenerationSettings(max_new_tokens=4), on_text=lambda piece: None)
        f.result(10)
        assert seen["cancel"] == [f.job.abandoned]  # the row's stop signal reaches the engine
        worker.abandon(f)  # after the answer: harmless
        assert f.job.abandoned.is_set() and f.result(1) == "answer to x"
