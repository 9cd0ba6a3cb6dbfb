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


@pytest.mark.parametrize("kernel", sorted(CHECKS))
def test_secret_in_kernel(kernel, tmp_path):
    defaults, check, expected = CHECKS[kernel]
    language = {"ir": "R", "tslab": "typescript", "python3": "python"}.get(kernel, kernel)
    nb = make_notebook([("code", defaults, "parameters"), check], kernel=kernel, language=language)
    out = tmp_path / "out.ipynb"
    result = paramill.execute_notebook(
        nb, out, secrets={"tok": SECRET}, progress_bar=False, start_timeout=120
    )
    text = "".join(o.get("text", "") for o in result.cells[-1].outputs)
    assert expected in text, result.cells[-1].outputs
    assert SECRET not in out.read_text()
    assert "<redacted>" in out.read_text()
