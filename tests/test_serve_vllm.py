"""vLLM as the engine (``groundinggpt serve --engine vllm``).

The prompt conversion and the worker's reading of vLLM's outputs run everywhere; the
end-to-end checks (greedy answers equal to the HF path's, token for token, for text,
image, video and audio prompts, and through the HTTP server) need vLLM, which is not a
dependency of this project: they skip with the reason when it is not importable (its own
venv, see docs/vllm.md).
"""

from __future__ import annotations

import os
import time

import pytest
import torch

from groundinggpt.api import GenerationSettings, PreparedBatch
from groundinggpt.serve.vllm_engine.prompt import collapse_placeholders, placeholder_layout, vllm_prompt


# ---- the prompt vLLM gets (no vLLM needed) -----------------------------------------------------
def test_collapse_keeps_text_and_turns_each_medium_into_one_placeholder():
    layout = {7: ("image", 3), 8: ("audio", 2)}
    ids = [1, 7, 7, 7, 7, 7, 7, 5, 8, 8, 6, 7, 7, 7]
    assert collapse_placeholders(ids, layout) == [1, 7, 7, 5, 8, 6, 7]
    with pytest.raises(ValueError, match="2 image placeholders at position 1: not whole media of 3"):
        collapse_placeholders([1, 7, 7, 2], layout)


def test_vllm_prompt_from_the_processor_output(tiny, image_path, audio_path):
    model, processor = tiny
    conv = [{"role": "user", "content": [{"type": "image", "image": str(image_path)},
                                         {"type": "audio", "audio": str(audio_path)},
                                         {"type": "text", "text": "Where is the sound?"}]}]
    batch = processor([conv], add_generation_prompt=True, padding_side="left")
    info = batch.pop("media_info")
    prepared = PreparedBatch(dict(batch), info, [int(batch["attention_mask"].sum())])
    prompt = vllm_prompt(prepared, model.config)
    ids = batch["input_ids"][0].tolist()
    c = model.config
    layout = placeholder_layout(c)
    assert layout[c.image_token_id] == ("image", c.image_seq_length)
    assert prompt["prompt_token_ids"].count(c.image_token_id) == 1
    assert prompt["prompt_token_ids"].count(c.audio_token_id) == 1
    # Expanding each placeholder back gives the HF prompt exactly.
    expanded = []
    for token in prompt["prompt_token_ids"]:
        expanded += [token] * (layout[token][1] if token in layout else 1)
    assert expanded == ids
    assert set(prompt["multi_modal_data"]) == {"image", "audio"}
    assert torch.equal(prompt["multi_modal_data"]["image"][0], batch["pixel_values"][0])
    assert torch.equal(prompt["multi_modal_data"]["audio"][0], batch["input_features"][0])


# ---- the worker over a scripted engine (no vLLM needed) -----------------------------------------
class ScriptedVLLM:
    """Answers every request with ``script`` one token per step, as vLLM's ``step`` reports them."""

    def __init__(self, gg, script):
        self.gg, self.script = gg, script
        self.processor = gg.processor
        self.prepare, self.finish, self.stop_strings = gg.prepare, gg.finish, gg.stop_strings
        self.running, self.aborted = {}, []

    def add(self, rid, prepared, settings):
        self.running[rid] = 0

    def step(self):
        out = []
        for rid in list(self.running):
            self.running[rid] += 1
            n = self.running[rid]
            finished = n >= len(self.script)
            out.append((rid, self.script[:n], finished))
            if finished:
                del self.running[rid]
        time.sleep(0.001)
        return out

    def abort(self, rid):
        self.aborted.append(rid)
        self.running.pop(rid, None)


@pytest.fixture
def gg(tiny):
    from groundinggpt.api import GroundingGPT

    model, processor = tiny
    return GroundingGPT(model, processor)


def _ask(text):
    return [{"role": "user", "content": [{"type": "text", "text": text}]}]


def test_worker_streams_and_stops_on_a_stop_string_like_the_hf_path(gg):
    from groundinggpt.serve.vllm_engine.worker import VLLMWorker

    tok = gg.processor.tokenizer
    script = tok.encode("the cat END and more", add_special_tokens=False)
    engine = ScriptedVLLM(gg, script)
    worker = VLLMWorker(engine, media_workers=1)
    try:
        pieces = []
        out = worker.submit(_ask("hi"), GenerationSettings(max_new_tokens=50, stop=("END",)),
                            on_text=pieces.append).result(timeout=60)
        assert out.text == "the cat"
        assert out.finish_reason == "stop"
        assert pieces[0] == "" and "".join(pieces) == out.text[:len("".join(pieces))]
        assert engine.aborted  # stopped on our side: vLLM is told to drop the request
        short = worker.submit(_ask("hi"), GenerationSettings(max_new_tokens=2)).result(timeout=60)
        assert short.completion_tokens == 2 and short.finish_reason == "length"
    finally:
        worker.close()


