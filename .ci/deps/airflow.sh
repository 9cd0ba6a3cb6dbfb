#!/usr/bin/env bash
# The Airflow 3 virtualenv that tests/test_airflow.py runs real `airflow dags test` in (issue 5).
#
# Airflow gets its own venv (its ~300 pinned dependencies must not steer the project venv):
# apache-airflow + ipykernel + the bikeshare example's libraries + this checkout of paramill
# with its report extra (editable, so the `apache_airflow_provider` entry point is registered).
#
# Cached between runs under $PARAMILL_AIRFLOW_CACHE (default ~/.cache/paramill), in a folder
# named by a hash of the requirements and the Python version: a warm run only checks two stamp
# files (well under a second). A cold build takes ~40 s with pip's download cache warm.
# Re-installs paramill (~4 s) when the checkout or its pyproject.toml changed.
#
# Prints the venv path as the last line of stdout. Knobs: PARAMILL_AIRFLOW_VERSION (3.3.2),
# PARAMILL_AIRFLOW_CACHE, PYTHON (python3). Airflow's constraint files live outside PyPI and
# cannot be fetched here, so the Airflow version is pinned and the rest resolves from PyPI.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
python=${PYTHON:-python3}
version=${PARAMILL_AIRFLOW_VERSION:-3.3.2}
cache=${PARAMILL_AIRFLOW_CACHE:-$HOME/.cache/paramill}

requirements="apache-airflow==$version
ipykernel>=6.25
$(grep -v '^\s*#' "$root/examples/bikeshare/requirements.txt" | sed '/^\s*$/d')"
pyversion=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$(printf '%s\n%s\n' "$requirements" "$pyversion" | sha256sum | cut -c1-12)
venv="$cache/airflow-venv-$key"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)

mkdir -p "$cache"
exec 9>"$cache/airflow-venv.lock"
flock 9  # one builder at a time (CI deps step and a local test run may overlap)

if [ ! -f "$venv/.requirements-installed" ]; then
  rm -rf "$venv"
  start=$(date +%s)
  "$python" -m venv "$venv"
  printf '%s\n' "$requirements" > "$venv/requirements.txt"
  "${pip[@]}" -r "$venv/requirements.txt" >&2
  touch "$venv/.requirements-installed"
  echo "airflow venv: built $venv in $(( $(date +%s) - start ))s" >&2
fi

stamp="$root[report] $(sha256sum "$root/pyproject.toml" | cut -c1-16)"
if [ "$(cat "$venv/.paramill-installed" 2>/dev/null)" != "$stamp" ]; then
  "${pip[@]}" -e "$root[report]" >&2
  printf '%s' "$stamp" > "$venv/.paramill-installed"
fi

echo "$venv"
