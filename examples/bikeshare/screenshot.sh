#!/usr/bin/env bash
# Render the bikeshare HTML report to a PNG with headless Chromium (Debian's `chromium`; install it
# with .ci/deps/screenshot.sh) for the README: docs/bikeshare-report.png.
#   usage: examples/bikeshare/screenshot.sh [REPORT.html] [OUT.png] [WIDTHxHEIGHT]
# Run `make demo` first (it writes output/report_<date>.html). No network is used: the report is
# self-contained and Chromium's background services are switched off.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
report="$(realpath "${1:-$here/output/report_2019-11-07.html}")"
out="${2:-$here/../../docs/bikeshare-report.png}"
size="${3:-1000x1500}"
[ -f "$report" ] || { echo "no report at $report: run 'make demo' first" >&2; exit 1; }
command -v chromium >/dev/null || {
  echo "chromium is not installed: run .ci/deps/screenshot.sh" >&2
  exit 1
}
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$out")"
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --user-data-dir="$profile" --window-size="${size/x/,}" \
  --screenshot="$(realpath -m "$out")" "file://$report" 2>/dev/null
# keep the README's picture small: a palette PNG when ImageMagick is there
if command -v convert >/dev/null && convert -version 2>/dev/null | grep -q ImageMagick; then
  convert "$out" -colors 128 -strip "PNG8:$out"
fi
ls -l "$out"
