"""Load benchmark: N sequential runs of a trivial notebook in one process (default 500),
printing the driver's fds/threads/RSS at run 50 and at the end, and the time per run.

    .venv/bin/python bench/load_bench.py [N]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import nbformat  # noqa: E402

import paramill  # noqa: E402
from tests.conftest import kernel_processes, make_notebook  # noqa: E402
from tests.load_support import growth, resources  # noqa: E402


def main(runs: int = 500) -> None:
    folder = tempfile.mkdtemp(prefix="paramill-load-")
    src = os.path.join(folder, "in.ipynb")
    nbformat.write(make_notebook([("code", "n = 0", "parameters"), "print(n)"]), src)
    kernels_before = kernel_processes()
    start = resources()
    t0 = time.monotonic()
    at50 = None
    for i in range(runs):
        if i == 50:
            at50 = resources()
        result = paramill.run(src, None, {"n": i})
        assert result.status == "completed", result.error
    took = time.monotonic() - t0
    end = resources()
    print(f"{runs} runs: {took:.1f} s, {took / runs:.3f} s/run")
    print(f"start {start}\nrun 50 {at50}\nend {end}")
    print(f"growth run 50 -> {runs}: {growth(at50 or start, end)}")
    print(f"kernel processes left: {sorted(kernel_processes() - kernels_before)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
