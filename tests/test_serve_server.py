"""The OpenAI-compatible server, exercised with the official ``openai`` client against
uvicorn on a free 127.0.0.1 port (and in-process for the scripted-grounding checks)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from fastapi.testclient import TestClient
import pytest

from groundinggpt.grounding import parse_boxes
from groundinggpt.media.video import write_video
from groundinggpt.serve.server import Limits, create_app
from test_serve_support import (RED_BOX_PX, UvicornThread, chatty_tiny, data_url, make_image, png_bytes,
                                scripted_tiny, wav_bytes)

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.timeout(180)

LIMITS = dict(max_body_mb=1.0, max_image_pixels=100_000, max_media_seconds=10.0, max_tokens_limit=64,
              default_max_tokens=6)


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    from conftest import make_video_frames

    root = tmp_path_factory.mktemp("media")
    write_video(root / "clip.mp4", make_video_frames(), fps=6)
    make_image().save(root / "scene.png")
    outside = tmp_path_factory.mktemp("outside") / "secret.png"
    make_image().save(outside)
    (root / "link.png").symlink_to(outside)  # a link inside the root to a file outside it
    (root / "sub").mkdir()
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # a corrupt file inside the root
    return root


@pytest.fixture(scope="module")
def server(media_root):
    app = create_app(chatty_tiny(), Limits(media_root=str(media_root), **LIMITS), model_name="tiny-test")
    with UvicornThread(app) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def ask(client, content, **kw):
    kw.setdefault("max_tokens", 6)
    return client.chat.completions.create(model="tiny-test", messages=[{"role": "user", "content": content}], **kw)


IMAGE_PART = {"type": "image_url", "image_url": {"url": data_url(png_bytes(make_image()), "image/png")}}


# ---- happy paths ------------------------------------------------------------------------------
def test_models_and_text(client):
    assert [m.id for m in client.models.list().data] == ["tiny-test"]
    r = ask(client, "Hello, who are you?")
    msg = r.choices[0].message
    assert r.object == "chat.completion" and r.model == "tiny-test" and msg.role == "assistant"
    assert isinstance(msg.content, str) and msg.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert msg.grounding == {"entities": [], "image_size": None, "duration": None}
    assert ask(client, "Hello, who are you?").choices[0].message.content == msg.content  # greedy: repeatable


def test_image_video_audio(client, media_root):
    r = ask(client, [IMAGE_PART, {"type": "text", "text": "Where is the red square?"}])
    assert r.choices[0].message.grounding["image_size"] == [96, 64]
    r = ask(client, [{"type": "video_url", "video_url": {"url": "clip.mp4"}}, {"type": "text", "text": "When?"}])
    assert r.choices[0].message.grounding["duration"] == pytest.approx(2.0, abs=0.2)
    url = (media_root / "clip.mp4").as_uri()  # file:// URL, absolute, under the root
    r2 = ask(client, [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": "When?"}])
    assert r2.choices[0].message.content == r.choices[0].message.content
    audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav_bytes()).decode(), "format": "wav"}}
    r = ask(client, [audio, {"type": "text", "text": "What sound is it?"}])
    assert r.choices[0].message.grounding["duration"] == pytest.approx(2.5)
    r = ask(client, [IMAGE_PART, {"type": "audio_url", "audio_url": {"url": data_url(wav_bytes(), "audio/wav")}},
                     {"type": "text", "text": "Which object makes the sound?"}])
    assert r.choices[0].message.grounding["image_size"] == [96, 64]


def test_streaming_matches_non_streaming(client, server):
    content = [IMAGE_PART, {"type": "text", "text": "Describe the image."}]
    plain = ask(client, content, max_tokens=10).choices[0].message
    chunks = list(ask(client, content, max_tokens=10, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == plain.content
    last = chunks[-1].choices[0]
    assert last.finish_reason in ("stop", "length")
    assert last.delta.model_extra["grounding"] == plain.grounding
    assert len({c.id for c in chunks}) == 1
    # the raw wire format: SSE data lines ending with [DONE]
    body = {"model": "x", "stream": True, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_stream_usage_chunk_when_asked(client):
    content = [IMAGE_PART, {"type": "text", "text": "Describe the image."}]
    plain = ask(client, content, max_tokens=8)
    chunks = list(ask(client, content, max_tokens=8, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == plain.usage.model_dump()  # the same counts as the plain answer
    assert plain.usage.prompt_tokens > 16 and plain.usage.completion_tokens == 8  # 16: the image placeholders
    assert chunks[-2].choices[0].finish_reason in ("stop", "length")
    without = list(ask(client, content, max_tokens=8, stream=True))
    assert all(c.choices for c in without) and all(c.usage is None for c in without)
    with pytest.raises(openai.BadRequestError, match="only allowed with 'stream': true"):
        ask(client, content, stream_options={"include_usage": True})
    with pytest.raises(openai.BadRequestError, match="stream_options.include_usage"):
        ask(client, content, stream=True, stream_options={"include_usage": "yes"})


def test_sampling_settings_are_honoured(client):
    a = ask(client, "Tell me a story", temperature=1.5, top_p=0.9, seed=7, max_tokens=12).choices[0].message.content
    b = ask(client, "Tell me a story", temperature=1.5, top_p=0.9, seed=7, max_tokens=12).choices[0].message.content
    assert a == b  # a seed makes sampling reproducible
    r = ask(client, "Tell me a story", max_tokens=2)
    assert r.choices[0].finish_reason == "length"
    full = ask(client, "Tell me a story", max_tokens=12).choices[0].message.content
    stop = full.split()[2] if len(full.split()) > 2 else full[-1]
    cut = ask(client, "Tell me a story", max_tokens=12, stop=[stop]).choices[0].message.content
    assert stop not in cut and full.startswith(cut.strip()[:3])


def test_concurrent_burst_answers_match_solo_answers(client, caplog):
    """16 different requests at once: each gets its own answer, equal to when sent alone."""
    def content(k):
        text = {"type": "text", "text": f"Question {k}: what colour is item {k * 7}?"}
        return [IMAGE_PART, text] if k % 4 == 0 else [text]

    def one(k):
        return ask(client, content(k), max_tokens=6).choices[0].message.content

    solo = [one(k) for k in range(16)]
    assert len(set(solo)) > 8  # the answers differ, so a mix-up would show
    with caplog.at_level(logging.INFO, logger="groundinggpt.serve"):
        with ThreadPoolExecutor(16) as pool:
            burst = list(pool.map(one, range(16)))
    assert burst == solo
    latencies = [r.getMessage() for r in caplog.records if "POST /v1/chat/completions 200" in r.getMessage()]
    assert len(latencies) >= 16  # one log line with the latency per request
    batches = [int(m.rsplit("batch=", 1)[1].split()[0]) for m in latencies]
    print("batch sizes in the burst:", sorted(batches))  # > 1 when requests were micro-batched
    assert ask(client, "still there?").choices[0].message.content


# ---- refusals ---------------------------------------------------------------------------------
def bad(client, status, code, content=None, **kw):
    with pytest.raises(openai.APIStatusError) as info:
        ask(client, content if content is not None else "hi", **kw)
    err = info.value
    assert err.status_code == status, err.body
    body = err.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["code"] == code, body
    return body["error"]


def url_part(kind, url):
    return [{"type": f"{kind}_url", f"{kind}_url": {"url": url}}, {"type": "text", "text": "?"}]


def test_bad_requests_get_4xx_with_openai_error_bodies(client, server, media_root):
    e = bad(client, 400, "max_tokens_out_of_range", max_tokens=65)
    assert e["param"] == "max_tokens" and e["type"] == "invalid_request_error"
    bad(client, 400, "max_tokens_out_of_range", max_tokens=0)
    bad(client, 400, "unsupported_value", n=2)
    bad(client, 400, "invalid_value", temperature=3)
    bad(client, 400, "invalid_value", top_p=0)
    bad(client, 400, "invalid_type", extra_body={"max_tokens": "ten"})
    bad(client, 400, "invalid_value", seed=-1)
    # a long stop string costs transformers a vocabulary x length table: seconds and gigabytes
    e = bad(client, 400, "invalid_value", stop=["z" * 65])
    assert e["param"] == "stop" and "at most 64 characters" in e["message"]
    # features the model cannot provide are refused, not ignored
    for field, value in [("response_format", {"type": "json_object"}), ("logit_bias", {"5": 10}),
                         ("top_logprobs", 2)]:
        assert bad(client, 400, "unsupported_parameter", extra_body={field: value})["param"] == field
    assert ask(client, "hi", extra_body={"response_format": {"type": "text"}, "presence_penalty": 0})
    # OpenAI's penalties are honoured (tests/test_row_sampling.py), within OpenAI's range
    assert bad(client, 400, "invalid_value", presence_penalty=2.5)["param"] == "presence_penalty"
    assert bad(client, 400, "invalid_value", frequency_penalty=-3)["param"] == "frequency_penalty"
    e = bad(client, 400, "invalid_content", [])
    assert e["param"] == "messages[0].content"
    # a prompt beyond the tiny model's 1024-token context (it would only burn memory)
    e = bad(client, 400, "context_length_exceeded", "word " * 3000)
    assert e["param"] == "messages"
    # megabytes of text are refused from their length, before tokenising them
    e = bad(client, 400, "context_length_exceeded", "hello world " * 60_000)
    assert "720000 characters take at least" in e["message"]
    e = bad(client, 400, "invalid_content_type", [{"type": "hologram", "hologram": {}}])
    assert e["param"] == "messages[0].content[0].type"
    e = bad(client, 400, "invalid_base64", url_part("image", "data:image/png;base64,@@not base64@@"))
    assert e["param"] == "messages[0].content[0].image_url.url"
    bad(client, 400, "invalid_data_url", url_part("image", "data:text/plain;base64,aGk="))
    e = bad(client, 400, "invalid_media", url_part("image", data_url(b"definitely not a png", "image/png")))
    assert "image" in e["message"]
    bad(client, 400, "invalid_media", url_part("video", data_url(b"\x00" * 64, "video/mp4")))
    bad(client, 400, "invalid_base64", [{"type": "input_audio", "input_audio": {"data": "***", "format": "wav"}}])
    bad(client, 400, "invalid_value", [{"type": "input_audio", "input_audio": {"data": "aGk=", "format": "midi"}}])
    bad(client, 400, "remote_url_not_allowed", url_part("image", "https://example.com/cat.png"))
    bad(client, 400, "invalid_url", url_part("image", "gopher://example.com/cat.png"))
    bad(client, 403, "path_outside_media_root", url_part("image", "../" * 12 + "etc/passwd"))
    bad(client, 403, "path_outside_media_root", url_part("image", "/etc/passwd"))
    bad(client, 403, "path_outside_media_root", url_part("video", "file:///etc/hostname"))
    bad(client, 403, "path_outside_media_root", url_part("image", "link.png"))
    bad(client, 403, "path_outside_media_root", url_part("image", "sub/../../x.png"))
    bad(client, 400, "media_not_found", url_part("image", "missing.png"))
    bad(client, 400, "media_not_found", url_part("image", "sub"))
    bad(client, 400, "invalid_url", url_part("image", "scene\x00.png"))
    # a corrupt file under the root: named relative to the root, the root itself never shown
    e = bad(client, 400, "invalid_media", url_part("image", "broken.png"))
    assert "<media_root>/broken.png" in e["message"] and str(media_root) not in e["message"]
    # named in the request's terms, as the parsing errors are
    assert e["param"] == "messages[0].content[0]" and e["message"].startswith("messages[0].content[0]: ")
    e = bad(client, 400, "invalid_media", [{"type": "text", "text": "first"}, *url_part("image", "broken.png")])
    assert e["param"] == "messages[0].content[1]" and "conversation" not in e["message"]
    assert ask(client, url_part("image", "scene.png")).choices[0].message.grounding["image_size"] == [96, 64]
    bad(client, 400, "invalid_messages", [IMAGE_PART, IMAGE_PART, {"type": "text", "text": "two images?"}])
    # limits on media: pixels from the header, seconds from the container
    big = data_url(png_bytes(make_image(size=(400, 400))), "image/png")
    bad(client, 400, "image_too_large", url_part("image", big))
    from PIL import Image  # over Pillow's own bomb limit: it will not say the size, the message must not invent it

    bomb = data_url(png_bytes(Image.new("1", (20000, 20000))), "image/png")
    e = bad(client, 400, "image_too_large", url_part("image", bomb))
    assert f"has more than {2 * Image.MAX_IMAGE_PIXELS} pixels" in e["message"]
    long = {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav_bytes(12, 8000)).decode(),
                                                   "format": "wav"}}
    bad(client, 400, "media_too_long", [long])
    # body size: 1 MiB limit
    huge = data_url(b"\x89PNG" + b"\x00" * 1_200_000, "image/png")
    bad(client, 413, "request_too_large", url_part("image", huge))
    # raw HTTP cases the client cannot produce
    post = server.url + "/v1/chat/completions"
    for payload in [b"{not json", b"[1, 2]", b'{"messages": []}', b'{"messages": [{"role": "tool", "content": "x"}]}',
                    b"\xff\xfe", b"[" * 200_000, b'{"messages": "hi", "temperature": NaN}']:
        r = httpx.post(post, content=payload, headers={"content-type": "application/json"}, timeout=30)
        assert r.status_code == 400, (payload, r.text)
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = httpx.get(server.url + "/v1/nowhere", timeout=30)
    assert r.status_code == 404 and "error" in r.json()
    # and the server still answers
    assert ask(client, "still alive?").choices[0].message.content


def test_chunked_body_over_the_limit_is_refused(server):
    def chunks():
        for _ in range(40):
            yield b" " * 50_000  # ~2 MB of JSON whitespace, no Content-Length
    r = httpx.post(server.url + "/v1/chat/completions", content=chunks(),
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


# ---- grounding in the user's frame, in-process ----------------------------------------------
@pytest.fixture(scope="module")
def scripted_app(media_root):
    from fastapi.testclient import TestClient

    with TestClient(create_app(scripted_tiny(), Limits(media_root=str(media_root)))) as tc:
        yield tc


def test_grounding_field_is_in_original_image_coordinates(scripted_app):
    body = {"model": "m", "messages": [{"role": "user", "content": [IMAGE_PART, {"type": "text", "text": "?"}]}]}
    r = scripted_app.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    g = r.json()["choices"][0]["message"]["grounding"]
    (ent,) = g["entities"]
    assert ent["phrase"] == "The red square" and g["image_size"] == [96, 64]
    assert ent["box"] == pytest.approx([0.104, 0.125, 0.417, 0.469], abs=2e-3)
    assert ent["box_pixels"] == pytest.approx(list(RED_BOX_PX), abs=0.3)
    # streamed: same grounding in the last chunk
    r = scripted_app.post("/v1/chat/completions", json={**body, "stream": True})
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    assert events[-1]["choices"][0]["delta"]["grounding"] == g


def test_spans_in_seconds_and_paths_disabled_without_root(scripted_app):
    body = {"model": "m", "messages": [{"role": "user", "content": url_part("video", "scene.png")[:0] + [
        {"type": "video_url", "video_url": {"url": "clip.mp4"}}, {"type": "text", "text": "when?"}]}]}
    g = scripted_app.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["grounding"]
    (ent,) = g["entities"]
    assert ent["span"] == [0.25, 0.75]
    assert ent["span_seconds"] == pytest.approx([0.25 * g["duration"], 0.75 * g["duration"]], abs=1e-3)

    from fastapi.testclient import TestClient

    with TestClient(create_app(scripted_tiny(), Limits())) as tc:
        r = tc.post("/v1/chat/completions", json=body)
        assert r.status_code == 400 and r.json()["error"]["code"] == "local_paths_disabled"


def test_serve_command_in_a_real_process(tmp_path):
    """``groundinggpt serve`` wires flags to limits and answers over HTTP."""
    import subprocess
    import sys
    import time

    from test_serve_support import free_port, save_model

    model = save_model(tmp_path / "model")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "groundinggpt.cli", "serve", "--model", model, "--port", str(port),
                             "--max-tokens-limit", "5", "--model-name", "cli-tiny"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
            assert proc.poll() is None, proc.stdout.read()
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
        assert client.models.list().data[0].id == "cli-tiny"
        r = client.chat.completions.create(model="cli-tiny", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content is not None
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="cli-tiny", max_tokens=6, messages=[{"role": "user", "content": "hi"}])
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "POST /v1/chat/completions 200" in out and "POST /v1/chat/completions 400" in out  # latency logs


def test_prompt_token_estimate_and_default_max_tokens(media_root):
    from groundinggpt.serve.media_sources import MediaResolver
    from groundinggpt.serve.protocol import count_prompt_tokens, parse_request

    eng = scripted_tiny()
    content = [IMAGE_PART, {"type": "text", "text": "word " * 150}]
    body = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "Hello[0.1, 0.2, 0.3, 0.4]."},
                         {"role": "user", "content": content}]}
    req = parse_request(body, MediaResolver(media_root), Limits(default_max_tokens=1024, max_tokens_limit=1024), eng)
    n = count_prompt_tokens(eng, req.messages)
    real = eng.processor(req.messages, add_generation_prompt=True)["input_ids"].shape[1]
    margin = 8 + 4 * len(req.messages)  # what check_context adds
    assert n <= real <= n + margin
    assert req.settings.max_new_tokens == 1024 - n - margin  # the default shrinks to what the context leaves


def sse_events(text: str) -> list:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def test_streamed_box_arrives_whole_and_in_the_original_frame(scripted_app):
    body = {"model": "m", "messages": [{"role": "user", "content": [IMAGE_PART, {"type": "text", "text": "?"}]}]}
    plain = scripted_app.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]
    r = scripted_app.post("/v1/chat/completions", json={**body, "stream": True})
    pieces = [e["choices"][0]["delta"].get("content") for e in sse_events(r.text)]
    pieces = [p for p in pieces if p]
    assert "".join(pieces) == plain["content"]
    assert len(pieces) >= 4  # "The", "red", "square", the box, ...: sent as generated
    (box_piece,) = [p for p in pieces if "[" in p]
    # the box comes whole (with what follows its "]": a run of "]]" ends only there)
    assert box_piece.count("[") == 1 and box_piece.startswith("[") and "]" in box_piece
    box = box_piece[: box_piece.index("]") + 1]
    assert parse_boxes(box) and box in plain["content"]  # the converted box, not the model's square-frame one


def finished(text: str):
    """An engine's answer with this text and no entities, finished normally."""
    from groundinggpt.processor import GroundedOutput

    out = GroundedOutput(text=text, entities=[])
    out.finish_reason = "stop"
    return out


