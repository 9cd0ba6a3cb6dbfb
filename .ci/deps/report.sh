#!/usr/bin/env bash
# HTML reports and records: nbconvert (the `report` extra), pandas and matplotlib for DataFrame
# and figure records. Idempotent; fast when everything is there. (Chromium, for
# examples/bikeshare/screenshot.sh and its test, comes from .ci/deps/screenshot.sh.)
set -euo pipefail
: "${VENV:?VENV must name the virtualenv}"
if ! "$VENV/bin/python" -c "import nbconvert, pandas, matplotlib" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "nbconvert>=7" pandas matplotlib
fi
