"""The workflow layer: every policy the CLI and the Python API share.

``commands/`` map flags to these functions and print; ``api.py`` calls the same functions with typed
keywords, so ``medxfer evaluate RUN --data X`` and ``Run.evaluate(data=X)`` score the same images, and
``medxfer train --weights none`` and ``medxfer.train(weights="none")`` train the same schedule.

- :mod:`medxfer.workflow.evaluating`: which sets an evaluation scores, which copies it leaves out,
  threshold choice and local calibration, the generalisation table.
- :mod:`medxfer.workflow.configuring`: one override builder, default weights for another backbone,
  the from-scratch schedule, ``--epochs``.
- :mod:`medxfer.workflow.lr`: the LR range test of one stage (the batches that stage trains on).
"""
