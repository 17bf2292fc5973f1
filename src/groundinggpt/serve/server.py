"""``groundinggpt serve``: an OpenAI-compatible HTTP server (FastAPI + uvicorn).

Endpoints: ``POST /v1/chat/completions`` (streaming and not), ``GET /v1/models``,
``GET /v1/models/{id}``, ``GET /health``. Requests and answers follow OpenAI's chat
completions; see :mod:`.protocol` for the media parts accepted and the extra
``grounding`` field every answer carries.

Use any OpenAI client::

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    r = client.chat.completions.create(model="groundinggpt", messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}},
        {"type": "text", "text": "Where is the cat?"}]}])
    r.choices[0].message.content, r.choices[0].message.grounding

Every refusal is a 4xx with OpenAI's error body; nothing a client sends can crash the
server or reach a file outside ``--media-root`` or the network. Inference runs on one
thread so answers never mix: by default media are decoded by a small thread pool and answers
are continuously batched (:mod:`.continuous`); ``--scheduler static`` keeps the micro-batcher
(:mod:`.worker`).

Streaming (``"stream": true``) sends the answer while it is generated, as OpenAI
chunks: text as soon as it is settled, a box only once closed and already converted
to the original image (:mod:`groundinggpt.streaming`), and a last chunk with the finish
reason and the ``grounding`` field. The response starts only once generation has
started, so a request whose media cannot be decoded still gets a proper 4xx; a failure
after that ends the stream with an ``error`` event. A client that disconnects, streaming
or not, stops its answer at the next token (the other answers of its batch go on).
"""

# No ``from __future__ import annotations`` here: FastAPI reads the handlers' ``Request``
# annotations at run time, and Request is imported inside create_app (so that the CLI
# can register ``serve`` without FastAPI installed).
import argparse
import asyncio
import json
import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ..errors import GroundingGPTError, MediaError
from ..loading import add_device_arguments, device_kwargs
from .errors import APIError, error_body
from .media_sources import MediaResolver
from .protocol import (ChatRequest, Limits, completion_body, final_chunk, new_id, parse_request, stream_chunk,
                       usage_chunk)
from .worker import SCHEDULERS, QueueFull, make_worker

log = logging.getLogger("groundinggpt.serve")

#: ``--engine``: what runs the model behind the protocol layer.
ENGINES = ("hf", "vllm")

__all__ = ["Limits", "create_app", "run", "register"]


