"""Guards around the web API: a request-body size limit and a bounded inference pool.

Both are plain objects with no FastAPI state so they can be tested alone.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    """Raised inside the app while the body is being read and passes the limit."""


class BodySizeLimit:
    """ASGI middleware: 413 when a request body on ``/api/`` is over ``max_body`` bytes.

    Checks ``Content-Length`` first (nothing is read), then counts bytes as they arrive, so a client
    that lies about or omits the length is stopped too — before the whole body sits in memory.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], max_body: int, limit_text: str) -> None:
        self.app = app
        self.max_body = max_body
        self.limit_text = limit_text

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._reject(send)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": f"file too large: the limit is {self.limit_text}"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


class PoolFull(Exception):
    """The inference queue is full; the client should retry later (HTTP 503)."""


class InferencePool:
    """A fixed number of worker threads plus a bounded waiting line.

    At most ``workers`` inferences run at once and at most ``queue`` more wait; a request beyond that
    gets :class:`PoolFull` at once instead of piling up memory.
    """

    def __init__(self, workers: int = 2, queue: int = 32) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"workers must be >= 1 and queue >= 0, got workers={workers}, queue={queue}")
        self.workers = workers
        self.capacity = workers + queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medxfer-infer")
        self._lock = threading.Lock()
        self._pending = 0
        self.peak = 0
        self.rejected = 0

    @property
    def pending(self) -> int:
        return self._pending

    def acquire(self) -> None:
        """Reserve a place (call before reading a large body); raises :class:`PoolFull`."""
        with self._lock:
            if self._pending >= self.capacity:
                self.rejected += 1
                raise PoolFull(f"server busy: {self._pending} requests in progress; retry shortly")
            self._pending += 1
            self.peak = max(self.peak, self._pending)

    def release(self) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` on a worker thread (the place must already be acquired)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _host_name(value: str) -> str:
    """``"Example.org:8000"`` -> ``"example.org"``; ``"[::1]:80"`` -> ``"::1"``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class HostOriginGuard:
    """ASGI middleware against DNS rebinding and cross-site posts (JSON errors).

    - ``Host`` must name one of ``allowed_hosts`` (``"*"`` allows any): a rebinding page's requests
      carry its own domain, so they get 400 even though they reach a loopback socket.
    - A state-changing request (anything but GET / HEAD / OPTIONS) with an ``Origin`` header must come
      from the same origin (scheme, host and port) as the request itself; a form on another site gets 403.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], allowed_hosts: list[str]) -> None:
        self.app = app
        self.allowed = {h.lower().strip("[]") for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []}
        host = headers.get("host", "")
        if "*" not in self.allowed and _host_name(host) not in self.allowed:
            allowed = ", ".join(sorted(self.allowed))
            detail = f"Host header {host!r} is not served here (allowed: {allowed}; see --allowed-host)"
            await send_json(send, 400, detail)
            return
        origin = headers.get("origin")
        if scope.get("method") not in ("GET", "HEAD", "OPTIONS") and origin is not None:
            own = f"{scope.get('scheme', 'http')}://{host}".lower()
            if origin.rstrip("/").lower() != own:  # scheme, host and port: https://x is not http://x
                await send_json(send, 403, f"cross-origin request from {origin!r} refused (this is {own})")
                return
        await self.app(scope, receive, send)


async def send_json(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send a complete JSON ``{"detail": ...}`` response from ASGI middleware."""
    body = json.dumps({"detail": detail}).encode()
    start_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": start_headers + (headers or [])})
    await send({"type": "http.response.body", "body": body})
