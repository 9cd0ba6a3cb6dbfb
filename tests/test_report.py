"""HTML reports (nbconvert) of real runs: plots embedded, report mode, failures, any storage."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import fsspec
import pytest

import paramill
from paramill.errors import MissingDependencyError

from .conftest import run_cli

PLOT_CELLS = [
    ("code", "title = 'default'", "parameters"),
    "import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
    "import matplotlib.pyplot as plt",
    "print('REPORT-TEXT', title)\nplt.plot([3, 1, 2]); plt.title(title); plt.show()",
]


def _text(html: str) -> str:
    """What a reader sees: tags (syntax highlighting spans) removed, entities decoded."""
    import html as html_lib

    return html_lib.unescape(re.sub(r"<[^>]+>", "", html))


def _images(html: str) -> list[str]:
    return re.findall(r'<img[^>]+src="data:image/png;base64,([^"]+)"', html)


def test_cli_html_report_embeds_plots_and_shows_code(write_nb, tmp_path: Path) -> None:
    source = write_nb(PLOT_CELLS)
    report = tmp_path / "reports" / "out_{title}.html"
    done = run_cli(source, tmp_path / "out.ipynb", "-p", "title", "Daily", "--html", report)
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "reports" / "out_Daily.html").read_text(encoding="utf-8")
    assert "REPORT-TEXT Daily" in html
    images = _images(html)
    assert len(images) == 1 and len(images[0]) > 1000  # the plot, embedded
    text = _text(html)
    assert "plt.plot([3, 1, 2])" in text  # not report mode: code is shown
    assert 'title = "Daily"' in text  # and the injected cell
    assert "Alternative text" not in done.stderr


def test_report_mode_hides_inputs_and_the_injected_cell(write_nb, tmp_path: Path) -> None:
    source = write_nb(PLOT_CELLS)
    report = tmp_path / "r.html"
    result = paramill.run(
        source, tmp_path / "o.ipynb", {"title": "Weekly"}, html_output=report, report_mode=True
    )
    assert result.ok and result.html_output == str(report)
    html = report.read_text(encoding="utf-8")
    assert "REPORT-TEXT Weekly" in html and len(_images(html)) == 1
    text = _text(html)
    assert "plt.plot" not in text and "title = " not in text  # no code, no injected cell
    assert "In [" not in text.replace("\xa0", " ")


def test_failed_run_report_shows_the_error_banner(write_nb, tmp_path: Path) -> None:
    source = write_nb(["print('before')", "raise ValueError('report-breaks-here')", "1 + 1"])
    report = tmp_path / "failed.html"
    done = run_cli(source, tmp_path / "o.ipynb", "--html", report)
    assert done.returncode == 1
    html = report.read_text(encoding="utf-8")
    assert "An Exception was encountered" in html
    assert "papermill-error-cell" in html
    assert "report-breaks-here" in html and "before" in html


def test_report_goes_to_any_storage(write_nb, tmp_path: Path) -> None:
    source = write_nb(["print('to memory')"])
    paramill.execute_notebook(
        source, None, progress_bar=False, html_output="memory://reports/mem.html"
    )
    with fsspec.open("memory://reports/mem.html", "r") as f:
        assert "to memory" in f.read()


def test_missing_nbconvert_fails_before_a_kernel_starts(
    write_nb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_nb(["open('ran', 'w').write('x')"])
    monkeypatch.setitem(sys.modules, "nbconvert", None)  # as if the extra were not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'paramill\[report\]'"):
        paramill.run(source, tmp_path / "o.ipynb", html_output=tmp_path / "r.html", cwd=tmp_path)
    assert not (tmp_path / "ran").exists() and not (tmp_path / "o.ipynb").exists()


def test_screenshot_script_renders_a_report_to_png(write_nb, tmp_path: Path) -> None:
    """examples/bikeshare/screenshot.sh (headless Chromium) on a report with a plot. Chromium
    comes from .ci/deps/screenshot.sh: neither the test nor the script it runs installs packages."""
    import shutil
    import subprocess

    script = Path(__file__).resolve().parent.parent / "examples" / "bikeshare" / "screenshot.sh"
    assert "apt-get" not in script.read_text()
    assert shutil.which("chromium"), "chromium is missing: run .ci/deps/screenshot.sh"
    report = tmp_path / "r.html"
    paramill.run(write_nb(PLOT_CELLS), None, {"title": "Shot"}, html_output=report)
    png = tmp_path / "shot.png"
    done = subprocess.run(
        ["bash", str(script), str(report), str(png), "600x500"],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stderr
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
