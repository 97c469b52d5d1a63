#!/usr/bin/env bash
# Make a trained checkpoint the package's default model, and refit everything that belongs to it:
#   1. the checkpoint, stored in float16 under src/braintumor/weights/ and named in the manifest;
#   2. its ONNX graphs (braintumor export: int8 and float32, SHA-256 in the manifest);
#   3. its decisions on every source's validation slices (braintumor calibrate: temperature,
#      conformal scores, the no-tumour rule and the out-of-distribution gate);
#   4. the similar-case index of its features, marking the scans it trained on;
#   5. the example answers in docs/web.md.
# Needs the training install (bash scripts/setup.sh --train) and ../shared/data.
#   scripts/ship_model.sh CHECKPOINT NAME VERSION [COVERAGE] [NOTUMOR_REFERRAL]
#   (COVERAGE: the conformal sets' coverage, default 0.95; NOTUMOR_REFERRAL: the most of the
#   validation 'no tumour' answers the no-tumour rule may refer, default 0.10)
#   e.g. scripts/ship_model.sh ~/.cache/braintumor-runs/v2/last.safetensors resnet18-224-v2 2.0
set -euo pipefail
cd "$(dirname "$0")/.."
CK=${1:?usage: scripts/ship_model.sh CHECKPOINT NAME VERSION [COVERAGE] [NOTUMOR_REFERRAL]}
NAME=${2:?name}
VERSION=${3:?version}
COVERAGE=${4:-0.95}
REFERRAL=${5:-0.10}
DATA=${DATA:-../shared/data/brain-tumor-mri/Training}
BOXES=${BOXES:-../shared/data/tumour-boxes/training-boxes.tsv}
SOURCES=(--source "${TCGA:-../shared/data/tcga-lgg}" --source "${BR35H:-../shared/data/br35h}")
W=src/braintumor/weights
PY=${PY:-.venv/bin/python}
BT=${BT:-.venv/bin/braintumor}

"$PY" - "$CK" "$W/$NAME.safetensors" "$NAME" "$VERSION" <<'EOF'
import sys

from braintumor.training.checkpoint import load_checkpoint, save_checkpoint
from braintumor.inference import shipped

src, dst, name, version = sys.argv[1:]
ck = load_checkpoint(src)
meta = dict(ck.meta, name=name, version=version)
digest = save_checkpoint(dst, ck.build(), ck.arch, ck.preprocessing, ck.classes, meta, half=True)
old = shipped.manifest()
shipped.update_manifest(file=f"{name}.safetensors", sha256=digest, name=name, version=version, arch=ck.arch,
                        img_size=ck.preprocessing.img_size)
print(f"ship: {dst} ({digest[:12]}), version {version}; was {old['file']} version {old.get('version')}")
EOF
"$BT" export
"$BT" calibrate --data "$DATA" --split model/split.json "${SOURCES[@]}" --boxes "$BOXES" --coverage "$COVERAGE" \
  --notumor-referral "$REFERRAL"
"$BT" index "$DATA" --source "${TCGA:-../shared/data/tcga-lgg}" --split model/split.json \
  --out "$W/training-index.safetensors"
"$PY" scripts/doc_examples.py
echo "ship: done; now measure it: python benchmarks/explain_quality.py --out docs/model/$NAME"
