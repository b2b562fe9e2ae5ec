"""Load test of ``medxfer serve`` on 127.0.0.1: concurrent clients posting real X-rays.

    python bench/bench_serve.py [--run RUN | --backbone efficientnet_lite0] [--clients 32]
        [--seconds 30] [--cam-every 0] [--workers 2] [--queue 32] [--tricklers 0]

Starts the server as a subprocess (free port), lets ``--clients`` threads post Kermany images to
``/api/predict`` back to back for ``--seconds``, samples the server's resident memory (psutil, with
children) every 50 ms, and prints p50/p95/max latency, throughput, the error count (anything but
HTTP 200; must be 0) and peak RSS. Exit status 1 when any request failed. ``--tricklers N`` adds N
uploads from 127.0.0.2 that send their headers, then 10 bytes a second (reopened when the server cuts
them): the real clients must still get only 200s (issue 23).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _runs import kermany_paths, make_bench_run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(run: Path, port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    exe = shutil.which("medxfer", path=str(Path(sys.executable).parent)) or "medxfer"
    cmd = [
        exe,
        "serve",
        str(run),
        "--port",
        str(port),
        "--workers",
        str(args.workers),
        "--queue",
        str(args.queue),
    ]
    env = {**os.environ, "MEDXFER_TOKEN": ""}
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def _wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()}")
        try:
            if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit("server did not become ready in 120 s")


def _sample_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    import psutil

    proc = psutil.Process(pid)
    while not stop.is_set():
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
        except psutil.Error:
            return
        peak[0] = max(peak[0], rss)
        stop.wait(0.05)


def _client(
    url: str, payloads: list[tuple[str, bytes]], end: float, cam_every: int, out: list, errs: list
) -> None:
    import httpx

    with httpx.Client(timeout=120) as http:
        i = 0
        while time.monotonic() < end:
            name, data = payloads[i % len(payloads)]
            cam = "true" if cam_every and i % cam_every == 0 else "false"
            t0 = time.perf_counter()
            try:
                r = http.post(f"{url}/api/predict?cam={cam}", files={"file": (name, data, "image/jpeg")})
                ok = r.status_code == 200
                detail = f"HTTP {r.status_code}: {r.text[:120]}"
            except httpx.HTTPError as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            (out if ok else errs).append(time.perf_counter() - t0 if ok else detail)
            i += 1


def _trickle(port: int, n: int, stop: threading.Event) -> None:
    """``n`` uploads trickling 10 bytes/s from 127.0.0.2 until ``stop``; a cut one is opened again."""
    head = (
        f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 1000000\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n\r\n"
        '--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
    ).encode()  # a valid start: the file part's bytes then follow, 5 every half second
    socks: list[socket.socket | None] = [None] * n
    while not stop.wait(0.5):
        for i in range(n):
            try:
                if socks[i] is None:
                    socks[i] = socket.create_connection(("127.0.0.1", port), 5, ("127.0.0.2", 0))
                    socks[i].sendall(head)  # type: ignore[union-attr]
                socks[i].sendall(b"\x00" * 5)  # type: ignore[union-attr]
            except OSError:
                if socks[i] is not None:
                    socks[i].close()  # type: ignore[union-attr]
                socks[i] = None
    for s in socks:
        if s is not None:
            s.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument(
        "--cam-every", type=int, default=0, help="ask for Grad-CAM on every N-th request (0 = never)"
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--queue", type=int, default=32)
    ap.add_argument("--tricklers", type=int, default=0, help="slow uploads (10 bytes/s) running alongside")
    args = ap.parse_args()

    import numpy as np
    import psutil

    work = Path(tempfile.mkdtemp(prefix="medxfer-bench-serve-"))
    proc = None
    try:
        run = work / "run"
        shutil.copytree(args.run, run) if args.run else make_bench_run(run, args.backbone)
        payloads = [(p.name, p.read_bytes()) for p in kermany_paths(16)]
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = _start_server(run, port, args, work / "serve.log")
        _wait_ready(url, proc, work / "serve.log")
        idle_rss = psutil.Process(proc.pid).memory_info().rss
        stop, peak = threading.Event(), [idle_rss]
        sampler = threading.Thread(target=_sample_rss, args=(proc.pid, stop, peak), daemon=True)
        sampler.start()
        trickler = threading.Thread(target=_trickle, args=(port, args.tricklers, stop), daemon=True)
        if args.tricklers:
            trickler.start()
            time.sleep(1.0)
        lat: list[float] = []
        errs: list[str] = []
        end = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=_client, args=(url, payloads, end, args.cam_every, lat, errs))
            for _ in range(args.clients)
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
        ms = np.array(lat) * 1000 if lat else np.array([np.nan])
        print(
            f"\nmedxfer serve load test: {args.clients} clients x {args.seconds:g} s, backbone "
            f"{args.backbone if not args.run else args.run}, workers {args.workers}, queue {args.queue}, "
            f"cam every {args.cam_every or 'never'}, {args.tricklers} trickling uploads, "
            f"{os.cpu_count()} CPUs"
        )
        print("\n| requests ok | errors | req/s | p50 ms | p95 ms | max ms | RSS idle MB | RSS peak MB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        print(
            f"| {len(lat)} | {len(errs)} | {len(lat) / wall:.1f} | {np.percentile(ms, 50):.0f} | "
            f"{np.percentile(ms, 95):.0f} | {ms.max():.0f} | {idle_rss / 2**20:.0f} | {peak[0] / 2**20:.0f} |"
        )
        for e in sorted(set(errs))[:5]:
            print("error:", e)
        if errs:
            raise SystemExit(1)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
