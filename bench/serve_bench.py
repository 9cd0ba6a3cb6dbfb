"""`paramill serve` latency and throughput, and the bikeshare report three ways, side by side.

    .venv/bin/python bench/serve_bench.py [--requests 200] [--clients 2] [--bike 8]
        [--papermill-python PYTHON] [--voila VOILA]  (default: the bench venv)

Run with the paramill venv's python; papermill and Voila come from the bench venv (`make
bench` makes it: bench/requirements.txt). Every tool runs the notebooks on the same kernel (a
python3 kernelspec pinned to this interpreter, from bench/run.py).
  trivial    `--requests` x POST /api/runs?wait=30 of a two-cell notebook from `--clients`
             concurrent clients (keep-alive connections) to one `paramill serve --workers 2`:
             p50, p99 and throughput (runs/s over the whole batch)
  bikeshare  examples/bikeshare/report.ipynb per request: through the API (?wait=), as a Voila
             page view (GET /, which ends only after every cell ran), and as a papermill call
             per request (papermill.execute_notebook in one long-lived Python process, as a
             Flask wrapper would): median latency and ratios
The machine's load average is printed before and after: figures are comparable only on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import bikeshare_workdir, write_kernelspec, write_notebook  # noqa: E402

ROOT = HERE.parent
BIKESHARE = ROOT / "examples" / "bikeshare" / "report.ipynb"
BENCH_VENV = HERE / ".venv-papermill" / "bin"
DAYS = [f"2019-11-{d:02d}" for d in range(1, 15)]  # the days make_data.py writes


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"bench: server exited rc={proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"bench: {url} did not answer")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Client:
    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def run(self, notebook: str, parameters: dict, wait: float) -> tuple[float, dict]:
        body = json.dumps({"notebook": notebook, "parameters": parameters})
        began = time.perf_counter()
        self.conn.request("POST", f"/api/runs?wait={wait}", body, self.headers)
        response = self.conn.getresponse()
        data = json.loads(response.read())
        took = time.perf_counter() - began
        if response.status != 200 or data.get("status") != "completed":
            sys.exit(f"bench: run did not complete: {response.status} {data}")
        return took, data


def bench_trivial(port: int, token: str, requests: int, clients: int) -> dict:
    for _ in range(10):  # warm-up: the pool fills, the first imports happen
        Client(port, token).run("trivial.ipynb", {"x": 0}, 30)
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        client = Client(port, token)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            took, _ = client.run("trivial.ipynb", {"x": i}, 30)
            with lock:
                latencies.append(took)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    return {"p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99),
            "mean": statistics.mean(latencies), "throughput": len(latencies) / wall,
            "n": len(latencies), "wall": wall}


def bench_bike_api(port: int, token: str, n: int) -> list[float]:
    client = Client(port, token)
    client.run("bikeshare/report.ipynb", {"date": DAYS[-1]}, 120)  # warm-up
    return [client.run("bikeshare/report.ipynb", {"date": DAYS[i % 14]}, 120)[0]
            for i in range(n)]


def bench_voila(voila: str, folder: Path, env: dict, n: int) -> list[float] | None:
    if not Path(voila).exists() and shutil.which(voila) is None:
        print(f"  (no Voila at {voila}: make bench installs it)")
        return None
    port = free_port()
    data = folder / "voila-data"
    proc = subprocess.Popen(
        [voila, str(folder / "bikeshare" / "report.ipynb"), "--no-browser",
         "--Voila.ip=127.0.0.1", f"--port={port}", "--Voila.port_retries=0",
         f"--Voila.connection_dir_root={folder}",
         "--MappingKernelManager.cull_idle_timeout=4", "--MappingKernelManager.cull_interval=2"],
        env={**env, "JUPYTER_DATA_DIR": str(data)}, cwd=folder / "bikeshare",
        stdout=open(folder / "voila.log", "w"), stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/voila/static/", proc)
        times = []
        for i in range(n + 1):
            began = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=300) as r:
                html = r.read().decode()
            took = time.perf_counter() - began
            if "trips on" not in html:
                sys.exit("bench: the Voila page holds no output of the report")
            if i:  # the first view is a warm-up
                times.append(took)
        return times
    finally:
        stop(proc)


PAPERMILL_LOOP = """
import sys, time, papermill
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
days = [f"2019-11-{d:02d}" for d in range(1, 15)]
papermill.execute_notebook(src, out, parameters={"date": days[-1]}, progress_bar=False)
for i in range(n):
    t = time.perf_counter()
    papermill.execute_notebook(src, out, parameters={"date": days[i % 14]}, progress_bar=False,
                               kernel_name="python3")
    print(time.perf_counter() - t, flush=True)
