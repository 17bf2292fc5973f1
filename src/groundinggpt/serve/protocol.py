"""OpenAI chat-completion requests → GroundingGPT conversations, and answers → OpenAI JSON.

Request content parts understood (anything else is a 400):

=================  ==========================================================
``text``           ``{"type": "text", "text": "..."}``
``image_url``      ``{"image_url": {"url": "data:image/png;base64,..." | path}}``
``video_url``      ``{"video_url": {"url": "data:video/mp4;base64,..." | path}}``
``input_audio``    ``{"input_audio": {"data": "<base64>", "format": "wav"}}``
``audio_url``      ``{"audio_url": {"url": "data:audio/wav;base64,..." | path}}``
=================  ==========================================================

Paths (plain or ``file://``) must lie under the server's media root. Sampling fields
honoured: ``temperature`` (default **0 = greedy**, unlike OpenAI's 1: grounding
answers should be reproducible), ``top_p``, ``max_tokens`` / ``max_completion_tokens``,
``stop``, ``seed``, ``presence_penalty`` / ``frequency_penalty`` (OpenAI's, on the answer's
tokens: :mod:`groundinggpt.penalties`), ``n`` (1 only), ``stream``.

The grounding parsed from each answer travels in an extra field, in the user's frame
(boxes relative to the original image, plus pixels; spans as fractions, plus seconds)::

    choices[0].message.grounding = {"entities": [{"phrase", "box", "box_pixels", "span",
                                                  "span_seconds", "start", "end"}],
                                    "image_size": [w, h], "duration": seconds}
"""

from __future__ import annotations

import functools
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..api import GenerationSettings, context_size
from ..penalties import PENALTY_RANGE
from ..processor import GroundedOutput
from .errors import APIError
from .media_sources import AUDIO_FORMATS, MediaResolver, b64decode_strict, check_duration, check_image

_URL_PARTS = {"image_url": "image", "video_url": "video", "audio_url": "audio"}
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
# Features a client may ask for that this model cannot provide: refusing beats ignoring.
_UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call", "audio", "modalities", "prediction",
                "logit_bias")
# A stop string is matched by transformers through a table of vocabulary x its length:
# a long one costs seconds and gigabytes for a single request.
MAX_STOP_CHARS = 64


@dataclass
class Limits:
    """What one request may ask of the server.

    Attributes:
        max_body_mb: request body size (413 beyond).
        max_image_pixels: width x height of an image or of a video frame (400 beyond).
        max_media_seconds: duration of a video or audio, from the header and again while
            decoding (400 beyond).
        max_audio_samples: samples x channels decoded from one audio (400 beyond).
        max_video_pixels: frames x pixels decoded from one video (400 beyond).
        max_tokens_limit: the largest ``max_tokens`` accepted (400 beyond).
        default_max_tokens: used when a request gives no ``max_tokens``.
        media_root: the folder local paths may point into (``None``: paths refused).
        max_batch: requests answered together (rows of the running batch; 1 = no batching).
        max_queue: requests waiting at most; more get 503.
        scheduler: ``continuous`` (rows join and leave between tokens, media prepared by a
            pool) or ``static`` (the micro-batcher); see :func:`.worker.make_worker`.
        media_workers: threads decoding requests' media at once (continuous scheduler).
        read_timeout_s: the most seconds a request body may pause (408 beyond).
    """

    max_body_mb: float = 32.0
    max_image_pixels: int = 16_000_000
    max_media_seconds: float = 600.0
    max_audio_samples: int = 600 * 96_000 * 2
    max_video_pixels: int = 2_000_000_000
    max_tokens_limit: int = 1024
    default_max_tokens: int = 256
    media_root: str | None = None
    max_batch: int = 8
    max_queue: int = 64
    scheduler: str = "continuous"
    media_workers: int = 2
    read_timeout_s: float = 10.0


