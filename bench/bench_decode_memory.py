"""Peak memory of one prediction request at the decode pixel cap (issue 11: memory bounded by the cap).

    python bench/bench_decode_memory.py [--backbone efficientnet_lite0]

For each input (16-bit PNG and 16-bit DICOM exactly at the model's cap, an 8-bit PNG at the cap, and
the 9999 x 9999 16-bit PNG of the issue, which the cap now refuses) a fresh process loads the run
(``Predictor``), records its resident memory, then decodes the file's bytes and predicts once as
``serve`` does (``Predictor.read_bytes`` + ``predict_arrays``). The table shows the file size, the pixels,
the outcome and the extra peak RSS of that one request (after a warm-up request the kernel's peak
``VmHWM`` is reset via ``/proc/self/clear_refs``; the row shows the new peak minus the RSS before). Files are
made in a temporary folder; nothing is kept.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _runs import make_bench_run

CHILD = r"""
import json, sys
from pathlib import Path
from medxfer.inference.predictor import Predictor

def status(key):
    line = next(ln for ln in open("/proc/self/status") if ln.startswith(key + ":"))
    return int(line.split()[1]) / 1024

p = Predictor(sys.argv[1])
data = Path(sys.argv[2]).read_bytes()
p.predict_arrays([p.read_bytes(Path(sys.argv[3]).read_bytes(), "warm.png")])  # warm-up request
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS")
try:
    p.predict_arrays([p.read_bytes(data, Path(sys.argv[2]).name)])
    outcome = "predicted"
except Exception as exc:
    outcome = type(exc).__name__ + ": " + str(exc).split(": ", 1)[-1][:40]
print(json.dumps({"before_mb": before, "peak_mb": status("VmHWM"), "outcome": outcome}))
"""


def _inputs(folder: Path, cap: int) -> dict[str, Path]:
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data"))
    from image_corpus import dicom_bytes

    side = int(cap**0.5)
    ramp = (np.arange(side, dtype=np.uint32)[None, :] * 65535 // side).astype(np.uint16)
    wide = np.broadcast_to(ramp, (side, side)).copy()  # compresses to little, decodes to a lot
    out = {}
    Image.fromarray(wide).save(out.setdefault(f"16-bit PNG {side}x{side}", folder / "cap16.png"))
    Image.fromarray((wide >> 8).astype(np.uint8)).save(
        out.setdefault(f"8-bit PNG {side}x{side}", folder / "cap8.png")
    )
    path = out.setdefault(f"16-bit DICOM {side}x{side}", folder / "cap16.dcm")
    path.write_bytes(dicom_bytes(wide, RescaleSlope=1, RescaleIntercept=-1024))
    big = np.zeros((9999, 9999), dtype=np.uint16)
    Image.fromarray(big).save(out.setdefault("16-bit PNG 9999x9999 (issue)", folder / "big16.png"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args()
    from PIL import Image

    from medxfer.data.images import pixel_cap
    from medxfer.runs import read_model_info

    with tempfile.TemporaryDirectory() as tmp:
        run = make_bench_run(Path(tmp) / "run", args.backbone)
        cap = pixel_cap(read_model_info(run).input_size)
        print(f"backbone {args.backbone}, pixel cap {cap / 1e6:.1f} Mpx\n")
        warm = Path(tmp) / "warm.png"
        Image.new("L", (64, 64), 128).save(warm)
        print("| input | file KB | outcome | RSS before MB | extra peak MB per request |")
        print("|---|---:|---|---:|---:|")
        for label, path in _inputs(Path(tmp), cap).items():
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(run), str(path), str(warm)], capture_output=True, text=True
            )
            if proc.returncode != 0:
                print(f"| {label} | - | child failed: {proc.stderr.strip().splitlines()[-1]} | | |")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            size = path.stat().st_size / 1024
            extra = r["peak_mb"] - r["before_mb"]
            print(f"| {label} | {size:.0f} | {r['outcome']} | {r['before_mb']:.0f} | {extra:.0f} |")


if __name__ == "__main__":
    main()
