"""Dataset layouts: how the files of one public collection (or your own folder/CSV) become rows.

A layout is a function ``(root: Path, options: dict[str, str]) -> pandas.DataFrame`` with the
columns of :data:`RAW_COLUMNS`; ``label_name`` there is the layout's *raw* label (e.g. ``bacterial``),
which :func:`medxfer.data.datasets.load_datasets` then maps through a task. Layouts register
themselves with :func:`register_layout`; :func:`list_layouts` gives the names. Listing never decodes
an image: only directory entries and metadata files are read.

Raw labels per layout:

- ``folder``: the class sub-folder names, as written.
- ``csv``: the label column, as written.
- ``kermany``: ``normal``, ``bacterial``, ``viral`` (``pneumonia`` if a PNEUMONIA file name says neither).
- ``ieee8023``, ``actualmed``, ``figure1``: ``covid``, ``normal``, ``bacterial``, ``viral`` via
  :data:`medxfer.data.manifests.FINDING_MAP`; findings it does not name (``todo``,
  ``Pneumonia`` unspecified, ``Pneumocystis``, ``Lipoid``, ``ARDS``, blank = inconclusive, ...)
  are dropped. Override entries with the spec option
  ``map=Finding:label,Other:label`` (a label of ``-`` drops it).
- ``covid19-radiography``: ``covid``, ``normal``, ``viral``, ``lung_opacity``.

Patient ids of the public layouts are prefixed with the source (``kermany:person12``,
``ieee8023:285``) so that equal numbers from different collections are never merged; where a
collection has no patient ids, the image path stands in (one image = one patient).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from medxfer.data.images import IMAGE_EXTENSIONS
from medxfer.registry import Registry

RAW_COLUMNS = ("path", "label_name", "patient_id", "source", "view", "split")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
FRONTAL_VIEWS = frozenset({"PA", "AP", "AP SUPINE", "AP ERECT"})

LayoutFunc = Callable[[Path, dict[str, str]], pd.DataFrame]


class DatasetError(ValueError):
    """A dataset that cannot be loaded; the message names the file/folder and what is wrong."""


LAYOUTS: Registry[LayoutFunc] = Registry("dataset layout", error=DatasetError)


def register_layout(name: str) -> Callable[[LayoutFunc], LayoutFunc]:
    """Decorator adding a layout function to :data:`LAYOUTS` under ``name`` (a name already taken is
    refused); its docstring's first line describes it."""

    def wrap(func: LayoutFunc) -> LayoutFunc:
        return LAYOUTS.register(name, func)

    return wrap


def list_layouts() -> list[str]:
    """Names of the registered layouts, sorted."""
    return LAYOUTS.names()


def get_layout(name: str) -> LayoutFunc:
    """The layout function registered as ``name``; DatasetError listing valid names otherwise."""
    return LAYOUTS.get(name)


def raw_frame(rows: list[tuple[str, str, str, str, str, str]]) -> pd.DataFrame:
    """A layout's raw table: one row per image with the columns of :data:`RAW_COLUMNS` (all str)."""
    return pd.DataFrame(rows, columns=list(RAW_COLUMNS), dtype=str)


def require_dir(root: Path, layout: str) -> None:
    """Raise DatasetError naming ``root`` unless it is an existing folder."""
    if not root.exists():
        raise DatasetError(f"{root}: folder not found (layout {layout})")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder (layout {layout} expects a folder)")


QUARANTINE_MANIFEST = "medxfer_quarantine.json"  # marks a `check --quarantine` folder: never data


def _is_data_dir(entry: os.DirEntry[str]) -> bool:
    """A sub-folder that may hold data: not hidden, not ``__x``, not a quarantine folder."""
    if entry.name.startswith((".", "__")) or not entry.is_dir():
        return False
    return not os.path.exists(os.path.join(entry.path, QUARANTINE_MANIFEST))


def _subdirs(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if _is_data_dir(e))


