"""ASGI apps in tests: a real uvicorn server on a free loopback port, in a thread, for one `with` block."""

from __future__ import annotations

import socket
import threading
from typing import Any

from tests.processes import wait_until


class AppServer:
    """Serves an ASGI app (with the tests' uvicorn settings) or a whole `uvicorn.Config` on 127.0.0.1.

    A subclass that needs its URL to build the app calls `__init__()` without one, then `serve(app)`.
    """

    def __init__(self, application: Any = None, *, scheme: str = "http") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"{scheme}://127.0.0.1:{self.sock.getsockname()[1]}"
        if application is not None:
            self.serve(application)

    def serve(self, application: Any) -> None:
        import uvicorn

        config = application if isinstance(application, uvicorn.Config) else \
            uvicorn.Config(application, log_level="warning", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> None:
        self.thread.start()
        wait_until(lambda: self.server.started, 30, f"{self.url} to start", interval=0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
        assert not self.thread.is_alive(), f"{self.url} did not stop"

    def __enter__(self) -> Any:  # the subclass's own type, for `with Sub(...) as server`
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
