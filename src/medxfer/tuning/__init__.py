"""Hyperparameter search behind :mod:`medxfer.tuning.search`: space, study storage, objectives, report."""
