"""`import paramill` and `paramill --help` stay light: no heavy third-party package is loaded
(they are imported lazily, where a run needs them), and --help does not load the run path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Heavy or optional packages none of which `import paramill` or `paramill --help` loads today.
HEAVY = [
    "nbclient",
    "jupyter_client",
    "zmq",
    "tornado",
    "nbformat",
    "fsspec",
    "yaml",
    "pandas",
    "dask",
    "distributed",
    "airflow",
    "jupytext",
    "nbconvert",
    "IPython",
    "ipykernel",
    "traitlets",
]
# paramill's own run path: loaded once a command runs, never for --help or --version
RUN_PATH = [
    "paramill.api",
    "paramill.engine",
    "paramill.sweeps",
    "paramill.records",
    "paramill.storage",
    "paramill.parameters",
]


# runs `python -m paramill ARGS` (or Python code) and, at exit, writes the names in
# sys.modules to the file named by argv[1]
PROBE = """
import atexit, runpy, sys
out, kind, *args = sys.argv[1:]
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
if kind == "-c":
    exec(args[0])
else:
    sys.argv = ["paramill", *args]
    runpy.run_module("paramill", run_name="__main__", alter_sys=True)
"""


def imported(tmp_path: Path, *args: str, returncode: int = 0) -> set[str]:
    """The modules in sys.modules when `python -m paramill ARGS` (or `python -c CODE` for
    args ("-c", CODE)) exits."""
    out = tmp_path / "modules.txt"
    argv = [*args] if args[0] == "-c" else ["-m", *args]
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == returncode, proc.stderr[-2000:]
    names = set(out.read_text().split())
    assert "paramill" in names  # the list was written: paramill itself is in it
    return names


def test_import_paramill_loads_no_heavy_package(tmp_path):
    names = imported(tmp_path, "-c", "import paramill")
    loaded = {name.split(".")[0] for name in names}
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize(
    "args", [["--help"], ["sweep", "--help"], ["records", "--help"], ["--version"]]
)
def test_help_loads_no_heavy_package_and_not_the_run_path(tmp_path, args):
    names = imported(tmp_path, *args)
    assert "paramill.cli.options" in names  # the command line was really parsed
    loaded = {name.split(".")[0] for name in names}
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    assert names.isdisjoint(RUN_PATH), sorted(names & set(RUN_PATH))


def test_a_command_that_runs_loads_the_run_path(tmp_path):
    """The check above can fail: the same probe shows the library once a command does work."""
    names = imported(tmp_path, "records", str(tmp_path / "missing.ipynb"), returncode=6)
    assert "paramill.records" in names and "paramill.cli.records" in names


# jsonschema (under nbformat) imports every format checker installed; rfc3987_syntax (with
# jupyter_server's dependencies) compiles a grammar for seconds at import: paramill defers it,
# and rfc3986_validator, to first use
DEFERRED_CHECK = """
import sys, paramill, nbformat, jsonschema
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
nbformat.validate(nb)
real = lambda: [type(sys.modules[m]).__name__ == "module"
                for m in ("rfc3987_syntax", "rfc3986_validator")]
print("real after a run's imports:", *real())
checker = jsonschema.FormatChecker()
print("iri check:", checker.conforms("http://example.com/\\u00fc", "iri"),
      checker.conforms("not an iri", "iri"))
print("uri check:", checker.conforms("http://example.com/", "uri"),
      checker.conforms("not a uri", "uri"))
print("real after the checks:", *real())
"""


def test_slow_format_checkers_are_loaded_only_when_a_format_is_checked():
    import importlib.util

    for module in ("rfc3987_syntax", "rfc3986_validator"):
        assert importlib.util.find_spec(module) is not None, (
            f"the test extra no longer installs {module} (jupyter_server's dependencies)"
        )
    proc = subprocess.run(
        [sys.executable, "-c", DEFERRED_CHECK], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[:4] == [
        "real after a run's imports: False False",
        "iri check: True False",
        "uri check: True False",
        "real after the checks: True True",
    ], proc.stdout
