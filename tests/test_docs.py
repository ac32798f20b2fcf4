"""The documentation builds without a single warning (sphinx -W)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("sphinx_autosummary_accessors")
    generated = DOCS / "generated"
    shutil.rmtree(generated, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-q",
        "-b",
        "html",
        str(DOCS),
        str(tmp_path),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    shutil.rmtree(generated, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "index.html").exists()
