"""Small helpers every layer uses: atomic writes, markdown tables, figures to PNG, the data folder,
and the one-line message for an optional package that is not installed (:func:`require_extra`).

This module imports nothing from medxfer, so any layer may use it (see docs/architecture.md).

Example::

    atomic_write_text("runs/x/summary.md", markdown_table(["k", "v"], [["auc", "0.91"]]))
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class MissingExtraError(ImportError, ValueError):
    """An optional package is missing; the message is one line naming the ``pip install 'medxfer[x]'``.

    A ValueError too, so every command that turns bad input into one ``error:`` line handles it.
    """


def require_extra(module: str, extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` unless ``module`` (a top-level package) can be imported.

    The package is located, not imported (no import cost, no side effects).

    Example::

        require_extra("onnxruntime", "onnx", "export --format onnx")
        # MissingExtraError: export --format onnx needs the optional package onnxruntime:
        #   pip install 'medxfer[onnx]'
    """
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(
            f"{feature} needs the optional package {module}: pip install 'medxfer[{extra}]'"
        )


SHARED_DATA_ENV = "MEDXFER_SHARED_DATA"
SHARED_DATA_DEFAULT = "../shared/data"


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary file beside ``path`` for the block to write; it replaces ``path`` when the block ends
    without error and is removed otherwise, so ``path`` is never half-written. It gets the mode of any
    new file (0666 less the umask, not ``mkstemp``'s 0600): a shared run folder stays readable.

    Example::

        with atomic_path("runs/x/model.onnx") as tmp:
            torch.onnx.export(model, x, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`, flushed to disk before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table (``|`` in cells escaped; None shown empty), no trailing newline.

    >>> print(markdown_table(["a", "b"], [[1, None]]))
    | a | b |
    |---|---|
    | 1 |  |
    """

    def esc(c: Any) -> str:
        return "" if c is None else str(c).replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def figure_png(fig: Any, dpi: float | None = None, tight: bool = False) -> bytes:
    """PNG bytes of a matplotlib figure; a pyplot-managed figure is closed afterwards (no leak)."""
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"dpi": dpi} if dpi else {}
    if tight:
        kwargs["bbox_inches"] = "tight"
    fig.savefig(buf, format="png", **kwargs)
    if getattr(fig.canvas, "manager", None) is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return buf.getvalue()


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only: no window, works without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def shared_data_dir() -> Path:
    """``$MEDXFER_SHARED_DATA``, else ``../shared/data`` (relative to the working directory)."""
    return Path(os.environ.get(SHARED_DATA_ENV) or SHARED_DATA_DEFAULT)


_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def expand_vars(text: str) -> str:
    """``os.path.expandvars`` where ``MEDXFER_SHARED_DATA`` defaults to :func:`shared_data_dir`.

    Unknown variables stay as written; the process environment is never changed.
    """

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name == SHARED_DATA_ENV:
            return str(shared_data_dir())
        return os.environ.get(name, m.group(0))

    return _VAR.sub(sub, text)


def counts_text(counts: dict[str, int], unit: str = "image") -> str:
    """``{"covid": 2872, "x": 1}`` -> ``covid: 2,872 images, x: 1 image``."""
    return ", ".join(f"{key}: {n:,} {unit}{'s' * (n != 1)}" for key, n in counts.items())


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)``: numpy scalars as Python numbers."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot serialise {type(value).__name__} as JSON")
