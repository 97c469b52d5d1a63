#!/usr/bin/env bash
# Train the shipped-model candidates on a lent GPU machine: three from-scratch ResNet18 runs at
# three input sizes, in parallel on one GPU, each within a time budget; then pack the results.
# Expects .gpudata/Training.tar (the dataset's Training folder) and .gpudata/split.json.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p /tmp/data "$OUT" && tar -xf .gpudata/Training.tar -C /tmp/data
export PYTHONPATH=$PWD/src BRAINTUMOR_NO_PROGRESS=1 BRAINTUMOR_CACHE=/tmp/btcache PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
BUDGET=${BUDGET:-390}
for spec in "224 r18-224" "192 r18-192"; do
  set -- $spec
  timeout $((BUDGET + 90)) python3 -m braintumor train --data /tmp/data/Training --out /tmp/runs/$2 \
    --arch resnet18 --img-size $1 --epochs ${EPOCHS:-250} --time-budget $BUDGET --batch-size 128 --lr 2e-3 \
    --warmup-epochs 5 --ema-decay 0.998 --cutmix 0.3 --split-file .gpudata/split.json --workers 4 \
    --device ${DEVICE:-cuda} > /tmp/runs-$2.log 2>&1 &
done
mkdir -p /tmp/runs
wait
for f in /tmp/runs-*.log; do echo "== $f"; grep -E "^epoch|data:|budget|rror" "$f" | tail -8; done
cp /tmp/runs-*.log /tmp/runs/ 2>/dev/null
python3 scripts/pack_runs.py /tmp/runs "$OUT"
ls -la "$OUT"
