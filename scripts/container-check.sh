#!/usr/bin/env bash
# Build the container image (the light install: no PyTorch), start it, wait for its health check,
# post a sample scan, check the answer, and remove the container; then start compose.yaml with
# several replicas behind the proxy's one port and check that they all answer. Prints the image
# size (and fails over MAX_IMAGE_MB), the time from start to healthy and the answers. Not part of
# the test run (a build takes minutes, and it needs a container engine).
#   scripts/container-check.sh            (podman; docker works too: ENGINE=docker)
# Environment:
#   ENGINE       podman (default) or docker
#   BASE         base image (default python:3.11-slim-bookworm; where it cannot be pulled, one is
#                built from Debian's packages by scripts/container-base.sh and used instead)
#   REPLICAS     web replicas behind the proxy in the compose check (default 3; 0 skips it)
#   MAX_IMAGE_MB the largest image accepted (default 600)
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
REPLICAS=${REPLICAS:-3}
MAX_IMAGE_MB=${MAX_IMAGE_MB:-600}
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
# A proxy with its own certificate authority (pip's "cert" setting on this machine): the build
# trusts the same bundle.
cert=${PIP_CERT:-$(python3 -m pip config list 2>/dev/null | sed -n "s/^global\.cert='\(.*\)'$/\1/p" | head -1)}
if [ -n "$cert" ] && [ -f "$cert" ]; then
  build_args+=(-v "$cert:/run/host-ca.crt:ro" --build-arg "PIP_CERT=/run/host-ca.crt")
  say "pip in the build trusts $cert, as pip here does"
fi
say "base $BASE"

t0=$(date +%s)
fmt=()
[ "$ENGINE" = podman ] && fmt=(--format docker)  # the OCI format has no HEALTHCHECK
"$ENGINE" build "${opts[@]}" "${fmt[@]}" -q -t "$IMAGE" --build-arg "BASE=$BASE" \
  "${build_args[@]}" . >"${BUILD_LOG:-/dev/null}"
say "built $IMAGE in $(( $(date +%s) - t0 )) s"
size=$("$ENGINE" image inspect "$IMAGE" --format '{{.Size}}')
say "image size: $(awk -v s="$size" 'BEGIN {printf "%.0f MB (%.0f bytes)", s/1e6, s}')"
if [ "$size" -gt $(( MAX_IMAGE_MB * 1000000 )) ]; then say "FAIL: the image is over $MAX_IMAGE_MB MB"; exit 1; fi
if "$ENGINE" run "${opts[@]}" --rm "$IMAGE" python3 -c "import torch" >/dev/null 2>&1; then
  say "FAIL: the image has PyTorch"; exit 1
fi
say "PyTorch is not in the image (python3 -c 'import torch' fails there)"
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

# Several replicas behind the proxy's one port, as compose.yaml runs them.
[ "$REPLICAS" -gt 0 ] || exit 0
"$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true
if [ "$ENGINE" = podman ]; then compose=(podman-compose); else compose=(docker compose); fi
project=braintumor-check-$$
export COMPOSE_PROJECT_NAME=$project
"$ENGINE" tag "$IMAGE" brain-tumor-classifier:latest
compose_down() { "${compose[@]}" down -v >/dev/null 2>&1 || true; cleanup; }
trap compose_down EXIT
"${compose[@]}" up -d --no-build --scale "web=$REPLICAS" >/dev/null
ok=""
for _ in $(seq 1 180); do
  curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:5000/api/health" 2>/dev/null && { ok=yes; break; }
  sleep 1
done
[ -n "$ok" ] || { "${compose[@]}" logs | tail -30; say "FAIL: the proxy did not answer within 180 s"; exit 1; }
for i in $(seq 1 $(( 8 * REPLICAS ))); do  # browsers of different kinds spread over the replicas
  curl -fsS --max-time 60 -A "check-browser-$i" -F "file=@$SAMPLE" -F overlay=false \
    "http://127.0.0.1:5000/api/predict" | python3 -c "
import json, sys
a = json.load(sys.stdin)
sys.exit(0 if a['label'] == '$EXPECT' and a.get('heatmap_png') else 1)" || { say "FAIL: a wrong answer through the proxy"; exit 1; }
done
served=0
for c in $("${compose[@]}" ps -q web); do
  n=$("$ENGINE" logs "$c" 2>&1 | grep -c "predict: " || true)
  say "replica ${c:0:12}: $n answers"
  [ "$n" -gt 0 ] && served=$((served + 1))
done
[ "$served" -ge 2 ] || { say "FAIL: only $served of $REPLICAS replicas answered"; exit 1; }
say "PASS: $served of $REPLICAS replicas answered $EXPECT through one port (127.0.0.1:5000)"