@contextlib.contextmanager
def stream_lines(engine, media_root, name: str):
    """Serve ``engine`` and stream one 'hi' request from it: yields the SSE lines as they come."""
    app = create_app(engine, Limits(media_root=str(media_root), **LIMITS), model_name=name)
    with UvicornThread(app) as srv:
        body = {"model": name, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.stream("POST", srv.url + "/v1/chat/completions", json=body, timeout=30) as r:
            yield r.iter_lines()


def test_stream_sends_text_before_generation_ends(media_root):
    """The first words reach the client while the engine is still generating."""
    import threading

    client_saw_text = threading.Event()

    class SlowEngine:
        processor = chatty_tiny().processor  # parse_request counts the prompt's tokens with it

        def generate(self, conversations, settings=None, on_text=None, cancel=None):
            on_text(0, "")
            on_text(0, "Hello")
            assert client_saw_text.wait(20), "the client got nothing while the answer was being generated"
            on_text(0, " world")
            return [finished("Hello world.")]

    contents = []
    with stream_lines(SlowEngine(), media_root, "slow") as lines:
        for line in lines:
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"]
                if delta.get("content"):
                    contents.append(delta["content"])
                    client_saw_text.set()
    assert contents == ["Hello", " world", "."]


def test_stream_errors_before_and_after_the_answer_starts(media_root):
    from groundinggpt.errors import MediaError

    class FailingEngine:
        processor = chatty_tiny().processor

        def generate(self, conversations, settings=None, on_text=None, cancel=None):
            if "bad media" in json.dumps(conversations[0][-1]["content"]):
                raise MediaError("clip.mp4: not a readable video file")
            on_text(0, "")
            on_text(0, "Partial")
            raise RuntimeError("GPU fell off")

    from fastapi.testclient import TestClient

    with TestClient(create_app(FailingEngine(), Limits(media_root=str(media_root)))) as tc:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "bad media"}]}
        r = tc.post("/v1/chat/completions", json=body)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_media"  # a real 4xx, not a stream
        body["messages"][0]["content"] = "fine"
        r = tc.post("/v1/chat/completions", json=body)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.text)
        assert events[1]["choices"][0]["delta"]["content"] == "Partial"
        assert events[-1]["error"]["code"] == "inference_error" and "GPU fell off" in events[-1]["error"]["message"]
        assert r.text.rstrip().endswith("data: [DONE]")


