"""Registers ``chat``, ``serve`` and ``web`` with the ``groundinggpt`` command.

Each front end's module is imported only to add its arguments; FastAPI, uvicorn and
Gradio are imported when the command runs, so ``groundinggpt --help`` works without them.
"""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    from . import chat, server, web

    chat.register(sub)
    server.register(sub)
    web.register(sub)