def _check_json_type(request: Any) -> None:
    """415 unless the body is declared ``application/json``.

    A web page can make a browser POST ``text/plain`` (or a typeless Blob) to any address
    without asking first (a CORS "simple request"); a JSON type needs the server's
    consent, which it never gives. So a page the user happens to visit cannot make a
    local server run inference."""
    declared = request.headers.get("content-type")
    media_type = (declared or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise APIError(415, f"the request body must be sent as Content-Type: application/json, got "
                            f"{'no Content-Type' if declared is None else repr(declared[:100])}",
                       code="unsupported_media_type")


async def _read_body(request: Any, max_bytes: int, idle_seconds: float | None = None) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``max_bytes``, and with
    408 when no piece of it arrives for ``idle_seconds`` (a Content-Length that promises
    more than is sent would otherwise hold the connection open for good)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise APIError(413, f"the request body is {int(declared)} bytes, more than this server's limit of "
                            f"{max_bytes} bytes", code="request_too_large")
    chunks, size = [], 0
    pieces = request.stream().__aiter__()  # a chunked body has no Content-Length to trust
    while True:
        try:
            chunk = await asyncio.wait_for(pieces.__anext__(), idle_seconds)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise APIError(408, f"the request body stopped arriving: nothing for {idle_seconds:g} s after "
                                f"{size} bytes" + (f" of the {declared} announced" if declared else ""),
                           code="request_timeout") from None
        size += len(chunk)
        if size > max_bytes:
            raise APIError(413, f"the request body exceeds this server's limit of {max_bytes} bytes",
                           code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _client_gone(request: Any) -> None:
    """Returns when the client disconnects. Called once the body has been read, so the
    next ASGI message can only be ``http.disconnect`` (sent on disconnect or after the
    response)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _apply_decode_limits(engine: Any, limits: Limits) -> None:
    """The server's media limits become the engine's decoding limits: a header can be
    missing or lie, so the decoder counts what it decodes and stops at the limit."""
    config = engine.processor.config
    engine.processor.config = replace(config, max_image_pixels=limits.max_image_pixels,
                                      max_media_seconds=limits.max_media_seconds,
                                      max_audio_samples=limits.max_audio_samples,
                                      max_video_pixels=limits.max_video_pixels)


def _hide_root(message: str, root: Path | None) -> str:
    """``message`` with the server's media-root folder shown as ``<media_root>``.

    Decoders name the file they failed on by its absolute path; a client named the file
    relative to the media root and has no business learning where that root lives.
    """
    if root is None:
        return message
    return message.replace(str(root) + os.sep, "<media_root>/").replace(str(root), "<media_root>")


_FINISHED = object()  # queued after a streamed request's last piece


def _request_terms(error: Exception) -> tuple[str, str | None]:
    """An engine error → (message, param) in the request's own terms (``messages[i].content[j]``).

    A request is one conversation, and parse_messages keeps one HF part per OpenAI part,
    so the processor's ``MediaError.part`` indexes are the request's."""
    part = getattr(error, "part", None)
    if part is None:
        return str(error), None
    param = f"messages[{part[0]}].content[{part[1]}]"
    return f"{param}: {error.reason}", param


def _sse(payload: Any) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def _batch_info(future: Any) -> str:
    job = future.job
    return f" wait={job.started - job.enqueued:.3f}s batch={job.batch_size}"


async def _events(req_id: str, model: str, first: Any, pieces: asyncio.Queue, future: Any, worker: Any,
                  include_usage: bool = False):
    """The SSE body of a streamed answer: role, pieces as they come, the rest, finish + grounding."""
    created = int(time.time())
    finished = False
    try:
        yield _sse(stream_chunk(req_id, model, created, {"role": "assistant", "content": ""}))
        sent, item = "", first
        while item is not _FINISHED:
            if item:
                sent += item
                yield _sse(stream_chunk(req_id, model, created, {"content": item}))
            item = await pieces.get()
        finished = True
    finally:
        if not finished:  # the client went away (the response task was cancelled): stop generating
            log.info("%s client left during the stream; its answer is stopped", req_id)
            worker.abandon(future)
    try:
        output = future.result()
    except Exception as e:  # noqa: BLE001 - the answer had started: report it in the stream
        log.error("%s inference failed while streaming: %s", req_id, e)
        yield _sse(error_body(500, f"inference failed ({type(e).__name__}: {e})", code="inference_error"))
        yield "data: [DONE]\n\n"
        return
    # Engines that do not stream (or a piece the worker did not pass on) leave a rest.
    rest = output.text[len(sent):] if output.text.startswith(sent) else ""
    if rest:
        yield _sse(stream_chunk(req_id, model, created, {"content": rest}))
    yield _sse(final_chunk(req_id, model, created, output, output.finish_reason or "stop"))
    if include_usage:
        yield _sse(usage_chunk(req_id, model, created, output))
    yield "data: [DONE]\n\n"


def create_app(engine: Any, limits: Limits | None = None, model_name: str = "groundinggpt",
               docs: bool = False, close_engine: bool = False) -> Any:
    """The FastAPI app serving ``engine``.

    Args:
        engine: a :class:`~groundinggpt.api.GroundingGPT`.
        limits: request limits and the media root (default :class:`Limits`).
        model_name: the id reported by ``/v1/models`` and in answers.
        docs: serve FastAPI's ``/docs``, ``/redoc`` and ``/openapi.json``. Off by default:
            the Swagger page loads its script from a CDN, and the server makes no
            outside requests of its own accord.
        close_engine: at shutdown also call ``engine.close()`` when it has one (the vLLM
            engine's core process; uvicorn re-raises SIGTERM after the app's shutdown, so
            nothing after ``uvicorn.run`` would run).

    Returns:
        A FastAPI application; its inference thread stops when the app shuts down.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    limits = limits or Limits()
    _apply_decode_limits(engine, limits)
    resolver = MediaResolver(limits.media_root)
    worker = make_worker(engine, limits.scheduler, max_batch=limits.max_batch, max_queue=limits.max_queue,
                         media_workers=limits.media_workers)
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app):
        yield
        worker.close()
        close = getattr(engine, "close", None) if close_engine else None
        if callable(close):
            close()

    pages = {} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="GroundingGPT", version="1", lifespan=lifespan, **pages)
    app.state.engine, app.state.limits, app.state.worker = engine, limits, worker

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):  # 404 / 405 in OpenAI's shape
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(APIError(500, f"internal error: {type(exc).__name__}").body(), status_code=500)

    async def _answer(future: Any, req_id: str) -> Any:
        """The future's output, or the APIError its failure means for the client."""
        try:
            return await asyncio.wrap_future(future)
        except GroundingGPTError as e:  # MediaError / InputError: the request's fault
            message, param = _request_terms(e)
            code = getattr(e, "code", None) or ("invalid_media" if isinstance(e, MediaError) else "invalid_messages")
            raise APIError(400, _hide_root(message, resolver.root), param=param, code=code) from None
        except Exception as e:  # noqa: BLE001 - the model's failure, not the request's
            log.exception("%s inference failed", req_id)
            raise APIError(500, f"inference failed ({type(e).__name__}: {e})", code="inference_error") from None

    async def _answer_while_connected(request: Request, future: Any, req_id: str) -> Any:
        """:func:`_answer`, unless the client disconnects first: then its generation is
        stopped at the next token (as a stream's is) and the next request need not wait."""
        answer = asyncio.ensure_future(_answer(future, req_id))
        gone = asyncio.ensure_future(_client_gone(request))
        try:
            await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if answer.done():
            return answer.result()
        log.info("%s client left before its answer; its generation is stopped", req_id)
        worker.abandon(future)
        answer.cancel()
        raise APIError(499, "the client closed the connection before the answer was ready",
                       code="client_closed_request")

    def model_card() -> dict[str, Any]:
        return {"id": model_name, "object": "model", "created": created, "owned_by": "groundinggpt"}

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        if model_id != model_name:
            raise APIError(404, f"model {model_id!r} not found; this server serves {model_name!r}",
                           param="model", code="model_not_found")
        return model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        t0 = time.perf_counter()
        req_id = new_id()
        status, info = 200, ""
        try:
            _check_json_type(request)
            raw = await _read_body(request, int(limits.max_body_mb * 1024 * 1024), limits.read_timeout_s)
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError) as e:  # bad syntax or encoding; absurd nesting
                raise APIError(400, f"the request body is not valid JSON ({type(e).__name__}: {str(e)[:200]})",
                               code="invalid_json") from None
            # Base64 decoding, header probes and token counting run in a thread pool, so the
            # event loop keeps serving and the inference thread only runs the model.
            req: ChatRequest = await asyncio.get_running_loop().run_in_executor(
                None, parse_request, body, resolver, limits, engine)
            info = f"media={','.join(req.media_kinds) or '-'} stream={req.stream}"
            loop = asyncio.get_running_loop()
            pieces: asyncio.Queue = asyncio.Queue()
            on_text = (lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece)) if req.stream else None
            try:
                future = worker.submit(req.messages, req.settings, on_text=on_text)
            except QueueFull as e:
                raise APIError(503, f"the server is busy ({e}); retry later", code="overloaded") from None
            if not req.stream:
                output = await _answer_while_connected(request, future, req_id)
                info += _batch_info(future)
                return completion_body(req_id, model_name, output, output.finish_reason or "stop")
            # Deltas are queued before the future completes (same thread, in order), so this
            # marker always comes after the last of them.
            future.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, _FINISHED))
            first = await pieces.get()  # "" when generation starts, or _FINISHED
            if first is _FINISHED:
                await _answer(future, req_id)  # raises the request's 4xx / 500 if it failed
            info += _batch_info(future)
            return StreamingResponse(_events(req_id, model_name, first, pieces, future, worker, req.include_usage),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        except APIError as e:
            status, info = e.status, f"{e.code}: {e.message[:200]}"
            raise
        except Exception:
            status = 500
            raise
        finally:
            log.info("%s POST /v1/chat/completions %d %.3fs %s", req_id, status, time.perf_counter() - t0, info)

    return app


# ---- command line --------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    import uvicorn

    from .engine import load_engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.media_root is not None and not Path(args.media_root).is_dir():
        raise SystemExit(f"--media-root {args.media_root!r}: not a folder")
    limits = Limits(max_body_mb=args.max_body_mb, max_image_pixels=args.max_image_pixels,
                    max_media_seconds=args.max_media_seconds, max_audio_samples=args.max_audio_samples,
                    max_video_pixels=args.max_video_pixels, max_tokens_limit=args.max_tokens_limit,
                    default_max_tokens=min(args.default_max_tokens, args.max_tokens_limit),
                    media_root=args.media_root, max_batch=args.max_batch, max_queue=args.max_queue,
                    scheduler=args.scheduler, media_workers=args.media_workers,
                    read_timeout_s=args.read_timeout)
    if args.engine == "vllm":
        from .vllm_engine import load_vllm_engine

        from .vllm_engine import parse_engine_args

        engine = load_vllm_engine(args.model, dtype=args.dtype, tensor_parallel_size=args.tensor_parallel_size,
                                  max_num_seqs=args.max_batch, **parse_engine_args(args.vllm_arg))
    else:
        engine = load_engine(args.model, **device_kwargs(args))
    name = args.model_name or (Path(args.model).name if args.model != "tiny" else "groundinggpt-tiny")
    log.info("serving %s on http://%s:%d/v1 with %s", name, args.host, args.port, asdict(limits))
    uvicorn.run(create_app(engine, limits, model_name=name, docs=args.docs, close_engine=True), host=args.host,
                port=args.port, log_level="info")
    return 0


def register(sub: Any) -> None:
    d = Limits()
    p = sub.add_parser("serve", help="OpenAI-compatible HTTP server (/v1/chat/completions)")
    p.add_argument("--model", required=True, help="a model folder (or 'tiny' for a random-init demo)")
    add_device_arguments(p)
    p.add_argument("--model-name", help="the model id clients see (default: the folder's name)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    p.add_argument("--media-root", help="folder that path / file:// media URLs may point into "
                                        "(default: none, only data: URLs and base64)")
    p.add_argument("--max-body-mb", type=float, default=d.max_body_mb, help="request body limit, MB (413 beyond; default: %(default)s)")
    p.add_argument("--max-image-pixels", type=int, default=d.max_image_pixels, help="width x height limit (default: %(default)s)")
    p.add_argument("--max-media-seconds", type=float, default=d.max_media_seconds, help="video/audio length limit, s (default: %(default)s)")
    p.add_argument("--max-audio-samples", type=int, default=d.max_audio_samples,
                   help="samples x channels decoded from one audio (default: %(default)s)")
    p.add_argument("--max-video-pixels", type=int, default=d.max_video_pixels,
                   help="frames x pixels decoded from one video (default: %(default)s)")
    p.add_argument("--max-tokens-limit", type=int, default=d.max_tokens_limit, help="largest max_tokens accepted (default: %(default)s)")
    p.add_argument("--default-max-tokens", type=int, default=d.default_max_tokens,
                   help="max_tokens when a request gives none (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=d.max_batch, help="answers generated at once (1: no batching; default: %(default)s)")
    p.add_argument("--max-queue", type=int, default=d.max_queue, help="waiting requests before 503 (default: %(default)s)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default=d.scheduler,
                   help="continuous: requests join and leave the running batch between tokens, media decoded by a "
                        "thread pool; static: micro-batches run to their longest answer (default: %(default)s)")
    p.add_argument("--engine", choices=ENGINES, default="hf",
                   help="hf: this package's model and schedulers; vllm: vLLM runs the model (paged KV cache, its "
                        "continuous batching, tensor parallelism; needs `pip install vllm`, see docs/serving.md) "
                        "behind the same protocol (default: %(default)s)")
    p.add_argument("--tensor-parallel-size", type=int, default=1,
                   help="GPUs the model is split over (--engine vllm; default: %(default)s)")
    p.add_argument("--vllm-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="one more of vLLM's EngineArgs (--engine vllm; VALUE read as JSON, else as text), e.g. "
                        "enforce_eager=true or max_model_len=4096; repeatable")
    p.add_argument("--media-workers", type=int, default=d.media_workers,
                   help="threads decoding media at once (continuous scheduler; default: %(default)s)")
    p.add_argument("--read-timeout", type=float, default=d.read_timeout_s,
                   help="seconds a request body may pause before 408 (default: %(default)s)")
    p.add_argument("--docs", action="store_true", help="serve /docs, /redoc and /openapi.json (off by default: "
                                                       "the docs page loads a script from a CDN)")
    p.set_defaults(func=run)
