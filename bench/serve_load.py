#!/usr/bin/env python
"""The HTTP server under load: continuous batching + media pool vs the static micro-batcher.

Both schedulers serve the same tiny-preset engine in this process, each through its own
uvicorn server on 127.0.0.1 (nothing leaves the machine); only one of them is sent requests
at a time, alternating level by level, and both get the same requests:

1. **Load**: at concurrency c = 1, 4, 16 (``--levels``), ``c`` client threads send a fixed,
   seeded mix of greedy requests back to back — images (320x240 PNG), audio (2.5 s WAV) and
   short videos (3 s, 160x120), as data URLs, with ``max_tokens`` drawn from 8/16/32/64.
   EOS is suppressed (``generation_config.suppress_tokens``), so every answer runs to its
   ``max_tokens`` and both schedulers generate exactly the same tokens. Reported:
   requests/s (requests / wall time of the level) and p50 / p95 latency.
2. **Stall**: two clients send short image requests back to back; their p95 latency alone,
   and while one request with a long video (default: 1 minute of 1280x720 H.264 at 30 fps,
   keyframe every 250 frames, written once into the cache folder) is being answered —
   counting the image requests whose time overlapped the video request's.

Targets (issue 18): continuous c=16 requests/s ≥ 1.5x static; image p95 with the video
≤ 1.5x without it (continuous).

    python bench/serve_load.py [--levels 1,4,16] [--requests-per-client 3] [--max-batch 8]
                               [--video-seconds 60] [--threads 2] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see groundinggpt.openmp_policy)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from groundinggpt.api import GroundingGPT  # noqa: E402
from groundinggpt.serve.background import BackgroundServer  # noqa: E402
from groundinggpt.serve.protocol import Limits  # noqa: E402
from groundinggpt.serve.server import create_app  # noqa: E402

SCHEDULERS = ("static", "continuous")


# ---- media -------------------------------------------------------------------------------
def _png(width: int, height: int, seed: int) -> bytes:
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), (235, 235, 235))
    x, y = rng.randrange(width // 2), rng.randrange(height // 2)
    ImageDraw.Draw(img).rectangle((x, y, x + width // 3, y + height // 3), fill=(210, 30, 30))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _wav(seconds: float = 2.5) -> bytes:
    import soundfile as sf

    t = np.arange(int(16000 * seconds)) / 16000
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, format="WAV")
    return buf.getvalue()


def write_clip(path: Path, seconds: float, width: int, height: int, fps: int, gop: int) -> None:
    """A moving bar on a gradient, H.264 (ultrafast), one keyframe every ``gop`` frames; written
    frame by frame (a minute of 720p would not fit in memory as arrays)."""
    import av

    base = np.tile(np.linspace(30, 220, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(gop), "bf": "0"}
        bar = max(8, width // 20)
        for k in range(int(seconds * fps)):
            frame = base.copy()
            x = (k * 7) % (width - bar)
            frame[:, x:x + bar] = (200, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.rename(path)


def _data_url(kind: str, mime: str, data: bytes) -> str:
    return f"data:{kind}/{mime};base64,{base64.b64encode(data).decode()}"


def request_body(kind: str, media: dict[str, str], max_tokens: int) -> dict:
    part = {"image": {"type": "image_url", "image_url": {"url": media.get("image", "")}},
            "audio": {"type": "input_audio", "input_audio": {"data": media.get("audio", ""), "format": "wav"}},
            "video": {"type": "video_url", "video_url": {"url": media.get("video", "")}}}[kind]
    question = {"image": "Where is the red box?", "audio": "What makes this sound?",
                "video": "When does the red bar move?"}[kind]
    return {"model": "bench", "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": [part, {"type": "text", "text": question}]}]}


# ---- server and clients --------------------------------------------------------------------
def post(conn: http.client.HTTPConnection, body: dict) -> tuple[float, float]:
    """One request on a kept-alive connection: (start, end) times; raises on an HTTP error."""
    payload = json.dumps(body).encode()
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body=payload, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    end = time.perf_counter()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {data[:300]!r}")
    return start, end


def run_clients(port: int, bodies: list[dict], clients: int) -> list[tuple[float, float]]:
    """``clients`` threads take the bodies in order, back to back; (start, end) per body."""
    times: list[tuple[float, float] | None] = [None] * len(bodies)
    errors: list[BaseException] = []
    lock, next_index = threading.Lock(), [0]

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            while True:
                with lock:
                    i = next_index[0]
                    next_index[0] += 1
                if i >= len(bodies):
                    return
                times[i] = post(conn, bodies[i])
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return times  # type: ignore[return-value]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def load_level(port: int, bodies: list[dict], clients: int) -> dict:
    times = run_clients(port, bodies, clients)
    latencies = [e - s for s, e in times]
    wall = max(e for _, e in times) - min(s for s, _ in times)
    return {"clients": clients, "requests": len(bodies), "wall_s": wall, "requests_per_s": len(bodies) / wall,
            "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95)}


def stall(port: int, image_bodies: list[dict], video_body: dict, clients: int = 2) -> dict:
    """Image p95 alone, then while one long-video request is answered."""
    alone = [e - s for s, e in run_clients(port, image_bodies, clients)]
    video: dict = {}

    def send_video() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
        try:
            video["start"], video["end"] = post(conn, video_body)
        except BaseException as e:  # noqa: BLE001
            video["error"] = e
        finally:
            conn.close()

    overlapped: list[float] = []
    sent = 0
    thread = threading.Thread(target=send_video)
    thread.start()
    while thread.is_alive() or sent < len(image_bodies):
        times = run_clients(port, image_bodies[:clients], clients)
        sent += clients
        for s, e in times:
            if thread.is_alive() or ("end" in video and s < video["end"]):
                overlapped.append(e - s)
        if sent > 50 * len(image_bodies):
            break
    thread.join()
    if "error" in video:
        raise video["error"]
    return {"image_p95_alone_s": percentile(alone, 95), "image_p50_alone_s": percentile(alone, 50),
            "image_p95_with_video_s": percentile(overlapped, 95) if overlapped else float("nan"),
            "image_p50_with_video_s": percentile(overlapped, 50) if overlapped else float("nan"),
            "overlapping_image_requests": len(overlapped), "video_latency_s": video["end"] - video["start"],
            "ratio_p95": (percentile(overlapped, 95) / percentile(alone, 95)) if overlapped else float("nan")}


# ---- main -----------------------------------------------------------------------------------
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--levels", default="1,4,16", help="client concurrencies (default: %(default)s)")
    p.add_argument("--requests-per-client", type=int, default=3, help="requests per client thread at each level "
                                                                       "(at least 8 per level; default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=8, help="server --max-batch for both schedulers")
    p.add_argument("--max-tokens", default="8,16,32,64", help="answer lengths drawn for the load (default: %(default)s)")
    p.add_argument("--video-seconds", type=float, default=60.0, help="length of the stall test's video")
    p.add_argument("--video-size", default="1280x720")
    p.add_argument("--video-fps", type=int, default=30)
    p.add_argument("--stall-images", type=int, default=16, help="image requests timed alone in the stall test")
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "groundinggpt-bench"),
                   help="folder for the generated long video (reused across runs)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-stall", action="store_true", help="skip the stall test")
    p.add_argument("--output", dest="out", help="write the figures as JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    gg = GroundingGPT.from_preset("tiny", seed=0)
    gg.model.generation_config.suppress_tokens = [gg.processor.tokenizer.eos_token_id]  # answers run to max_tokens

    media_root = Path(args.cache)
    media_root.mkdir(parents=True, exist_ok=True)
    width, height = (int(v) for v in args.video_size.split("x"))
    long_name = f"long_{int(args.video_seconds)}s_{width}x{height}_{args.video_fps}fps_g250.mp4"
    if not args.no_stall and not (media_root / long_name).is_file():
        t = time.perf_counter()
        write_clip(media_root / long_name, args.video_seconds, width, height, args.video_fps, gop=250)
        print(f"(wrote {long_name} in {time.perf_counter() - t:.1f} s)")
    short_clip = media_root / "short_3s_160x120.mp4"
    if not short_clip.is_file():
        write_clip(short_clip, 3, 160, 120, 10, gop=10)
    media = {"image": [_data_url("image", "png", _png(320, 240, s)) for s in range(4)],
             "audio": base64.b64encode(_wav()).decode(),
             "video": _data_url("video", "mp4", short_clip.read_bytes())}
    rng = random.Random(args.seed)
    levels = [int(c) for c in args.levels.split(",")]
    lengths = [int(n) for n in args.max_tokens.split(",")]
    plans = {}
    for c in levels:
        bodies = []
        for i in range(max(8, c * args.requests_per_client)):
            kind = rng.choice(["image", "image", "audio", "video"])
            chosen = {"image": media["image"][i % 4], "audio": media["audio"], "video": media["video"]}
            bodies.append(request_body(kind, chosen, rng.choice(lengths)))
        plans[c] = bodies
    image_bodies = [request_body("image", {"image": media["image"][i % 4]}, 8) for i in range(args.stall_images)]
    video_body = request_body("video", {"video": long_name}, 8)

    results: dict = {s: {"levels": {}} for s in SCHEDULERS}
    servers = {s: BackgroundServer(create_app(gg, Limits(media_root=str(media_root), scheduler=s, max_batch=args.max_batch,
                                               max_queue=256, max_body_mb=64), model_name="bench"))
               for s in SCHEDULERS}
    for server in servers.values():
        server.__enter__()
    try:
        # Both servers are up; only one is sent requests at a time, alternating level by level
        # (first one scheduler, then the other, the order swapped each level) so that the other
        # jobs' load on a shared machine falls on both alike.
        for scheduler in SCHEDULERS:
            run_clients(servers[scheduler].port, plans[levels[0]][:2], 1)  # warm-up
        for n, c in enumerate(levels):
            for scheduler in (SCHEDULERS if n % 2 == 0 else SCHEDULERS[::-1]):
                results[scheduler]["levels"][c] = load_level(servers[scheduler].port, plans[c], c)
        if not args.no_stall:
            for scheduler in SCHEDULERS:
                results[scheduler]["stall"] = stall(servers[scheduler].port, image_bodies, video_body)
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)

    print(f"\n## Serving load: tiny preset, {args.threads} torch threads, --max-batch {args.max_batch}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, load average {os.getloadavg()[0]:.1f}, "
          f"{time.perf_counter() - t_start:.0f} s\n")
    print("| clients | requests | static req/s | continuous req/s | ratio | static p50 / p95 (s) | "
          "continuous p50 / p95 (s) |\n|---:|---:|---:|---:|---:|---|---|")
    ratios = {}
    for c in levels:
        s, k = results["static"]["levels"][c], results["continuous"]["levels"][c]
        ratios[c] = k["requests_per_s"] / s["requests_per_s"]
        print(f"| {c} | {s['requests']} | {s['requests_per_s']:.2f} | {k['requests_per_s']:.2f} | {ratios[c]:.2f}x | "
              f"{s['p50_s']:.2f} / {s['p95_s']:.2f} | {k['p50_s']:.2f} / {k['p95_s']:.2f} |")
    if not args.no_stall:
        print(f"\nStall: image requests (2 clients, 8 tokens) alone vs while one request with a "
              f"{args.video_seconds:g} s {width}x{height} {args.video_fps} fps video is answered\n")
        print("| scheduler | image p50 / p95 alone (s) | image p50 / p95 with video (s) | overlapping | "
              "p95 ratio | video request (s) |\n|---|---|---|---:|---:|---:|")
        for scheduler in SCHEDULERS:
            st = results[scheduler]["stall"]
            print(f"| {scheduler} | {st['image_p50_alone_s']:.2f} / {st['image_p95_alone_s']:.2f} | "
                  f"{st['image_p50_with_video_s']:.2f} / {st['image_p95_with_video_s']:.2f} | "
                  f"{st['overlapping_image_requests']} | {st['ratio_p95']:.2f}x | {st['video_latency_s']:.1f} |")
    top = max(levels)
    print(f"\ncontinuous / static requests/s at c={top}: {ratios[top]:.2f}x (target >= 1.5x)")
    if not args.no_stall:
        print(f"continuous: image p95 with the video / without: {results['continuous']['stall']['ratio_p95']:.2f}x "
              f"(target <= 1.5x); static: {results['static']['stall']['ratio_p95']:.2f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"results": results, "ratios": ratios, "args": vars(args), "machine": platform.machine(),
                       "cpus": os.cpu_count(), "load_average": os.getloadavg(), "torch": torch.__version__}, f,
                      indent=1, default=str)


if __name__ == "__main__":
    main()