def test_a_client_leaving_mid_stream_stops_its_answer(media_root):
    import threading

    stopped = threading.Event()

    class EndlessEngine:
        processor = chatty_tiny().processor

        def generate(self, conversations, settings=None, on_text=None, cancel=None):
            on_text(0, "")
            for i in range(2000):  # ~20 s unless told to stop
                if cancel[0].is_set():
                    stopped.set()
                    break
                on_text(0, f"word{i} ")
                time.sleep(0.01)
            return [finished("")]

    with stream_lines(EndlessEngine(), media_root, "endless") as lines:
        for line in lines:
            if '"content": "word' in line:
                break  # the client reads one piece and leaves
    assert stopped.wait(10), "the answer went on after its client left"


def test_a_client_leaving_a_non_streamed_request_stops_its_answer(media_root):
    """A plain (non-streamed) request whose client hangs up is cancelled like a stream, so the
    next request does not wait for an answer nobody will read."""
    import threading

    stopped, started = threading.Event(), threading.Event()

    class EndlessEngine:
        processor = chatty_tiny().processor

        def generate(self, conversations, settings=None, on_text=None, cancel=None):
            if "quick" in json.dumps(conversations[0]):
                return [finished("quick answer")]
            started.set()
            for _ in range(3000):  # ~30 s unless told to stop
                if cancel is not None and cancel[0].is_set():
                    stopped.set()
                    break
                time.sleep(0.01)
            return [finished("too late")]

    app = create_app(EndlessEngine(), Limits(media_root=str(media_root), **LIMITS), model_name="endless")
    with UvicornThread(app) as srv:
        url = srv.url + "/v1/chat/completions"
        body = {"model": "endless", "messages": [{"role": "user", "content": "hi"}]}

        def leave_early():
            with contextlib.suppress(httpx.TimeoutException):
                httpx.post(url, json=body, timeout=httpx.Timeout(30, read=0.5))  # hangs up after 0.5 s

        leave_early()
        assert started.wait(10)
        assert stopped.wait(15), "the answer went on after its client left"
        t0 = time.perf_counter()
        r = httpx.post(url, json={**body, "messages": [{"role": "user", "content": "quick"}]}, timeout=30)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "quick answer"
        assert time.perf_counter() - t0 < 15  # not held behind the abandoned answer (~30 s)


