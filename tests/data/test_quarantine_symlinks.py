"""Issue 23: quarantine never follows a symlink out of the dataset; restore stays under the dataset root,
into folders that exist; every failed move is a "not moved" line, and a second run works."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from medxfer.cli import app
from medxfer.data.quarantine import MANIFEST, quarantine_files, restore_files


def _cli(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output, result.stderr


def _dataset(root: Path) -> Path:
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            Image.new("L", (32, 32), 40 * i + (cls == "b") * 100).save(root / cls / f"{i}.png")
    return root


def test_symlink_out_of_the_dataset_is_reported_not_moved_twice(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    outside = tmp_path / "elsewhere" / "precious.png"
    outside.parent.mkdir()
    outside.write_bytes(b"not an image, and not the dataset's to move")
    (data / "a" / "link.png").symlink_to(outside)
    (data / "a" / "bad.png").write_bytes(b"\x89PNG broken")
    q = tmp_path / "q"
    for attempt in range(2):  # before: the target moved, then the second run crashed with a traceback
        code, out, err = _cli(["check", f"folder:{data}", "--quarantine", str(q), "--quiet"])
        assert code == 0 and "Traceback" not in out + err, (attempt, out, err)
        assert f"{data / 'a' / 'link.png'}: not moved: symlink to outside the dataset" in err
        assert outside.read_bytes().startswith(b"not an image") and (data / "a" / "link.png").is_symlink()
    assert (q / "bad.png").exists() and not (data / "a" / "bad.png").exists()
    manifest = json.loads((q / MANIFEST).read_text())
    assert manifest["root"] == str(data) and [e["stored"] for e in manifest["files"]] == ["bad.png"]


def test_symlinked_folder_out_of_the_dataset_is_not_followed(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.png").write_bytes(b"broken")
    (data / "c").symlink_to(outside, target_is_directory=True)
    moved, problems = quarantine_files([str(data / "c" / "x.png")], tmp_path / "q", root=data)
    assert moved == [] and problems == [f"{data / 'c' / 'x.png'}: not moved: symlink to outside the dataset"]
    assert (outside / "x.png").exists()


def test_a_failed_move_is_a_not_moved_line(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    for cls in ("a", "b"):
        (data / cls / "bad.png").write_bytes(b"broken")
    q = tmp_path / "q"
    q.mkdir()
    (q / "a").write_text("a file where the quarantine wants a folder")
    moved, problems = quarantine_files(
        [str(data / "a" / "bad.png"), str(data / "b" / "bad.png")], q, root=data
    )
    assert [m["stored"] for m in moved] == ["b/bad.png"]
    assert len(problems) == 1 and problems[0].startswith(f"{data / 'a' / 'bad.png'}: not moved: ")
    assert (data / "a" / "bad.png").exists()


def _crafted(q: Path, root: Path, originals: list[Path]) -> None:
    q.mkdir(exist_ok=True)
    files = []
    for i, original in enumerate(originals):
        (q / f"f{i}.png").write_bytes(b"quarantined")
        files.append({"original": str(original), "stored": f"f{i}.png"})
    (q / MANIFEST).write_text(json.dumps({"root": str(root), "files": files}))


def test_restore_only_under_the_root_into_existing_folders(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    (data / "out").symlink_to(tmp_path, target_is_directory=True)
    q = tmp_path / "q"
    ok = data / "a" / "back.png"
    refused = [
        tmp_path / "evil" / "new.txt",  # outside the root, in a folder that does not exist
        tmp_path / "planted.txt",  # outside the root, in a folder that exists
        data / "gone" / "deep" / "x.png",  # under the root, but the folder is gone
        data / "out" / "via_link.txt",  # under the root by name, outside through a symlinked folder
    ]
    _crafted(q, data, [ok, *refused])
    code, out, err = _cli(["check", "--restore", str(q), "--dry-run"])
    assert code == 1 and f"would restore {q / 'f0.png'} -> {ok}" in out and "nothing moved" in out
    assert not ok.exists() and (q / "f0.png").exists()
    restored, problems = restore_files(q)
    assert [r["original"] for r in restored] == [str(ok)] and ok.read_bytes() == b"quarantined"
    assert len(problems) == 4 and sum("outside the dataset root" in p for p in problems) == 3
    assert not (tmp_path / "evil").exists() and not (tmp_path / "planted.txt").exists()
    assert not (data / "gone").exists() and not (tmp_path / "via_link.txt").exists()
    assert len(json.loads((q / MANIFEST).read_text())["files"]) == 4


def test_restore_round_trip_through_the_cli(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "data")
    (data / "b" / "bad.png").write_bytes(b"broken")
    q = tmp_path / "q"
    assert _cli(["check", f"folder:{data}", "--quarantine", str(q), "--quiet"])[0] == 0
    assert not (data / "b" / "bad.png").exists()
    code, out, err = _cli(["check", "--restore", str(q)])
    assert code == 0 and "restored 1 file(s)" in out, out + err
    assert (data / "b" / "bad.png").read_bytes() == b"broken"
