"""Browser test: headless Chromium (Playwright) against a live ``medxfer serve`` on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def live_server(tiny_run: Path, tmp_path: Path) -> Iterator[str]:
    """``medxfer serve RUN --port P`` in a subprocess; yields the base URL once /api/health answers."""
    port = _free_port()
    exe = shutil.which("medxfer", path=str(Path(sys.executable).parent)) or "medxfer"
    log = (tmp_path / "serve.log").open("w")
    env = {**os.environ, "MEDXFER_TOKEN": ""}
    proc = subprocess.Popen(
        [exe, "serve", str(tiny_run), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/api/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"medxfer serve did not start: {(tmp_path / 'serve.log').read_text()}")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_page_uploads_xray_and_shows_prediction_and_heatmap(
    live_server: str,
    kermany_paths: list[Path],
    tmp_path: Path,
    browser,  # noqa: ANN001
) -> None:
    from PIL import Image

    shot = tmp_path / "page.png"
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.goto(live_server + "/")
        assert "not for diagnosis" in page.inner_text("#notice")
        page.wait_for_function("document.getElementById('model-name').textContent.includes('custom_cnn')")
        assert "auc" in page.inner_text("#metrics")
        page.set_input_files("#file", str(kermany_paths[4]))
        page.wait_for_selector("body[data-state=done]", timeout=30_000)
        page.wait_for_function(
            "document.getElementById('cam').complete && document.getElementById('cam').naturalWidth > 0"
        )
        label = page.inner_text("#label")
        assert label in ("normal", "pneumonia")
        assert len(page.query_selector_all("#bars .bar")) == 2
        assert page.is_visible("#cam")
        page.uncheck("#cam-toggle")
        assert page.eval_on_selector("#cam", "e => e.classList.contains('hidden')")
        page.locator("figure").screenshot(path=str(tmp_path / "plain.png"))
        page.check("#cam-toggle")
        page.screenshot(path=str(shot), full_page=True)
        page.locator("figure").screenshot(path=str(tmp_path / "figure.png"))
    finally:
        page.close()
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape[0] > 300 and pixels.var() > 100.0  # a rendered page with an image, not blank
    figure = np.asarray(Image.open(tmp_path / "figure.png").convert("RGB"), dtype=np.int16)
    assert figure.shape[0] > 200 and figure.shape[1] > 200  # the X-ray is shown at a readable size
    reddish = (figure[..., 0] - figure[..., 2] > 80).mean()
    bluish = (figure[..., 2] - figure[..., 0] > 80).mean()
    assert reddish > 0.02 and bluish > 0.02  # the jet-coloured heat-map (not a gray X-ray) is on screen
    plain = np.asarray(Image.open(tmp_path / "plain.png").convert("RGB"), dtype=np.int16)
    assert (np.abs(plain[..., 0] - plain[..., 2]) > 80).mean() < 0.001  # toggle off: the gray X-ray only
