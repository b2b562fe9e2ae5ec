"""Reading an upload before it may wait for inference: its own deadline, a memory budget, no disk.

``POST /api/predict`` reads the whole body first (:func:`read_body`), then parses the multipart form from
memory (:func:`parse_upload`), and only then asks the inference pool for a place. So a slow upload holds
a connection and a few bytes of budget, never an inference slot (40 uploads trickling 10 bytes/s made
every real predict a 503 when the slot came first).

- Deadline: the body must arrive within ``grace_s`` plus one second per ``min_rate`` bytes received so
  far (a minimum average rate after a grace period); a trickle is cut with 408.
- Budget: the bytes of all bodies being held (read, parsed, waiting or predicted) share one budget; an
  upload that would pass it is a 503 with ``Retry-After``. A trickle takes almost none of it.
- Memory only: the form is parsed with a spool limit above the upload cap, so no upload is written to a
  temporary file on disk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

UPLOAD_GRACE_S = 10.0  # every upload may take this long, whatever its size
MIN_UPLOAD_RATE = 16 * 1024  # then it must average at least this many bytes per second


class UploadTooSlow(Exception):
    """The body did not arrive within its deadline (HTTP 408)."""


class BudgetFull(Exception):
    """Held upload bytes would pass the budget (HTTP 503)."""


class UploadBudget:
    """Bytes of request bodies held at once, across requests (used on the event loop only)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the upload budget must be a positive number of bytes, got {limit}")
        self.limit = limit
        self.held = 0

    def take(self, n: int) -> None:
        if self.held + n > self.limit:
            raise BudgetFull(f"server busy: {self.held} bytes of uploads in progress; retry shortly")
        self.held += n

    def give(self, n: int) -> None:
        self.held -= n


async def read_body(
    request: Any,
    max_body: int,
    budget: UploadBudget,
    grace_s: float = UPLOAD_GRACE_S,
    min_rate: float = MIN_UPLOAD_RATE,
) -> bytes:
    """The whole request body, in memory, read under the deadline and the budget.

    The bytes are taken from ``budget``; the caller gives back ``len(body)`` when done with it (on an
    error here they are given back already). Raises :class:`UploadTooSlow`, :class:`BudgetFull` or
    ``limits.BodyTooLarge`` (over ``max_body``).
    """
    from medxfer.serve.limits import BodyTooLarge

    chunks: list[bytes] = []
    received = 0
    start = time.monotonic()
    stream = request.stream().__aiter__()
    try:
        while True:
            left = start + grace_s + received / min_rate - time.monotonic()
            if left <= 0:
                raise UploadTooSlow(_slow(received, grace_s, min_rate))
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), timeout=left)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise UploadTooSlow(_slow(received, grace_s, min_rate)) from None
            if received + len(chunk) > max_body:
                raise BodyTooLarge
            budget.take(len(chunk))
            received += len(chunk)
            chunks.append(chunk)
    except BaseException:
        budget.give(received)
        raise
    return b"".join(chunks)


def _slow(received: int, grace_s: float, min_rate: float) -> str:
    return (
        f"upload too slow: {received} bytes arrived; an upload gets {grace_s:g} s plus 1 s per "
        f"{min_rate / 1024:g} KiB"
    )


async def parse_upload(headers: Any, body: bytes, max_bytes: int) -> tuple[str, bytes]:
    """The ``file`` field of a multipart form held in ``body``: (file name, bytes), parsed in memory.

    Raises ``ValueError`` (a malformed form or no ``file`` field; the message says which) and
    ``limits.BodyTooLarge`` when the file is over ``max_bytes``.
    """
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartParser

    from medxfer.serve.limits import BodyTooLarge

    class InMemoryParser(MultiPartParser):
        spool_max_size = max_bytes + 1  # the upload cap is checked before: never spooled to disk

    async def once() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await InMemoryParser(headers, once(), max_files=1, max_fields=8).parse()
    except Exception as exc:  # noqa: BLE001 - a malformed multipart body is the client's error
        raise ValueError(f"could not read the upload as multipart form data: {exc}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValueError("no file: send the image in a multipart field named 'file'")
        data = await upload.read(max_bytes + 1)
        name = upload.filename or "upload"
    finally:
        await form.close()
    if len(data) > max_bytes:
        raise BodyTooLarge
    if not data:
        raise ValueError(f"{name}: the file is empty")
    return name, data
