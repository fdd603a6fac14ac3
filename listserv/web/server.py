"""Serving the web app with uvicorn inside the caller's event loop (``commonroom serve``).

Invariants:
- The socket is bound here, before uvicorn sees it, so a port in use raises ``OSError`` to the
  caller (which says what to do) instead of uvicorn's ``sys.exit``; port 0 picks a free port.
- uvicorn installs no signal handlers of its own: the process's ``App`` owns SIGINT/SIGTERM and
  stops the web server with the other doors.
- Access logs are off: the reverse proxy in front keeps them; errors are still logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

STOP_GRACE = 5  # seconds open requests get to finish when stopping


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the App handles signals for every door


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=1024)
    # create_server leaves proto 0, and asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto is IPPROTO_TCP: without it Nagle meets delayed ACKs and every response waits ~40 ms.
    tcp = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, fileno=sock.detach())
    return tcp


class WebServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind (raising ``OSError``), then serve in a task until ``stop``."""
        sock = bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=STOP_GRACE, server_header=False)
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="web")
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what went wrong
                raise RuntimeError("the web server stopped while starting")
            await asyncio.sleep(0.01)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None
