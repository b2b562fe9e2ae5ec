"""Grad-CAM overlays of image files (``medxfer explain``), through the one :class:`Predictor`.

The heat-map math lives in :mod:`medxfer.evaluate.explain`; here a run's Predictor decodes, preprocesses,
predicts (the binary threshold of model.json decides the explained class) and runs Grad-CAM.
"""

from __future__ import annotations

from pathlib import Path


def _targets(class_names: list[str], class_name: str | None) -> list[int] | None:
    """Class indices to explain: None = predicted, ``all`` = every class, else one named class."""
    if class_name is None:
        return None
    if class_name == "all":
        return list(range(len(class_names)))
    if class_name not in class_names:
        raise ValueError(f"unknown class {class_name!r}; valid: {', '.join(class_names)}, all")
    return [class_names.index(class_name)]


def explain_files(
    run_dir: str,
    paths: list[str],
    out_dir: str | Path,
    class_name: str | None = None,
    force: bool = False,
    progress: bool = False,
) -> list[tuple[str, str, float]]:
    """Write Grad-CAM overlays ``<stem>_gradcam_<class>.png`` into ``out_dir`` for each image.

    ``class_name``: None (predicted class), a class name, or ``all``. Existing files are kept
    (``FileExistsError``) unless ``force``; ``progress``: a bar. Returns ``(png path, class, P(class))``
    per overlay.

    Example::

        explain_files("runs/kb", ["x.png"], "cams/")   # [("cams/x_gradcam_pneumonia.png", "pneumonia", 0.93)]
    """
    from tqdm.auto import tqdm

    from medxfer.data.images import read_image
    from medxfer.evaluate.explain import overlay, save_png
    from medxfer.inference.predictor import Predictor

    predictor = Predictor(run_dir)
    names = predictor.class_names
    targets = _targets(names, class_name)
    out = Path(out_dir)
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) != len(stems):
        raise ValueError(
            "two images share a file name; explain them in separate calls (outputs would collide)"
        )
    written: list[tuple[str, str, float]] = []
    bar = tqdm(
        zip(paths, stems, strict=True), total=len(paths), desc="explain", unit="img", disable=not progress
    )
    for path, stem in bar:
        img = read_image(path)
        proba = predictor.predict_arrays([img])
        classes = targets if targets is not None else [names.index(predictor.labels(proba)[0])]
        for k in classes:
            dest = out / f"{stem}_gradcam_{_safe(names[k])}.png"
            if dest.exists() and not force:
                raise FileExistsError(f"{dest}: already exists; pass --force to replace it")
            save_png(str(dest), overlay(img, predictor.cam(img, k)))
            written.append((str(dest), names[k], float(proba[0, k])))
    return written


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
