"""Hyperparameter search behind :mod:`medxfer.tune`: space, study storage, objectives, report."""