def list_images(folder: Path, recursive: bool = True) -> list[str]:
    """Absolute paths of image files (by suffix, see IMAGE_EXTENSIONS) under ``folder``, sorted."""
    found: list[str] = []
    stack = [str(folder)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    if recursive and _is_data_dir(entry):
                        stack.append(entry.path)
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                    found.append(entry.path)
    return sorted(found)


def split_dirs(root: Path) -> list[tuple[str, Path]]:
    """``[(split, folder)]``: the train/val/test sub-folders if any, else ``[("", root)]``."""
    found = [(SPLIT_NAMES[d.name.lower()], d) for d in _subdirs(root) if d.name.lower() in SPLIT_NAMES]
    return found or [("", root)]


@register_layout("folder")
def folder_layout(root: Path, options: dict[str, str]) -> pd.DataFrame:
    """One sub-folder per class (images anywhere below it); optional train/val/test top level.

    Options: ``source`` (default: the folder's name).
    """
    require_dir(root, "folder")
    source = options.get("source", root.name)
    rows = []
    for split, base in split_dirs(root):
        classes = _subdirs(base)
        if not classes:
            raise DatasetError(f"{base}: no class sub-folders (layout folder expects <class>/<image>)")
        for class_dir in classes:
            rows += [(p, class_dir.name, p, source, "", split) for p in list_images(class_dir)]
    return raw_frame(rows)


_KERMANY_PATIENT = (
    re.compile(r"^(person\d+)_", re.IGNORECASE),
    re.compile(r"^(NORMAL2-IM-\d+)-\d+", re.IGNORECASE),
    re.compile(r"^(IM-\d+)-\d+", re.IGNORECASE),
)


def kermany_patient(name: str) -> str | None:
    """Patient id in a Kermany file name (``person12_virus_3.jpeg`` -> ``person12``), else None."""
    for pattern in _KERMANY_PATIENT:
        match = pattern.match(name)
        if match:
            return match.group(1)
    return None


def _kermany_label(class_name: str, file_name: str) -> str:
    if class_name == "normal":
        return "normal"
    lower = file_name.lower()
    return "bacterial" if "bacteria" in lower else "viral" if "virus" in lower else "pneumonia"


@register_layout("kermany")
def kermany_layout(root: Path, options: dict[str, str]) -> pd.DataFrame:
    """Kaggle "Chest X-Ray Images (Pneumonia)": ``[train|val|test/]NORMAL|PNEUMONIA/*.jpeg``."""
    require_dir(root, "kermany")
    rows = []
    for split, base in split_dirs(root):
        classes = {d.name.lower(): d for d in _subdirs(base) if d.name.lower() in ("normal", "pneumonia")}
        if not classes:
            raise DatasetError(f"{base}: no NORMAL/ or PNEUMONIA/ sub-folder (layout kermany)")
        for class_name, class_dir in sorted(classes.items()):
            for path in list_images(class_dir):
                name = os.path.basename(path)
                patient = kermany_patient(name)
                patient_id = f"kermany:{patient}" if patient else path
                rows.append((path, _kermany_label(class_name, name), patient_id, "kermany", "", split))
    return raw_frame(rows)


_RADIOGRAPHY_CLASSES = {
    "covid": "covid",
    "covid 19": "covid",
    "normal": "normal",
    "viral pneumonia": "viral",
    "lung opacity": "lung_opacity",
}


@register_layout("covid19-radiography")
def covid19_radiography_layout(root: Path, options: dict[str, str]) -> pd.DataFrame:
    """Kaggle COVID-19 Radiography Database: ``COVID/ Normal/ Viral Pneumonia/ Lung_Opacity/``.

    Each class folder holds the images directly or in an ``images/`` sub-folder (``masks/`` ignored).
    No patient ids: each image is its own patient.
    """
    require_dir(root, "covid19-radiography")
    rows = []
    for class_dir in _subdirs(root):
        key = re.sub(r"[_\-\s]+", " ", class_dir.name.lower()).strip()
        if key not in _RADIOGRAPHY_CLASSES:
            continue
        images_dir = class_dir / "images"
        paths = list_images(images_dir) if images_dir.is_dir() else list_images(class_dir, recursive=False)
        label = _RADIOGRAPHY_CLASSES[key]
        rows += [(p, label, p, "covid19-radiography", "", "") for p in paths]
    if not rows:
        raise DatasetError(
            f"{root}: no images in COVID/, Normal/, Viral Pneumonia/ or Lung_Opacity/ "
            "(layout covid19-radiography)"
        )
    return raw_frame(rows)
