"""Tests for medxfer check: unreadable files, duplicates, leaks, confounding, quarantine round trip."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from medxfer.data.check import find_source_confounding, run_check
from medxfer.data.datasets import ImageTable
from medxfer.data.hashing import dhash64, hamming, near_duplicate_pairs


def _noise(seed: int, size: tuple[int, int] = (240, 240)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8), dtype=np.uint8)  # smooth-ish content so resaves stay near
    return Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)


def _table(rows: list[dict], classes: list[str]) -> ImageTable:
    df = pd.DataFrame(rows)
    for col, default in (("source", "s"), ("view", ""), ("split", "")):
        if col not in df:
            df[col] = default
    if "patient_id" not in df:
        df["patient_id"] = df["path"]
    df["label"] = df["label_name"].map(classes.index)
    return ImageTable(classes, df)


def _dataset(tmp_path: Path) -> ImageTable:
    """6 good images (a: 3, b: 3), one exact copy across classes, 3 unreadable files."""
    rows = []
    for i in range(6):
        cls = "a" if i < 3 else "b"
        path = tmp_path / cls / f"img{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        _noise(i).save(path)
        rows.append({"path": str(path), "label_name": cls})
    shutil.copy(tmp_path / "a" / "img0.png", tmp_path / "b" / "copy_of_0.png")
    rows.append({"path": str(tmp_path / "b" / "copy_of_0.png"), "label_name": "b"})
    (tmp_path / "a" / "empty.png").write_bytes(b"")
    (tmp_path / "a" / "text.png").write_text("not an image at all")
    data = (tmp_path / "a" / "img1.png").read_bytes()
    (tmp_path / "b" / "trunc.png").write_bytes(data[: len(data) // 2])
    for name in ("a/empty.png", "a/text.png", "b/trunc.png"):
        rows.append({"path": str(tmp_path / name), "label_name": name[0]})
    return _table(rows, ["a", "b"])


def test_counts_unreadable_and_cross_class_duplicates(tmp_path: Path) -> None:
    report = run_check(_dataset(tmp_path), progress=False, min_size=100)
    assert report.counts["per_class"] == {"a": 5, "b": 5}
    assert report.counts["total"] == 10
    bad = {Path(u["path"]).name: u["reason"] for u in report.unreadable}
    assert set(bad) == {"empty.png", "text.png", "trunc.png"}
    assert all(reason for reason in bad.values())
    exact = [g for g in report.duplicates if g["kind"] == "exact"]
    assert len(exact) == 1 and exact[0]["cross_class"] and exact[0]["classes"] == ["a", "b"]
    assert {Path(p).name for p in exact[0]["paths"]} == {"img0.png", "copy_of_0.png"}
    assert any(w.startswith("DUPLICATES ACROSS CLASSES") for w in report.warnings)
    assert report.small_images == []


def test_near_duplicate_resaved_jpeg_found(tmp_path: Path) -> None:
    rows = []
    for i in range(4):
        path = tmp_path / f"n{i}.png"
        _noise(100 + i).save(path)
        rows.append({"path": str(path), "label_name": "a", "split": "train"})
    _noise(100).save(tmp_path / "n0.jpg", quality=70)  # same picture, other bytes, other split
    rows.append({"path": str(tmp_path / "n0.jpg"), "label_name": "a", "split": "val"})
    report = run_check(_table(rows, ["a"]), progress=False)
    near = [g for g in report.duplicates if g["kind"] == "near"]
    assert len(near) == 1 and near[0]["cross_split"] and not near[0]["cross_class"]
    assert {Path(p).name for p in near[0]["paths"]} == {"n0.png", "n0.jpg"}


def test_patient_leak_small_and_lateral(tmp_path: Path) -> None:
    rows = []
    for i, (pid, split, view) in enumerate(
        [("p1", "train", "PA"), ("p1", "val", "L"), ("p2", "train", "AP")]
    ):
        path = tmp_path / f"x{i}.png"
        _noise(i, (120, 300)).save(path)
        rows.append({"path": str(path), "label_name": "a", "patient_id": pid, "split": split, "view": view})
    report = run_check(_table(rows, ["a"]), progress=False, min_size=224)
    assert report.patient_leaks == [
        {"patient_id": "p1", "splits": ["train", "val"], "images_per_split": {"train": 1, "val": 1}}
    ]
    assert [Path(r["path"]).name for r in report.non_frontal] == ["x1.png"]
    assert len(report.small_images) == 3 and report.small_images[0]["width"] == 120
    assert any("PATIENT LEAK" in w for w in report.warnings)


def test_source_class_confounding() -> None:
    rows = [{"label_name": "covid", "source": "adult"}] * 9 + [{"label_name": "covid", "source": "kids"}]
    rows += [{"label_name": "normal", "source": "kids"}] * 10
    df = pd.DataFrame(rows)
    found = find_source_confounding(df)
    assert found == [
        {"class": "covid", "source": "adult", "share": 0.9, "other_classes_share": 0.0},
        {"class": "normal", "source": "kids", "share": 1.0, "other_classes_share": 0.1},
    ]
    mixed = pd.DataFrame([{"label_name": c, "source": s} for c in "ab" for s in "xy"])
    assert find_source_confounding(mixed) == []


def test_near_duplicate_pairs_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    base = [int(x) for x in rng.integers(0, 2**63, 30)]
    hashes = base + [h ^ (1 << int(rng.integers(0, 63))) ^ (1 << 5) for h in base[:10]]
    expected = {
        (i, j)
        for i in range(len(hashes))
        for j in range(i + 1, len(hashes))
        if hamming(hashes[i], hashes[j]) <= 3
    }
    assert near_duplicate_pairs(hashes, radius=3) == expected
    assert len(expected) >= 10
    assert dhash64(np.tile(np.arange(9, dtype=np.uint8)[::-1] * 20, (8, 1))) == 2**64 - 1


def _cli(args: list[str]):
    from medxfer.cli import app

    return CliRunner().invoke(app, args)


def test_quarantine_restore_round_trip(tmp_path: Path) -> None:
    data = tmp_path / "data"
    table = _dataset(data)
    before = {p: Path(p).read_bytes() for p in table.table["path"]}
    manifest = tmp_path / "m.csv"
    table.table[["path", "label_name"]].rename(columns={"label_name": "label"}).to_csv(manifest, index=False)
    quarantine = tmp_path / "q"
    out = tmp_path / "report.json"
    result = _cli(
        ["check", f"csv:{manifest}", "--quarantine", str(quarantine), "--json", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert {"counts", "unreadable", "duplicates", "patient_leaks", "warnings"} <= set(report)
    assert not (data / "a" / "empty.png").exists() and (quarantine / "a" / "empty.png").exists()
    assert (quarantine / "b" / "trunc.png").exists()
    (data / "a" / "text.png").write_text("a new file took the name")  # restore must not overwrite it
    result = _cli(["check", "--restore", str(quarantine)])
    assert result.exit_code == 1, result.output  # one file could not go back
    assert Path(data / "a" / "text.png").read_text() == "a new file took the name"
    assert (quarantine / "a" / "text.png").exists()
    for path, content in before.items():
        if not path.endswith("text.png"):
            assert Path(path).read_bytes() == content


@pytest.mark.parametrize(
    "args", [["check", "x", "--mask", "0,0,2,1"], ["check", "x", "--min-size", "0"], ["check"]]
)
def test_bad_command_line_exits_2(args: list[str]) -> None:
    assert _cli(args).exit_code == 2
