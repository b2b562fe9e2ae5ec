"""Coverage-guided fuzzing of the image decoder contract (atheris / libFuzzer).

    python bench/fuzz_images.py [--seconds 600] [--out runs/fuzz] [--jobs 1]
    make fuzz                         # the same, 10 minutes

The target is ``read_image_bytes`` (Pillow + pydicom + the windowing code, all instrumented): any
exception other than :class:`medxfer.data.images.ImageError` is a finding, and so is a decoded array
outside the convention (uint8 ``(H, W)`` / ``(H, W, 3)``) or a process over 2 GB RSS (libFuzzer's
``-rss_limit_mb``). The seed corpus is built from a real Kermany X-ray (``$MEDXFER_SHARED_DATA``) in
every format (``tests/data/image_corpus.py``) and written to ``OUT/corpus`` (libFuzzer adds what it
finds there, so a later run resumes from it). Crashing inputs are written to ``OUT/crashes/``; copy
each one into ``tests/data/fuzz_regressions/`` (after the fix) so ``tests/data/test_images_fuzz.py``
keeps it fixed. Prints the execs, the corpus size and the findings; exit status 1 when something other
than ImageError escaped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The first byte of each input picks the file name the decoder is told (suffix sniffing matters).
NAMES = ("fuzz.png", "fuzz.jpeg", "fuzz.dcm", "fuzz")


def _target() -> None:
    """Run inside the fuzzing process: instrument the decoders, then hand control to libFuzzer."""
    import warnings

    import atheris

    with atheris.instrument_imports():
        import numpy
        import PIL.Image
        import pydicom
        import pydicom.pixels  # noqa: F401

        from medxfer.data import images
    PIL.Image.MAX_IMAGE_PIXELS = None  # read_image's own max_pixels check is what is tested
    warnings.simplefilter("ignore")
    pydicom.config.settings.reading_validation_mode = pydicom.config.WARN

    def one_input(data: bytes) -> None:
        if len(data) < 2:
            return
        name = NAMES[data[0] % len(NAMES)]
        try:
            out = images.read_image_bytes(data[1:], name, max_pixels=4_000_000)
        except images.ImageError:
            return
        # the decoder convention: uint8 (H, W) or (H, W, 3), never extra frames or an empty side
        if out.dtype != numpy.uint8 or out.shape[2:] not in ((), (3,)) or min(out.shape[:2]) < 1:
            raise AssertionError(f"decoder convention broken: {out.dtype} {out.shape}")

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


def _write_corpus(folder: Path) -> int:
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    from image_corpus import seed_corpus

    shared = Path(os.environ.get("MEDXFER_SHARED_DATA", ROOT.parent / "shared" / "data"))
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in seed_corpus(shared).items():
        suffix = Path(name).suffix
        first = next(i for i, n in enumerate(NAMES) if n.endswith(suffix) or i == len(NAMES) - 1)
        (folder / f"seed-{name}").write_bytes(bytes([first]) + data)
    return sum(1 for _ in folder.iterdir())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=600, help="total fuzzing time")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "fuzz", help="corpus + crashes folder")
    args = parser.parse_args()
    corpus, crashes = args.out / "corpus", args.out / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    n_seeds = _write_corpus(corpus)
    cmd = [
        sys.executable,
        __file__,
        "--as-target",
        str(corpus),
        f"-max_total_time={args.seconds}",
        "-max_len=65536",
        "-rss_limit_mb=2048"  # a decode bomb (e.g. deflated DICOM) is a finding,
        "-timeout=20",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
    ]
    print(f"fuzzing read_image_bytes for {args.seconds} s from {n_seeds} corpus files -> {args.out}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    (args.out / "fuzz.log").write_text(log)
    return _report(log, corpus, crashes, proc.returncode)


def _report(log: str, corpus: Path, crashes: Path, code: int) -> int:
    stats = {
        k.strip(): v.strip()
        for k, v in (ln.rsplit(":", 1) for ln in log.splitlines() if ln.startswith("stat::"))
    }
    found = sorted(p.name for p in crashes.iterdir())
    print("| measure | value |\n|---|---|")
    print(f"| execs | {stats.get('stat::number_of_executed_units', '?')} |")
    print(f"| execs/s | {stats.get('stat::average_exec_per_sec', '?')} |")
    print(f"| peak RSS MB | {stats.get('stat::peak_rss_mb', '?')} |")
    print(f"| corpus files | {sum(1 for _ in corpus.iterdir())} |")
    print(f"| findings | {len(found)} |")
    for name in found:
        print(f"  finding: {crashes / name}")
    tail = [
        ln
        for ln in log.splitlines()
        if "Uncaught Python exception" in ln or ln.startswith(("Traceback", "  File"))
    ]
    if tail:
        print("\n".join(tail[:20]))
    return 1 if found or code not in (0,) else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--as-target":
        del sys.argv[1]
        _target()
    else:
        sys.exit(main())