@dataclass
class ChatRequest:
    """A validated request: the conversation in HF chat format and how to decode it."""

    messages: list[dict[str, Any]]
    settings: GenerationSettings
    stream: bool = False
    media_kinds: list[str] = field(default_factory=list)
    include_usage: bool = False  # stream_options.include_usage: a last chunk with the token counts


def _get(obj: Any, key: str, param: str, types: type | tuple[type, ...], default: Any = None) -> Any:
    value = obj.get(key, default)
    if value is None:
        return default
    # bool is an int subclass; a JSON true is never a valid number here.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise APIError(400, f"'{param}' must be a number, got a boolean", param=param, code="invalid_type")
    if not isinstance(value, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise APIError(400, f"'{param}' must be {names}, got {type(value).__name__}", param=param,
                       code="invalid_type")
    return value


def parse_settings(body: dict[str, Any], limits: Limits) -> GenerationSettings:
    """Sampling fields → :class:`GenerationSettings`, each checked against OpenAI's ranges."""
    n = _get(body, "n", "n", int, 1)
    if n != 1:
        raise APIError(400, f"'n' must be 1: this server returns one choice per request, got {n}", param="n",
                       code="unsupported_value")
    max_tokens = _get(body, "max_completion_tokens", "max_completion_tokens", int)
    param = "max_completion_tokens"
    if max_tokens is None:
        max_tokens = _get(body, "max_tokens", "max_tokens", int)
        param = "max_tokens"
    if max_tokens is None:
        max_tokens = min(limits.default_max_tokens, limits.max_tokens_limit)
    if not 1 <= max_tokens <= limits.max_tokens_limit:
        raise APIError(400, f"'{param}' must be between 1 and {limits.max_tokens_limit} on this server, "
                            f"got {max_tokens}", param=param, code="max_tokens_out_of_range")
    temperature = float(_get(body, "temperature", "temperature", (int, float), 0.0))
    if not 0 <= temperature <= 2:
        raise APIError(400, f"'temperature' must be between 0 and 2, got {temperature}", param="temperature",
                       code="invalid_value")
    top_p = float(_get(body, "top_p", "top_p", (int, float), 1.0))
    if not 0 < top_p <= 1:
        raise APIError(400, f"'top_p' must be in (0, 1], got {top_p}", param="top_p", code="invalid_value")
    seed = _get(body, "seed", "seed", int)
    if seed is not None and not 0 <= seed < 2**63:
        raise APIError(400, f"'seed' must be between 0 and 2**63 - 1, got {seed}", param="seed", code="invalid_value")
    stop = _get(body, "stop", "stop", (str, list), [])
    stop = [stop] if isinstance(stop, str) else stop
    if len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise APIError(400, "'stop' must be a non-empty string or a list of at most 4 of them", param="stop",
                       code="invalid_value")
    if any(len(s) > MAX_STOP_CHARS for s in stop):
        raise APIError(400, f"'stop' strings may have at most {MAX_STOP_CHARS} characters, got one of "
                            f"{max(len(s) for s in stop)}", param="stop", code="invalid_value")
    penalties = {}
    low, high = PENALTY_RANGE
    for name in ("presence_penalty", "frequency_penalty"):
        penalties[name] = float(_get(body, name, name, (int, float), 0.0))
        if not low <= penalties[name] <= high:
            raise APIError(400, f"'{name}' must be between {low:g} and {high:g}, got {penalties[name]}", param=name,
                           code="invalid_value")
    return GenerationSettings(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p,
                              stop=tuple(stop), seed=seed, **penalties)


def _media_part(part: dict[str, Any], kind_key: str, param: str, resolver: MediaResolver,
                limits: Limits) -> tuple[str, dict[str, Any]]:
    if kind_key == "input_audio":
        spec = part.get("input_audio")
        if not isinstance(spec, dict) or not isinstance(spec.get("data"), str):
            raise APIError(400, f"{param}.input_audio: expected {{'data': '<base64>', 'format': 'wav'}}",
                           param=f"{param}.input_audio", code="invalid_content")
        fmt = spec.get("format", "wav")
        if fmt not in AUDIO_FORMATS:
            raise APIError(400, f"{param}.input_audio.format: expected one of {', '.join(AUDIO_FORMATS)}, got {fmt!r}",
                           param=f"{param}.input_audio.format", code="invalid_value")
        if fmt == "pcm16":
            raise APIError(400, f"{param}.input_audio.format: raw pcm16 carries no sample rate; send wav",
                           param=f"{param}.input_audio.format", code="unsupported_value")
        kind, where = "audio", f"{param}.input_audio.data"
        source: bytes | str = b64decode_strict(spec["data"], where)
    else:
        kind = _URL_PARTS[kind_key]
        spec = part.get(kind_key)
        where = f"{param}.{kind_key}.url"
        url = spec.get("url") if isinstance(spec, dict) else spec
        source = resolver.resolve(url, kind, where)
    if kind == "image":
        check_image(source, limits.max_image_pixels, where)
    else:
        check_duration(source, kind, limits.max_media_seconds, where)
    return kind, {"type": kind, kind: source}


def parse_messages(raw: Any, resolver: MediaResolver, limits: Limits) -> tuple[list[dict[str, Any]], list[str]]:
    """OpenAI messages → HF chat messages (one part per part, so indexes in errors match)."""
    if not isinstance(raw, list) or not raw:
        raise APIError(400, "'messages' must be a non-empty list", param="messages", code="invalid_messages")
    out, kinds = [], []
    for i, message in enumerate(raw):
        p = f"messages[{i}]"
        if not isinstance(message, dict):
            raise APIError(400, f"{p} must be an object with 'role' and 'content'", param=p, code="invalid_messages")
        role = _ROLES.get(message.get("role"))
        if role is None:
            raise APIError(400, f"{p}.role: expected system, developer, user or assistant, got "
                                f"{message.get('role')!r}", param=f"{p}.role", code="invalid_role")
        content = message.get("content")
        if content is None and role == "assistant":
            content = ""
        if isinstance(content, str):
            out.append({"role": role, "content": [{"type": "text", "text": content}]})
            continue
        if not isinstance(content, list):
            raise APIError(400, f"{p}.content must be a string or a list of parts", param=f"{p}.content",
                           code="invalid_content")
        if not content:
            raise APIError(400, f"{p}.content is an empty list; give at least one part", param=f"{p}.content",
                           code="invalid_content")
        parts = []
        for j, part in enumerate(content):
            pp = f"{p}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                if not isinstance(part.get("text"), str):
                    raise APIError(400, f"{pp}.text must be a string", param=f"{pp}.text", code="invalid_content")
                parts.append({"type": "text", "text": part["text"]})
            elif kind in (*_URL_PARTS, "input_audio"):
                if role != "user":
                    raise APIError(400, f"{pp}: only user messages may hold media", param=pp, code="invalid_content")
                medium, hf_part = _media_part(part, kind, pp, resolver, limits)
                kinds.append(medium)
                parts.append(hf_part)
            else:
                raise APIError(400, f"{pp}.type: unknown content type {kind!r}; expected text, image_url, "
                                    "video_url, input_audio or audio_url", param=f"{pp}.type",
                               code="invalid_content_type")
        out.append({"role": role, "content": parts})
    if out[-1]["role"] != "user":
        raise APIError(400, "the last message must be the user's", param=f"messages[{len(out) - 1}].role",
                       code="invalid_messages")
    return out, kinds


def count_prompt_tokens(engine: Any, messages: list[dict[str, Any]]) -> int:
    """Tokens of the prompt the processor will build, without decoding any medium.

    Text is tokenised with the chat template's strings around it and each medium
    counts its placeholder tokens; separate tokenisation may differ from the
    processor's by a few tokens per message, hence the margin :func:`check_context` adds.
    """
    proc = engine.processor
    t = proc.template
    pieces, media = [], 0
    system = t.system
    if messages and messages[0]["role"] == "system":
        system, messages = "".join(p["text"] for p in messages[0]["content"] if p["type"] == "text"), messages[1:]
    pieces.append(system + t.after_system)
    for m in messages:
        texts = "".join(p["text"] for p in m["content"] if p["type"] == "text")
        if m["role"] == "user":
            pieces.append(t.user_prefix + texts + t.user_suffix)
            media += sum(proc.seq_lengths.get(p["type"], 0) + 1 for p in m["content"] if p["type"] != "text")
        elif m["role"] == "assistant":
            pieces.append(t.assistant_prefix + t.answer_prefix + texts + (t.answer_suffix or ""))
    pieces.append(t.assistant_prefix)
    ids = proc.tokenizer("".join(pieces), add_special_tokens=False, split_special_tokens=True)["input_ids"]
    answers = sum(m["role"] == "assistant" for m in messages)
    return len(ids) + media + answers + 1  # + EOS per answer, BOS


@functools.lru_cache(maxsize=8)
def longest_token_chars(tokenizer: Any) -> int:
    """The most characters one token of this vocabulary decodes to (at least 1)."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return max(1, max((len(p) for p in pieces if isinstance(p, str)), default=1))


def check_context(engine: Any, req: ChatRequest, max_tokens_given: bool, limits: Limits) -> None:
    """Refuse prompts that do not fit the context (a huge prompt would exhaust memory);
    shrink the default ``max_tokens`` to what is left, as OpenAI does."""
    size = context_size(engine)
    if size is None:
        return
    # A text far too long is refused before tokenising it (megabytes of text take the shared
    # parsing threads for seconds): it has at least chars / (longest token) tokens.
    chars = sum(len(p["text"]) for m in req.messages for p in m["content"] if p["type"] == "text")
    at_least = chars // longest_token_chars(engine.processor.tokenizer)
    if at_least > size:
        raise APIError(400, f"this model's context is {size} tokens; the messages' {chars} characters take at "
                            f"least {at_least}", param="messages", code="context_length_exceeded")
    # Margin: tokenising pieces apart undercounts by a few tokens per message.
    prompt = count_prompt_tokens(engine, req.messages) + 8 + 4 * len(req.messages)
    left = size - prompt
    s = req.settings
    if left < 1 or (max_tokens_given and s.max_new_tokens > left):
        raise APIError(400, f"this model's context is {size} tokens; the messages take about {prompt} and "
                            f"{s.max_new_tokens if max_tokens_given else 'at least 1'} more were asked for",
                       param="messages", code="context_length_exceeded")
    if not max_tokens_given:
        s.max_new_tokens = min(s.max_new_tokens, left)


def _not_unicode(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: "\ud800" is valid JSON but not text
        return True
    return False


def find_lone_surrogate(body: Any) -> str | None:
    """The field path (``messages[0].content[1].text``) of the first string or key in
    ``body`` holding a lone UTF-16 surrogate, or ``None``.

    JSON may escape one (``"\\ud800"``) and ``json.loads`` accepts it, but it cannot be
    encoded: the tokenizer, a path or the answer's JSON would fail on it later. The walk
    is iterative, so nesting depth costs no recursion.
    """
    todo: list[tuple[Any, str]] = [(body, "")]
    while todo:
        value, where = todo.pop()
        if isinstance(value, str):
            if _not_unicode(value):
                return where or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and _not_unicode(key):
                    return f"{where}.<key>" if where else "<key>"
                todo.append((item, f"{where}.{key}" if where else str(key)))
        elif isinstance(value, list):
            todo.extend((item, f"{where}[{i}]") for i, item in enumerate(value))
    return None


def parse_request(body: Any, resolver: MediaResolver, limits: Limits, engine: Any = None) -> ChatRequest:
    """Validate a decoded JSON body; raises :class:`APIError` for anything unusable.

    With ``engine``, the prompt must also fit the model's context.
    """
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    bad_text = find_lone_surrogate(body)
    if bad_text is not None:  # the message must not echo it: the error body itself would not encode
        raise APIError(400, f"{bad_text}: holds a lone UTF-16 surrogate (U+D800 to U+DFFF), which is not valid "
                            "Unicode; expected UTF-8 encodable text", param=bad_text, code="invalid_text")
    for key in _UNSUPPORTED:
        if body.get(key):
            raise APIError(400, f"'{key}' is not supported by this server", param=key, code="unsupported_parameter")
    if body.get("logprobs"):
        raise APIError(400, "'logprobs' is not supported by this server", param="logprobs",
                       code="unsupported_parameter")
    if body.get("top_logprobs") is not None:  # OpenAI: only together with logprobs
        raise APIError(400, "'top_logprobs' needs 'logprobs', which this server does not support",
                       param="top_logprobs", code="unsupported_parameter")
    response_format = body.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        raise APIError(400, "'response_format' other than {'type': 'text'} is not supported by this server "
                            "(answers are free text with boxes and spans)", param="response_format",
                       code="unsupported_parameter")
    stream = _get(body, "stream", "stream", bool, False)
    options = _get(body, "stream_options", "stream_options", dict, {})
    if options and not stream:  # as OpenAI: the options only mean something for a stream
        raise APIError(400, "'stream_options' is only allowed with 'stream': true", param="stream_options",
                       code="invalid_value")
    include_usage = _get(options, "include_usage", "stream_options.include_usage", bool, False)
    settings = parse_settings(body, limits)  # cheap checks before any media decoding
    messages, kinds = parse_messages(body.get("messages"), resolver, limits)
    req = ChatRequest(messages, settings, stream, kinds, include_usage)
    if engine is not None:
        given = body.get("max_tokens") is not None or body.get("max_completion_tokens") is not None
        check_context(engine, req, given, limits)
    return req


# ---- responses -------------------------------------------------------------------------------
def grounding_of(output: GroundedOutput) -> dict[str, Any]:
    """The extra ``grounding`` field: entities in the user's frame, image size, duration."""
    d = output.to_dict()
    return {"entities": d["entities"], "image_size": list(d["image_size"]) if d["image_size"] else None,
            "duration": d["duration"]}


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion_body(req_id: str, model: str, output: GroundedOutput, finish_reason: str) -> dict[str, Any]:
    return {
        "id": req_id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "system_fingerprint": None,
        "choices": [{
            "index": 0, "finish_reason": finish_reason, "logprobs": None,
            "message": {"role": "assistant", "content": output.text, "refusal": None,
                        "grounding": grounding_of(output)},
        }],
        "usage": usage_of(output),
    }


def usage_of(output: GroundedOutput) -> dict[str, int] | None:
    if output.prompt_tokens is None or output.completion_tokens is None:
        return None
    return {"prompt_tokens": output.prompt_tokens, "completion_tokens": output.completion_tokens,
            "total_tokens": output.prompt_tokens + output.completion_tokens}


def _chunk_head(req_id: str, model: str, created: int) -> dict[str, Any]:
    return {"id": req_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None}


def stream_chunk(req_id: str, model: str, created: int, delta: dict[str, Any],
                 finish: str | None = None) -> dict[str, Any]:
    """One OpenAI ``chat.completion.chunk`` carrying ``delta``."""
    return {**_chunk_head(req_id, model, created),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}


def final_chunk(req_id: str, model: str, created: int, output: GroundedOutput, finish_reason: str) -> dict[str, Any]:
    """The last chunk of a stream: the finish reason and the answer's ``grounding``."""
    return stream_chunk(req_id, model, created, {"grounding": grounding_of(output)}, finish_reason)


def usage_chunk(req_id: str, model: str, created: int, output: GroundedOutput) -> dict[str, Any]:
    """After the final chunk when ``stream_options.include_usage``: no choices, the token counts."""
    return {**_chunk_head(req_id, model, created), "choices": [], "usage": usage_of(output)}
