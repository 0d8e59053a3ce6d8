"""Shared fixtures.

The interop tests run mxnet 1.9.1 itself, from the separate venv that `make test`
builds (`.venv-mxnet`), the SageMaker Python SDK (`.venv-sagemaker`, sagemaker<3) and
NVIDIA DALI (`.venv-dali`, its CPU reader: no GPU needed). `IMGFMT_MXNET_PYTHON`,
`IMGFMT_SAGEMAKER_PYTHON` and `IMGFMT_DALI_PYTHON` name their pythons; when
`IMGFMT_REQUIRE_INTEROP=1` (as in `make test` and CI) a missing one is a failure,
never a silent skip.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"


def _venv_python(variable: str, venv: str, what: str) -> str:
    """The python ``variable`` names, else ``venv``'s; a failure when missing under
    ``IMGFMT_REQUIRE_INTEROP=1``, else a skip."""
    candidate = os.environ.get(variable) or str(REPO / venv / "bin" / "python")
    if os.path.exists(candidate):
        return candidate
    if os.environ.get("IMGFMT_REQUIRE_INTEROP") == "1":
        pytest.fail(f"{what} venv missing: run `make interop` (it builds {venv})")
    pytest.skip(f"{what} venv not built (make interop builds it)")


def _snippet_runner(python: str, what: str):
    """Run a python snippet under ``python``; returns its stdout (fails the test on error)."""

    def run(code: str, *args: str, cwd: str | os.PathLike[str] | None = None) -> str:
        proc = subprocess.run(
            [python, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=600
        )
        if proc.returncode != 0:
            raise AssertionError(f"{what} snippet failed:\n{proc.stderr[-4000:]}")
        return proc.stdout

    return run


@pytest.fixture(scope="session")
def mxnet_python() -> str:
    """Path of a python that can `import mxnet, cv2` (mxnet 1.9.1)."""
    return _venv_python("IMGFMT_MXNET_PYTHON", ".venv-mxnet", "mxnet 1.9.1")


@pytest.fixture(scope="session")
def sagemaker_python() -> str:
    """Path of a python that can `import sagemaker.amazon.common` (sagemaker<3)."""
    python = os.environ.get("IMGFMT_SAGEMAKER_PYTHON")
    if not python:
        if os.environ.get("IMGFMT_REQUIRE_INTEROP") == "1":
            pytest.fail("SageMaker SDK venv missing: `make test` builds .venv-sagemaker")
        pytest.skip("set IMGFMT_SAGEMAKER_PYTHON to a python with sagemaker<3 to run the SDK")
    return python


@pytest.fixture(scope="session")
def run_mxnet(mxnet_python: str):
    """Run a python snippet under mxnet 1.9.1; returns its stdout (fails the test on error)."""
    return _snippet_runner(mxnet_python, "mxnet")


@pytest.fixture(scope="session")
def dali_python() -> str:
    """Path of a python that can `import nvidia.dali` (nvidia-dali-cuda120, CPU operators)."""
    return _venv_python("IMGFMT_DALI_PYTHON", ".venv-dali", "NVIDIA DALI")


@pytest.fixture(scope="session")
def run_dali(dali_python: str):
    """Run a python snippet under DALI; returns its stdout (fails the test on error)."""
    return _snippet_runner(dali_python, "DALI")


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


# --------------------------------------------------------------------------- S3
# A real HTTP S3 server (moto's, in a child process) behind a counting, fault-injecting
# proxy (tests/s3_server.py), both on 127.0.0.1 and started here: nothing to run by hand.

#: Fake credentials. The secret must never appear in any output (tests/test_s3.py checks).
S3_TEST_KEY_ID = "AKIAIMGFMTTESTKEY000"
S3_TEST_SECRET = "imgfmt-test-secret-Zq8vW2xR9p"
#: Few, quick retries: a failure that does not recover fails in about a second.
S3_TEST_MAX_ATTEMPTS = "3"


@pytest.fixture(scope="session")
def s3_server():
    """The session's S3 endpoint: ``(proxy, moto_url)``; the environment points at nothing else."""
    from s3_server import Proxy, start_moto

    env = {
        "AWS_ACCESS_KEY_ID": S3_TEST_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": S3_TEST_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance metadata service
        "AWS_CONFIG_FILE": os.devnull,  # never read the developer's own ~/.aws
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": S3_TEST_MAX_ATTEMPTS,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        proc, port = start_moto()
        proxy = Proxy(port)
        try:
            yield proxy, f"http://127.0.0.1:{port}"
        finally:
            proxy.close()
            assert proc.stdin is not None
            proc.stdin.close()
            proc.kill()
            proc.wait(timeout=10)


class S3Fixture:
    """One test's bucket on the session's server, and a direct client for setting up."""

    _buckets = 0

    def __init__(self, proxy, moto_url: str) -> None:
        import boto3

        S3Fixture._buckets += 1
        self.proxy = proxy
        self.endpoint = proxy.url  # what imgfmt talks to: requests are counted there
        self.bucket = f"imgfmt-test-{S3Fixture._buckets}"
        self.client = boto3.client("s3", endpoint_url=moto_url)  # setup: not counted
        self.client.create_bucket(Bucket=self.bucket)

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def uploads(self) -> list[str]:
        found = self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [upload["Key"] for upload in found]

    def upload_tree(self, local: Path, prefix: str) -> None:
        """Copy every file under ``local`` to ``prefix/<relative path>``."""
        from concurrent.futures import ThreadPoolExecutor

        files = sorted(p for p in local.rglob("*") if p.is_file())
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda p: self.put(
                        f"{prefix}/{p.relative_to(local).as_posix()}", p.read_bytes()
                    ),
                    files,
                )
            )


@pytest.fixture()
def s3(s3_server):
    """A fresh bucket; imgfmt's S3 settings point at the proxy (5 MiB parts) for the test."""
    from imgfmt import s3 as s3_module

    proxy, moto_url = s3_server
    fixture = S3Fixture(proxy, moto_url)
    before = s3_module.settings()
    s3_module.configure(endpoint_url=proxy.url, part_size=s3_module.MIN_PART_SIZE)
    proxy.reset()
    try:
        yield fixture
    finally:
        s3_module.configure(**before.__dict__)
        proxy.reset()
