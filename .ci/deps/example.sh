#!/usr/bin/env bash
# The bikeshare example's libraries (tests/test_example_bikeshare.py runs its notebook on the
# venv's own python3 kernel, so they go into the venv). Fast when already installed.
set -euo pipefail
: "${VENV:?VENV must name the virtualenv}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
if ! "$VENV/bin/python" -c "import pandas, matplotlib" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    -r "$here/examples/bikeshare/requirements.txt"
fi
