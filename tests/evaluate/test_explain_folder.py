"""`medxfer explain RUN FOLDER`: every image of a folder, like predict."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from medxfer.cli import app


def test_explain_takes_a_folder(tiny_folder: Path, tiny_run: Path, tmp_path: Path) -> None:
    folder = tiny_folder / "pneumonia"
    images = sorted(folder.glob("*.png"))
    out = tmp_path / "cams"
    res = CliRunner().invoke(app, ["explain", str(tiny_run), str(folder), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{i.stem}_gradcam_{n}.png" for i, n in _labels(res, images)
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(app, ["explain", str(tiny_run), str(empty), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "holds no images" in res.output


def _labels(res, images: list[Path]) -> list[tuple[Path, str]]:  # noqa: ANN001
    by_stem = {i.stem: i for i in images}
    pairs = []
    for line in res.stdout.strip().splitlines():  # the progress bar is on stderr
        name = Path(line.split("\t")[0]).name
        stem, label = name.rsplit("_gradcam_", 1)
        pairs.append((by_stem[stem], label.removesuffix(".png")))
    assert len(pairs) == len(images)
    return pairs
