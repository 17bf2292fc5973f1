"""The terminal chat, driven by scripted input streams (and once as a real process)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from PIL import Image

from groundinggpt.serve.chat import ChatSession, chat_loop
from groundinggpt.serve.draw import PALETTE
from test_serve_support import RED_BOX_PX, chatty_tiny, make_image, save_model, scripted_tiny


@pytest.fixture(scope="module")
def engine():
    return chatty_tiny()


@pytest.fixture(scope="module")
def scripted():
    return scripted_tiny()


def run_script(session: ChatSession, *lines: str) -> str:
    out = io.StringIO()
    assert chat_loop(session, io.StringIO("".join(line + "\n" for line in lines)), out) == 0
    return out.getvalue()


def test_multi_turn_with_real_model_keeps_history_and_restarts_on_media_change(engine, image_path, video_path):
    s = ChatSession(engine, max_new_tokens=4)
    text = run_script(s, "hello", "/image " + str(image_path), "where?", "and now?",
                      "/video " + str(video_path), "when?")
    assert text.count("gpt> ") == 4
    assert f"attached image {image_path} (96x64)" in text
    assert "conversation restarted" in text  # attaching the video restarted the image conversation
    # after the restart: one turn, both media in its first message
    assert len(s.messages) == 2
    kinds = [p["type"] for p in s.messages[0]["content"]]
    assert kinds == ["image", "video", "text"]


def test_entities_are_printed_in_original_pixels_and_save_draws_them(scripted, image_path, tmp_path):
    s = ChatSession(scripted, max_new_tokens=4)
    saved = tmp_path / "boxes.png"
    text = run_script(s, f"/image {image_path}", "Where is the red square?", f"/save {saved}", "/quit", "never read")
    assert "gpt> The red square[0.104, 0.125, 0.417, 0.468] is on the left." in text
    assert "  - The red square -> box [0.104, 0.125, 0.417, 0.468] = (10, 8, 40, 30) px of 96x64" in text
    assert f"saved {saved} (1 box)" in text
    assert "never read" not in text and text.rstrip().endswith("bye")
    img = Image.open(saved).convert("RGB")
    x1, y1, x2, y2 = RED_BOX_PX
    assert img.getpixel((x1, (y1 + y2) // 2)) == PALETTE[0]  # the box's left edge
    assert img.getpixel(((x1 + x2) // 2, (y1 + y2) // 2 + 5)) == (220, 30, 30)  # inside: untouched


def test_spans_in_seconds_and_timeline_save(scripted, video_path, tmp_path):
    s = ChatSession(scripted)
    saved = tmp_path / "timeline.png"
    text = run_script(s, f"/video {video_path}", "When does the bar grow?", f"/save {saved}")
    duration = s.last_output.duration
    assert duration == pytest.approx(2.0, abs=0.2)
    assert f"  - The bar grows -> span {0.25 * duration:.2f}-{0.75 * duration:.2f} s of {duration:.2f} s" in text
    assert "timeline of 1 span" in text and saved.is_file()


def test_errors_and_commands_never_end_the_loop(engine, tmp_path):
    s = ChatSession(engine, max_new_tokens=3)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    text = run_script(s, "/image", f"/image {tmp_path / 'missing.png'}", f"/image {bad}", "/audio 'unclosed",
                      "/save x.png", "/frobnicate", "/help", "/reset", "hi")
    assert "usage: /image PATH" in text
    assert "error:" in text and "not found" in text
    assert "not a recognised image" in text or "could not read image" in text
    assert "nothing to save" in text
    assert "unknown command '/frobnicate'" in text
    assert "/save PATH" in text  # the help
    assert "conversation reset" in text
    assert text.count("gpt> ") == 1 and s.media == {}


def test_save_says_what_it_can_write(engine, tmp_path, image_path):
    s = ChatSession(engine, max_new_tokens=3)
    text = run_script(s, f"/image {image_path}", f"/save {tmp_path / 'chat.json'}",
                      f"/save {tmp_path / 'nodir' / 'x.png'}", f"/save {tmp_path / 'ok.jpg'}")
    assert ".json is not a picture format this can write; use .png or .jpg" in text
    assert f"the folder {tmp_path / 'nodir'} does not exist" in text
    assert f"saved {tmp_path / 'ok.jpg'}" in text and (tmp_path / "ok.jpg").stat().st_size > 0
    assert not (tmp_path / "chat.json").exists()


def test_cli_uses_its_media_flags_in_a_real_process(tmp_path, image_path, audio_path):
    model = save_model(tmp_path / "model")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "groundinggpt.cli", "chat", "--model", model, "--image", str(image_path),
         "--audio", str(audio_path), "--max-new-tokens", "3"],
        input="what sounds here?\n/quit\n", capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"attached image {image_path} (96x64)" in proc.stdout
    assert f"attached audio {audio_path} (2.50 s)" in proc.stdout
    assert "gpt> " in proc.stdout and proc.stdout.rstrip().endswith("bye")


def test_cli_bad_media_flag_exits_2(tmp_path, capsys):
    from groundinggpt.cli import main

    model = save_model(tmp_path / "model")
    assert main(["chat", "--model", model, "--video", str(tmp_path / "nope.mp4")]) == 2
    err = capsys.readouterr().err
    assert "--video" in err and "not found" in err


def test_make_image_matches_conftest():
    from conftest import make_image as conftest_image

    assert make_image().tobytes() == conftest_image().tobytes()


def test_answers_stream_to_the_terminal_as_generated(scripted, image_path):
    out = io.StringIO()
    pieces: list[str] = []

    class Spy(io.StringIO):
        def write(self, s):
            pieces.append(s)
            return out.write(s)

    s = ChatSession(scripted, stream=Spy())
    text = run_script(s, f"/image {image_path}", "Where is the red square?")
    answer = "The red square[0.104, 0.125, 0.417, 0.468] is on the left."
    assert out.getvalue() == f"gpt> {answer}\n"  # the streamed answer, in the image's frame
    # the box whole, with what came after its "]" (a run of "]]" ends only there)
    assert [p for p in pieces if "[" in p] == ["[0.104, 0.125, 0.417, 0.468] is"]
    assert len([p for p in pieces if p.strip()]) >= 4
    assert "gpt>" not in text and "  - The red square -> box [0.104, 0.125, 0.417, 0.468]" in text
    assert s.last_output.text == answer
