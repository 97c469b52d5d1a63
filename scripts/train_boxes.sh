#!/usr/bin/env bash
# The candidate model/candidates/resnet18-224-boxes.safetensors: the shipped model fine-tuned with
# the radiologist tumour boxes (box head, CAM-in-box loss, tumour copy-paste both ways, style
# mixing, TorchIO artefacts), conv1-layer2 frozen, on the split recorded in model/split.json; then
# calibrated (temperature, conformal scores, out-of-distribution gate, no-tumour rule), and given the
# box refiner.
# CPU-friendly: about 8 minutes an epoch on 2 cores in float32. Resumable with --resume.
# Stages: the first teaches the box head and moves the evidence into the tumour box; the second
# continues with lighter auxiliary losses and augmentation, which gives back some accuracy. The
# first stage's own run changed settings twice while it ran (see MODEL_CARD.md); this script uses
# the final settings throughout.
set -euo pipefail
DATA=${DATA:-../shared/data/brain-tumor-mri/Training}
BOXES=${BOXES:-../shared/data/tumour-boxes/training-boxes.tsv}
OUT=${OUT:-runs/resnet18-224-boxes}
INIT=${INIT:-model/previous/resnet18-224-scratch.safetensors}  # version 1.1, from scripts/train_shipped.sh
braintumor train --data "$DATA" --out "$OUT" --init "$INIT" --fit crop \
  --freeze-early --boxes "$BOXES" --split-file model/split.json --lr 4e-4 --warmup-epochs 1 \
  --ema-decay 0.99 --cutmix 0 --batch-size 64 --cam-loss 0.5 --box-loss 2 --epochs 8 --seed 0 "$@"
braintumor train --data "$DATA" --out "$OUT-stage3" --init "$OUT/last.safetensors" --fit crop \
  --freeze-early --boxes "$BOXES" --split-file model/split.json --lr 2e-4 --warmup-epochs 0 \
  --ema-decay 0.99 --cutmix 0 --batch-size 64 --cam-loss 0.2 --box-loss 2 --paste 0.2 --erase 0.06 \
  --epochs 7 --seed 1 "$@"
braintumor calibrate --model "$OUT-stage3/last.safetensors" --data "$DATA" --split model/split.json
# Stage 4 (model/candidates/resnet18-224-boxes-inpaint.safetensors): more tumours erased, half of them
# by inpainting, so that the answer depends on the tumour being there (see MODEL_CARD.md).
braintumor train --data "$DATA" --out "$OUT-stage4" --init "$OUT-stage3/last.safetensors" --fit crop \
  --freeze-early --boxes "$BOXES" --split-file model/split.json --lr 2e-4 --warmup-epochs 0 \
  --ema-decay 0.99 --cutmix 0 --batch-size 64 --cam-loss 0.2 --box-loss 2 --paste 0.3 --erase 0.2 \
  --erase-fill 0.5 --epochs 6 --seed 2 "$@"
braintumor calibrate --model "$OUT-stage4/last.safetensors" --data "$DATA" --split model/split.json
# The box refiner, fitted once on the training split's boxes; it reads pixels, not features, so the
# same refiner serves both candidates (docs/localization.md).
braintumor fit-refiner --model "$OUT-stage4/last.safetensors" --data "$DATA" --boxes "$BOXES" --split model/split.json
braintumor fit-refiner --model "$OUT-stage3/last.safetensors" --data "$DATA" --boxes "$BOXES" \
  --split model/split.json --from "$OUT-stage4/last.safetensors"
