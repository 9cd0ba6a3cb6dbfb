"""Sweeps: grids, output names, parallel warm runs, failures, summaries, the CLI, Dask."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import warnings

import nbformat
import pytest

import paramill
import paramill.sweeps
from paramill.errors import ParameterError
from paramill.sweeps import (
    SweepConsole,
    combine_grids,
    current_run,
    expand_grid,
    format_table,
    load_grid_file,
    parse_grid_options,
    plan_runs,
    sweep_exit_code,
    template_imports,
)

from .conftest import make_notebook, read_nb, run_cli


def kernels_of(parent: int) -> list[int]:
    """Live kernel processes launched by process ``parent`` (jupyter_client sets
    JPY_PARENT_PID in each kernel's environment)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                if f.read().split(") ")[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        if f"JPY_PARENT_PID={parent}".encode() in env:
            found.append(int(entry))
    return found


@pytest.fixture
def report(tmp_path):
    nb = make_notebook(
        [
            ("code", "date = 'none'\nregion = 'none'", "parameters"),
            "import os, json\n"
            "print(date, region, os.getpid(), globals().get('leak'))\n"
            "leak = 'set'\n"
            "assert region != 'bad', 'bad region'",
        ]
    )
    path = tmp_path / "report.ipynb"
    nbformat.write(nb, path)
    return path


# -- grids and names (no kernel) -----------------------------------------------------------------
def test_grid_flags_cast_like_p_and_form_a_product():
    grid = parse_grid_options(["date=2019-11-01,2019-11-02", "n=1,2.5,True"])
    assert grid == {"date": ["2019-11-01", "2019-11-02"], "n": [1, 2.5, True]}
    runs = expand_grid(grid)
    assert len(runs) == 6 and runs[0] == {"date": "2019-11-01", "n": 1}
    assert runs[-1] == {"date": "2019-11-02", "n": True}
    assert combine_grids([[{"a": 1}, {"a": 2}], {"b": ["x"]}]) == [
        {"a": 1, "b": "x"},
        {"a": 2, "b": "x"},
    ]
    with pytest.raises(ParameterError, match="expected NAME=VALUE"):
        parse_grid_options(["date"])
    with pytest.raises(ParameterError, match="expected a mapping"):
        expand_grid([1, 2])


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)  # under 1 KB: 9**9 values, and a product of 9**9 runs


