"""Running the app under uvicorn so that idle or slow connections cannot starve it.

uvicorn's ``limit_concurrency`` counts *connections*, idle ones included, so ~50 clients that open a
socket and send nothing made every request (``/api/health`` too) a 503. Here instead:

- no ``limit_concurrency``: the inference pool (``limits.InferencePool``) bounds the real work;
- a header/body deadline per connection (``header_timeout``): a client that has not sent a whole
  request (headers and body) that many seconds after connecting, or after its previous response, is
  disconnected (slowloris); an upload still sending 64 KiB per deadline gets a new one; a request the
  app is working on is never cut;
- idle keep-alive connections close after ``keep_alive`` seconds (uvicorn's own timer);
- beyond ``max_connections`` open sockets a new one gets a JSON 503 with ``Retry-After`` and is closed,
  and so does a new one beyond ``max_per_client`` open sockets from the same client address (one client
  cannot take the whole cap).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_MAX_PER_CLIENT = 100
RETRY_AFTER_S = 2
PROGRESS_BYTES = 64 * 1024  # an upload sending this much per deadline gets a new deadline


def busy_response(detail: str) -> bytes:
    """A complete HTTP/1.1 503 response with a JSON body, ``Retry-After`` and ``Connection: close``."""
    body = json.dumps({"detail": detail}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"retry-after: {RETRY_AFTER_S}\r\nconnection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a per-request deadline and a cap on open connections."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_per_client: int = DEFAULT_MAX_PER_CLIENT
    _guard: asyncio.TimerHandle | None = None
    _received = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        busy = self._busy()
        if busy:
            transport.write(busy_response(busy))
            transport.close()
            return
        self._arm()

    def _busy(self) -> str | None:
        """Why this new connection is refused (a cap is full), or None."""
        if len(self.connections) > self.max_connections:
            return f"server busy: {self.max_connections} connections open; retry"
        address = self.client[0] if self.client else None
        if address is not None:
            mine = sum(1 for c in self.connections if c.client and c.client[0] == address)
            if mine > self.max_per_client:
                return f"too many connections from {address} ({self.max_per_client} open); retry"
        return None

    def data_received(self, data: bytes) -> None:
        # A large upload that keeps flowing (64 KiB per deadline at least) is not cut; a trickle is.
        self._received += len(data)
        if self._received >= PROGRESS_BYTES and self._guard is not None:
            self._arm()
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this keep-alive connection gets its own deadline

    def _arm(self) -> None:
        self._disarm()
        self._received = 0
        self._guard = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._guard is not None:
            self._guard.cancel()
            self._guard = None

    def _expire(self) -> None:
        """Close when the client still has not sent a whole request; leave requests being handled alone."""
        import h11

        self._guard = None
        if self.transport.is_closing():
            return
        waiting_for_request = self.cycle is None or self.cycle.response_complete
        if waiting_for_request or self.conn.their_state is h11.SEND_BODY:
            self.transport.close()


def guarded_protocol(
    header_timeout: float, max_connections: int, max_per_client: int = DEFAULT_MAX_PER_CLIENT
) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass with these limits (uvicorn takes a class, not an instance)."""
    if header_timeout <= 0 or max_connections < 1 or max_per_client < 1:
        raise ValueError(
            "header_timeout must be > 0, max_connections and max_per_client >= 1, got "
            f"{header_timeout}, {max_connections}, {max_per_client}"
        )
    attrs = {
        "header_timeout": float(header_timeout),
        "max_connections": int(max_connections),
        "max_per_client": int(max_per_client),
    }
    return type("GuardedH11ProtocolConfigured", (GuardedH11Protocol,), attrs)


def run_server(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    keep_alive: int = 5,
    max_per_client: int = DEFAULT_MAX_PER_CLIENT,
) -> None:
    """Serve ``app`` with uvicorn (blocking) under the connection policy above.

    Example::

        run_server(create_app("runs/kermany"), port=8000, header_timeout=10)
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(header_timeout, max_connections, max_per_client),
        log_level="warning",
        timeout_keep_alive=keep_alive,
        limit_concurrency=None,
    )
    uvicorn.Server(config).run()
