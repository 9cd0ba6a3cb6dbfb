"""Text notebooks (jupytext) as inputs and outputs, run on real kernels."""

from __future__ import annotations

import subprocess
import sys

import jupytext
import pytest

import paramill
from paramill import textnb
from paramill.errors import ExecutionError
from tests.conftest import read_nb, run_cli

PERCENT = """# %% [markdown]
# A report

# %% tags=["parameters"]
n = 1
name = "world"

# %%
print(f"hello {name} {n * 2}")
"""

LIGHT = """# A light script

# + tags=["parameters"]
n = 1
# -

print("double", n * 2)
"""

MARKDOWN = """---
jupyter:
  kernelspec:
    name: python3
    display_name: Python 3
    language: python
---

# Report

```python tags=["parameters"]
n = 1
```

```python
print("md", n + 1)
```
"""

R_PERCENT = """# %% tags=["parameters"]
n <- 1

# %%
cat("from R", n * 2, "\\n")
"""


def run(src, out, **params):
    return paramill.execute_notebook(str(src), str(out), params, progress_bar=False)


def stdout(nb) -> str:
    return "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )


def test_percent_py_in_and_out(tmp_path):
    src, out = tmp_path / "report.py", tmp_path / "out.py"
    src.write_text(PERCENT)
    nb = run(src, out, n=21, name="text")
    assert "hello text 42" in stdout(nb)
    text = out.read_text()
    # the injected cell follows the parameters cell, tagged, in the same percent format
    assert '# %% tags=["parameters"]\nn = 1\nname = "world"\n\n' in text
    assert '# %% tags=["injected-parameters"]\n# Parameters\nn = 21\nname = "text"\n' in text
    assert "papermill" not in text and "hello text" not in text  # no run metadata, no outputs
    # the output is itself a runnable text notebook: a re-run replaces the injected cell
    again = run(out, tmp_path / "again.py", n=5)
    assert "hello world 10" in stdout(again)
    assert (tmp_path / "again.py").read_text().count("injected-parameters") == 1


def test_light_py_keeps_its_format(tmp_path):
    src, out = tmp_path / "light.py", tmp_path / "out.py"
    src.write_text(LIGHT)
    nb = run(src, out, n=4)
    assert "double 8" in stdout(nb)
    text = out.read_text()
    assert "# %%" not in text
    assert '# + tags=["injected-parameters"]\n# Parameters\nn = 4\n' in text


def test_py_input_ipynb_output_keeps_outputs(tmp_path):
    src, out = tmp_path / "report.py", tmp_path / "out.ipynb"
    src.write_text(PERCENT)
    run(src, out, n=2)
    saved = read_nb(out)
    assert saved.metadata.kernelspec.name == "python3"
    assert saved.metadata.papermill.parameters == {"n": 2}
    tags = [c.metadata.get("tags") for c in saved.cells]
    assert tags[1:3] == [["parameters"], ["injected-parameters"]]
    assert saved.cells[3].outputs[0].text == "hello world 4\n"


def test_markdown_in_and_out(tmp_path):
    src = tmp_path / "report.md"
    src.write_text(MARKDOWN)
    nb = run(src, tmp_path / "out.md", n=6)
    assert "md 7" in stdout(nb)
    text = (tmp_path / "out.md").read_text()
    assert '```python tags=["injected-parameters"]\n# Parameters\nn = 6\n```' in text
    run(src, tmp_path / "out.ipynb", n=1)
    assert read_nb(tmp_path / "out.ipynb").cells[-1].outputs[0].text == "md 2\n"


@pytest.mark.kernels
def test_r_script_notebook_runs_on_the_r_kernel(tmp_path):
    src = tmp_path / "report.R"
    src.write_text(R_PERCENT)
    nb = run(src, tmp_path / "out.ipynb", n=21)
    assert nb.metadata.kernelspec.name == "ir"  # found from the script's language
    assert "from R 42" in stdout(nb)
    run(src, tmp_path / "out.R", n=2)
    text = (tmp_path / "out.R").read_text()
    assert '# %% tags=["injected-parameters"]\n# Parameters\nn = 2\n' in text


def test_failure_in_a_text_notebook(tmp_path):
    src = tmp_path / "fail.py"
    src.write_text("# %%\nraise ValueError('boom')\n\n# %%\nprint('after')\n")
    with pytest.raises(ExecutionError, match="ValueError"):
        run(src, tmp_path / "out.py")
    assert "raise ValueError('boom')" in (tmp_path / "out.py").read_text()


def test_cli_with_text_notebooks(tmp_path):
    src = tmp_path / "report.py"
    src.write_text(PERCENT)
    proc = run_cli(src, tmp_path / "out.ipynb", "-p", "n", "5", "-p", "name", "cli")
    assert proc.returncode == 0, proc.stderr
    assert "hello cli 10" in stdout(read_nb(tmp_path / "out.ipynb"))
    proc = run_cli(src, "--help-notebook")
    assert proc.returncode == 0 and 'name: Unknown type (default "world")' in proc.stdout


def test_text_notebook_without_jupytext_says_which_extra(tmp_path):
    src = tmp_path / "report.py"
    src.write_text(PERCENT)
    code = (
        "import sys; sys.modules['jupytext'] = None\n"  # as if the extra were not installed
        "import paramill\n"
        "from paramill.errors import MissingDependencyError\n"
        "try:\n"
        f"    paramill.execute_notebook({str(src)!r}, None, progress_bar=False)\n"
        "except MissingDependencyError as exc:\n"
        "    print('MISSING', exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "MISSING" in proc.stdout, proc.stderr
    assert "pip install 'paramill[text]'" in proc.stdout


def test_unreadable_text_notebook_is_an_input_error(tmp_path):
    src = tmp_path / "broken.md"
    src.write_text("---\njupyter: [unclosed\n---\n")
    proc = run_cli(src, tmp_path / "out.ipynb")
    assert proc.returncode == 3, proc.stderr
    assert "broken.md" in proc.stderr


def test_extensions():
    assert textnb.is_text_notebook("a/b.py") and textnb.is_text_notebook("s3://b/x.R?v=1")
    assert textnb.is_text_notebook("https://h/nb.md#frag")
    assert not textnb.is_text_notebook("a/b.ipynb") and not textnb.is_text_notebook("-")
    assert not textnb.is_text_notebook("a/b.json")
    from jupytext.formats import NOTEBOOK_EXTENSIONS

    assert textnb.TEXT_EXTENSIONS <= set(NOTEBOOK_EXTENSIONS)
    assert jupytext.__version__
