"""Shared fixtures: a tiny random model and media generated on the fly (no downloads)."""

from __future__ import annotations

import io

# Before anything loads torch: OpenMP's PASSIVE wait policy, as every groundinggpt command
# sets it (groundinggpt.openmp_policy says why). Importing torch here first left the whole
# test process with spinning OpenMP threads: on a loaded 2-core machine one forward and
# backward of the tiny model took ~7 CPU s with 2 spinning threads and ~0.5 s with PASSIVE.
from groundinggpt.openmp_policy import prefer_passive_wait

prefer_passive_wait()

import av  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

#: Hypothesis fails an example that takes over 200 ms by default. On a loaded machine an
#: example can wait that long for a CPU (test_span_round_trip failed so, at 398 ms once and
#: 0.4 ms on the rerun), so no test here has a deadline; the example budgets stay as set.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


#: Test files in the slow lane: they build and run models end to end, train, serve, run the
#: benches or a whole quickstart. ``pytest -m "not slow"`` is the fast lane (the text contract,
#: schemas, readers, metrics, media decoding, the processor, import rules); CI runs everything.
#: A file not listed here is fast: keep it so, or list it.
SLOW_FILES = frozenset({
    "test_api.py", "test_bench_image_padding_memory.py", "test_bench_llm_width_cost.py",
    "test_bench_stream_latency.py", "test_bench_stream_release_cost.py", "test_bench_train_throughput.py",
    "test_cli.py", "test_data_build.py", "test_diagnose_selection.py", "test_docstrings.py", "test_eval_judge.py",
    "test_eval_lmms.py", "test_eval_runner.py", "test_model.py", "test_openmp_policy.py", "test_presets.py",
    "test_quickstart.py", "test_quickstart_miniature.py", "test_serve_chat.py", "test_serve_server.py",
    "test_serve_web.py", "test_serve_worker.py", "test_train_distributed.py", "test_train_freeze.py",
    "test_train_run.py", "test_vision_cut.py", "test_video_branch.py", "test_feature_cache.py", "test_dataset.py",
    "test_synthetic.py", "test_serve_continuous.py", "test_audio_branch.py",
})


#: Every bench smoke test (they run a bench end to end) and every model conversion test.
SLOW_PREFIXES = ("test_bench_", "test_convert_")
#: Single slow tests in otherwise fast files (generation with a model, streamed batch by batch).
SLOW_TESTS = frozenset({
    "test_streaming.py::test_generate_on_text_streams_every_row_of_a_batch",
    "test_streaming.py::test_cancel_ends_one_row_and_leaves_the_others",
})


def _slow_file(name: str) -> bool:
    return name in SLOW_FILES or name.startswith(SLOW_PREFIXES)


def pytest_ignore_collect(collection_path, config):
    """In the fast lane (``-m "not slow"``, exactly), a slow file is not even imported: every
    test in it would be deselected, and importing those modules (serving, training, gradio,
    openai, lmms-eval ...) cost the lane seconds of CPU for nothing. Any other ``-m``
    collects everything and deselects by marker as usual."""
    if " ".join(config.getoption("markexpr", "").split()) == "not slow" and _slow_file(collection_path.name):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.name
        if _slow_file(name) or f"{name}::{item.originalname}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny():
    """(model, processor) of the tiny preset, random init, eval mode, fixed seed."""
    from groundinggpt.presets import build_tiny

    model, processor = build_tiny(seed=0)
    return model.eval(), processor


def make_image(width: int = 96, height: int = 64, box=(10, 8, 40, 30), colour=(220, 30, 30)) -> Image.Image:
    img = Image.new("RGB", (width, height), (240, 240, 240))
    ImageDraw.Draw(img).rectangle(box, fill=colour)
    return img


def make_video_frames(n: int = 12, width: int = 64, height: int = 48) -> list[np.ndarray]:
    frames = []
    for k in range(n):
        f = np.full((height, width, 3), 20 * (k % 12), dtype=np.uint8)
        f[:, : (k * width) // n] = (200, 40, 40)
        frames.append(f)
    return frames


def webm_opus(seconds: float, live: bool = True) -> bytes:
    """A WebM/Opus as a browser's MediaRecorder writes it: with ``live``, no Duration element."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm", options={"live": "1"} if live else {}) as c:
        stream = c.add_stream("libopus", rate=48000, layout="mono")
        t = np.arange(int(48000 * seconds)) / 48000
        x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, len(x), 48000):
            frame = av.AudioFrame.from_ndarray(x[None, i:i + 48000], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 48000, i
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return buf.getvalue()


def mkv_video(seconds: float, fps: int = 10, size: tuple[int, int] = (64, 48), live: bool = True) -> bytes:
    """A Matroska video; with ``live`` its header carries no duration."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska", options={"live": "1"} if live else {}) as c:
        stream = c.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.full((size[1], size[0], 3), (i * 7) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return buf.getvalue()



@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "scene.png"
    make_image().save(path)
    return path


@pytest.fixture
def video_path(tmp_path):
    from groundinggpt.media.video import write_video

    path = tmp_path / "clip.mp4"
    write_video(path, make_video_frames(), fps=6)
    return path


@pytest.fixture
def audio_path(tmp_path):
    path = tmp_path / "tone.wav"
    t = np.arange(int(16000 * 2.5)) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    return path


# torch's own thread count for this process, before any test (or module fixture) sets one.
_TORCH_THREADS = torch.get_num_threads()


@pytest.fixture(autouse=True)
def _deterministic():
    """Seed every test, and hand the next one torch's own thread count: a test or module
    fixture that sets its own (the quickstart's ``threads=1``) would otherwise change the
    rounding of every later test in the same process."""
    torch.manual_seed(0)
    yield
    torch.set_num_threads(_TORCH_THREADS)



# --- per-test CPU time (how the lanes are measured on a shared machine) ---------------------
def pytest_addoption(parser):
    parser.addoption("--cpu-times", metavar="FILE", default=None,
                     help="append one JSON line per test (and one for collection) to FILE: wall seconds, "
                          "CPU seconds of this process (all threads) and of the children it waited for")


_CPU_TIMES: dict = {}  # "file": the option's value; node id -> (wall, cpu, children's cpu) at its start


def _cpu_now() -> tuple[float, float, float]:
    import resource
    import time

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def _cpu_start(key: str) -> None:
    if _CPU_TIMES.get("file"):
        _CPU_TIMES[key] = _cpu_now()


def _cpu_end(key: str) -> None:
    import json

    if _CPU_TIMES.get("file") and key in _CPU_TIMES:
        (w0, c0, k0), (w, c, k) = _CPU_TIMES.pop(key), _cpu_now()
        with open(_CPU_TIMES["file"], "a") as f:
            f.write(json.dumps({"id": key, "wall": w - w0, "cpu": c - c0, "child": k - k0}) + "\n")


def pytest_configure(config):
    _CPU_TIMES["file"] = config.getoption("cpu_times")


def pytest_sessionstart(session):
    _cpu_start("<collection>")


def pytest_collection_finish(session):
    _cpu_end("<collection>")


def pytest_runtest_logstart(nodeid, location):
    _cpu_start(nodeid)


def pytest_runtest_logfinish(nodeid, location):
    _cpu_end(nodeid)
