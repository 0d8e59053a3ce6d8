"""Shared fixtures.

The interop tests run mxnet 1.9.1 itself, from the separate venv that `make test`
builds (`.venv-mxnet`). `IMGFMT_MXNET_PYTHON` names its python; when
`IMGFMT_REQUIRE_INTEROP=1` (as in `make test` and CI) a missing mxnet is a failure,
never a silent skip.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"


def _mxnet_python() -> str | None:
    candidate = os.environ.get("IMGFMT_MXNET_PYTHON") or str(
        REPO / ".venv-mxnet" / "bin" / "python"
    )
    return candidate if os.path.exists(candidate) else None


@pytest.fixture(scope="session")
def mxnet_python() -> str:
    """Path of a python that can `import mxnet, cv2` (mxnet 1.9.1)."""
    python = _mxnet_python()
    if python is None:
        if os.environ.get("IMGFMT_REQUIRE_INTEROP") == "1":
            pytest.fail("mxnet venv missing: run `make interop` (it builds .venv-mxnet)")
        pytest.skip("mxnet 1.9.1 venv not built (make interop builds it)")
    return python


@pytest.fixture(scope="session")
def run_mxnet(mxnet_python: str):
    """Run a python snippet under mxnet 1.9.1; returns its stdout (fails the test on error)."""

    def run(code: str, *args: str, cwd: str | os.PathLike[str] | None = None) -> str:
        proc = subprocess.run(
            [mxnet_python, "-c", code, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise AssertionError(f"mxnet snippet failed:\n{proc.stderr[-4000:]}")
        return proc.stdout

    return run


@pytest.fixture(scope="session")
def im2rec_py(mxnet_python: str) -> str:
    """Path of mxnet 1.9.1's tools/im2rec.py inside the mxnet venv."""
    out = subprocess.run(
        [mxnet_python, "-c", "import mxnet, os; print(os.path.dirname(mxnet.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return os.path.join(out, "tools", "im2rec.py")
