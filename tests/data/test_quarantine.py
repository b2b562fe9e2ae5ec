"""Quarantine / restore (issue 11): confined to the quarantine folder, robust to a bad manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.data.layouts import folder_layout
from medxfer.data.quarantine import MANIFEST, quarantine_files, restore_files


def _cli(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output + result.stderr


def _folder_data(root: Path) -> None:
    for cls in ("a", "b"):
        for i in range(2):
            (root / cls).mkdir(parents=True, exist_ok=True)
            Image.new("L", (32, 32), 40 * i + (cls == "b") * 100).save(root / cls / f"{i}.png")
    (root / "a" / "bad.png").write_bytes(b"\x89PNG broken")


def test_quarantine_folder_inside_the_dataset_is_not_a_class(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _folder_data(data)
    code, out = _cli(["check", f"folder:{data}", "--quarantine", str(data / "quarantine"), "--quiet"])
    assert code == 0, out
    assert (data / "quarantine" / "bad.png").exists() and not (data / "a" / "bad.png").exists()
    table = folder_layout(data, {})
    assert sorted(set(table["label_name"])) == ["a", "b"] and len(table) == 4
    assert not any(str(data / "quarantine") in p for p in table["path"])


def test_edited_manifest_cannot_move_files_from_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative "original" must not land anywhere real, even if restored
    q = tmp_path / "q"
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    target = tmp_path / "restored_elsewhere.txt"
    entries = [
        {"original": str(target), "stored": "../precious.txt"},
        {"original": str(target), "stored": str(victim)},
        {"original": str(target), "stored": MANIFEST},
        {"original": "relative/path.png", "stored": "x.png"},
        "not a dict",
        {"original": 3},
    ]
    q.mkdir()
    (q / "x.png").write_bytes(b"x")
    (q / MANIFEST).write_text(json.dumps({"files": entries}))
    restored, problems = restore_files(q)
    assert restored == [] and len(problems) == len(entries)
    assert victim.read_text() == "keep me" and not target.exists() and (q / "x.png").exists()
    assert sum("outside the quarantine folder" in p for p in problems) == 3
    code, out = _cli(["check", "--restore", str(q)])
    assert code == 1 and "not restored" in out and victim.exists()


@pytest.mark.parametrize("content", ["{not json", "[]", '{"files": 3}', "\xff\xfe"])
def test_malformed_manifest_is_a_clear_error(tmp_path: Path, content: str) -> None:
    q = tmp_path / "q"
    q.mkdir()
    (q / MANIFEST).write_text(content, encoding="latin-1")
    code, out = _cli(["check", "--restore", str(q)])
    assert code == 2 and MANIFEST in out and "Traceback" not in out


def test_round_trip_and_exit_status(tmp_path: Path) -> None:
    src = tmp_path / "d" / "a" / "bad.png"
    src.parent.mkdir(parents=True)
    src.write_bytes(b"broken")
    moved, problems = quarantine_files([str(src)], tmp_path / "q")
    assert moved and not problems and not src.exists()
    code, out = _cli(["check", "--restore", str(tmp_path / "q")])
    assert code == 0, out
    assert src.read_bytes() == b"broken"
    assert json.loads((tmp_path / "q" / MANIFEST).read_text()) == {
        "root": str(tmp_path / "d" / "a"),
        "files": [],
    }