"""


def bench_papermill(python: str, folder: Path, env: dict, n: int) -> list[float] | None:
    if not Path(python).exists():
        print(f"  (no papermill python at {python}: make bench installs it)")
        return None
    src = folder / "bikeshare" / "report.ipynb"
    proc = subprocess.run(
        [python, "-c", PAPERMILL_LOOP, str(src), str(folder / "pm-out.ipynb"), str(n)],
        env=env, cwd=folder / "bikeshare", capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench: papermill failed:\n{proc.stderr[-3000:]}")
    return [float(line) for line in proc.stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bike", type=int, default=8, help="bikeshare requests per tool")
    parser.add_argument("--papermill-python", default=str(BENCH_VENV / "python"))
    parser.add_argument("--voila", default=str(BENCH_VENV / "voila"))
    args = parser.parse_args()

    print(f"load average before: {load()}")
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        folder = Path(tmp)
        env = write_kernelspec(folder / "jupyter")
        nbs = folder / "nbs"
        nbs.mkdir()
        write_notebook(nbs / "trivial.ipynb", ["x = 1", "y = x + 1"])
        import nbformat

        nb = nbformat.read(nbs / "trivial.ipynb", as_version=4)
        nb.cells[0].metadata["tags"] = ["parameters"]
        nbformat.write(nb, nbs / "trivial.ipynb")
        bike = nbs / "bikeshare"
        bike.mkdir()
        shutil.copy(BIKESHARE, bike / "report.ipynb")
        bikeshare_workdir(bike)

        port, token = free_port(), uuid.uuid4().hex
        server = subprocess.Popen(
            [sys.executable, "-m", "paramill", "serve", str(nbs), "--port", str(port),
             "--token", token, "--workers", str(args.workers), "--log-level", "WARNING"],
            env=env, stdout=open(folder / "serve.log", "w"), stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/api/notebooks", server)
            trivial = bench_trivial(port, token, args.requests, args.clients)
            single = bench_trivial(port, token, 50, 1)  # context: no run waits for another
            bike_api = bench_bike_api(port, token, args.bike)
        finally:
            stop(server)
        voila = bench_voila(args.voila, nbs, env, args.bike)
        papermill = bench_papermill(args.papermill_python, nbs, env, args.bike)
    print(f"load average after:  {load()}")

    print(f"\ntrivial notebook, POST /api/runs?wait=30, {trivial['n']} requests, "
          f"{args.clients} concurrent clients, --workers {args.workers}")
    print(f"  p50 {trivial['p50'] * 1000:.0f} ms   p99 {trivial['p99'] * 1000:.0f} ms   "
          f"mean {trivial['mean'] * 1000:.0f} ms   throughput {trivial['throughput']:.1f} runs/s")
    print(f"  one client alone, 50 requests: p50 {single['p50'] * 1000:.0f} ms   "
          f"p99 {single['p99'] * 1000:.0f} ms   {single['throughput']:.1f} runs/s")
    print(f"  targets: p50 < 150 ms {'met' if trivial['p50'] < 0.15 else 'MISSED'}, "
          f"p99 < 500 ms {'met' if trivial['p99'] < 0.5 else 'MISSED'}, "
          f">= 10 runs/s {'met' if trivial['throughput'] >= 10 else 'MISSED'}")
    print(f"\nbikeshare report per request ({args.bike} requests each, sequential, median)")
    api = statistics.median(bike_api)
    print(f"  paramill serve API (?wait=)     {api:7.3f} s")
    for name, times in (("Voila page view", voila), ("papermill call per request", papermill)):
        if times:
            med = statistics.median(times)
            print(f"  {name:<31} {med:7.3f} s   ({med / api:.1f}x paramill serve)")


if __name__ == "__main__":
    main()
