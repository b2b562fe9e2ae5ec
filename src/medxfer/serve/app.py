"""The web API and page: ``create_app(run_dir)`` returns a FastAPI app serving one run's model.

Endpoints (OpenAPI docs at ``/docs``):

- ``POST /api/predict`` — multipart field ``file`` (PNG, JPEG, TIFF, DICOM); query ``cam=true`` adds a
  Grad-CAM overlay (``cam_png``, base64 PNG), ``image=true`` the decoded image (``image_png``; lets the
  page show DICOM files). Returns ``{label, probabilities, threshold, model, [cam_png], [image_png]}``.
- ``GET /api/health`` — liveness and queue state. ``GET /api/model`` — class names, backbone, metrics.
- ``GET /`` — the page (``static/``): upload, probability bars, Grad-CAM toggle, research-use notice.

Errors are JSON ``{"detail": "..."}`` a person can read: 413 over the size limit (checked from
``Content-Length`` and while reading), 408 for an upload slower than its deadline
(``serve/upload.py``: the body is read before the request waits for inference), 415 for something
that is not an image, 400 for a damaged image or a malformed request, 422 when the model gives
non-finite probabilities (never a label), 401 without the bearer token (when one is set: then
*every* ``/api`` route, health included, needs ``Authorization: Bearer <token>``), 403 for a
cross-origin browser post, 400 for a ``Host`` not in ``allowed_hosts`` (DNS rebinding), 503 with
``Retry-After`` when the bounded queue or the upload memory budget is full. No stack
trace ever reaches the client. The OpenAPI document lists exactly these (``serve/openapi.py``);
``/docs`` (Swagger UI) and ``/redoc`` are served from installed files, offline.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI, Request

from medxfer.serve.limits import BodySizeLimit, BodyTooLarge, HostOriginGuard, InferencePool, PoolFull
from medxfer.serve.upload import BudgetFull, UploadBudget, UploadTooSlow, parse_upload, read_body

if TYPE_CHECKING:
    from medxfer.inference.predictor import Predictor

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
TOKEN_ENV = "MEDXFER_TOKEN"
MULTIPART_SLACK = 64 * 1024  # multipart headers and boundaries around the file
RETRY_AFTER_S = 2  # what a 503 tells the client to wait
BUSY_HEADERS = {"Retry-After": str(RETRY_AFTER_S)}
log = logging.getLogger("medxfer.serve")


# The image media types the server reads (anything else is a 415); the spec says so for the file part.
IMAGE_MEDIA_TYPES = (
    "image/png",
    "image/jpeg",
    "image/tiff",
    "image/bmp",
    "image/gif",
    "image/webp",
    "application/dicom",
)
_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The image: " + ", ".join(IMAGE_MEDIA_TYPES),
                        }
                    },
                },
                "encoding": {"file": {"contentType": ", ".join(IMAGE_MEDIA_TYPES)}},
            }
        },
    }
}


class ApiError(Exception):
    """An error with an HTTP status and a message meant for a person."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def looks_like_image(data: bytes, name: str = "") -> bool:
    """True when ``data`` looks like PNG, JPEG, TIFF, BMP, GIF, WebP or DICOM (bad decode: 400, else 415).

    A ``.dcm`` name counts as DICOM (a damaged DICOM may have lost its ``DICM`` marker).
    """
    from medxfer.data.images import sniff_format

    return sniff_format(data[:132], name) is not None


def model_summary(predictor: Predictor) -> dict[str, Any]:
    """What the page and ``/api/model`` show about the model."""
    info = predictor.info
    return {
        "backbone": info.label,  # an ensemble: "ensemble of A + B"
        "weights": " + ".join(dict.fromkeys(n.weights for n in info.networks)),
        "classes": list(info.class_names),
        "input_size": info.input_size,
        "output": info.output,
        "threshold": predictor.threshold,
        "threshold_method": info.threshold_method,
        "metrics": info.metrics,
        "engine": predictor.engine,
        "run": predictor.run_dir.name,
        **({"members": [m.backbone for m in info.members]} if info.members is not None else {}),
    }


def create_app(
    run_dir: str | os.PathLike[str],
    token: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    workers: int = 2,
    queue: int = 32,
    engine: str = "torch",
    allowed_hosts: list[str] | None = None,
    max_pixels: int | None = None,
) -> FastAPI:
    """Build the app for one run folder; the model is loaded once, here.

    ``token`` (env ``MEDXFER_TOKEN`` when None; ``""`` = no token) protects every ``/api`` route.
    ``allowed_hosts``: names the ``Host`` header may carry (None: any; ``medxfer serve`` passes the
    loopback names when bound to loopback). ``max_pixels``: decode cap (default: follows the model input).
    ``workers`` threads run inference; ``queue`` more requests may wait; beyond that 503. Bodies are read
    (in memory, under a deadline) before a request waits for inference; the bytes held at once are
    bounded by ``(workers + queue) * max_bytes`` (beyond: 503), plus one decoded image per worker.

    Example::

        uvicorn.run(create_app("runs/kermany", token="s3cret"), host="127.0.0.1", port=8000)
    """
    from fastapi_offline import FastAPIOffline

    from medxfer.inference.predictor import Predictor
    from medxfer.serve.openapi import build_openapi

    if max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive number of bytes, got {max_bytes}")
    predictor = Predictor(run_dir, engine=engine, max_pixels=max_pixels)
    # None -> the environment decides; "" -> explicitly no token.
    token = (token if token is not None else os.environ.get(TOKEN_ENV)) or None
    pool = InferencePool(workers=workers, queue=queue)
    budget = UploadBudget((workers + queue) * (max_bytes + MULTIPART_SLACK))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.shutdown()

    app = FastAPIOffline(  # Swagger UI and ReDoc from the installed package, no CDN
        lifespan=lifespan,
        title="medxfer",
        description="Research use only — not for diagnosis. Predictions of one trained medxfer run.",
        version="1",
    )
    app.state.predictor = predictor
    app.state.pool = pool
    app.state.max_bytes = max_bytes
    app.state.budget = budget
    _add_error_handlers(app)
    _add_api(app, predictor, pool, budget, token, max_bytes)
    _add_page(app)
    app.add_middleware(BodySizeLimit, max_body=max_bytes + MULTIPART_SLACK, limit_text=_mb(max_bytes))
    app.add_middleware(HostOriginGuard, allowed_hosts=list(allowed_hosts or ["*"]))
    app.openapi = lambda: build_openapi(app, token_required=token is not None)  # type: ignore[method-assign]
    return app


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:g} MB"