def test_worker_fails_only_the_request_whose_add_fails(gg):
    from groundinggpt.serve.vllm_engine.worker import VLLMWorker

    engine = ScriptedVLLM(gg, gg.processor.tokenizer.encode("ok", add_special_tokens=False))
    real_add = engine.add

    def add(rid, prepared, settings):
        if settings.max_new_tokens == 3:
            raise ValueError("refused by vLLM")
        real_add(rid, prepared, settings)

    engine.add = add
    worker = VLLMWorker(engine, media_workers=1)
    try:
        bad = worker.submit(_ask("a"), GenerationSettings(max_new_tokens=3))
        good = worker.submit(_ask("b"), GenerationSettings(max_new_tokens=4))
        with pytest.raises(ValueError, match="refused by vLLM"):
            bad.result(timeout=60)
        assert good.result(timeout=60).text == "ok"
    finally:
        worker.close()


def test_engine_vllm_without_vllm_says_what_to_do():
    from groundinggpt.serve.vllm_engine import load_vllm_engine

    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vLLM is installed here")
    with pytest.raises(SystemExit, match="--engine vllm needs vLLM in this environment.*docs/vllm.md"):
        load_vllm_engine("tiny")


def test_vllm_arg_options_are_key_equals_json_or_text():
    from groundinggpt.serve.vllm_engine import parse_engine_args

    assert parse_engine_args(["kv_cache_memory_bytes=1048576", "tokenizer_mode=slow"]) == {
        "kv_cache_memory_bytes": 1048576, "tokenizer_mode": "slow"}
    with pytest.raises(SystemExit, match="--vllm-arg 'enforce_eager': expected KEY=VALUE"):
        parse_engine_args(["enforce_eager"])


# ---- end to end through vLLM ----------------------------------------------------------------
def _vllm_or_skip():
    try:
        import vllm  # noqa: F401
    except Exception as e:  # noqa: BLE001 - not installed, or installed against another torch
        pytest.skip(f"vLLM is not importable here ({type(e).__name__}: {e}); it lives in its own venv "
                    "(docs/vllm.md)")


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """The tiny model saved once, loaded by the HF engine and by vLLM (in this process, float32)."""
    _vllm_or_skip()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from groundinggpt.api import GroundingGPT
    from groundinggpt.presets import build_tiny
    from groundinggpt.serve.vllm_engine.engine import VLLMEngine

    folder = tmp_path_factory.mktemp("tiny-vllm")
    model, processor = build_tiny(seed=0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    hf = GroundingGPT.load(folder, device="cpu", dtype="float32")
    vl = VLLMEngine.load(folder, dtype="float32", enforce_eager=True, compilation_config={"mode": 0},
                         kv_cache_memory_bytes=64 << 20, max_model_len=512)
    yield hf, vl
    vl.close()


def _ids_of(engine):
    """Record the generated ids each answer is finished from (both engines share ``finish``)."""
    seen = []
    finish = engine.finish

    def recording(ids, *args, **kwargs):
        seen.append(list(ids))
        return finish(ids, *args, **kwargs)

    engine.finish = recording
    return seen


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_greedy_answers_equal_the_hf_path_for_every_modality(engines, image_path, video_path, audio_path):
    hf, vl = engines
    conversations = {
        "text": _ask("Describe the scene in detail."),
        "image": [{"role": "user", "content": [{"type": "image", "image": str(image_path)},
                                               {"type": "text", "text": "Where is the red square?"}]}],
        "video": [{"role": "user", "content": [{"type": "video", "video": str(video_path)},
                                               {"type": "text", "text": "When does it move?"}]}],
        "audio": [{"role": "user", "content": [{"type": "audio", "audio": str(audio_path)},
                                               {"type": "text", "text": "What is this sound?"}]}],
    }
    settings = GenerationSettings(max_new_tokens=16)
    hf_ids, vl_ids = _ids_of(hf), _ids_of(vl)
    for name, conv in conversations.items():
        want = hf.generate([conv], settings)[0]
        got = vl.generate([conv], settings)[0]
        assert vl_ids[-1] == hf_ids[-1], name  # the same tokens, one by one
        assert (got.text, got.finish_reason, got.prompt_tokens) == (want.text, want.finish_reason,
                                                                    want.prompt_tokens), name
    # All four at once: vLLM batches them; each answer is still its answer alone.
    together = vl.generate(list(conversations.values()), settings)
    alone = [hf.generate([c], settings)[0] for c in conversations.values()]
    assert [o.text for o in together] == [o.text for o in alone]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_http_server_answers_through_vllm_with_grounding(engines, image_path):
    import base64

    import httpx

    from groundinggpt.serve.background import BackgroundServer
    from groundinggpt.serve.server import create_app

    hf, vl = engines
    data = base64.b64encode(image_path.read_bytes()).decode()
    body = {"model": "x", "max_tokens": 12, "temperature": 0, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
        {"type": "text", "text": "Where is the red square?"}]}]}
    with BackgroundServer(create_app(vl)) as server:
        r = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=600)
    assert r.status_code == 200, r.text
    message = r.json()["choices"][0]["message"]
    want = hf.generate([[{"role": "user", "content": [{"type": "image", "image": str(image_path)},
                                                       {"type": "text", "text": "Where is the red square?"}]}]],
                       GenerationSettings(max_new_tokens=12))[0]
    assert message["content"] == want.text
    assert message["grounding"]["image_size"] == list(want.image_size)
