"""``medxfer predict``, ``medxfer export`` and ``medxfer serve``: a trained run put to use.

Exit status of ``predict``: 0 when every input was predicted, 1 when some files could not be read
(they get an ``error`` entry in the CSV and a line on stderr; the rest are still predicted), 2 for a
bad command line (unknown run, input not found, output exists without ``--force``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from medxfer.commands.common import echo_err, fail

if TYPE_CHECKING:
    from medxfer.inference.files import PredictionTable
    from medxfer.inference.predictor import Predictor

ENGINE_HELP = "torch (the run's weights) or onnx (RUN/model.onnx from `medxfer export`)."


def predict(
    run: Path = typer.Argument(..., help="Run folder (model.json + model.safetensors)."),
    inputs: list[str] = typer.Argument(
        ..., help="Image files, folders (searched recursively), glob patterns, or a CSV with a 'path' column."
    ),
    out: Path = typer.Option(Path("predictions.csv"), "--out", "-o", help="CSV file to write."),
    engine: str = typer.Option("torch", help=ENGINE_HELP),
    tta: bool | None = typer.Option(
        None,
        "--tta/--no-tta",
        help="Average over the image and 4 small shifts (no flips); default: the run's own model.tta.",
    ),
    cam: Path | None = typer.Option(None, "--cam", help="Folder for Grad-CAM overlay PNGs (torch engine)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per forward pass."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
) -> None:
    """Predict images with a trained run: a CSV row per file (path, label, prob_<class>, threshold, error).

    Exit status: 0 all predicted; 1 some files unreadable (error column + stderr); 2 bad command line.
    """
    from medxfer.inference.files import collect_inputs
    from medxfer.inference.predictor import Predictor, PredictorError
    from medxfer.io import atomic_write_text

    if out.exists() and not force:
        fail(f"{out}: already exists; pass --force to replace it or choose another --out")
    if cam is not None and engine != "torch":
        fail(f"--cam needs --engine torch (got {engine!r})")
    try:
        paths = collect_inputs(inputs)
        predictor = Predictor(run, engine=engine)
    except (FileNotFoundError, ValueError, PredictorError) as exc:
        fail(str(exc))
    if cam is not None and not predictor.has_cam:
        fail(f"{run}: Grad-CAM needs a network's own head; this run is a classical classifier on features")
    table = _predict_with_progress(predictor, paths, batch_size, tta, cam)
    atomic_write_text(out, table.to_csv())
    ok = len(table.rows) - table.n_failed
    echo_err(f"{ok} of {len(table.rows)} images predicted -> {out}")
    if table.n_failed:
        echo_err(f"{table.n_failed} file(s) could not be read (see the 'error' column)")
        raise typer.Exit(1)


def _predict_with_progress(
    predictor: Predictor, paths: list[str], batch_size: int, tta: bool | None, cam: Path | None
) -> PredictionTable:
    """Run ``predict_files`` with a progress bar on stderr (terminal only, more than one batch)."""
    from medxfer.inference.files import predict_files

    if len(paths) <= batch_size or not sys.stderr.isatty():
        return predict_files(predictor, paths, batch_size, tta, cam, on_error=echo_err)
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("predicting", total=len(paths))
        return predict_files(
            predictor,
            paths,
            batch_size,
            tta,
            cam,
            on_error=lambda m: bar.console.print(m, markup=False, highlight=False),
            progress=lambda n: bar.advance(task, n),
        )


def export(
    run: Path = typer.Argument(..., help="Run folder to export."),
    format: str = typer.Option("onnx", "--format", "-f", help="onnx or torchscript."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output file (default RUN/model.onnx or RUN/model.ts)."
    ),
    check_images: list[Path] = typer.Option(
        [], "--check-images", help="Real images for the self-check (files or folders; repeatable)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace the output file if it exists."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Export the model (dynamic batch; outputs probabilities) and check it matches PyTorch within 1e-4."""
    from medxfer.data.images import ImageError, read_image
    from medxfer.inference.export import ExportError, default_output, export_run
    from medxfer.inference.files import collect_inputs

    if format not in ("onnx", "torchscript"):
        fail(f"unknown --format {format!r}; choose onnx or torchscript")
    target = out if out is not None else default_output(run, format)
    if target.exists() and not force:
        fail(f"{target}: already exists; pass --force to replace it or choose another --out")
    try:
        paths = collect_inputs([str(p) for p in check_images])[:16] if check_images else _run_images(run)
        images = [read_image(p) for p in paths]
        result = export_run(run, format, out=out, check_images=images, force=force, progress=not quiet)
    except (FileNotFoundError, ValueError, ImageError) as exc:
        fail(str(exc))
    except ExportError as exc:
        fail(str(exc), code=1)
    echo_err(
        f"exported {result.format} -> {result.path}; self-check on {result.n_checked} inputs "
        f"({len(paths)} real), batch sizes {result.batch_sizes}: max |diff| = {result.max_abs_diff:.2e}"
    )


