"""A Jupyter gateway's cost: runs on a local kernel vs through a local Kernel Gateway, and a
20-run sweep through the gateway vs papermill's only CLI option (a loop on local kernels).

    .venv/bin/python bench/gateway_bench.py [--repeat 3] [--sweep-runs 20] [--workers 2]
        [--papermill bench/.venv-papermill/bin/papermill]

Run with the paramill venv's python (jupyter-kernel-gateway from the test extra; pandas and
matplotlib for the bikeshare report: ``make -C examples/bikeshare requirements``); papermill
comes from its own venv (``make bench`` makes it). Every kernel, local or on the gateway, is the
same python3 kernelspec pinned to this interpreter (bench/run.py). The gateway runs on
127.0.0.1 with a token, from the bikeshare work folder (its kernels' cwd). Measured, wall clock
of whole processes, median of ``--repeat``:
  trivial    a two-cell notebook: `paramill` local vs `paramill --gateway-url`
  bikeshare  examples/bikeshare/report.ipynb for one date: the same two
  sweep      N runs of the trivial notebook: `paramill sweep --gateway-url --workers W` vs a
             shell loop of `papermill` CLI calls (local kernels)
The machine's load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import (  # noqa: E402  (bench/run.py: the shared kernelspec and fixtures)
    DEFAULT_PAPERMILL,
    bikeshare_workdir,
    write_kernelspec,
)
from sweep_bench import load, shell_loop, timed, trivial_notebook  # noqa: E402

ROOT = HERE.parent
BIKESHARE = ROOT / "examples" / "bikeshare" / "report.ipynb"
PARAMILL = [sys.executable, "-m", "paramill"]


def start_kernel_gateway(folder: Path, env: dict, cwd: Path) -> tuple[subprocess.Popen, str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "kernelgateway",
         "--KernelGatewayApp.ip=127.0.0.1", f"--KernelGatewayApp.port={port}",
         "--KernelGatewayApp.port_retries=0", f"--KernelGatewayApp.auth_token={token}",
         "--JupyterWebsocketPersonality.list_kernels=True"],
        env={**env, "JUPYTER_RUNTIME_DIR": str(folder / "rt")}, cwd=cwd,
        stdout=open(folder / "kernelgateway.log", "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 90
    while True:
        if proc.poll() is not None or time.monotonic() > end:
            sys.exit(f"bench: the Kernel Gateway did not start (see {folder}/kernelgateway.log)")
        try:
            urllib.request.urlopen(url + "/api", timeout=2)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.05)
    return proc, url, token


def kernels_left(url: str, token: str) -> list:
    request = urllib.request.Request(url + "/api/kernels",
                                     headers={"Authorization": f"token {token}"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())


def median_of(repeat: int, cmd: list, env: dict, cwd: Path | None = None) -> float:
    timed(cmd, env, cwd)  # warm-up: page cache, bytecode
    return statistics.median(timed(cmd, env, cwd) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sweep-runs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--papermill", default=str(DEFAULT_PAPERMILL))
    parser.add_argument("--skip", default="", help="comma list of: trivial,bike,sweep")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if "sweep" not in skip and not Path(args.papermill).exists():
        sys.exit(f"bench: no papermill at {args.papermill} (make bench creates it)")
    folder = Path(tempfile.mkdtemp(prefix="paramill-gateway-bench-"))
    env = write_kernelspec(folder / "jupyter")
    env.pop("JUPYTER_GATEWAY_URL", None)
    work = bikeshare_workdir(folder / "bike")
    nb = trivial_notebook(folder)
    print(f"cores {os.cpu_count()}  load before {load()}")
    proc, url, token = start_kernel_gateway(folder, env, work)
    gateway = ["--gateway-url", url, "--gateway-token", token]
    rows = []
    try:
        if "trivial" not in skip:
            local = median_of(args.repeat, [*PARAMILL, nb, folder / "t_local.ipynb"], env)
            remote = median_of(args.repeat, [*PARAMILL, nb, folder / "t_gw.ipynb", *gateway], env)
            rows.append(("trivial notebook, one run: gateway vs local kernel", remote, local))
        if "bike" not in skip:
            day = ["-p", "date", "2019-11-07", "-p", "data_path", str(work / "data/trips.csv")]
            local = median_of(args.repeat, [*PARAMILL, BIKESHARE, work / "b_local.ipynb", *day,
                                            "--cwd", work], env, cwd=work)  # fmt: skip
            remote = median_of(args.repeat, [*PARAMILL, BIKESHARE, work / "b_gw.ipynb", *day,
                                             *gateway], env, cwd=work)  # fmt: skip
            rows.append(("bikeshare report, one run: gateway vs local kernel", remote, local))
        if "sweep" not in skip:
            xs = [str(i) for i in range(args.sweep_runs)]
            (folder / "s").mkdir()
            (folder / "p").mkdir()
            grid = ["--grid", "x=" + ",".join(xs), "--workers", str(args.workers)]
            ours = timed([*PARAMILL, "sweep", nb, f"{folder}/s/t_{{x}}.ipynb", *grid, *gateway],
                         env)  # fmt: skip
            theirs = timed(shell_loop(args.papermill, nb, folder / "p", "x", xs), env, shell=True)
            rows.append((f"sweep x{args.sweep_runs} via gateway (--workers {args.workers}) "
                         "vs papermill CLI loop, local", ours, theirs))  # fmt: skip
        left = kernels_left(url, token)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    print(f"\n{'':78} {'first':>8} {'second':>8} {'ratio':>7}")
    for name, first, second in rows:
        print(f"{name:78} {first:7.2f}s {second:7.2f}s {second / first:6.2f}x")
    print("(ratio = second / first: above 1 the first is faster)")
    print(f"kernels left on the gateway: {len(left)}")
    print(f"load after {load()}")


if __name__ == "__main__":
    main()
