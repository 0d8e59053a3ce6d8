"""Reading one large S3 object ahead with concurrent ranged GETs (issue 16, target 2).

Against the ``s3`` fixture: moto's server behind the counting proxy, 5 MiB parts; an object
of more than two parts read in order from the start is read ahead.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgfmt import s3 as s3_module
from imgfmt import storage
from imgfmt.cli import cli
from imgfmt.errors import StorageError
from imgfmt.formats.recordio import RecordFileWriter, pack_image_record

MiB = 1 << 20


def put_big(s3, key: str, size: int, **extra: str) -> bytes:
    data = os.urandom(size)
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=data, **extra)
    return data


def read_all(reader: io.RawIOBase | io.BufferedIOBase, step: int = MiB) -> bytes:
    parts = []
    while chunk := reader.read(step):
        parts.append(chunk)
    return b"".join(parts)


def ranges(s3, key: str) -> list[tuple[int, int | None]]:
    """The ``Range`` of every ranged GET of ``key``: (first, last byte or None), sorted."""
    found: list[tuple[int, int | None]] = []
    for seen in s3.proxy.seen("GET", f"/{key}"):
        if seen.range:
            first, last = seen.range.removeprefix("bytes=").split("-")
            found.append((int(first), int(last) if last else None))
    return sorted(found, key=lambda r: r[0])


def test_a_large_object_read_in_order_is_byte_identical(s3) -> None:
    data = put_big(s3, "big.bin", 12 * MiB + 123)
    with storage.open_input(s3.uri("big.bin"), "rb") as stream:
        assert read_all(stream) == data
    part = s3_module.MIN_PART_SIZE
    # One GET streams the first part; the rest comes as ranged GETs of one part each.
    assert s3.proxy.count("GET", "/big.bin") == 3
    assert ranges(s3, "big.bin") == [(part, 2 * part - 1), (2 * part, len(data) - 1)]
    for seen in s3.proxy.seen("GET", "/big.bin"):
        if seen.range:
            assert seen.header("If-Match")  # the object's ETag: one version only


def test_an_object_of_two_parts_or_less_stays_one_get(s3) -> None:
    data = put_big(s3, "two.bin", 2 * s3_module.MIN_PART_SIZE)
    with storage.open_input(s3.uri("two.bin"), "rb") as stream:
        assert read_all(stream) == data
    assert s3.proxy.count("GET", "/two.bin") == 1
    assert ranges(s3, "two.bin") == []


def test_ranges_are_fetched_concurrently_and_in_order(s3) -> None:
    data = put_big(s3, "wide.bin", 8 * MiB + 5)
    s3.proxy.latency = 0.1
    reader = s3_module.Reader(s3.uri("wide.bin"), part_size=MiB, max_concurrency=4)
    with io.BufferedReader(reader, 64 << 10) as stream:
        assert read_all(stream, 100_000) == data
    assert s3.proxy.peak("GET", "/wide.bin") >= 3
    assert len(ranges(s3, "wide.bin")) == 8  # from 1 MiB on, one MiB each (the last: 5 B)


def test_a_seek_ends_the_read_ahead(s3) -> None:
    data = put_big(s3, "seek.bin", 12 * MiB)
    reader = s3_module.Reader(s3.uri("seek.bin"))
    with io.BufferedReader(reader, MiB) as stream:
        stream.seek(11 * MiB)
        assert stream.read(100) == data[11 * MiB : 11 * MiB + 100]
    # The GET opened with the reader, then one ranged GET from where it was moved to.
    assert s3.proxy.count("GET", "/seek.bin") == 2
    assert ranges(s3, "seek.bin") == [(11 * MiB, None)]


def test_a_range_cut_midway_is_resumed_where_it_broke(s3) -> None:
    data = put_big(s3, "cut.bin", 12 * MiB)
    reader = s3_module.Reader(s3.uri("cut.bin"))  # its own GET: already done
    rule = s3.proxy.fail(1, method="GET", match="/cut.bin", mode="cut")  # the first range
    with io.BufferedReader(reader, MiB) as stream:
        assert read_all(stream) == data
    assert rule.hits == 1
    part = s3_module.MIN_PART_SIZE
    starts = [first for first, _last in ranges(s3, "cut.bin")]
    assert len(starts) == 3  # two ranges, one of them reopened ...
    assert any(start % part for start in starts)  # ... at the byte where it broke


def test_a_range_that_keeps_failing_fails_the_read_with_one_error(s3) -> None:
    put_big(s3, "fail.bin", 12 * MiB)
    s3_module.configure(max_attempts=2)
    reader = s3_module.Reader(s3.uri("fail.bin"))
    s3.proxy.fail(100, method="GET", match="/fail.bin", status=500)
    with io.BufferedReader(reader, MiB) as stream:
        with pytest.raises(StorageError, match=r"S3 kept failing \(InternalError\) after 2"):
            read_all(stream)


def test_an_object_replaced_while_read_fails_cleanly(s3) -> None:
    put_big(s3, "moving.bin", 12 * MiB)
    reader = s3_module.Reader(s3.uri("moving.bin"))
    put_big(s3, "moving.bin", 12 * MiB)  # a new version: the ranges ask If-Match the old
    with io.BufferedReader(reader, MiB) as stream:
        with pytest.raises(StorageError, match="changed while it was being read"):
            read_all(stream)


@pytest.mark.parametrize("through", [False, True])
def test_bytes_damaged_in_a_range_fail_the_full_object_checksum(s3, through: bool) -> None:
    put_big(s3, "crc.bin", 12 * MiB, ChecksumAlgorithm="CRC32")
    # Read through, the ranges are asked for as it opens: they are still in the proxy's
    # latency (a rule applies after it) when the rule below is set.
    s3.proxy.latency = 0.2 if through else 0.0
    with s3_module.reading_through() if through else contextlib.nullcontext():
        reader = s3_module.Reader(s3.uri("crc.bin"))
    s3.proxy.fail(1, method="GET", match="/crc.bin", mode="corrupt")  # one byte of a range
    with io.BufferedReader(reader, MiB) as stream:
        with pytest.raises(StorageError, match="do not match the object's checksum"):
            read_all(stream)
    # Undamaged, the same read passes the check.
    with storage.open_input(s3.uri("crc.bin"), "rb") as stream:
        assert len(read_all(stream)) == 12 * MiB


def _rec(path: Path, count: int, size: int) -> None:
    with RecordFileWriter(str(path)) as writer:
        for i in range(count):
            writer.write(pack_image_record(0.0, i, os.urandom(size)), key=i)


def test_verify_reads_a_large_rec_ahead_and_finds_a_cut_as_before(s3, tmp_path: Path) -> None:
    rec = tmp_path / "big.rec"
    _rec(rec, 130, 100_000)  # 13 MB: more than two 5 MiB parts
    s3.put("big.rec", rec.read_bytes())
    s3.put("big.idx", rec.with_suffix(".idx").read_bytes())
    runner = CliRunner()
    result = runner.invoke(cli, ["--endpoint-url", s3.endpoint, "verify", s3.uri("big.rec")])
    assert result.exit_code == 0 and "no problems" in result.output, result.output
    assert ranges(s3, "big.rec")  # read ahead

    cut = tmp_path / "cut.rec"
    cut.write_bytes(rec.read_bytes()[: 12 * MiB + 777])  # mid-record
    s3.put("cut.rec", cut.read_bytes())
    local = runner.invoke(cli, ["verify", str(cut)])
    remote = runner.invoke(cli, ["--endpoint-url", s3.endpoint, "verify", s3.uri("cut.rec")])
    assert local.exit_code == remote.exit_code == 1, (local.output, remote.output)
    # The same problems, word for word (the names aside: s3://BUCKET/cut.* against the local).
    # (stdout: the in-process proxy may log a connection dropped to stderr.)
    assert remote.stdout.replace(s3.uri("cut"), "CUT") == local.stdout.replace(
        str(tmp_path / "cut"), "CUT"
    )
    assert "ends inside a record" in remote.stdout
    assert ranges(s3, "cut.rec")


def test_a_command_asks_each_key_head_object_once(s3, tmp_path: Path) -> None:
    """unpack and verify look at their input several times as they start (its format, its
    .idx, whether it exists, a class map): one HeadObject per key, each a round trip."""
    for command in _unpack_and_verify(s3, tmp_path, "heads", 12, 1000):
        for key in ("heads.rec", "heads.idx", "heads.classes.tsv"):
            assert s3.proxy.count("HEAD", f"/{key}") <= 1, (command, key)


def _unpack_and_verify(s3, tmp_path: Path, name: str, records: int, size: int) -> Iterator[str]:
    """Put a .rec and its .idx on S3, then run unpack and verify of it, each after the
    proxy's log is cleared; yields each command's name once it has run."""
    rec = tmp_path / f"{name}.rec"
    _rec(rec, records, size)
    s3.put(f"{name}.rec", rec.read_bytes())
    s3.put(f"{name}.idx", rec.with_suffix(".idx").read_bytes())
    for args in (
        ["unpack", s3.uri(f"{name}.rec"), str(tmp_path / "out")],
        ["verify", s3.uri(f"{name}.rec")],
    ):
        s3.proxy.reset()
        result = CliRunner().invoke(cli, ["--endpoint-url", s3.endpoint, *args])
        assert result.exit_code == 0, result.output
        yield args[0]


def test_remembered_sizes_are_forgotten_when_the_command_writes(s3) -> None:
    uri = s3.uri("later.bin")
    with s3_module.remembering_sizes():
        assert s3_module.object_size(uri) is None
        assert s3_module.object_size(uri) is None
        assert s3.proxy.count("HEAD", "/later.bin") == 1  # remembered
        s3_module.put_bytes(uri, b"12345")  # this command's own write: forgotten
        assert s3_module.object_size(uri) == 5
    assert s3_module.object_size(uri) == 5  # outside a command: asked every time
    assert s3.proxy.count("HEAD", "/later.bin") == 3


def test_unpack_fetches_the_idx_while_it_reads_the_rec(s3, tmp_path: Path) -> None:
    """The index a sequential read checks at its end is fetched as the read starts, not
    waited for at the end."""
    for command in _unpack_and_verify(s3, tmp_path, "early", 130, 100_000):  # 13 MB: ahead
        spans = s3.proxy.spans
        idx = [
            span
            for span in spans
            if span.seen.method == "GET" and span.seen.path.endswith("/early.idx")
        ]
        data = [span for span in spans if span.seen.method == "GET" and span.seen.range]
        assert len(idx) == 1 and data, command
        # Asked for with the first ranges, not after the last record: before any ended.
        assert idx[0].start < min(span.end for span in data), command


def test_a_reader_opened_to_be_read_through_reads_ahead_at_once(s3) -> None:
    """Inside reading_through (a whole scan) the ranged GETs start as the object is opened,
    not after its first megabyte has come through one stream; the checksum still holds."""
    data = put_big(s3, "through.bin", 12 * MiB + 5, ChecksumAlgorithm="CRC32")
    with s3_module.reading_through():
        reader = s3_module.Reader(s3.uri("through.bin"))
    s3.proxy.latency = 0.05
    time_left = 2.0
    while not ranges(s3, "through.bin") and time_left > 0:  # nothing read yet
        time_left -= 0.05
        time.sleep(0.05)
    assert ranges(s3, "through.bin")
    with io.BufferedReader(reader, MiB) as stream:
        assert read_all(stream) == data
    part = s3_module.MIN_PART_SIZE
    assert ranges(s3, "through.bin") == [(part, 2 * part - 1), (2 * part, len(data) - 1)]
    # Outside the block a reader opened and not read starts nothing.
    s3.proxy.reset()
    s3_module.Reader(s3.uri("through.bin")).close()
    assert ranges(s3, "through.bin") == []
