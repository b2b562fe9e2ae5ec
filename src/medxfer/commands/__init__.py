"""CLI command modules. Each defines ``register(app)``; bodies import heavy modules lazily.

Shared option helpers live in :mod:`medxfer.commands.common`.
"""