def raw_post(c: str) -> str:
    return f'{{"model": "m", "messages": [{{"role": "{c}", "content": "hi"}}]}}'


def test_lone_surrogates_anywhere_get_400_not_500(server, media_root):
    """``"\\ud800"`` is valid JSON but not text: in the text, the system message, a stop string, a
    path or even a key it is a 400 naming the field (it used to be a 500 UnicodeEncodeError)."""
    post = server.url + "/v1/chat/completions"
    cases = {
        r'{"messages": [{"role": "user", "content": "hi \ud800"}]}': "messages[0].content",
        r'{"messages": [{"role": "system", "content": "\udfff"}, {"role": "user", "content": "hi"}]}':
            "messages[0].content",
        r'{"messages": [{"role": "user", "content": "hi"}], "stop": ["ok", "\ud800"]}': "stop[1]",
        r'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "a\ud800.png"}},'
        r' {"type": "text", "text": "?"}]}]}': "messages[0].content[0].image_url.url",
        r'{"messages": [{"role": "user", "content": [{"type": "text", "text": "x\udc80y"}]}]}':
            "messages[0].content[0].text",
    }
    for payload, param in cases.items():
        r = httpx.post(post, content=payload.encode(), headers={"content-type": "application/json"}, timeout=30)
        assert r.status_code == 400, (payload, r.text)
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["code"] == "invalid_text", err
        assert err["param"] == param and "surrogate" in err["message"], err
    # a proper astral character (a surrogate *pair* in JSON) is fine
    ok = httpx.post(post, content=r'{"messages": [{"role": "user", "content": "hi \ud83d\ude00"}]}'.encode(),
                    headers={"content-type": "application/json"}, timeout=60)
    assert ok.status_code == 200, ok.text


