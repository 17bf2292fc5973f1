"""The continuous path honours the generation config's processors as ``generate`` does,
and both paths apply OpenAI's presence / frequency penalties alike.

For each option the model's generation config can set (repetition penalty, n-gram blocking,
banned words, a minimum length, min-p, typical-p, top-k), rows of a running batch that
join at different steps must give, token for token, the answers ``GroundingGPT.generate``
gives each conversation alone — and the option must change those answers, or the
comparison would show nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch

from groundinggpt.api import GenerationSettings
from groundinggpt.penalties import PresenceFrequencyPenalty, request_processors
from groundinggpt.serve.running_batch import Row, RunningBatch
from groundinggpt.serve.worker import InferenceWorker, make_worker

from test_serve_continuous import CONVS as SERVE_CONVS
from test_serve_continuous import gg  # noqa: F401 - the chatty tiny model, one per module

pytestmark = pytest.mark.timeout(600)

CONVS = SERVE_CONVS[:3]  # text, an image, a long text
GREEDY = [GenerationSettings(max_new_tokens=n) for n in (16, 12, 20)]
SAMPLED = [GenerationSettings(max_new_tokens=n, temperature=0.9, top_p=0.95, seed=s) for n, s in ((16, 1), (12, 2), (20, 3))]

LONG = [GenerationSettings(max_new_tokens=24)] * 3


@contextlib.contextmanager
def generation_config(model, **options):
    config = model.generation_config
    before = {k: getattr(config, k) for k in options}
    for k, v in options.items():
        setattr(config, k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            setattr(config, k, v)


def continuous_answers(gg, settings):
    """Rows 0 and 1 start together; row 2 joins three tokens later."""
    batch = RunningBatch(gg)
    rows = [Row(gg.prepare([c]), s) for c, s in zip(CONVS, settings)]
    outputs = {}

    def collect(finished):
        for row in finished:
            outputs[rows.index(row)] = batch.output(row)

    collect(batch.admit(rows[:2]))
    for step in range(200):
        if step == 3:
            collect(batch.admit([rows[2]]))
        elif not batch.rows and step > 3:
            break
        if batch.rows:
            collect(batch.step())
    assert sorted(outputs) == [0, 1, 2]
    return [outputs[i] for i in range(3)], rows


def answers_alone(gg, settings):
    return [gg.generate([c], s)[0] for c, s in zip(CONVS, settings)]


@pytest.fixture(scope="module")
def plain(gg):
    """The answers without any option, per settings list."""
    cache = {}

    def get(settings):
        k = id(settings)
        if k not in cache:
            cache[k] = answers_alone(gg, settings)
        return cache[k]
    return get


def key(out):
    return out.text, out.completion_tokens, out.finish_reason


CASES = {
    "repetition_penalty": (GREEDY, {"repetition_penalty": 1.8}),
    "no_repeat_ngram_size": (GREEDY, {"no_repeat_ngram_size": 1}),
    "min_new_tokens": (LONG, {"min_new_tokens": 16}),
    "sampled repetition_penalty + min_p": (SAMPLED, {"repetition_penalty": 1.5, "min_p": 0.2}),
    "sampled typical_p + top_k": (SAMPLED, {"typical_p": 0.6, "top_k": 4}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_running_batch_applies_the_generation_config_like_generate(gg, plain, case):
    settings, options = CASES[case]
    before = plain(settings)
    with generation_config(gg.model, **options):
        alone = answers_alone(gg, settings)
        together, rows = continuous_answers(gg, settings)
    assert [key(o) for o in alone] != [key(o) for o in before], f"{case} does not change these answers"
    assert [key(o) for o in together] == [key(o) for o in alone]
    assert not any(row.sampler.plain for row in rows)  # these rows went through their processor lists


def test_banned_words_are_never_generated(gg, plain):
    tok = gg.processor.tokenizer
    before = plain(GREEDY)
    first = [tok(o.text, add_special_tokens=False).input_ids for o in before]
    banned = sorted({ids[0] for ids in first if ids})  # each answer's first token, banned
    with generation_config(gg.model, bad_words_ids=[[t] for t in banned]):
        alone = answers_alone(gg, GREEDY)
        together, _ = continuous_answers(gg, GREEDY)
    assert [key(o) for o in together] == [key(o) for o in alone] != [key(o) for o in before]


def test_plain_greedy_rows_share_the_fast_path(gg):
    _, rows = continuous_answers(gg, GREEDY)
    assert all(row.sampler.plain for row in rows)
    _, rows = continuous_answers(gg, SAMPLED)
    assert not any(row.sampler.plain for row in rows)


def test_beam_search_in_the_generation_config_keeps_the_static_batcher(gg):
    with generation_config(gg.model, num_beams=2):
        worker = make_worker(gg, "continuous")
        try:
            assert isinstance(worker, InferenceWorker)  # only generate does beam search
        finally:
            worker.close()


def test_presence_and_frequency_penalties_count_the_answer_only():
    ids = torch.tensor([[5, 6, 7, 7, 8]])  # prompt 5 6, answer 7 7 8
    scores = PresenceFrequencyPenalty(presence=0.5, frequency=0.25, prompt_length=2)(ids, torch.zeros(1, 10))
    expected = torch.zeros(10)
    expected[7], expected[8] = -(2 * 0.25 + 0.5), -(0.25 + 0.5)
    assert torch.equal(scores[0], expected)
    assert request_processors(0.0, 0.0, 2) is None
    with pytest.raises(ValueError, match="frequency_penalty must be between -2 and 2"):
        GenerationSettings(frequency_penalty=2.5).generate_kwargs()


@pytest.mark.parametrize("sampled, presence, frequency", [(False, 1.5, 1.0), (True, -2.0, -2.0)])
def test_openai_penalties_give_the_same_answers_on_both_paths(gg, plain, sampled, presence, frequency):
    """(Sampled: negative penalties, which make repeats likely, so the draws surely change.)"""
    base = SAMPLED if sampled else GREEDY
    settings = [dataclasses.replace(s, presence_penalty=presence, frequency_penalty=frequency) for s in base]
    alone = answers_alone(gg, settings)
    together, rows = continuous_answers(gg, settings)
    assert [key(o) for o in alone] != [key(o) for o in plain(base)], "the penalties do not change these answers"
    assert [key(o) for o in together] == [key(o) for o in alone]
    assert not any(row.sampler.plain for row in rows)
