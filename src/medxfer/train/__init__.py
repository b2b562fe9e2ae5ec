"""Training: LightningModule, stages, callbacks, the fit and the run folder it writes.

``medxfer.train(config, out=...)`` (the public API, :func:`medxfer.api.train`) may be called through
this package's name too (see :mod:`medxfer._callable`).
"""

from medxfer._callable import make_callable

make_callable(__name__, "train")