def test_processor_refuses_a_lone_surrogate_by_name():
    from groundinggpt.errors import InputError

    proc = chatty_tiny().processor
    with pytest.raises(InputError, match=r"message 0, part 1: the text holds a lone UTF-16 surrogate"):
        proc([[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b\ud800"}]}]])


def test_body_type_docs_and_a_lying_content_length(media_root):
    """Only application/json bodies (a web page cannot send one without the server's consent);
    no /docs pages by default (Swagger loads a CDN script); a body that stops arriving gets 408
    after the read timeout and the connection is closed, instead of being held open."""
    import socket

    app = create_app(chatty_tiny(), Limits(media_root=str(media_root), **LIMITS, read_timeout_s=1.0), model_name="t")
    with UvicornThread(app) as srv:
        post = srv.url + "/v1/chat/completions"
        good = raw_post("user").encode()
        for headers in [{"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"},
                        {"content-type": "multipart/form-data; boundary=x"}, {}]:
            r = httpx.post(post, content=good, headers=headers, timeout=30)
            assert r.status_code == 415, (headers, r.text)
            assert r.json()["error"]["code"] == "unsupported_media_type"
        r = httpx.post(post, content=good, headers={"content-type": "application/json; charset=utf-8"}, timeout=60)
        assert r.status_code == 200, r.text
        for page in ("/docs", "/redoc", "/openapi.json"):
            assert httpx.get(srv.url + page, timeout=30).status_code == 404, page

        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n" + good[:10])
            t0 = time.perf_counter()
            received = b""
            while chunk := sock.recv(65536):  # until the server closes the connection
                received += chunk
            waited = time.perf_counter() - t0
        assert received.startswith(b"HTTP/1.1 408"), received[:200]
        assert b"request_timeout" in received and b"10 bytes of the 1000 announced" in received
        assert waited < 20  # the 1 s read timeout, not the 40 s+ it used to stay open

    with TestClient(create_app(chatty_tiny(), Limits(), docs=True)) as tc:  # opt-in
        assert tc.get("/openapi.json").status_code == 200


def test_media_limits_hold_for_what_is_decoded(client):
    """The server's length and pixel limits hold when the header cannot tell: a WebM/Opus without
    a Duration (as browsers record it) and video frames larger than an image may be."""
    from conftest import mkv_video, webm_opus

    def audio(data):
        return [{"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": "webm"}},
                {"type": "text", "text": "?"}]

    e = bad(client, 400, "media_too_long", audio(webm_opus(12.0)))  # the limit is 10 s
    assert e["param"] == "messages[0].content[0]" and "lasts more than 10 s" in e["message"]
    assert ask(client, audio(webm_opus(3.0))).choices[0].message.grounding["duration"] == pytest.approx(3.0, abs=0.05)
    # 400 x 300 = 120,000 pixels per frame, over the 100,000 an image may have
    e = bad(client, 400, "media_too_large", url_part("video", data_url(mkv_video(1.0, size=(400, 300)), "video/webm")))
    assert "expected at most 100000 pixels per frame" in e["message"]
    e = bad(client, 400, "media_too_long", url_part("video", data_url(mkv_video(12.0, fps=2), "video/webm")))
    assert "lasts more than 10 s" in e["message"]
