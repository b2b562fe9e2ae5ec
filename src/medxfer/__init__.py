"""medxfer: transfer-learning medical image classifiers, judged honestly.

Pipeline: check -> split -> train (stages) -> evaluate / explain -> tune -> features + classical
-> predict / export / serve. Each step is a CLI command (``medxfer --help``) and a function.
Nothing heavy is imported here (DESIGN principle 10).
"""

__version__ = "0.1.0"
