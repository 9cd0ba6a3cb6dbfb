"""Driver-process resource readings for the load tests and bench/load_bench.py."""

from __future__ import annotations

import gc
import os
import threading


def resources() -> dict[str, float]:
    """Open fds, OS threads, Python threads and RSS (MB) of this process.

    After a full garbage collection: some fds (zmq contexts of finished kernel clients) sit in
    reference cycles until the collector runs; what it reclaims is not a leak.
    """
    gc.collect()
    with open("/proc/self/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": int(status["Threads"]),
        "py_threads": threading.active_count(),
        "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
    }


def growth(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: round(after[key] - before[key], 1) for key in before}
