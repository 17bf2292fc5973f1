"""A small client for OpenAI-compatible ``/chat/completions`` endpoints, standard library only.

Retries 429 and 5xx answers (and connection errors) with exponential backoff, honouring
``Retry-After``; other 4xx answers fail at once (a wrong model name does not get better).
Each HTTP attempt is reported to ``on_attempt`` so callers can count requests against a
budget and log usage.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...errors import InputError

__all__ = ["ChatClient", "ChatError", "ChatResult", "BudgetExhausted"]


class ChatError(InputError):
    """The endpoint failed for good (a 4xx other than 429, or retries exhausted)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class BudgetExhausted(Exception):
    """No request may be sent: the run's request budget is spent."""


@dataclass
class ChatResult:
    text: str
    usage: dict[str, int] = field(default_factory=dict)
    attempts: int = 1


@dataclass
class ChatClient:
    """Args:
        endpoint: base URL (``http://host:port/v1``) or the full ``.../chat/completions`` URL.
        model: model name sent in each request.
        api_key_env: environment variable holding the key (sent as a Bearer token when set).
        timeout: seconds per HTTP request.
        max_retries: retries after the first attempt for 429 / 5xx / connection errors.
        backoff: first wait in seconds, doubled each retry (capped at 60 s).
        before_attempt: called before every HTTP attempt (may raise :class:`BudgetExhausted`).
        on_attempt: called after every attempt with ``(status or None, usage dict, seconds)``.
        sleep: the wait function (tests pass a fake one).
    """

    endpoint: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 120.0
    max_retries: int = 5
    backoff: float = 1.0
    before_attempt: Callable[[], None] | None = None
    on_attempt: Callable[[int | None, dict[str, int], float], None] | None = None
    sleep: Callable[[float], None] = time.sleep

    @property
    def url(self) -> str:
        e = self.endpoint.rstrip("/")
        return e if e.endswith("/chat/completions") else e + "/chat/completions"

    def chat(self, messages: list[dict[str, Any]], **params: Any) -> ChatResult:
        body = json.dumps({"model": self.model, "messages": messages, **params}).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        wait = self.backoff
        last = ""
        for attempt in range(1, self.max_retries + 2):
            if self.before_attempt is not None:
                self.before_attempt()
            t0 = time.monotonic()
            status, retry_after = None, None
            try:
                req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = json.loads(resp.read().decode("utf-8"))
                status = 200
                usage = payload.get("usage") or {}
                if self.on_attempt is not None:
                    self.on_attempt(status, usage, time.monotonic() - t0)
                try:
                    text = payload["choices"][0]["message"]["content"] or ""
                except (KeyError, IndexError, TypeError):
                    raise ChatError(f"{self.url}: answer without choices[0].message.content: {str(payload)[:200]}")
                return ChatResult(text=text, usage=usage, attempts=attempt)
            except urllib.error.HTTPError as e:
                status = e.code
                retry_after = e.headers.get("Retry-After") if e.headers else None
                last = f"HTTP {e.code}: {e.read()[:200].decode('utf-8', 'replace')}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError) as e:
                last = f"{type(e).__name__}: {e}"
            if self.on_attempt is not None:
                self.on_attempt(status, {}, time.monotonic() - t0)
            if status is not None and 400 <= status < 500 and status != 429:
                raise ChatError(f"{self.url}: {last}", status)
            if attempt > self.max_retries:
                break
            try:
                delay = float(retry_after) if retry_after is not None else wait
            except ValueError:
                delay = wait
            self.sleep(min(delay, 60.0))
            wait = min(wait * 2, 60.0)
        raise ChatError(f"{self.url}: gave up after {self.max_retries + 1} attempts ({last})", status)
