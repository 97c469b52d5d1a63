#!/usr/bin/env bash
# Reproduce the shipped model in two stages, on the leakage-free split recorded in model/split.json.
#
# 1. ResNet18 from scratch at 224 px (the first release; minutes on a GPU, about a day on a 2-core CPU).
# 2. Fine-tuning with the radiologist tumour boxes: box head, CAM-in-box loss, tumour copy-paste in
#    both directions, style mixing and TorchIO artefacts, with conv1-layer2 frozen (CPU-friendly).
#    Then `braintumor calibrate` fits temperature, conformal scores, the out-of-distribution gate and
#    the no-tumour rule on the split.
#
# Resumable: rerun a stage with --resume after an interruption (see MODEL_CARD.md).
set -euo pipefail
DATA=${DATA:-../shared/data/brain-tumor-mri/Training}
BOXES=${BOXES:-../shared/data/tumour-boxes/training-boxes.tsv}
STAGE1=${STAGE1:-runs/resnet18-224-scratch}
STAGE2=${STAGE2:-runs/resnet18-224-boxes}
if [ ! -f "$STAGE1/best.safetensors" ]; then
  braintumor train --data "$DATA" --out "$STAGE1" --arch resnet18 --img-size 224 --epochs 250 \
    --batch-size 128 --lr 2e-3 --warmup-epochs 5 --ema-decay 0.998 --mixup 0.3 --seed 0 \
    --split-file model/split.json "$@"
fi
braintumor train --data "$DATA" --out "$STAGE2" --init "$STAGE1/best.safetensors" --freeze-early \
  --boxes "$BOXES" --split-file model/split.json --lr 4e-4 --warmup-epochs 1 \
  --ema-decay 0.99 --mixup 0 --batch-size 64 --cam-loss 0.5 --box-loss 2 --epochs 9 --seed 0 "$@"
braintumor calibrate --model "$STAGE2/best.safetensors" --data "$DATA" --split model/split.json
