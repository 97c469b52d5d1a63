#!/usr/bin/env bash
# Create .venv and install the project into it. With --test, also what the tests need
# (pytest, Playwright's Python client, Debian's chromium for the browser test and poppler-utils to
# render the PDF report).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
extras=""
if [ "${1:-}" = "--test" ]; then
  extras="[test]"
  if { ! command -v chromium >/dev/null 2>&1 || ! command -v pdftoppm >/dev/null 2>&1; } \
      && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils >/dev/null) \
      || echo "setup: could not install chromium and poppler-utils; the browser and PDF-rendering tests will skip" >&2
  fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
