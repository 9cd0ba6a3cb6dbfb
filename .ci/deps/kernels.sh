#!/usr/bin/env bash
# Real non-Python Jupyter kernels for tests/test_kernels_languages.py (issue 3).
# Debian bookworm, run as root; uses only Debian apt, PyPI and the npm registry.
# Adapted from shared/testing/install-kernels.sh (which documents the measurements).
#
#   kernelspec   what                              from
#   ir           R 4.2 + IRkernel                  apt (Debian ships the spec in /usr/share)
#   bash         bash_kernel 0.10.0                PyPI
#   octave       GNU Octave 7.3 + octave_kernel    apt + PyPI
#   javascript   ijavascript 5.2.1                 npm (zeromq@5 linked to Debian's libzmq)
#   tslab/jslab  tslab 1.0.22                      npm (prebuilt zeromq@6 addon)
#   toree_scala  Apache Toree 0.5.0 + pyspark 3.5  PyPI (~370 MB, ~45 s cold; the slow test)
#
# Idempotent: apt runs only for missing packages, pip/npm only when their stamp file differs,
# so a warm run takes about a second. Kernel venv and node_modules live in
# $PARAMILL_KERNELS_HOME, specs in /usr/local/share/jupyter/kernels (on jupyter_client's
# default path, so the project venv finds them without JUPYTER_PATH).
#
# Knobs: PARAMILL_KERNELS="r bash octave js ts scala" (drop "scala" to save ~370 MB / ~45 s),
#        PARAMILL_KERNELS_HOME=/opt/paramill-kernels, PYTHON=python3, VERIFY=1 (run one cell
#        in each kernel), SKIP_APT_UPDATE=1.
set -euo pipefail

KERNELS=${PARAMILL_KERNELS:-"r bash octave js ts scala"}
KERNELS_HOME=${PARAMILL_KERNELS_HOME:-/opt/paramill-kernels}
KSPEC_DIR=/usr/local/share/jupyter/kernels
PYTHON=${PYTHON:-python3}
KVENV="$KERNELS_HOME/venv"
NODE_DIR="$KERNELS_HOME/node"

