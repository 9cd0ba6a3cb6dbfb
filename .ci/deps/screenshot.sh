#!/usr/bin/env bash
# Headless Chromium (and a font) for examples/bikeshare/screenshot.sh, which
# tests/test_report.py runs. Idempotent: nothing to do when `chromium` is on PATH.
set -euo pipefail
command -v chromium >/dev/null && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core \
  || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends \
       chromium fonts-dejavu-core; }
command -v chromium >/dev/null
