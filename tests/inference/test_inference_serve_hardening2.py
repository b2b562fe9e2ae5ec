"""Issue 23 against ``serve``: slow uploads never hold an inference slot, one client address cannot take
the connection cap, uploads stay in memory, the Origin check includes the scheme, the spec names the
image types."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from medxfer.serve.app import IMAGE_MEDIA_TYPES, create_app
from medxfer.serve.upload import BudgetFull, UploadBudget, UploadTooSlow, read_body

TRICKLERS = 40
PER_CLIENT = 50
BOUNDARY = "b0undary"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _form(data: bytes, name: str = "x.jpeg") -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def _post(port: int, form: bytes, source: str = "127.0.0.1") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=(source, 0))
    try:
        conn.request(
            "POST", "/api/predict", form, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        )
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def small_server(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``medxfer serve`` with one worker and a queue of 4 (capacity 5, far below 40 uploads)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve2") / "serve.log"
    args = ["serve", str(tiny_run), "--port", str(port), "--workers", "1", "--queue", "4"]
    args += ["--max-connections", "300", "--max-client-connections", str(PER_CLIENT)]
    exe = [sys.executable, "-c", "from medxfer.cli import app; app()"]
    with log.open("w") as fh:
        proc = subprocess.Popen(
            exe + args, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "MEDXFER_TOKEN": ""}
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_trickling_uploads_leave_real_predicts_answering_200(
    small_server: int, kermany_paths: list[Path]
) -> None:
    """Before: the slot was taken before the body was read, so 40 trickles made every predict 503."""
    form = _form(kermany_paths[0].read_bytes())
    head = (
        f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{small_server}\r\nContent-Length: {len(form)}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n"
    ).encode()
    slow = [socket.create_connection(("127.0.0.1", small_server), timeout=5) for _ in range(TRICKLERS)]
    stop = threading.Event()

    def trickle() -> None:  # 10 bytes per second each
        sent = 0
        for s in slow:
            s.sendall(head)
        while not stop.wait(0.5):
            for s in slow:
                try:
                    s.sendall(form[sent : sent + 5])
                except OSError:
                    pass
            sent += 5

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        time.sleep(1.5)  # every trickle has started its body
        for _ in range(3):
            status, body = _post(small_server, form)
            assert status == 200 and body["label"] in ("normal", "pneumonia"), body
    finally:
        stop.set()
        thread.join(timeout=5)
        for s in slow:
            s.close()


def test_one_client_address_cannot_take_the_connection_cap(small_server: int) -> None:
    mine = [
        socket.create_connection(("127.0.0.1", small_server), timeout=5, source_address=("127.0.0.3", 0))
        for _ in range(PER_CLIENT)
    ]
    try:
        time.sleep(0.3)
        extra = socket.create_connection(
            ("127.0.0.1", small_server), timeout=3, source_address=("127.0.0.3", 0)
        )
        with extra:
            reply = extra.recv(4096)
        assert b" 503 " in reply and b"too many connections from 127.0.0.3" in reply, reply
        conn = http.client.HTTPConnection(
            "127.0.0.1", small_server, timeout=5, source_address=("127.0.0.4", 0)
        )
        conn.request("GET", "/api/health")
        assert conn.getresponse().status == 200  # another address is served
        conn.close()
    finally:
        for s in mine:
            s.close()


class _SlowRequest:
    """A stand-in for a Starlette request whose body arrives ``size`` bytes every ``every`` seconds."""

    def __init__(self, size: int, every: float, total: int) -> None:
        self.size, self.every, self.total = size, every, total

    async def stream(self) -> AsyncIterator[bytes]:
        for _ in range(0, self.total, self.size):
            await asyncio.sleep(self.every)
            yield b"x" * self.size
        yield b""


def test_a_trickle_is_cut_at_its_deadline_and_gives_its_budget_back() -> None:
    budget = UploadBudget(10_000)
    started = time.monotonic()
    with pytest.raises(UploadTooSlow, match="upload too slow"):
        asyncio.run(read_body(_SlowRequest(10, 0.05, 10_000), 1_000_000, budget, grace_s=0.5, min_rate=1000))
    assert time.monotonic() - started < 2 and budget.held == 0
    fast = asyncio.run(
        read_body(_SlowRequest(1000, 0.01, 5000), 1_000_000, budget, grace_s=0.5, min_rate=1000)
    )
    assert len(fast) == 5000 and budget.held == 5000  # held until the caller gives it back
    with pytest.raises(BudgetFull, match="server busy"):
        asyncio.run(read_body(_SlowRequest(1000, 0.0, 6000), 1_000_000, budget))
    assert budget.held == 5000


def test_uploads_stay_in_memory_and_the_budget_is_returned(
    tiny_run: Path, kermany_paths: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a part over 1 MB was spooled to a temporary file on disk."""
    rolled: list[int] = []
    original = tempfile.SpooledTemporaryFile.rollover
    monkeypatch.setattr(
        tempfile.SpooledTemporaryFile, "rollover", lambda self: (rolled.append(1), original(self))[1]
    )
    app = create_app(tiny_run, token="")
    client = TestClient(app, raise_server_exceptions=False)
    big = kermany_paths[0].read_bytes() + b"\x00" * 3_000_000  # bytes after the JPEG's end are ignored
    r = client.post("/api/predict", files={"file": ("x.jpeg", big, "image/jpeg")})
    assert r.status_code == 200, r.text
    assert rolled == [] and app.state.budget.held == 0


def test_origin_check_compares_the_scheme(tiny_run: Path) -> None:
    client = TestClient(create_app(tiny_run, token=""), base_url="http://127.0.0.1:8000")
    files = {"file": ("x.png", b"\x89PNG")}
    r = client.post("/api/predict", files=files, headers={"Origin": "https://127.0.0.1:8000"})
    assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
    r = client.post("/api/predict", files=files, headers={"Origin": "http://127.0.0.1:8000"})
    assert r.status_code == 400  # same origin: through to the decoder (a damaged PNG)


def test_spec_names_the_accepted_image_types(tiny_run: Path) -> None:
    spec = TestClient(create_app(tiny_run, token="")).get("/openapi.json").json()
    post = spec["paths"]["/api/predict"]["post"]
    encoding = post["requestBody"]["content"]["multipart/form-data"]["encoding"]["file"]["contentType"]
    assert [t.strip() for t in encoding.split(",")] == list(IMAGE_MEDIA_TYPES)
    assert "408" in post["responses"] and "415" in post["responses"]
