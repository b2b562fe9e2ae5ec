"""Self-supervised adaptation of a registered backbone to unlabelled images (``medxfer pretrain``).

:mod:`~medxfer.pretraining.engine` runs it (Lightning), :mod:`~medxfer.pretraining.methods` holds the
objectives (``lightly``), :mod:`~medxfer.pretraining.views` the X-ray-safe views,
:mod:`~medxfer.pretraining.hygiene` keeps evaluation images out, :mod:`~medxfer.pretraining.card` the
record written next to the weights (loaded by ``weights: file:DIR``).
"""
