#!/usr/bin/env bash
# Build a Debian bookworm base image with Python 3.11 from Debian's own packages (debootstrap) and
# tag it, for machines that cannot pull from a container registry. Where you can pull, you do not
# need this: the Dockerfile's default base is the official python:3.11-slim-bookworm.
#   scripts/container-base.sh [TAG]      (default tag: localhost/braintumor-base:bookworm)
# Needs root, debootstrap and podman (apt-get install debootstrap podman).
set -euo pipefail
TAG=${1:-localhost/braintumor-base:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
if podman image exists "$TAG"; then echo "base: $TAG already present"; exit 0; fi
root=$(mktemp -d /var/tmp/braintumor-base.XXXXXX)
cleanup() {
  for m in proc sys dev/pts dev; do umount "$root/$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$root" "$root.log"
}
trap cleanup EXIT
echo "base: debootstrap bookworm into $root (a few minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -20 "$root.log"; exit 1; }
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
echo "base: tagged $TAG ($(podman image inspect "$TAG" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}'))"