@pytest.mark.parametrize(
    "text, message",
    [
        (ALIAS_BOMB, "expands to more than 1,000,000 values"),
        ("a: " + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("a: " + "[" * 150 + "1" + "]" * 150, "nested more than 100 levels"),
        ("- " * 50 + "{a: 1}", "expected a mapping"),
        ("a: [1, 2\n", "invalid YAML at line 2"),
        ("42", "expected a mapping of lists or a list of mappings"),
    ],
)
def test_grid_file_has_the_limits_of_parameter_files(tmp_path, text, message):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    began = time.monotonic()
    proc = run_cli("sweep", tmp_path / "none.ipynb", tmp_path / "o_{a}.ipynb", "--grid-file", path)
    assert time.monotonic() - began < 30  # the bomb took 30 s and a MemoryError
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.startswith(f"paramill: error: grid file {path}") and message in proc.stderr
    assert len(proc.stderr.splitlines()) == 1  # one line, no traceback


def test_grid_file_json_is_exact(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text('{"s": ["\\ud83d\\ude00", "a\u0085b"]}', encoding="utf-8")
    assert expand_grid(load_grid_file(str(path))) == [{"s": "😀"}, {"s": "a\u0085b"}]


def test_run_count_is_capped_before_the_product_is_built(report, tmp_path):
    big = {f"p{i}": list(range(10)) for i in range(9)}  # 10**9 runs: never built
    began = time.monotonic()
    with pytest.raises(ParameterError, match=r"1,000,000,000 runs, more than the limit of 10,000"):
        combine_grids([big])
    with pytest.raises(ParameterError, match="--max-runs N"):
        paramill.sweep(report, str(tmp_path / "o.ipynb"), big)
    assert time.monotonic() - began < 10  # 10**9 runs would take far longer to build
    grid = {"a": list(range(100)), "b": list(range(101))}
    with pytest.raises(ParameterError, match="10,100 runs, more than the limit of 10,000"):
        combine_grids([grid])
    assert len(combine_grids([grid], max_runs=10_100)) == 10_100
    with pytest.raises(ParameterError, match="3 runs, more than the limit of 2"):
        paramill.sweep(report, str(tmp_path / "o_{a}.ipynb"), {"a": [1, 2, 3]}, max_runs=2)
    proc = run_cli(
        "sweep", report, tmp_path / "o_{a}_{b}.ipynb", "--grid", "a=1,2", "--grid", "b=1,2",
        "--max-runs", "3",
    )  # fmt: skip
    assert proc.returncode == 4 and "4 runs, more than the limit of 3" in proc.stderr
    assert not list(tmp_path.glob("o_*"))


def test_prepare_only_sweep_is_not_a_failure(report, tmp_path):
    """prepare_only runs have no error: ok, exit code 0, counted as prepared."""
    results = paramill.sweep(
        report, str(tmp_path / "p_{region}.ipynb"), {"region": ["a", "b"]}, prepare_only=True
    )
    assert [(r.status, r.ok, r.exit_code) for r in results] == [("prepared", True, 0)] * 2
    assert sweep_exit_code(results) == 0
    assert format_table(results).splitlines()[-1] == "2 runs: 2 prepared, 0 failed"
    assert read_nb(tmp_path / "p_a.ipynb").cells[1].source == (
        "# Parameters\nregion = \"a\"\n"
    )


def test_output_clash_is_rejected_before_anything_runs(report, tmp_path):
    runs = expand_grid({"date": ["a", "b"], "region": ["x", "y"]})
    with pytest.raises(ParameterError, match="for two runs"):
        plan_runs(report, str(tmp_path / "out_{date}.ipynb"), runs)
    specs = plan_runs(report, str(tmp_path / "out_{date}_{region}.ipynb"), runs, {"k": 1})
    assert [s.output_path for s in specs][-1] == str(tmp_path / "out_b_y.ipynb")
    assert specs[0].parameters == {"k": 1, "date": "a", "region": "x"}
    with pytest.raises(ParameterError, match="for two runs"):
        paramill.sweep(report, str(tmp_path / "same.ipynb"), {"date": ["a", "b"]})
    assert not (tmp_path / "same.ipynb").exists()


def test_unknown_executor_is_refused_naming_the_registered_ones(report, tmp_path):
    """--executor is looked up in the paramill.executors entry points when the sweep starts."""
    out = tmp_path / "o_{x}.ipynb"
    proc = run_cli("sweep", report, out, "--grid", "x=1,2", "--executor", "nope")
    assert proc.returncode == 3, proc.stderr
    assert "no executor named 'nope' (known: dask, local)" in proc.stderr
    assert not list(tmp_path.glob("o_*.ipynb"))


def test_grid_values_cannot_move_an_output_or_overwrite_an_input(report, tmp_path):
    """A grid value filled into the output template stays one name in its folder, and no run
    writes over an input notebook: refused before anything runs, naming the parameter."""
    out = str(tmp_path / "out" / "r_{region}.ipynb")
    for bad in ("../../x", "/abs", "s3://bucket/x", "..", "a\\b"):
        with pytest.raises(ParameterError, match="parameter 'region' in the path"):
            plan_runs(report, out, expand_grid({"region": ["north", bad]}))
    with pytest.raises(ParameterError, match="is the input notebook"):
        plan_runs(report, str(tmp_path / "{name}.ipynb"), [{"name": "x"}, {"name": "report"}])
    with pytest.raises(ParameterError, match="is the input notebook"):  # another run's input
        plan_runs(
            str(tmp_path / "{a}.ipynb"),
            str(tmp_path / "{b}.ipynb"),
            [{"a": "p", "b": "q"}, {"a": "q", "b": "r"}],
        )
    with pytest.raises(ParameterError, match="parameter 'region'"):
        paramill.sweep(report, out, {"region": ["../escaped"]})
    assert not (tmp_path / "escaped.ipynb").exists() and not (tmp_path / "out").exists()
    specs = plan_runs(report, out, [{"region": "../x"}], allow_path_values=True)
    assert specs[0].output_path == str(tmp_path / "out" / "r_../x.ipynb")
    [spec] = plan_runs(report, str(report), [{}])  # literal paths: a run in place, as papermill
    assert spec.output_path == str(report)


def test_template_imports_are_found_through_magics():
    nb = make_notebook(
        [
            "%matplotlib inline\nimport pandas as pd, os.path\nfrom json import dumps",
            "def f():\n    import csv\nfrom . import x",
            "this is not python (",
        ]
    )
    assert template_imports(nb) == ["pandas", "os.path", "json", "csv"]


def test_exit_code_rule():
    from paramill.errors import CellTimeoutError, ExecutionError
    from paramill.sweeps import SweepRun

    def r(status, error=None):
        return SweepRun(0, {}, {}, None, status, error=error)

    assert sweep_exit_code([r("completed"), r("skipped")]) == 0
    assert sweep_exit_code([r("completed"), r("timeout", CellTimeoutError())]) == 7
    assert sweep_exit_code([r("failed", ExecutionError()), r("timeout", CellTimeoutError())]) == 1


# -- local runs ----------------------------------------------------------------------------------
def test_python_sweep_runs_in_grid_order_on_fresh_kernels(report, tmp_path):
    grid = [{"date": f"2019-11-0{i}", "region": "bad" if i == 3 else "north"} for i in range(1, 6)]
    results = paramill.sweep(
        report, str(tmp_path / "out" / "r_{date}.ipynb"), grid, workers=2, keep_notebooks=True
    )
    assert [r.grid for r in results] == grid
    assert [r.status for r in results] == ["completed"] * 2 + ["failed"] + ["completed"] * 2
    failed = results[2]
    assert failed.failing_cell.startswith("2 ") and "bad region" in failed.error.message
    assert failed.exit_code == 1 and sweep_exit_code(results) == 1
    pids = set()
    for i, r in enumerate(results, start=1):
        nb = read_nb(tmp_path / "out" / f"r_2019-11-0{i}.ipynb")
        [cell] = [c for c in nb.cells if c.source.startswith("import os")]
        date, region, pid, leak = cell.outputs[0]["text"].split()
        assert (date, leak) == (f"2019-11-0{i}", "None")  # nothing left from another run
        pids.add(pid)
        assert r.notebook.cells[-1].outputs[0]["text"] == cell.outputs[0]["text"]
    assert len(pids) == 5
    assert kernels_of(os.getpid()) == []


def test_fail_fast_skips_the_rest(report, tmp_path):
    grid = {"region": ["bad", "a", "b", "c"]}
    results = paramill.sweep(
        report, str(tmp_path / "r_{region}.ipynb"), grid, workers=1, fail_fast=True
    )
    assert [r.status for r in results] == ["failed", "skipped", "skipped", "skipped"]
    assert not (tmp_path / "r_a.ipynb").exists()


def test_run_errors_before_the_kernel_are_per_run(report, tmp_path):
    results = paramill.sweep(
        report, str(tmp_path / "r_{region}.ipynb"), {"region": ["a"], "bogus": [1]}, strict=True
    )
    assert results[0].status == "error" and results[0].exit_code == 4
    assert "bogus" in results[0].error.message


def test_console_names_every_line_written_to_stderr():
    """During a sweep, whatever reaches sys.stderr (logs of any library, Python warnings, a
    thread's traceback, partial writes from two threads) comes out as whole lines, each named
    by its run or [sweep]; afterwards sys.stderr is the real one again."""
    import io
    import logging

    root, own = logging.getLogger(), logging.getLogger("paramill")
    saved = (root.handlers[:], own.handlers[:], own.propagate, own.level, sys.stderr)
    out = io.StringIO()
    console = SweepConsole(2, stream=out, live=False)
    try:
        console.install("INFO")

        def run(label: str) -> None:
            current_run.set(label)
            for _ in range(50):
                sys.stderr.write(f"{label} half")
                sys.stderr.write(" and half\n")
            logging.getLogger("paramill").info("%s logged", label)

        threads = [threading.Thread(target=run, args=(f"r{i}",)) for i in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        logging.getLogger("jupyter_client").warning("third-party\nwarning")
        warnings.warn("careful", UserWarning, stacklevel=1)
        crash = threading.Thread(target=lambda: 1 / 0)
        hook, threading.excepthook = threading.excepthook, threading.__excepthook__  # not pytest's
        try:
            crash.start()
            crash.join()
        finally:
            threading.excepthook = hook
        sys.stderr.write("unterminated")
        console.finish()
        assert sys.stderr is saved[-1]
    finally:
        logging.captureWarnings(False)
        root.handlers[:], own.handlers[:], own.propagate, own.level, sys.stderr = saved
    lines = out.getvalue().splitlines()
    unnamed = [line for line in lines if not re.match(r"\[(r1|r2|sweep)\] ", line)]
    assert not unnamed, unnamed
    for label in ("r1", "r2"):
        assert lines.count(f"[{label}] {label} half and half") == 50
        assert f"[{label}] {label} logged" in lines
    assert "[sweep] third-party" in lines and "[sweep] warning" in lines
    assert any("UserWarning: careful" in line for line in lines)
    assert "[sweep] ZeroDivisionError: division by zero" in lines
    assert lines[-1] == "[sweep] unterminated"


def test_cli_sweep_summary_progress_and_prefixed_logs(report, tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("region: [north, bad]\n")
    summary = tmp_path / "summary.json"
    proc = run_cli(
        "sweep", report, tmp_path / "o_{date}_{region}.ipynb",
        "--grid", "date=2019-11-01,2019-11-02", "--grid-file", grid_file,
        "-p", "unused", "1", "--workers", "2", "--summary", summary, "--log-output",
        timeout=180,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    rows = json.loads(summary.read_text())
    assert [(r["grid"]["date"], r["grid"]["region"], r["status"]) for r in rows] == [
        ("2019-11-01", "north", "completed"),
        ("2019-11-01", "bad", "failed"),
        ("2019-11-02", "north", "completed"),
        ("2019-11-02", "bad", "failed"),
    ]
    assert rows[1]["exit_code"] == 1 and "bad region" in rows[1]["error"]
    table = proc.stdout.splitlines()
    assert table[0].split()[:3] == ["parameters", "status", "duration"]
    assert re.search(r"\ndate=2019-11-01,region=bad +failed +\d", proc.stdout)
    assert table[-1] == "4 runs: 2 completed, 2 failed"
    # every log line names its run; the run's own output is among them
    logs = [line for line in proc.stderr.splitlines() if line.strip()]
    unnamed = [line for line in logs if not re.match(r"\[(date=2019-11-0|sweep\])", line)]
    assert logs and not unnamed, unnamed
    assert any(line.startswith("[date=2019-11-02,region=north] 2019-11-02 north") for line in logs)
    assert "sweep: 4/4  done 2  failed 2  running 0" in proc.stderr


@pytest.mark.parametrize("fork", ["--fork-server", "--no-fork-server"])
def test_cli_sweep_names_what_kernels_write_to_their_stderr(tmp_path, fork):
    """A kernel's own stderr (its file descriptor: C libraries, child processes, ipykernel's
    echo) comes out named by the run holding the kernel, not in the middle of the progress."""
    nb = make_notebook(
        [
            ("code", "region = 'none'", "parameters"),
            "import os\nos.write(2, f'raw {region}\\npartial'.encode())",
        ]
    )
    nbformat.write(nb, tmp_path / "raw.ipynb")
    proc = run_cli(
        "sweep", tmp_path / "raw.ipynb", tmp_path / "o_{region}.ipynb", "--grid", "region=a,b",
        "--workers", "2", fork,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    for region in ("a", "b"):
        assert f"[region={region}] raw {region}" in lines, proc.stderr
        assert f"[region={region}] partial" in lines, proc.stderr
    unnamed = [line for line in lines if not re.match(r"\[(region=[ab]|sweep)\] ", line)]
    assert not unnamed, unnamed


def test_cli_sweep_csv_and_clash(report, tmp_path):
    summary = tmp_path / "s.csv"
    proc = run_cli(
        "sweep", report, tmp_path / "o_{region}.ipynb", "--grid", "region=a,b",
        "--summary", summary, "--workers", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = summary.read_text().splitlines()
    assert lines[0].startswith("run,region,status,duration,output")
    assert lines[1].startswith("1,a,completed,")
    clash = run_cli("sweep", report, tmp_path / "same.ipynb", "--grid", "region=a,b")
    assert clash.returncode == 4 and "for two runs" in clash.stderr


def test_cli_sweep_refuses_path_values_unless_allowed(report, tmp_path):
    args = ["sweep", report, tmp_path / "out" / "{region}" / "r.ipynb", "--grid"]
    proc = run_cli(*args, "region=north,..")
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("paramill: error: parameter 'region'")
    assert not (tmp_path / "out").exists() and not (tmp_path / "r.ipynb").exists()
    proc = run_cli(*args, "region=north,..", "--allow-path-values", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "north" / "r.ipynb").exists() and (tmp_path / "r.ipynb").exists()


def test_cli_sweep_interrupted_leaves_no_kernels(tmp_path):
    import signal
    import subprocess

    path = tmp_path / "slow.ipynb"
    nbformat.write(
        make_notebook([("code", "n = 0", "parameters"), "import time\ntime.sleep(60)"]), path
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "paramill", "sweep", str(path), str(tmp_path / "o_{n}.ipynb"),
         "--grid", "n=1,2,3,4,5", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(kernels_of(proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)  # two runs executing, the pool starting the next
    launched = kernels_of(proc.pid)
    assert len(launched) >= 3
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    deadline = time.monotonic() + 10
    while kernels_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kernels_of(proc.pid) == []


# -- dask ----------------------------------------------------------------------------------------
def test_dask_local_cluster(report, tmp_path):
    import distributed
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        os.chdir(tmp_path)  # relative outputs are made absolute in the driver
        try:
            results = paramill.sweep(
                report, "d_{region}.ipynb", {"region": ["a", "bad", "c"]},
                executor="dask", client=client,
            )  # fmt: skip
        finally:
            os.chdir(os.path.dirname(__file__))
        workers = [p.pid for p in cluster.workers.values() if getattr(p, "pid", None)]
        assert [r.status for r in results] == ["completed", "failed", "completed"]
        assert results[1].exit_code == 1
        nb = read_nb(tmp_path / "d_c.ipynb")
        assert nb.cells[2].outputs[0]["text"].split()[1] == "c"
        # the worker plugin's pools were closed: no kernel is left on any worker
        deadline = time.monotonic() + 10
        while any(kernels_of(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(kernels_of(w) for w in workers)
        # the workers' pools fork python kernels from a pre-imported server, as local sweeps do
        probe = tmp_path / "parent.ipynb"
        nbformat.write(
            make_notebook([("code", "n = 0", "parameters"),
                           "import os\nprint(open(f'/proc/{os.getppid()}/cmdline').read())"]),
            probe,
        )  # fmt: skip
        runs = paramill.sweep(
            str(probe), str(tmp_path / "p_{n}.ipynb"), {"n": [1, 2]}, executor="dask",
            client=client,
        )  # fmt: skip
        assert [r.status for r in runs] == ["completed", "completed"]
        for n in (1, 2):
            parent = read_nb(tmp_path / f"p_{n}.ipynb").cells[-1].outputs[0]["text"]
            assert "forkserver" in parent, parent


def test_dask_fail_fast_skips_the_runs_not_yet_done(write_nb, tmp_path):
    """Fail-fast on Dask goes through the same tracker as the local executor: after the first
    failure the runs still queued are cancelled and reported as skipped, not run."""
    import distributed

    nb = write_nb(
        [
            ("code", "x = 0", "parameters"),
            "import time\nassert x != 0, 'first fails'\ntime.sleep(1)",
        ]
    )
    started: list[int] = []

    class Events(paramill.sweeps.SweepEvents):
        def started(self, spec):
            started.append(spec.index)

    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        results = paramill.sweep(
            nb, str(tmp_path / "o_{x}.ipynb"), {"x": list(range(6))},
            executor="dask", client=client, fail_fast=True, events=Events(),
        )  # fmt: skip
    assert sorted(started) == list(range(6))  # all queued on the cluster at once
    assert results[0].status == "failed"
    # one run at a time, a second each: the last ones were still queued when the first failed
    assert [r.status for r in results[-3:]] == ["skipped"] * 3
    assert not (tmp_path / "o_5.ipynb").exists()
    assert sweep_exit_code(results) == 1