def _add_error_handlers(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else exc.headers
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in getattr(exc, "errors", list)())
        return JSONResponse({"detail": f"malformed request ({fields or 'parameters'})"}, status_code=400)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


def _add_api(
    app: FastAPI,
    predictor: Predictor,
    pool: InferencePool,
    budget: UploadBudget,
    token: str | None,
    max_bytes: int,
) -> None:
    from fastapi import APIRouter, Depends

    def check_token(request: Request) -> None:
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip().encode(), token.encode()):
            raise ApiError(401, "missing or wrong token: send the header 'Authorization: Bearer <token>'")

    router = APIRouter(prefix="/api", dependencies=[Depends(check_token)])

    @router.get("/health", summary="Liveness and queue state")
    def health() -> dict[str, Any]:
        return {"status": "ok", "pending": pool.pending, "capacity": pool.capacity, "auth": token is not None}

    @router.get("/model", summary="The served model: classes, backbone, validation metrics")
    def model() -> dict[str, Any]:
        return model_summary(predictor)

    @router.post(
        "/predict", summary="Classify one image (PNG, JPEG, TIFF or DICOM)", openapi_extra=_PREDICT_BODY
    )
    async def predict(request: Request, cam: bool = False, image: bool = False) -> dict[str, Any]:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(415, "send the image as multipart/form-data in a field named 'file'")
        body = await _read_body(request, max_bytes, budget)  # before any inference slot (serve/upload.py)
        try:
            name, data = await _parse_upload(request, body, max_bytes)
            try:
                pool.acquire()
            except PoolFull as exc:
                raise ApiError(503, str(exc), headers=BUSY_HEADERS) from exc
            try:
                return await pool.run(_predict_one, predictor, name, data, cam, image)
            finally:
                pool.release()
        finally:
            budget.give(len(body))

    app.include_router(router)


async def _read_body(request: Request, max_bytes: int, budget: UploadBudget) -> bytes:
    """The request body under its own deadline and the shared upload budget (413 / 408 / 503)."""
    try:
        return await read_body(request, max_bytes + MULTIPART_SLACK, budget)
    except BodyTooLarge as exc:
        raise ApiError(413, f"file too large: the limit is {_mb(max_bytes)}") from exc
    except UploadTooSlow as exc:
        raise ApiError(408, str(exc), headers={"Connection": "close"}) from exc
    except BudgetFull as exc:
        raise ApiError(503, str(exc), headers=BUSY_HEADERS) from exc


async def _parse_upload(request: Request, body: bytes, max_bytes: int) -> tuple[str, bytes]:
    """The ``file`` field of the multipart body (in memory): (file name, bytes); 400 / 413."""
    try:
        return await parse_upload(request.headers, body, max_bytes)
    except BodyTooLarge as exc:
        raise ApiError(413, f"file too large: the limit is {_mb(max_bytes)}") from exc
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc


def _predict_one(predictor: Predictor, name: str, data: bytes, cam: bool, image: bool) -> dict[str, Any]:
    """Decode, predict and (optionally) explain one upload; runs on a worker thread."""
    from medxfer.data.images import ImageError
    from medxfer.inference.predictor import PredictorError, overlay_png, png_bytes

    try:
        img = predictor.read_bytes(data, name)
    except ImageError as exc:
        if looks_like_image(data, name):
            raise ApiError(400, f"{name}: damaged or unsupported image ({exc.reason})") from exc
        raise ApiError(
            415, f"{name}: not an image this server reads (PNG, JPEG, TIFF, BMP, WebP or DICOM)"
        ) from exc
    probs = predictor.predict_arrays([img])[0]
    if not np.all(np.isfinite(probs)):
        raise ApiError(
            422, f"{name}: the model gave non-finite probabilities for this image; no label is given"
        )
    label = predictor.labels(probs[None])[0]
    out: dict[str, Any] = {
        "file": name,
        "label": label,
        "probabilities": {c: float(p) for c, p in zip(predictor.class_names, probs, strict=True)},
        "threshold": predictor.threshold,
        "model": model_summary(predictor),
    }
    if cam:
        try:
            heat = predictor.cam(img, predictor.class_names.index(label))
        except PredictorError as exc:
            raise ApiError(400, str(exc)) from exc
        out["cam_png"] = base64.b64encode(overlay_png(img, heat)).decode("ascii")
        out["cam_class"] = label
    if image:
        out["image_png"] = base64.b64encode(png_bytes(img, max_side=512)).decode("ascii")
    return out


def _add_page(app: FastAPI) -> None:
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
