#!/usr/bin/env bash
# HTML reports and records: nbconvert (the `report` extra), pandas and matplotlib for DataFrame
# and figure records, and Debian's chromium, which renders the bikeshare report to a PNG
# (examples/bikeshare/screenshot.sh). Idempotent; fast when everything is there.
set -euo pipefail
: "${VENV:?VENV must name the virtualenv}"
if ! "$VENV/bin/python" -c "import nbconvert, pandas, matplotlib" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "nbconvert>=7" pandas matplotlib
fi
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
