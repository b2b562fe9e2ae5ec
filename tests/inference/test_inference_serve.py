"""The FastAPI app through TestClient: every endpoint and every bad input."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from inference_helpers import CLASSES, METRICS, gray_image
from PIL import Image

from medxfer.inference.predictor import Predictor
from medxfer.serve.app import create_app


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def client(tiny_run: Path) -> TestClient:
    return TestClient(create_app(tiny_run, token="", max_bytes=200_000), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def secured(tiny_run: Path) -> TestClient:
    return TestClient(create_app(tiny_run, token="s3cret"), raise_server_exceptions=False)


def test_health_and_model(client: TestClient) -> None:
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    model = client.get("/api/model").json()
    assert model["classes"] == CLASSES and model["backbone"] == "custom_cnn"
    assert model["metrics"] == METRICS and model["threshold"] == 0.5


def test_predict_real_xray_without_and_with_cam(
    client: TestClient, tiny_run: Path, kermany_paths: list[Path]
) -> None:
    from medxfer.data.images import read_image

    path = kermany_paths[3]
    r = client.post("/api/predict", files={"file": (path.name, path.read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = Predictor(tiny_run).predict_arrays([read_image(path)])[0]
    assert list(body["probabilities"]) == CLASSES
    np.testing.assert_allclose(list(body["probabilities"].values()), expected, atol=1e-6)
    assert body["label"] == ("pneumonia" if expected[1] >= 0.5 else "normal")
    assert body["threshold"] == 0.5 and body["model"]["metrics"] == METRICS
    assert "cam_png" not in body and "image_png" not in body

    r = client.post("/api/predict?cam=true&image=true", files={"file": (path.name, path.read_bytes())})
    assert r.status_code == 200, r.text
    cam = Image.open(io.BytesIO(base64.b64decode(r.json()["cam_png"])))
    image = Image.open(io.BytesIO(base64.b64decode(r.json()["image_png"])))
    assert cam.format == "PNG" and cam.size == (224, 224) and cam.mode == "RGB"
    assert image.size == (224, 224) and np.asarray(cam).std() > 1.0


def test_predict_dicom_upload(client: TestClient) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.Rows, ds.Columns = 48, 40
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (np.arange(48 * 40, dtype=np.uint16).reshape(48, 40) * 2).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    r = client.post("/api/predict?image=true", files={"file": ("chest.dcm", buf.getvalue())})
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(base64.b64decode(r.json()["image_png"]))).size == (40, 48)


def test_too_large_by_content_length_and_by_stream(client: TestClient) -> None:
    big = bytes(300_000)
    r = client.post("/api/predict", files={"file": ("big.png", big)})
    assert r.status_code == 413 and "limit is" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(10):
            yield bytes(40_000)

    r = client.post(
        "/api/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert r.status_code == 413


def test_not_an_image_is_415_and_damaged_image_400(client: TestClient) -> None:
    r = client.post("/api/predict", files={"file": ("notes.txt", b"hello, this is text")})
    assert r.status_code == 415 and "not an image" in r.json()["detail"]
    r = client.post("/api/predict", files={"file": ("x.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)})
    assert r.status_code == 400 and "x.png" in r.json()["detail"]
    r = client.post("/api/predict", files={"file": ("empty.png", b"")})
    assert r.status_code == 400 and "empty" in r.json()["detail"]


def test_malformed_requests_are_400_or_415(client: TestClient) -> None:
    r = client.post("/api/predict", files={"image": ("a.png", png(gray_image(1)))})
    assert r.status_code == 400 and "'file'" in r.json()["detail"]
    r = client.post("/api/predict", content=png(gray_image(1)), headers={"content-type": "image/png"})
    assert r.status_code == 415 and "multipart" in r.json()["detail"]
    r = client.post("/api/predict?cam=maybe", files={"file": ("a.png", png(gray_image(1)))})
    assert r.status_code == 400 and "cam" in r.json()["detail"]
    r = client.post(
        "/api/predict", content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data"}
    )
    assert r.status_code == 400
    assert "Traceback" not in r.text


def test_token_required_on_every_api_route(secured: TestClient) -> None:
    files = {"file": ("a.png", png(gray_image(2)))}
    for method, url in [("get", "/api/health"), ("get", "/api/model"), ("post", "/api/predict")]:
        kwargs = {"files": files} if method == "post" else {}
        r = getattr(secured, method)(url, **kwargs)
        assert r.status_code == 401 and "Bearer" in r.json()["detail"], url
        r = getattr(secured, method)(url, headers={"Authorization": "Bearer wrong"}, **kwargs)
        assert r.status_code == 401
        r = getattr(secured, method)(url, headers={"Authorization": "Bearer s3cret"}, **kwargs)
        assert r.status_code == 200, url
    assert secured.get("/").status_code == 200  # the page itself is public; it asks for the token


def test_token_from_environment(tiny_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDXFER_TOKEN", "envtok")
    c = TestClient(create_app(tiny_run))
    assert c.get("/api/health").status_code == 401
    assert c.get("/api/health", headers={"Authorization": "Bearer envtok"}).status_code == 200


def test_full_queue_gives_503(tiny_run: Path) -> None:
    app = create_app(tiny_run, token="", workers=1, queue=0)
    c = TestClient(app)
    app.state.pool.acquire()  # the one worker place is taken
    try:
        r = c.post("/api/predict", files={"file": ("a.png", png(gray_image(3)))})
        assert r.status_code == 503 and "busy" in r.json()["detail"]
    finally:
        app.state.pool.release()
    assert c.post("/api/predict", files={"file": ("a.png", png(gray_image(3)))}).status_code == 200
    assert app.state.pool.pending == 0


def test_page_static_files_and_docs(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "Research use only" in page.text and "not for diagnosis" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["required"] == ["file"]


def test_unexpected_errors_become_json_without_traceback(tiny_run: Path) -> None:
    app = create_app(tiny_run, token="")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal detail")

    app.state.predictor.predict_arrays = boom
    r = TestClient(app, raise_server_exceptions=False).post(
        "/api/predict", files={"file": ("a.png", png(gray_image(5)))}
    )
    assert r.status_code == 500 and "secret" not in r.text and "Traceback" not in r.text
