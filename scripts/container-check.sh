#!/usr/bin/env bash
# Build the container image, start it, wait for its health check, post a sample scan, check the
# answer, and remove the container. Prints the image size, the time from start to healthy and the
# answer. Not part of the test run (a build takes minutes).
#   scripts/container-check.sh            (podman; docker works too: ENGINE=docker)
# Environment:
#   ENGINE       podman (default) or docker
#   BASE         base image (default python:3.11-slim-bookworm; where it cannot be pulled, one is
#                built from Debian's packages by scripts/container-base.sh and used instead)
#   TORCH_INDEX  where torch and torchvision come from (default PyTorch's CPU index; where that
#                cannot be reached and LOCAL_INDEX exists, that local index is mounted and used)
#   KEEP=1       keep the image afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${ENGINE:-podman}
IMAGE=${IMAGE:-localhost/brain-tumor-classifier:check}
NAME=braintumor-check-$$
PORT=${PORT:-5077}
SAMPLE=${SAMPLE:-src/braintumor/sample/glioma/Tr-gl_0118.jpg}
EXPECT=${EXPECT:-glioma}
BASE=${BASE:-python:3.11-slim-bookworm}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
TORCH_PACKAGES=${TORCH_PACKAGES:-torch torchvision}
LOCAL_INDEX=${LOCAL_INDEX:-/opt/pypi-more/simple}   # a local wheel index, used where TORCH_INDEX is out of reach
LOCAL_TORCH=${LOCAL_TORCH:-torch==2.14.1 torchvision==0.29.1}  # the releases that local index holds
build_args=()