def _run_images(run: Path, n: int = 8) -> list[str]:
    """Up to ``n`` real images the run was trained or validated on (from RUN/splits.csv), for self-checks."""
    import csv

    splits = run / "splits.csv"
    if not splits.is_file():
        return []
    with splits.open(newline="") as fh:
        paths = [row["path"] for row in csv.DictReader(fh) if row.get("path")]
    return [p for p in paths[:: max(1, len(paths) // n)] if Path(p).is_file()][:n]


def serve(
    run: Path = typer.Argument(..., help="Run folder to serve."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; 0.0.0.0 exposes the server to the network."),
    port: int = typer.Option(8000, help="TCP port."),
    token: str | None = typer.Option(
        None,
        help="Require 'Authorization: Bearer TOKEN' on every /api call. Visible in `ps`: prefer "
        "--token-file or env MEDXFER_TOKEN (the default source).",
    ),
    token_file: Path | None = typer.Option(
        None, "--token-file", help="Read the bearer token from this file."
    ),
    allow_open: bool = typer.Option(
        False, "--allow-open", help="Allow a non-loopback --host without a token (anyone may use the API)."
    ),
    allowed_host: list[str] = typer.Option(
        [],
        "--allowed-host",
        help="Host header names accepted (repeatable). Default: loopback names when "
        "bound to loopback, any otherwise.",
    ),
    workers: int = typer.Option(2, min=1, help="Inference threads."),
    queue: int = typer.Option(32, min=0, help="Requests that may wait for a thread; more get 503."),
    max_mb: float = typer.Option(
        20.0, "--max-mb", help="Largest upload in MB (bigger -> 413), 0 < MB <= 1024."
    ),
    max_megapixels: float | None = typer.Option(
        None, "--max-megapixels", help="Largest image decoded (default: follows the model input size)."
    ),
    header_timeout: float = typer.Option(
        10.0, "--header-timeout", help="Seconds a client has to send a whole request before it is dropped."
    ),
    max_connections: int = typer.Option(1000, "--max-connections", min=1, help="Open sockets; more get 503."),
    max_client_connections: int = typer.Option(
        100, "--max-client-connections", min=1, help="Open sockets from one client address; more get 503."
    ),
    engine: str = typer.Option("torch", help=ENGINE_HELP + " Grad-CAM needs torch."),
) -> None:
    """Serve the web page and REST API (FastAPI + uvicorn). Research use only — not for diagnosis."""
    from medxfer.inference.predictor import PredictorError
    from medxfer.serve.app import create_app
    from medxfer.serve.server import run_server

    if not 0 < max_mb <= 1024:
        fail(f"--max-mb must be more than 0 and at most 1024 (MB), got {max_mb:g}")
    if max_megapixels is not None and not 0 < max_megapixels <= 1000:
        fail(f"--max-megapixels must be more than 0 and at most 1000, got {max_megapixels:g}")
    if not 0 < header_timeout <= 600:
        fail(f"--header-timeout must be more than 0 and at most 600 seconds, got {header_timeout:g}")
    secret = _resolve_token(token, token_file)
    loopback = _is_loopback(host)
    if not loopback and secret is None and not allow_open:
        fail(
            f"--host {host} exposes the API beyond this machine without a token; set MEDXFER_TOKEN or "
            "--token-file, or pass --allow-open to serve it to anyone on the network"
        )
    hosts = list(allowed_host) or (["127.0.0.1", "localhost", "::1"] if loopback else ["*"])
    busy = _bind_error(host, port)
    if busy:
        fail(f"cannot listen on {host}:{port} ({busy}); stop what uses it or pass --port N")
    try:
        app = create_app(
            run,
            token=secret or "",
            max_bytes=int(max_mb * 1024 * 1024),
            workers=workers,
            queue=queue,
            engine=engine,
            allowed_hosts=hosts,
            max_pixels=None if max_megapixels is None else int(max_megapixels * 1_000_000),
        )
    except (FileNotFoundError, ValueError, PredictorError) as exc:
        fail(str(exc))
    if not loopback and secret is None:
        echo_err(f"WARNING: serving {host} without a token: anyone who can reach port {port} can use the API")
    echo_err(f"medxfer serve: http://{host}:{port}/  (API docs at /docs; research use only)")
    limits = {"header_timeout": header_timeout, "max_connections": max_connections}
    run_server(app, host=host, port=port, **limits, max_per_client=max_client_connections)


def _bind_error(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, no such address), or None: a trial bind, with
    uvicorn's SO_REUSEADDR, released at once, so the error comes before the URL is printed."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _resolve_token(token: str | None, token_file: Path | None) -> str | None:
    """The bearer token from --token, --token-file or env MEDXFER_TOKEN (in that order); None = no token."""
    import os

    from medxfer.serve.app import TOKEN_ENV

    if token is not None and token_file is not None:
        fail("give --token or --token-file, not both")
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"--token-file {token_file}: cannot read it ({exc})")
        if not token:
            fail(f"--token-file {token_file}: the file is empty")
    if token is None:
        token = os.environ.get(TOKEN_ENV)
    return token or None


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    """Add ``predict``, ``export`` and ``serve`` to the CLI."""
    app.command("predict")(predict)
    app.command("export")(export)
    app.command("serve")(serve)