has() { [[ " $KERNELS " == *" $1 "* ]]; }
step() { printf '=== [%(%H:%M:%S)T] %s\n' -1 "$*"; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
SECONDS=0

# ---------------------------------------------------------------- apt (only what is missing)
WANT=()
has r && WANT+=(r-base-core r-cran-irkernel)
has octave && WANT+=(octave)
if has js || has ts; then
  command -v node >/dev/null && command -v npm >/dev/null || WANT+=(nodejs npm)
  has js && WANT+=(libzmq3-dev g++ make)
fi
has scala && { command -v java >/dev/null || WANT+=(openjdk-17-jre-headless); }
MISSING=()
for pkg in "${WANT[@]}"; do installed "$pkg" || MISSING+=("$pkg"); done
if ((${#MISSING[@]})); then
  step "apt: ${MISSING[*]}"
  [[ "${SKIP_APT_UPDATE:-0}" == 1 ]] || apt-get update -qq
  # --no-install-recommends: with recommends r-base-core alone pulls ~700 packages
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >/dev/null
fi

# ---------------------------------------------------------------- python kernels (own venv)
mkdir -p "$KERNELS_HOME" "$KSPEC_DIR"
PIP_PKGS=("ipykernel>=6" "jupyter_client>=8")
has bash && PIP_PKGS+=("bash_kernel==0.10.0")
has octave && PIP_PKGS+=("octave_kernel==1.1.1")
has scala && PIP_PKGS+=("pyspark==3.5.*" "toree==0.5.0")
[[ -x "$KVENV/bin/python" ]] || { step "venv $KVENV"; "$PYTHON" -m venv "$KVENV"; }
if [[ "$(cat "$KVENV/.paramill-stamp" 2>/dev/null)" != "${PIP_PKGS[*]}" ]]; then
  step "pip: ${PIP_PKGS[*]}"
  # this machine's pip config lists local indexes that may be absent: drop that noise only
  "$KVENV/bin/pip" install -q --disable-pip-version-check "${PIP_PKGS[@]}" \
    2> >(grep -v "^WARNING: Location 'file:" >&2)
  echo "${PIP_PKGS[*]}" > "$KVENV/.paramill-stamp"
fi

# write_spec NAME LANGUAGE DISPLAY ARGV_JSON [EXTRA_JSON]
write_spec() {
  mkdir -p "$KSPEC_DIR/$1"
  "$KVENV/bin/python" - "$KSPEC_DIR/$1/kernel.json" "$2" "$3" "$4" "${5:-{\}}" <<'PY'
import json, sys
path, lang, disp, argv, extra = sys.argv[1:]
spec = {"argv": json.loads(argv), "display_name": disp, "language": lang}
spec.update(json.loads(extra))
with open(path, "w") as f:
    json.dump(spec, f, indent=1)
PY
}

has bash && write_spec bash bash "Bash" \
  "[\"$KVENV/bin/python\", \"-m\", \"bash_kernel\", \"-f\", \"{connection_file}\"]" \
  '{"env": {"PS1": "$"}}'
# octave_kernel's own spec says "python", which jupyter_client replaces by ITS interpreter
has octave && write_spec octave octave "Octave" \
  "[\"$KVENV/bin/python\", \"-m\", \"octave_kernel\", \"-f\", \"{connection_file}\"]"

if has scala && [[ ! -f "$KSPEC_DIR/toree_scala/kernel.json" ]]; then
  step "Apache Toree (Scala) kernelspec"
  SPARK_HOME=$("$KVENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
  "$KVENV/bin/jupyter" toree install --sys-prefix --replace --kernel_name=toree \
    --interpreters=Scala --spark_home="$SPARK_HOME" \
    --spark_opts='--master=local[1] --driver-memory=1g' > "$KERNELS_HOME/toree-install.log" 2>&1
  rm -rf "$KSPEC_DIR/toree_scala"
  cp -r "$KVENV/share/jupyter/kernels/toree_scala" "$KSPEC_DIR/toree_scala"
  sed -i "s#$KVENV/share/jupyter/kernels/toree_scala#$KSPEC_DIR/toree_scala#" \
    "$KSPEC_DIR/toree_scala/kernel.json"
fi

# ---------------------------------------------------------------- npm
if has js || has ts; then
  NPM_PKGS=()
  has js && NPM_PKGS+=(ijavascript@5.2.1)
  has ts && NPM_PKGS+=(tslab@1.0.22)
  mkdir -p "$NODE_DIR"
  if [[ "$(cat "$NODE_DIR/.paramill-stamp" 2>/dev/null)" != "${NPM_PKGS[*]}" ]]; then
    step "npm: ${NPM_PKGS[*]}"
    # allowScripts: npm 11 skips dependency install scripts unless allowed here
    echo '{"private": true, "allowScripts": {"zeromq": true}}' > "$NODE_DIR/package.json"
    # zmq_external: zeromq@5 has no prebuilt addon for Node >= 20 and would download libzmq
    #   from GitHub; link Debian's instead. nodedir=/usr: node-gyp uses installed headers.
    # shallow: keeps tslab's @types/node nested under tslab, where it finds it from any cwd.
    (cd "$NODE_DIR" && npm_config_zmq_external=true npm_config_nodedir=/usr \
      npm install --no-audit --no-fund --loglevel=error --install-strategy=shallow "${NPM_PKGS[@]}")
    echo "${NPM_PKGS[*]}" > "$NODE_DIR/.paramill-stamp"
  fi
  has js && write_spec javascript javascript "JavaScript (Node.js)" \
    "[\"$(command -v node)\", \"$NODE_DIR/node_modules/ijavascript/lib/kernel.js\", \"--hide-undefined\", \"{connection_file}\", \"--protocol=5.1\"]"
  if has ts; then
    write_spec tslab typescript "TypeScript" \
      "[\"$NODE_DIR/node_modules/.bin/tslab\", \"kernel\", \"--config-path\", \"{connection_file}\"]"
    write_spec jslab javascript "JavaScript (tslab)" \
      "[\"$NODE_DIR/node_modules/.bin/tslab\", \"kernel\", \"--config-path\", \"{connection_file}\", \"--js\"]"
  fi
fi
echo "kernels ready in ${SECONDS}s ($KERNELS; specs in $KSPEC_DIR)"

# ---------------------------------------------------------------- optional self-check
if [[ "${VERIFY:-0}" == 1 ]]; then
  NAMES=()
  has r && NAMES+=(ir)
  has bash && NAMES+=(bash)
  has octave && NAMES+=(octave)
  has js && NAMES+=(javascript)
  has ts && NAMES+=(tslab jslab)
  has scala && NAMES+=(toree_scala)
  "${VENV:-$KVENV}/bin/python" - "${NAMES[@]}" <<'PY'
import sys
from jupyter_client.manager import start_new_kernel
for name in sys.argv[1:]:
    km, kc = start_new_kernel(kernel_name=name, startup_timeout=120)
    try:
        print(name, kc.execute_interactive("", timeout=60)["content"]["status"])
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
PY
fi