say() { printf 'container-check: %s\n' "$*"; }
cleanup() {
  "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true
  "$ENGINE" volume rm -f "$NAME" >/dev/null 2>&1 || true
  [ "${KEEP:-0}" = 1 ] || "$ENGINE" rmi -f "$IMAGE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "engine: $("$ENGINE" --version)"
# Options for every build and run. On machines where the default runtime cannot start a container
# (crun refuses hybrid cgroups; a sandbox without CAP_SYS_RESOURCE cannot raise rlimits), runc with
# modest rlimits can: that fallback is chosen when a trial container fails.
opts=()
if ! "$ENGINE" image exists "$BASE" 2>/dev/null && ! "$ENGINE" pull -q "$BASE" >/dev/null 2>&1; then
  say "cannot pull $BASE: building a base from Debian's packages instead"
  BASE=localhost/braintumor-base:bookworm
  scripts/container-base.sh "$BASE"
fi
if ! "$ENGINE" run --rm "$BASE" true >/dev/null 2>&1; then
  opts=(--runtime runc --ulimit nofile=8192:8192 --ulimit nproc=8192:8192)
  "$ENGINE" run --rm "${opts[@]}" "$BASE" true >/dev/null 2>"/tmp/container-check-$$.err" || {
    say "FAIL: containers cannot run here: $(cat "/tmp/container-check-$$.err")"; exit 1; }
  say "the default runtime cannot start containers here; using: ${opts[*]}"
fi
if ! curl -fsS --max-time 10 -o /dev/null "$TORCH_INDEX/torch/" 2>/dev/null; then
  [ -d "$LOCAL_INDEX" ] || { say "cannot reach $TORCH_INDEX and no local index at $LOCAL_INDEX"; exit 1; }
  say "cannot reach $TORCH_INDEX: using the local index $LOCAL_INDEX (mounted into the build)"
  TORCH_INDEX="file://$LOCAL_INDEX"
  TORCH_PACKAGES=$LOCAL_TORCH
  build_args+=(-v "$(dirname "$LOCAL_INDEX"):$(dirname "$LOCAL_INDEX"):ro")
fi
# A proxy with its own certificate authority (pip's "cert" setting on this machine): the build
# trusts the same bundle.
cert=${PIP_CERT:-$(python3 -m pip config list 2>/dev/null | sed -n "s/^global\.cert='\(.*\)'$/\1/p" | head -1)}
if [ -n "$cert" ] && [ -f "$cert" ]; then
  build_args+=(-v "$cert:/run/host-ca.crt:ro" --build-arg "PIP_CERT=/run/host-ca.crt")
  say "pip in the build trusts $cert, as pip here does"
fi
say "base $BASE; $TORCH_PACKAGES from $TORCH_INDEX"

t0=$(date +%s)
"$ENGINE" build "${opts[@]}" --format docker -q -t "$IMAGE" --build-arg "BASE=$BASE" \
  --build-arg "TORCH_INDEX=$TORCH_INDEX" --build-arg "TORCH_PACKAGES=$TORCH_PACKAGES" \
  "${build_args[@]}" . >"${BUILD_LOG:-/dev/null}"
say "built $IMAGE in $(( $(date +%s) - t0 )) s"
size=$("$ENGINE" image inspect "$IMAGE" --format '{{.Size}}')
say "image size: $(awk -v s="$size" 'BEGIN {printf "%.2f GB (%.0f bytes)", s/1e9, s}')"
say "exposed: $("$ENGINE" image inspect "$IMAGE" --format '{{json .Config.ExposedPorts}}')" \
    "user: $("$ENGINE" image inspect "$IMAGE" --format '{{.Config.User}}')"

t0=$(date +%s.%N)
# As compose.yaml runs it: read-only, a named volume for the feedback database, feedback on. The
# script runs the image's health check itself (podman schedules it with systemd timers otherwise).
hc=()
[ "$ENGINE" = podman ] && hc=(--health-interval disable)
"$ENGINE" run "${opts[@]}" "${hc[@]}" -d --name "$NAME" -p "127.0.0.1:$PORT:5000" --read-only --tmpfs /tmp \
  -v "$NAME:/data" "$IMAGE" braintumor serve --host 0.0.0.0 --port 5000 --feedback /data/feedback.sqlite \
  >/dev/null 2>"/tmp/container-check-$$.err" || { cat "/tmp/container-check-$$.err"; exit 1; }
healthy=""
for _ in $(seq 1 180); do
  if [ "$ENGINE" = podman ]; then
    "$ENGINE" healthcheck run "$NAME" >/dev/null 2>&1 && { healthy=yes; break; }
  else  # docker runs the health check on its own schedule
    [ "$("$ENGINE" inspect "$NAME" --format '{{.State.Health.Status}}')" = healthy ] && { healthy=yes; break; }
  fi
  sleep 1
done
if [ -z "$healthy" ]; then "$ENGINE" logs "$NAME" | tail -20; say "FAIL: not healthy after 180 s"; exit 1; fi
say "healthy $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b-a}') s after start" \
    "(status: $("$ENGINE" inspect "$NAME" --format '{{.State.Health.Status}}'))"
say "process user inside: uid $("$ENGINE" exec "$NAME" id -u)"

answer=$(curl -fsS --max-time 60 -F "file=@$SAMPLE" "http://127.0.0.1:$PORT/api/predict")
summary=$(printf '%s' "$answer" | python3 -c "
import json, sys
a = json.load(sys.stdin)
probs = ', '.join('%s %.3f' % (q['label'], q['probability']) for q in a['predictions'])
print('label=%s decision=%s box=%s probabilities: %s' % (a['label'], a.get('decision'), a.get('box'), probs))")
say "answer for $SAMPLE: $summary"
case "$summary" in
  "label=$EXPECT "*) ;;
  *) say "FAIL: expected label $EXPECT"; exit 1 ;;
esac
id=$(printf '%s' "$answer" | python3 -c "import json, sys; print(json.load(sys.stdin)['id'])")
curl -fsS --max-time 30 -F "id=$id" -F "label=$EXPECT" -F keep_image=true -F "file=@$SAMPLE" \
  "http://127.0.0.1:$PORT/api/feedback" >/dev/null
say "feedback stored on the volume: $("$ENGINE" exec "$NAME" braintumor feedback stats --db /data/feedback.sqlite | head -1)"
say "PASS: the container answers $EXPECT for a $EXPECT sample and keeps feedback on its volume"
