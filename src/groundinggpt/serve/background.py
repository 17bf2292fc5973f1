"""The HTTP server on 127.0.0.1 in a background thread of this process.

For code that drives the server and its clients from one Python process — the load
benchmark (``bench/serve_load.py``), the serve tests, a notebook — without a subprocess
and without binding anything but the loopback interface.

Example::

    from groundinggpt.serve.server import create_app
    with BackgroundServer(create_app(engine)) as srv:
        requests.post(f"{srv.url}/v1/chat/completions", json=...)
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BackgroundServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a daemon thread (a context manager).

    Args:
        app: an ASGI app (``create_app(...)``).
        start_timeout: seconds to wait for the server to listen.
    """

    def __init__(self, app: Any, start_timeout: float = 60.0):
        import uvicorn

        self.port = free_port()
        self.start_timeout = start_timeout
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.time() + self.start_timeout
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
