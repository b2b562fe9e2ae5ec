"""``medxfer check --quarantine DIR`` / ``--restore DIR``: set unreadable files aside and put them back.

Safety rules (issue 23):

- a file is moved only when its real path (symlinks followed) lies inside the dataset root: a symlink
  to a file outside the dataset is reported ``not moved: symlink to outside the dataset`` and its target
  is never touched; a symlink inside the dataset moves as a link;
- every move that fails (permissions, a vanished file) is a ``not moved`` line, never a traceback, so a
  second run over the same data works;
- the manifest (``DIR/medxfer_quarantine.json``) records the dataset root; restore moves a file back only
  to a path under that root, into a folder that still exists (no folder is created), never through a
  symlinked folder and never over an existing file; ``dry_run=True`` lists what would move.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medxfer.data.layouts import QUARANTINE_MANIFEST

MANIFEST = QUARANTINE_MANIFEST
OUTSIDE = "symlink to outside the dataset"


def _inside(path: str | Path, root: str | Path) -> bool:
    """Whether the real path of ``path`` (symlinks followed) lies under the real path of ``root``."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def _write_manifest(dest: Path, root: str | None, entries: list[Any]) -> None:
    from medxfer.io import atomic_write_text

    data: dict[str, Any] = {"root": root} if root is not None else {}
    atomic_write_text(dest / MANIFEST, json.dumps({**data, "files": entries}, indent=2))


def quarantine_files(
    paths: Sequence[str], dest: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> tuple[list[dict], list[str]]:
    """Move ``paths`` (files of the dataset ``root``, default their common folder) under ``dest``.

    Their names in ``dest`` are relative to the files' common folder.

    Never overwrites (a taken name gets a ``.N`` suffix), never follows a symlink out of ``root``.
    Appends ``{"original", "stored"}`` entries to ``dest/medxfer_quarantine.json`` (atomically, after each
    move; the manifest also marks ``dest`` so that layouts never read it as a class) and records ``root``.
    Returns (moved entries, ``"<path>: not moved: <why>"`` lines).
    """
    dest = Path(dest).resolve()
    if not paths:
        return [], []
    absolute = [Path(os.path.abspath(p)) for p in paths]  # abspath: a symlink stays the link
    common = Path(os.path.commonpath([p.parent for p in absolute]))  # names in dest are relative to it
    base = Path(os.path.abspath(root)) if root else common
    old_root, entries = _read_manifest(dest) if (dest / MANIFEST).is_file() else (None, [])
    recorded = os.path.commonpath([old_root, str(base)]) if old_root else str(base)  # earlier runs too
    dest.mkdir(parents=True, exist_ok=True)
    _write_manifest(dest, recorded, entries)  # mark the folder first
    added, problems = [], []
    for src in absolute:
        try:
            target = _move_aside(src, base, common, dest)
        except (OSError, ValueError) as exc:
            problems.append(f"{src}: not moved: {_why(exc)}")
            continue
        added.append({"original": str(src), "stored": str(target.relative_to(dest))})
        entries.append(added[-1])
        _write_manifest(dest, recorded, entries)
    return added, problems


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def _move_aside(src: Path, base: Path, common: Path, dest: Path) -> Path:
    """Move one file of the dataset ``base`` to ``dest / src.relative_to(common)``; ValueError/OSError
    saying why it stays."""
    if not src.is_symlink() and not src.exists():
        raise ValueError("no such file (already moved?)")
    if not _inside(src, base):
        # under the root by its name but not by its real path: a symlinked file or folder leads out
        raise ValueError(OUTSIDE if src.is_relative_to(base) else f"outside the dataset root {base}")
    if src.is_dir():
        raise ValueError("is a folder")
    rel = src.relative_to(common)
    target, n = dest / rel, 1
    while target.exists() or target.is_symlink():
        target, n = dest / f"{rel}.{n}", n + 1
    target.parent.mkdir(parents=True, exist_ok=True)
    if not _inside(target.parent, dest):
        raise ValueError(f"{target.parent} leads outside the quarantine folder {dest}")
    shutil.move(str(src), str(target))
    return target


def read_quarantine_manifest(dest: str | os.PathLike[str]) -> list[dict]:
    """The entries of ``dest/medxfer_quarantine.json``; ValueError naming the file when it is malformed."""
    return _read_manifest(Path(dest))[1]


def _read_manifest(dest: Path) -> tuple[str | None, list[Any]]:
    manifest = dest / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{dest}: no {MANIFEST} here; give the folder used with --quarantine")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{manifest}: not valid JSON ({exc}); restore by hand or fix the file") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise ValueError(f"{manifest}: expected {{'files': [...]}} as `medxfer check --quarantine` writes it")
    root = data.get("root")
    return (root if isinstance(root, str) and os.path.isabs(root) else None), files


def _restore_problem(entry: object, dest: Path, root: str | None) -> str | None:
    """Why ``entry`` cannot be restored safely, or None. Only files inside ``dest`` move, only under root."""
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("original", "stored")):
        return f"malformed manifest entry {entry!r} (needs 'original' and 'stored' strings); skipped"
    original, stored = Path(entry["original"]), dest / entry["stored"]
    inside = stored.resolve().is_relative_to(dest.resolve()) and not Path(entry["stored"]).is_absolute()
    if not inside or stored.resolve() == (dest / MANIFEST).resolve():
        return f"entry {entry['stored']!r} points outside the quarantine folder {dest}; not moved"
    if stored.is_symlink() or (stored.exists() and not stored.is_file()):
        return f"{stored} is not a regular file; not moved"
    if not original.is_absolute():
        return f"original path {original} is not absolute; not moved"
    if root is None:
        return f"{original}: the manifest records no dataset root; not moved (move it back by hand)"
    if not Path(os.path.abspath(original)).is_relative_to(root) or not _inside(original.parent, root):
        return f"{original} is outside the dataset root {root}; not moved"
    if not original.parent.is_dir():
        return f"folder {original.parent} no longer exists; not recreated, {stored} left in quarantine"
    if original.exists() or original.is_symlink():
        return f"{original} exists again; left {stored} in quarantine (not overwritten)"
    if not stored.exists():
        return f"{stored} is missing from the quarantine folder; cannot restore {original}"
    return None


def restore_files(dest: str | os.PathLike[str], dry_run: bool = False) -> tuple[list[dict], list[str]]:
    """Move files quarantined in ``dest`` back to their original paths (see the module rules).

    Refuses (keeps in quarantine, reports) any entry that is malformed, points outside ``dest``, leads
    outside the recorded dataset root or into a missing folder, or whose original exists again; a failed
    move is reported too. ``dry_run``: move nothing, return what would move. Returns (restored entries,
    problems). Raises FileNotFoundError when ``dest`` has no manifest, ValueError when it is malformed.
    """
    dest = Path(dest)
    root, entries = _read_manifest(dest)
    restored, problems, remaining = [], [], []
    for entry in entries:
        problem = _restore_problem(entry, dest, root)
        if problem is None and not dry_run:
            try:
                shutil.move(str(dest / entry["stored"]), entry["original"])
            except OSError as exc:
                problem = f"{entry['original']}: not moved ({_why(exc)})"
        if problem is not None:
            problems.append(problem)
            remaining.append(entry)
        else:
            restored.append(entry)
    if not dry_run:
        _write_manifest(dest, root, remaining)
    return restored, problems
