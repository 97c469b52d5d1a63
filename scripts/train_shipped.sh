#!/usr/bin/env bash
# Reproduce the shipped model: ResNet18 from scratch at 224 px on the Training half, with the
# leakage-free split recorded in model/split.json. On a GPU this takes minutes; on a 2-core CPU,
# about a day (see MODEL_CARD.md). Resumable: rerun with --resume after an interruption.
set -euo pipefail
DATA=${1:-../shared/data/brain-tumor-mri/Training}
OUT=${2:-runs/resnet18-224-scratch}
braintumor train --data "$DATA" --out "$OUT" --arch resnet18 --img-size 224 --fit crop --epochs 250 \
  --batch-size 128 --lr 2e-3 --warmup-epochs 5 --ema-decay 0.998 --cutmix 0.3 --seed 0 \
  --split-file model/split.json "${@:3}"
