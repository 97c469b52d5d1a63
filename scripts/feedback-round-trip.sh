#!/usr/bin/env bash
# The feedback loop end to end, one braintumor command per step:
#   1. serve with feedback on; 2. corrections with consent are posted for SCANS (class folders);
#   3. feedback export; 4. finetune on the export; 5. serve the new checkpoint and ask it.
#   scripts/feedback-round-trip.sh SCANS [WORK]       (WORK default: runs/feedback-round-trip)
set -euo pipefail
SCANS=${1:?usage: scripts/feedback-round-trip.sh SCANS [WORK]}
WORK=${2:-runs/feedback-round-trip}
BT=${BT:-braintumor}
PORT=${PORT:-5088}
URL="http://127.0.0.1:$PORT"
mkdir -p "$WORK"
rm -f "$WORK/feedback.sqlite"*
wait_up() { for _ in $(seq 1 120); do curl -fsS "$URL/api/health" >/dev/null 2>&1 && return 0; sleep 1; done; return 1; }

echo "1. $BT serve --port $PORT --feedback $WORK/feedback.sqlite"
$BT serve --port "$PORT" --feedback "$WORK/feedback.sqlite" 2>"$WORK/serve1.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_up
n=0
for f in "$SCANS"/*/*; do
  label=$(basename "$(dirname "$f")")
  id=$(curl -fsS -F "file=@$f" -F explain=false "$URL/api/predict" | python3 -c "import json,sys; print(json.load(sys.stdin)['id'])")
  curl -fsS -F "id=$id" -F "label=$label" -F keep_image=true -F "file=@$f" "$URL/api/feedback" >/dev/null
  n=$((n + 1))
done
echo "2. posted $n corrections with consent"
kill $pid; wait $pid 2>/dev/null || true

echo "3. $BT feedback export $WORK/export --db $WORK/feedback.sqlite"
$BT feedback stats --db "$WORK/feedback.sqlite" | head -1
$BT feedback export "$WORK/export" --db "$WORK/feedback.sqlite"

echo "4. $BT finetune --data $WORK/export --out $WORK/run"
/usr/bin/time -f "   finetune took %e s" $BT finetune --data "$WORK/export" --out "$WORK/run" 2>&1 \
  | grep -v "^epoch\|^data\|^cache\|^boxes" | tail -14

echo "5. $BT serve --port $PORT --model $WORK/run/last.safetensors"
$BT serve --port "$PORT" --model "$WORK/run/last.safetensors" 2>"$WORK/serve2.log" &
pid=$!
wait_up
first=$(ls "$SCANS"/*/* | head -1)
curl -fsS -F "file=@$first" -F explain=false "$URL/api/predict" | python3 -c "
import json, sys
a = json.load(sys.stdin)
print('   the new checkpoint answers', a['label'], round(a['confidence'], 3), a.get('decision'), 'model', a['model']['name'], a['model']['sha256'][:12])"
