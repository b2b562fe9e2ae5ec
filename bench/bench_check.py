"""Time ``medxfer check`` (and the shortcut probe) on all of the shared data together.

Usage: ``python bench/bench_check.py [DATA_DIR]`` (default ``$MEDXFER_SHARED_DATA`` or ../shared/data).
Prints a table: step, images, seconds, images/s.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main() -> None:
    """Run check without and with the probe on every shared collection and print the timings."""
    from medxfer.data.check import run_check
    from medxfer.data.datasets import load_datasets

    root = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MEDXFER_SHARED_DATA", "../shared/data"))
    specs = [
        f"kermany:{root / 'kermany'}",
        f"ieee8023:{root / 'covid' / 'ieee8023'}",
        f"actualmed:{root / 'covid' / 'actualmed'}",
        f"figure1:{root / 'covid' / 'figure1'}",
        f"covid19-radiography:{root / 'covid19-radiography'}",
        f"folder:{root / 'colon'}",
    ]
    # one class per raw label: all ~12k images in one table (the covid tasks drop unmapped findings)
    start = time.perf_counter()
    table = load_datasets(specs, label_map=None)
    rows = [("load tables", len(table), time.perf_counter() - start)]
    for probe in (False, True):
        start = time.perf_counter()
        report = run_check(table, probe=probe, progress=False)
        rows.append((f"check{' + probe' if probe else ''}", len(table), time.perf_counter() - start))
    print(f"{'step':<16}{'images':>8}{'seconds':>10}{'images/s':>10}")
    for name, n, sec in rows:
        print(f"{name:<16}{n:>8}{sec:>10.1f}{n / sec:>10.0f}")
    print(
        f"warnings: {len(report.warnings)}; flagged probes: "
        f"{[s['name'] for s in report.shortcut_probe['scores'] if s['warn']]}"
    )


if __name__ == "__main__":
    main()
