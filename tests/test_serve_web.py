"""The Gradio page: its handler directly, then the real page in headless Chromium.

Browser choice: playwright-python (from PyPI) drives Debian's Chromium
(``/usr/bin/chromium``, ``apt-get install -y chromium``) through ``executable_path``,
so no browser download is needed. It uploads an image, types one question, clicks
Send, waits for the scripted answer on the page, checks the boxes image the page
shows, and saves a screenshot.
"""

from __future__ import annotations

import io
import os
import shutil

import pytest
from PIL import Image

from groundinggpt.serve.draw import PALETTE
from groundinggpt.serve.web import RESTART_NOTE, respond, respond_stream
from test_serve_support import RED_BOX_PX, chatty_tiny, free_port, scripted_tiny

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def scripted():
    return scripted_tiny()


def test_respond_without_media_and_with_each_medium(scripted, image_path, video_path, audio_path):
    settings = {"max_new_tokens": 4}
    # no media at all: a plain answer, no pictures, no crash
    hist, boxes, timeline, grounding, state, cleared = respond(scripted, settings, "hello", None, None, None, None)
    assert hist[-1] == {"role": "assistant", "content": "You said: hello"} and boxes is None and timeline is None
    assert cleared == "" and grounding["entities"] == []
    # an image: boxes drawn on it, in original pixels
    hist, boxes, _, grounding, state, _ = respond(scripted, settings, "where?", str(image_path), None, None, state)
    assert hist[-3]["content"] == RESTART_NOTE  # media changed after a conversation had started
    assert grounding["entities"][0]["box_pixels"] == pytest.approx(list(RED_BOX_PX), abs=0.3)
    x1, y1, x2, y2 = RED_BOX_PX
    assert boxes.getpixel((x1, (y1 + y2) // 2)) == PALETTE[0]
    # a second question keeps the conversation
    hist, *_, state, _ = respond(scripted, settings, "sure?", str(image_path), None, None, state)
    assert len(state["messages"]) == 4 and hist[-3]["content"] != RESTART_NOTE
    # a video: spans on a timeline
    _, boxes, timeline, grounding, state, _ = respond(scripted, settings, "when?", None, str(video_path), None, state)
    assert boxes is None and timeline is not None and grounding["entities"][0]["span_seconds"]
    # a bad file: an error in the chat, not an exception
    bad = image_path.with_name("bad.png")
    bad.write_bytes(b"nope")
    hist, *_ = respond(scripted, settings, "what?", str(bad), None, str(audio_path), state)
    assert hist[-1]["content"].startswith("Error:")
    # the empty question does nothing
    assert respond(scripted, settings, "  ", None, None, None, state)[0] == state["history"]


def test_respond_stream_grows_the_answer_then_ends_like_respond(scripted, image_path):
    settings = {"max_new_tokens": 4}
    steps = list(respond_stream(scripted, settings, "where?", str(image_path), None, None, None))
    final = respond(scripted, settings, "where?", str(image_path), None, None, None)
    partial = [step[0][-1]["content"] for step in steps[:-1]]
    answer = final[0][-1]["content"]
    assert len(partial) >= 3 and all(answer.startswith(t) for t in partial)
    assert partial == sorted(partial, key=len) and len(set(partial)) == len(partial)  # it grows
    assert not any("[" in t and "]" not in t for t in partial)  # never half a box
    assert all(step[1] is None for step in steps[:-1])  # the drawings come with the final answer
    last = steps[-1]
    assert last[0] == final[0] and last[3] == final[3] and last[4] == final[4] and last[5] == ""
    assert last[1].size == final[1].size
    bad = image_path.with_name("bad-stream.png")
    bad.write_bytes(b"nope")
    (only,) = list(respond_stream(scripted, settings, "what?", str(bad), None, None, None))
    assert only[0][-1]["content"].startswith("Error:") and only[5] == "what?"
    assert list(respond_stream(scripted, settings, " ", None, None, None, None))[0][0] == []


def test_respond_with_the_real_tiny_model(image_path, audio_path):
    hist, boxes, *_ = respond(chatty_tiny(), {"max_new_tokens": 3}, "which object sounds?", str(image_path), None,
                              str(audio_path), None)
    assert hist[-1]["role"] == "assistant" and not hist[-1]["content"].startswith("Error")
    assert boxes is not None and boxes.size == (96, 64)  # the image, with whatever boxes the answer had


@pytest.mark.timeout(150)
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y chromium")
def test_page_in_headless_chromium(scripted, image_path, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    from groundinggpt.serve.web import build_demo, launch

    demo = build_demo(scripted, max_new_tokens=4)
    port = free_port()
    launch(demo, "127.0.0.1", port, block=False)
    shot = tmp_path / "page.png"
    try:
        with sync_api.sync_playwright() as p:
            # playwright gives each launch a fresh temporary profile (its own --user-data-dir)
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            # Only the local page may load: Gradio's theme asks for web fonts, which would hang here.
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("http://127.0.0.1")
                       else route.abort())
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=60_000)
            page.locator("#question textarea").wait_for(timeout=60_000)
            page.locator("#image-in input[type=file]").set_input_files(str(image_path))
            page.locator("#image-in img").first.wait_for(timeout=30_000)  # the upload is shown
            page.locator("#question textarea").fill("Where is the red square?")
            page.locator("#send").click()
            answer = "is on the left."
            page.locator("#chat").get_by_text(answer).first.wait_for(timeout=60_000)
            assert "The red square" in page.locator("#chat").inner_text()
            # the boxes image the page shows has the box drawn at the red square's edge
            src = page.locator("#boxes-out img").first.get_attribute("src", timeout=30_000)
            shown = Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")
            x1, y1, x2, y2 = RED_BOX_PX
            assert shown.getpixel((x1, (y1 + y2) // 2)) == PALETTE[0]
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        demo.close()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(shot).convert("RGB")
    assert img.size[0] >= 1000
    extrema = img.getextrema()
    assert any(lo != hi for lo, hi in extrema)  # not blank
    assert len(img.resize((200, 200)).getcolors(40_000)) > 20
    if os.environ.get("SERVE_WEB_SCREENSHOT"):  # keep a copy to look at
        shutil.copy(shot, os.environ["SERVE_WEB_SCREENSHOT"])


def test_closing_the_stream_stops_the_answer():
    import threading
    import time

    from groundinggpt.processor import GroundedOutput

    seen = threading.Event()

    class Endless:
        def generate(self, conversations, on_text=None, cancel=None, **settings):
            on_text(0, "")
            for i in range(2000):
                if cancel[0].is_set():
                    seen.set()
                    break
                on_text(0, f"w{i} ")
                time.sleep(0.01)
            return [GroundedOutput(text="", entities=[])]

    stream = respond_stream(Endless(), {}, "talk", None, None, None, None)
    first = next(stream)
    assert first[0][-1]["content"].startswith("w0")
    stream.close()  # what Gradio does when the page goes away
    assert seen.wait(10)


def test_an_upload_gradio_cannot_read_is_reported_with_its_reason(scripted, tmp_path):
    """A corrupt image fails in Gradio's own preprocessing, before our handler: the client
    must still learn why (``show_error``), not just "the upstream app raised an exception"."""
    gradio_client = pytest.importorskip("gradio_client")
    from groundinggpt.serve.web import build_demo, launch

    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    bomb = tmp_path / "bomb.png"  # 400 M pixels in a few KB: Pillow refuses to open it
    Image.new("1", (20000, 20000)).save(bomb)
    notes = tmp_path / "notes.wav"
    notes.write_text("not a sound at all")
    demo = build_demo(scripted, max_new_tokens=4)
    port = free_port()
    launch(demo, "127.0.0.1", port, block=False)
    try:
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        for upload, expected in [(corrupt, "corrupt.png could not be read as a PNG, JPEG, WebP, GIF or BMP image "
                                           "(cannot identify image file"),
                                 (bomb, "bomb.png could not be read as a PNG, JPEG, WebP, GIF or BMP image "
                                        "(Image size (400000000 pixels) exceeds limit")]:
            with pytest.raises(Exception) as info:
                client.predict("Where?", gradio_client.handle_file(str(upload)), None, None, api_name="/on_send")
            message = str(info.value)
            assert expected in message, message
            # the user's terms: no Gradio internals, no server paths
            assert "preprocess" not in message and "/tmp" not in message and str(tmp_path) not in message, message
        # a file Gradio passes on but the model's decoder refuses: named by its file name in the chat
        out = client.predict("What?", None, None, gradio_client.handle_file(str(notes)), api_name="/on_send")
        said = out[0][-1]["content"]
        said = said if isinstance(said, str) else " ".join(p["text"] for p in said if p.get("type") == "text")
        assert said.startswith("Error: the audio notes.wav cannot be used: "), said
        assert "/tmp" not in said and "conversation" not in said and "part 0" not in said, said
    finally:
        demo.close()


def test_errors_in_the_chat_name_the_upload_not_the_server_path(scripted, image_path):
    """A bad upload is named by its file name in the page's terms: no temporary folder of the
    server, no "conversation 0, message 0, part 0"."""
    folder = image_path.parent / "gradio" / "0123abcd"
    folder.mkdir(parents=True)
    bad = folder / "holiday.png"
    bad.write_bytes(b"nope")
    for run in (respond, lambda *a: list(respond_stream(*a))[-1]):
        said = run(scripted, {"max_new_tokens": 4}, "what?", str(bad), None, None, None)[0][-1]["content"]
        assert said.startswith("Error: the image holiday.png cannot be used: "), said
        assert str(folder) not in said and "conversation" not in said and "message 0" not in said, said
