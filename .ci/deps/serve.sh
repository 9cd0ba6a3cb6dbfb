#!/usr/bin/env bash
# System parts `paramill serve`'s tests use (issue 14): Debian's headless Chromium (driven by
# Playwright with executable_path=/usr/bin/chromium; Playwright's own browser download is not
# reachable), a font so pages render text, and PostgreSQL (a throwaway cluster is started by
# tests/test_serve_postgres.py). Idempotent: a second run only checks that they are there.
# The Python side (fastapi, uvicorn, sqlalchemy, psycopg, playwright) comes from
# '.[serve,postgres]' plus playwright in the test extra.
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || need+=(fonts-dejavu-core)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "serve.sh: need root to install ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "serve deps: chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), postgresql $(ls /usr/lib/postgresql)"
