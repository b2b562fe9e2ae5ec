"""Third-party noise around a fit, off unless asked for (``verbose``).

Lightning logs tips (litlogger, litmodels), hardware lines ("GPU available", TPU, HPU) and its end line
through the ``lightning`` loggers; PyTorch, torchvision and Lightning emit deprecation warnings that
point into site-packages. None of it is the user's to act on, so a fit runs inside :func:`quiet_fit`:
those loggers log only errors and warnings are caught, and both are restored afterwards. Nothing is
changed at import (DESIGN principle 10).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning")


@contextmanager
def quiet_fit(verbose: bool = False) -> Iterator[None]:
    """Inside the block (unless ``verbose``): no Python warnings, and Lightning logs only errors.

    Example::

        with quiet_fit():
            trainer.fit(module, datamodule=data)
    """
    if verbose:
        yield
        return
    import lightning.pytorch  # noqa: F401 - its import sets its loggers' levels: import before changing them

    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [log.level for log in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for log in loggers:
            log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for log, level in zip(loggers, levels, strict=True):
                log.setLevel(level)
