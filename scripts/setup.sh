#!/usr/bin/env bash
# Create a virtual environment (.venv, or $VENV) and install the project into it.
#
#   bash scripts/setup.sh           the light install: serve, predict, explain, report, evaluate, audit,
#                                   feedback, similar cases (ONNX Runtime, NumPy, Pillow; no PyTorch)
#   bash scripts/setup.sh --train   also PyTorch and what training, fitting and `braintumor export` need
#   bash scripts/setup.sh --test    both, and what the tests need (pytest, Playwright's Python client,
#                                   Debian's chromium for the browser test, poppler-utils to render
#                                   the PDF report, dicom3tools to check the DICOM structured reports
#                                   and Orthanc with its DICOMweb plugin for the PACS round trip)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
extras=""
case "${1:-}" in
  "") ;;
  --train) extras="[train]" ;;
  --test)
    extras="[train,test]"
    if { ! command -v chromium >/dev/null 2>&1 || ! command -v pdftoppm >/dev/null 2>&1 \
         || ! command -v dciodvfy >/dev/null 2>&1 || [ ! -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; } \
        && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils \
          dicom3tools orthanc orthanc-dicomweb >/dev/null) \
        || echo "setup: could not install chromium, poppler-utils, dicom3tools and orthanc; the browser, PDF-rendering, structured-report and PACS tests will skip" >&2
    fi
    ;;
  *) echo "usage: bash scripts/setup.sh [--train | --test]" >&2; exit 2 ;;
esac
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".${extras}"
