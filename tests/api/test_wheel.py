"""The package as users get it: a built wheel installed (not editable) into a fresh venv, no source tree.

To avoid installing torch (GBs) again, the new venv gets only the wheel (``--no-deps``) and a ``.pth``
line pointing at this interpreter's site-packages for the dependencies; the editable medxfer there is
not reachable (a ``.pth``-added folder's own ``.pth`` files are not run), and the test asserts that
``medxfer`` is imported from the new venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only the medxfer wheel (built from a copy of pyproject.toml, README.md and src/)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "source"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(REPO / "src", src / "src", ignore=ignore)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp / "dist").glob("medxfer-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [*pip, "--python", str(py), "install", "--no-deps", str(wheel)], check=True, capture_output=True
    )
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "_medxfer_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    shutil.rmtree(src)  # no source tree left to import from
    return venv


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=_env(), capture_output=True, text=True
    )


def test_wheel_installs_and_runs(wheel_venv: Path, api_run, api_data: Path, tmp_path: Path) -> None:  # noqa: ANN001
    import medxfer

    version = _run(wheel_venv, "medxfer", "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"medxfer {medxfer.__version__}"
    models = _run(wheel_venv, "medxfer", "models", "custom_cnn", cwd=tmp_path)
    assert models.returncode == 0 and "custom_cnn" in models.stdout, models.stderr
    recipes = _run(wheel_venv, "medxfer", "recipes", cwd=tmp_path)  # the packaged recipes, by name
    assert recipes.returncode == 0 and "kermany-binary" in recipes.stdout and "demo" in recipes.stdout
    out = tmp_path / "preds.csv"
    pred = _run(
        wheel_venv,
        "medxfer",
        "predict",
        str(api_run.path),
        str(api_data / "disc"),
        "-o",
        str(out),
        cwd=tmp_path,
    )
    assert pred.returncode == 0, pred.stderr
    rows = out.read_text().splitlines()
    assert rows[0].startswith("path,label,prob_bar,prob_disc") and len(rows) == 1 + 12


PROBE = r"""
import json, sys
from importlib import resources
import medxfer
from fastapi.testclient import TestClient
from medxfer.serve.app import create_app
pkg = resources.files("medxfer")
page = TestClient(create_app(sys.argv[1])).get("/")
print(json.dumps({
    "file": medxfer.__file__,
    "recipes": sorted(p.name for p in (pkg / "configs").iterdir() if p.name.endswith(".yaml")),
    "tune_space": (pkg / "tune_space.yaml").is_file(),
    "static": sorted(p.name for p in (pkg / "serve" / "static").iterdir()),
    "status": page.status_code,
    "html": "<html" in page.text.lower(),
}))
"""


def test_wheel_has_package_data_and_serves_the_page(wheel_venv: Path, api_run, tmp_path: Path) -> None:  # noqa: ANN001
    probe = _run(wheel_venv, "python", "-c", PROBE, str(api_run.path), cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    got = json.loads(probe.stdout.strip().splitlines()[-1])
    assert Path(got["file"]).is_relative_to(wheel_venv), got["file"]  # not the editable source tree
    packaged = sorted(p.name for p in (REPO / "src" / "medxfer" / "configs").glob("*.yaml"))
    assert "demo.yaml" in got["recipes"] and got["recipes"] == packaged
    assert got["tune_space"]
    assert {"index.html", "app.js", "style.css"} <= set(got["static"])
    assert got["status"] == 200 and got["html"]


def readme_python_example() -> str:
    """The README's Python example: the first ```python block under "In a notebook", as written."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## In a notebook") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


def _kermany_subset(shared_data: Path, root: Path, per_class: int) -> list[Path]:
    """``root/kermany/train/{NORMAL,PNEUMONIA}``: ``per_class`` real images of each, spread over patients."""
    copied = []
    for cls in ("NORMAL", "PNEUMONIA"):
        files = sorted((shared_data / "kermany" / "train" / cls).glob("*.jpeg"))
        (root / "kermany" / "train" / cls).mkdir(parents=True)
        for f in files[:: max(1, len(files) // per_class)][:per_class]:
            copied.append(Path(shutil.copy(f, root / "kermany" / "train" / cls / f.name)))
    return copied


@pytest.mark.slow
def test_readme_python_example_runs_from_the_wheel(
    wheel_venv: Path, shared_data: Path, tmp_path: Path
) -> None:
    """A newcomer's first cell: the README's example verbatim, from the installed wheel, on a small real
    Kermany subset placed where the recipe looks ($MEDXFER_SHARED_DATA/kermany)."""
    data = tmp_path / "data"
    images = _kermany_subset(shared_data, data, per_class=16)
    work = tmp_path / "work"
    (work / "my_images").mkdir(parents=True)
    for f in (images[0], images[-1]):
        shutil.copy(f, work / "my_images" / f.name)
    code = readme_python_example()
    assert 'medxfer.train("kermany-binary"' in code and "run.evaluate()" in code
    probe = code + "\nimport json\nprint(json.dumps({'file': medxfer.__file__, 'split': ev.eval_dir.name, "
    probe += "'preds': len(preds), 'auc': 'roc_auc' in ev.headline()}))\n"
    env = _env() | {
        "MEDXFER_SHARED_DATA": str(data),
        "MEDXFER_CACHE": str(tmp_path / "cache"),
        "MPLBACKEND": "Agg",
    }
    done = subprocess.run(
        [str(wheel_venv / "bin" / "python"), "-c", probe],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(got["file"]).is_relative_to(wheel_venv)
    assert got["split"] == "val"  # the recipe has no test split: evaluate() falls back to val, like the CLI
    assert got["preds"] == 2 and got["auc"]
    assert (work / "runs" / "kb" / "model.json").is_file()
    assert (work / "runs" / "kb" / "eval" / "val" / "report.html").is_file()
