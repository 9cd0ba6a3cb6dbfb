"""Secrets reach real non-Python kernels through the environment, and never the output file."""

from __future__ import annotations

import pytest

import paramill
from tests.conftest import make_notebook

pytestmark = pytest.mark.kernels

SECRET = "s3cr3t-Value-91"

# A cell per kernel that prints whether the secret variable holds the expected value.
CHECKS = {
    # the checking cell holds the secret literally: it must still run unscrubbed (only the
    # written file is scrubbed), even though the output is saved before that cell runs
    "python3": ('tok = ""', 'print(tok == "s3cr3t-Value-91")', "True"),
    "ir": ('tok <- ""', 'cat(identical(tok, "s3cr3t-Value-91"), "\\n")', "TRUE"),
    "bash": ("tok=''", '[ "$tok" = "s3cr3t-Value-91" ] && echo MATCH', "MATCH"),
    "octave": ("tok = '';", "disp(strcmp(tok, 's3cr3t-Value-91'))", "1"),
    "javascript": ('var tok = "";', 'console.log(tok === "s3cr3t-Value-91")', "true"),
    "tslab": ('let tok: any = "";', 'console.log(tok === "s3cr3t-Value-91")', "true"),
}


# A cell per kernel that runs a child process (`env`) and prints how many PARAMILL_SECRET_
# variables it inherited: the kernel removes the variable once it has read it.
CHILD = {
    "python3": "import subprocess\n"
    "print('children see', subprocess.run(['env'], capture_output=True, text=True)"
    ".stdout.count('PARAMILL_SECRET_'))",
    "ir": 'cat("children see", length(grep("PARAMILL_SECRET_", system("env", intern = TRUE))))',
    "bash": 'echo "children see $(env | grep -c PARAMILL_SECRET_ || true)"',
    "octave": "[~, out] = system('env'); "
    "printf('children see %d\\n', numel(strfind(out, 'PARAMILL_SECRET_')))",
    "javascript": 'console.log("children see", (require("child_process").execSync("env")'
    ".toString().match(/PARAMILL_SECRET_/g) || []).length)",
    "tslab": 'import { execSync } from "child_process";\n'
    'console.log("children see", (execSync("env").toString().match(/PARAMILL_SECRET_/g)'
    " || []).length)",
}


@pytest.mark.parametrize("kernel", sorted(CHECKS))
def test_secret_in_kernel(kernel, tmp_path):
    defaults, check, expected = CHECKS[kernel]
    language = {"ir": "R", "tslab": "typescript", "python3": "python"}.get(kernel, kernel)
    nb = make_notebook(
        [("code", defaults, "parameters"), check, CHILD[kernel]], kernel=kernel, language=language
    )
    out = tmp_path / "out.ipynb"
    result = paramill.execute_notebook(
        nb, out, secrets={"tok": SECRET}, progress_bar=False, start_timeout=120
    )
    text = "".join(o.get("text", "") for o in result.cells[-2].outputs)
    assert expected in text, result.cells[-2].outputs
    child = "".join(o.get("text", "") for o in result.cells[-1].outputs)
    assert child.split() == ["children", "see", "0"], result.cells[-1].outputs
    assert SECRET not in out.read_text()
    assert "<redacted>" in out.read_text()
