"""Multipart uploads send their parts concurrently, within a bound, and still all-or-nothing.

Against the real local S3 server behind the counting proxy (``tests/s3_server.py``): the
proxy adds a latency to every request, so that parts sent at once are seen at once
(``Proxy.peak``), and fails chosen parts to show that nothing half-made is left behind.
"""

from __future__ import annotations

import base64
import os
import threading
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest
from helpers import JPEG_MAGIC
from helpers import run_s3 as run

from imgfmt import s3 as s3_module
from imgfmt.errors import StorageError

MiB = 1 << 20
PART = 5 * MiB  # the s3 fixture's part size
#: Seconds the proxy holds every request: long enough for parts sent at once to overlap.
LATENCY = 0.15
PART_THREADS = "imgfmt-s3-part"


def part_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(PART_THREADS)]


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


@pytest.fixture()
def blobs(tmp_path: Path) -> Path:
    """Ten 3.5 MiB pass-through "JPEGs": a .rec of 35 MiB and a little, 8 parts of 5 MiB."""
    root = tmp_path / "blobs"
    (root / "a").mkdir(parents=True)
    for i in range(10):
        (root / "a" / f"{i}.jpg").write_bytes(JPEG_MAGIC + os.urandom(7 * MiB // 2))
    return root


def pack_both(s3, blobs: Path, tmp_path: Path) -> bytes:
    """Pack ``blobs`` locally and to s3://.../big.rec; the local .rec's bytes."""
    run(s3, "pack", str(blobs), str(tmp_path / "big.rec"), "--pass-through", "--no-shuffle")
    s3.proxy.reset()
    s3.proxy.latency = LATENCY
    run(s3, "pack", str(blobs), s3.uri("big.rec"), "--pass-through", "--no-shuffle")
    return (tmp_path / "big.rec").read_bytes()


def test_parts_go_up_at_once_and_the_object_is_byte_identical(s3, blobs, tmp_path) -> None:
    data = pack_both(s3, blobs, tmp_path)
    assert len(data) > 30 * MiB
    assert s3.get("big.rec") == data
    assert s3.get("big.idx") == (tmp_path / "big.idx").read_bytes()
    parts = s3.proxy.seen("PUT", "partNumber=")
    assert len(parts) == -(-len(data) // PART) == 8
    # Parts overlapped (all but the last are sent while the pack goes on).
    assert s3.proxy.peak("PUT", "partNumber=") > 1
    # Each part carried the CRC32 of its own slice, whatever order the parts arrived in,
    # and the completion lists them all in order, with those checksums.
    sent = {}
    for part in parts:
        number = int(part.query.split("partNumber=")[1].split("&")[0])
        sent[number] = part.header("x-amz-checksum-crc32")
        assert sent[number] == crc32(data[(number - 1) * PART : number * PART]), number
    (complete,) = s3.proxy.seen("POST", "uploadId=")
    assert complete.body is not None
    listed = [
        {child.tag.rsplit("}", 1)[-1]: child.text for child in element}
        for element in ET.fromstring(complete.body)
    ]
    assert [(int(p["PartNumber"] or 0), p["ChecksumCRC32"]) for p in listed] == sorted(sent.items())
    assert s3.uploads() == [] and part_threads() == []


@pytest.mark.parametrize("limit", [1, 3])
def test_no_more_parts_in_flight_than_max_concurrency(s3, blobs, tmp_path, limit) -> None:
    s3_module.configure(max_concurrency=limit)  # the s3 fixture restores the settings
    data = pack_both(s3, blobs, tmp_path)
    assert s3.get("big.rec") == data
    # Memory: at most `limit` parts being sent (plus the one being filled).
    assert s3.proxy.peak("PUT", "partNumber=") == limit
    assert part_threads() == []


def _abort_span(s3) -> list:
    """The AbortMultipartUpload's span: the proxy notes a span once its reply is sent, so
    it may land a moment after the client has moved on."""
    deadline = time.monotonic() + 5
    while True:
        found = [s for s in s3.proxy.spans if s.seen.method == "DELETE" and s.seen.has("uploadId=")]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("status", "message"), [(403, "access denied"), (500, "S3 kept failing (InternalError)")]
)
def test_a_part_that_keeps_failing_fails_the_pack_and_leaves_nothing(
    s3, blobs, status, message
) -> None:
    s3.proxy.latency = LATENCY
    s3.proxy.fail(99, method="PUT", match="partNumber=3", status=status)
    result = run(s3, "pack", str(blobs), s3.uri("out/x.rec"), "--pass-through", code=1)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"Error: {s3.uri('out/x.rec')}: {message}"), lines[0]
    (abort,) = _abort_span(s3)
    # The abort came after every part had ended: S3 may keep a part that outlives it.
    parts = [s for s in s3.proxy.spans if s.seen.has("partNumber=")]
    assert max(s.end for s in parts) <= abort.start
    assert s3.uploads() == [] and s3.keys("out/") == []
    assert part_threads() == []


def test_interrupted_pack_waits_for_its_parts_then_aborts(s3, blobs) -> None:
    from imgfmt.images import ImageOptions
    from imgfmt.ops.pack import pack

    s3.proxy.latency = LATENCY
    done = []

    def interrupt(n: int) -> None:
        done.append(n)
        if len(done) == 6:  # 21 MiB written: parts 1-4 sent or in flight
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pack(
            str(blobs),
            s3.uri("out/x.rec"),
            options=ImageOptions(pass_through=True),
            workers=1,
            on_progress=interrupt,
        )
    assert s3.proxy.count("PUT", "partNumber=") >= 2
    (abort,) = _abort_span(s3)
    assert max(s.end for s in s3.proxy.spans if s.seen.has("partNumber=")) <= abort.start
    assert s3.uploads() == [] and s3.keys("out/") == []
    assert part_threads() == []


# --------------------------------------------------------------------------- the writer


def test_stage_waits_for_every_part_and_lists_them_in_order(s3) -> None:
    s3.proxy.latency = LATENCY
    data = os.urandom(23 * MiB)
    writer = s3_module.Writer(s3.uri("staged.bin"), max_concurrency=4)
    for at in range(0, len(data), MiB):
        writer.write(data[at : at + MiB])
    assert s3.proxy.peak("PUT", "partNumber=") <= 4
    upload_id, parts = writer.stage()
    assert [p["PartNumber"] for p in parts] == [1, 2, 3, 4, 5]
    assert all(p["ETag"] and p["ChecksumCRC32"] for p in parts)
    assert part_threads() == []
    assert s3.keys() == []  # staged: invisible
    s3_module.complete_upload(s3.uri("staged.bin"), upload_id, parts)
    assert s3.get("staged.bin") == data


def test_a_failed_part_is_raised_by_the_next_write_and_abort_cleans_up(s3) -> None:
    s3.proxy.fail(99, method="PUT", match="partNumber=1", status=403)
    writer = s3_module.Writer(s3.uri("failed.bin"), max_concurrency=2)
    chunk = os.urandom(MiB)
    with pytest.raises(StorageError, match="access denied"):
        for _ in range(40):  # part 1 fails in the background; a later write says so
            writer.write(chunk)
    assert writer.parts < 8  # it stopped early, not after writing everything
    with pytest.raises(StorageError, match="access denied"):
        writer.write(chunk)  # and keeps saying so
    with pytest.raises(StorageError, match="access denied"):
        writer.finish()
    writer.abort()
    assert part_threads() == []
    assert s3.uploads() == [] and s3.keys() == []


def test_max_concurrency_below_one_is_refused() -> None:
    from imgfmt.errors import UsageError

    with pytest.raises(UsageError, match="max_concurrency 0 is below 1"):
        s3_module.S3Settings(max_concurrency=0)
