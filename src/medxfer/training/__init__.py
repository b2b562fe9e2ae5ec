"""Training: LightningModule, stages, callbacks, the fit and the run folder it writes.

The public entry point is :func:`medxfer.train` (``medxfer.api.train``); this package is ``medxfer.training``
so that ``medxfer.train`` is always that function, whatever else has been imported.
"""
