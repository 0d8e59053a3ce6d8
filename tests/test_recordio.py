"""The RecordIO codec: framing, writers, readers, damage reports, the image header, the .idx."""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import struct
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgfmt.errors import FormatError, ImgfmtError, UsageError
from imgfmt.formats.recordio import (
    MAGIC_BYTES,
    MAX_PAYLOAD,
    IRHeader,
    Record,
    RecordFileWriter,
    RecordReader,
    RecordWriter,
    encode_record,
    pack_image_record,
    parse_idx,
    read_idx,
    read_record,
    survives_float32,
    unpack_image_record,
)
from imgfmt.storage import TEMP_PREFIX

MAGIC_WORD = 0xCED7230A
IDX_HINT = "(rebuild the index with `imgfmt verify --fix-idx`)"


def head(cflag: int, length: int) -> bytes:
    """A piece head written out by hand: magic, then cflag in the top 3 bits of the length word."""
    return struct.pack("<II", MAGIC_WORD, (cflag << 29) | length)


def encoded(payload: bytes | bytearray | memoryview) -> bytes:
    return b"".join(bytes(chunk) for chunk in encode_record(payload))


def write_rec(path: Path, payloads: list[bytes], keys: list[int] | None = None) -> list[int]:
    """Write a .rec and .idx with RecordFileWriter; returns the record offsets."""
    with RecordFileWriter(str(path)) as writer:
        return [
            writer.write(payload, key=None if keys is None else keys[number])
            for number, payload in enumerate(payloads)
        ]


def read_all(path: Path) -> list[Record]:
    with RecordReader(str(path)) as reader:
        return list(reader)


def error_text(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    return str(excinfo.value)


# Payloads that hold the magic at any alignment, back to back, at the start and at the end.
payload_strategy = st.lists(
    st.one_of(st.binary(max_size=24), st.just(MAGIC_BYTES)), max_size=6
).map(b"".join)


# --------------------------------------------------------------------------- framing


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(b"", head(0, 0), id="empty"),
        pytest.param(b"abc", head(0, 3) + b"abc\0", id="padded"),
        pytest.param(b"abcd", head(0, 4) + b"abcd", id="aligned-no-padding"),
        pytest.param(MAGIC_BYTES, head(1, 0) + head(3, 0), id="exactly-magic"),
        pytest.param(MAGIC_BYTES + b"xy", head(1, 0) + head(3, 2) + b"xy\0\0", id="magic-first"),
        pytest.param(
            b"abcd" + MAGIC_BYTES, head(1, 4) + b"abcd" + head(3, 0), id="magic-last-word"
        ),
        pytest.param(
            b"abcd" + MAGIC_BYTES + b"e",
            head(1, 4) + b"abcd" + head(3, 1) + b"e\0\0\0",
            id="magic-last-aligned-word-then-tail",
        ),
        pytest.param(
            MAGIC_BYTES * 3, head(1, 0) + head(2, 0) + head(2, 0) + head(3, 0), id="back-to-back"
        ),
        pytest.param(
            b"abcd" + MAGIC_BYTES + b"efgh" + MAGIC_BYTES + b"ij",
            head(1, 4) + b"abcd" + head(2, 4) + b"efgh" + head(3, 2) + b"ij\0\0",
            id="first-middle-last",
        ),
        pytest.param(b"x" + MAGIC_BYTES, head(0, 5) + b"x" + MAGIC_BYTES + b"\0\0\0", id="align-1"),
        pytest.param(b"xx" + MAGIC_BYTES, head(0, 6) + b"xx" + MAGIC_BYTES + b"\0\0", id="align-2"),
        pytest.param(b"xxx" + MAGIC_BYTES, head(0, 7) + b"xxx" + MAGIC_BYTES + b"\0", id="align-3"),
        pytest.param(
            b"x" + MAGIC_BYTES + b"xyz" + MAGIC_BYTES,
            head(1, 8) + b"x" + MAGIC_BYTES + b"xyz" + head(3, 0),
            id="unaligned-then-aligned",
        ),
    ],
)
def test_encode_record_layout(payload: bytes, expected: bytes) -> None:
    assert encoded(payload) == expected
    assert read_record(io.BytesIO(expected), 0, 0, "mem") == (payload, len(expected))


def test_encode_record_takes_any_bytes_like() -> None:
    payload = b"abcd" + MAGIC_BYTES + b"xyz"
    assert encoded(bytearray(payload)) == encoded(payload)
    assert encoded(memoryview(payload)) == encoded(payload)
    assert encoded(memoryview(b"--" + payload)[2:]) == encoded(payload)


@given(payload_strategy)
def test_encoding_is_aligned_and_self_delimiting(payload: bytes) -> None:
    data = encoded(payload)
    assert len(data) % 4 == 0
    aligned_magics = sum(
        1 for at in range(0, len(payload) - 3, 4) if payload[at : at + 4] == MAGIC_BYTES
    )
    # One head per escaped magic, plus one; the data itself is never altered.
    assert len(data) == len(payload) - 4 * aligned_magics + 8 * (aligned_magics + 1) + (
        -len(payload) % 4
    )
    assert read_record(io.BytesIO(data), 0, 0, "mem") == (payload, len(data))


@given(st.lists(payload_strategy, max_size=8))
def test_record_heads_are_the_only_resync_points(payloads: list[bytes]) -> None:
    # verify resynchronises on "an aligned magic whose next word has cflag 0 or 1": in a valid
    # file those are exactly the record heads, whatever the payloads hold.
    stream = io.BytesIO()
    writer = RecordWriter(stream)
    offsets = [writer.write(payload) for payload in payloads]
    data = stream.getvalue()
    starts = [
        at
        for at in range(0, len(data) - 7, 4)
        if data[at : at + 4] == MAGIC_BYTES
        and (struct.unpack_from("<I", data, at + 4)[0] >> 29) < 2
    ]
    assert starts == offsets


def test_payload_over_the_limit_is_refused_before_anything_is_written() -> None:
    # bytes() of zeros is a lazily mapped allocation; encode_record checks the size before copying.
    too_big = bytes(MAX_PAYLOAD + 1)
    stream = io.BytesIO()
    writer = RecordWriter(stream)
    with pytest.raises(ImgfmtError) as excinfo:
        writer.write(too_big)
    assert str(excinfo.value) == (
        "record payload is 536870912 bytes; RecordIO holds at most 536870911 (2**29 - 1) "
        "(resize or re-encode the image smaller)"
    )
    assert (writer.bytes_written, writer.records_written, stream.getvalue()) == (0, 0, b"")


# --------------------------------------------------------------------------- writers


def test_writer_reports_offsets_and_writes_mxnet_index_lines() -> None:
    stream, index = io.BytesIO(), io.StringIO()
    writer = RecordWriter(stream, index)
    offsets = [
        writer.write(b"abc", key=7),
        writer.write(MAGIC_BYTES, key=2),
        writer.write(b"", key=2**40),
        writer.write(b"abcdefgh"),  # no key: its record number
    ]
    assert offsets == [0, 12, 28, 36]
    assert index.getvalue() == "7\t0\n2\t12\n1099511627776\t28\n3\t36\n"
    assert writer.bytes_written == len(stream.getvalue()) == 52
    assert writer.records_written == 4


def test_duplicate_key_is_refused_and_the_writer_carries_on(tmp_path: Path) -> None:
    rec = tmp_path / "d.rec"
    with RecordFileWriter(str(rec)) as writer:
        writer.write(b"first", key=1)
        with pytest.raises(FormatError) as excinfo:
            writer.write(b"second", key=1)
        writer.write(b"third", key=2)
    assert error_text(excinfo) == (
        f"{rec}: index key 1 is used twice (keys (the .lst index column) must be unique)"
    )
    assert [r.payload for r in read_all(rec)] == [b"first", b"third"]
    assert read_idx(str(tmp_path / "d.idx")) == {1: 0, 2: 16}


def test_file_writer_commits_rec_and_idx_and_nothing_else(tmp_path: Path) -> None:
    rec = tmp_path / "out.rec"
    with RecordFileWriter(str(rec)) as writer:
        writer.write(b"payload", key=5)
        assert os.listdir(tmp_path) != [] and not rec.exists()  # only temporaries so far
    assert sorted(os.listdir(tmp_path)) == ["out.idx", "out.rec"]
    assert rec.read_bytes() == head(0, 7) + b"payload\0"
    assert (tmp_path / "out.idx").read_text() == "5\t0\n"


def test_file_writer_without_index_writes_only_the_rec(tmp_path: Path) -> None:
    with RecordFileWriter(str(tmp_path / "a.rec"), write_index=False) as writer:
        writer.write(b"x")
    assert os.listdir(tmp_path) == ["a.rec"]


def test_empty_writer_refuses_to_leave_files(tmp_path: Path) -> None:
    rec = tmp_path / "empty.rec"
    with pytest.raises(ImgfmtError) as excinfo, RecordFileWriter(str(rec)):
        pass
    assert error_text(excinfo) == (
        f"{rec}: no records to write; refusing to create an empty dataset "
        "(check that the input list or folder holds images)"
    )
    assert os.listdir(tmp_path) == []


def test_exception_inside_with_leaves_no_files(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        RecordFileWriter(str(tmp_path / "x.rec")) as writer,
    ):
        writer.write(b"a" * 1000)
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_failing_idx_path_leaves_no_temporary_rec(tmp_path: Path) -> None:
    with pytest.raises(ImgfmtError):
        RecordFileWriter(str(tmp_path / "x.rec"), idx_path=str(tmp_path / "missing" / "x.idx"))
    assert os.listdir(tmp_path) == []


def test_close_inside_with_is_harmless(tmp_path: Path) -> None:
    with RecordFileWriter(str(tmp_path / "c.rec")) as writer:
        writer.write(b"abc")
        writer.close()
    assert [r.payload for r in read_all(tmp_path / "c.rec")] == [b"abc"]
    assert not any(name.startswith(TEMP_PREFIX) for name in os.listdir(tmp_path))


# --------------------------------------------------------------------------- readers


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payloads=st.lists(payload_strategy, min_size=1, max_size=10),
    key_seed=st.integers(0, 2**32),
)
def test_file_round_trip_sequential_and_by_key(
    tmp_path: Path, payloads: list[bytes], key_seed: int
) -> None:
    # Distinct, non-sequential keys.
    keys = [(key_seed + 7919 * number) % (2**40) for number in range(len(payloads))]
    rec = tmp_path / "rt.rec"
    offsets = write_rec(rec, payloads, keys)
    assert read_all(rec) == [
        Record(number, offset, payload)
        for number, (offset, payload) in enumerate(zip(offsets, payloads, strict=True))
    ]
    with RecordReader(str(rec)) as reader:
        assert reader.index == dict(zip(keys, offsets, strict=True))
        for key, payload in reversed(list(zip(keys, payloads, strict=True))):
            assert reader.read_key(key) == payload
            assert reader[key] == payload


@given(st.lists(payload_strategy, max_size=12))
def test_stream_round_trip(payloads: list[bytes]) -> None:
    stream, index = io.BytesIO(), io.StringIO()
    writer = RecordWriter(stream, index)
    offsets = [writer.write(payload) for payload in payloads]
    assert parse_idx(index.getvalue().splitlines(keepends=True), "mem") == dict(enumerate(offsets))
    stream.seek(0)
    offset, got = 0, list[bytes]()
    while (result := read_record(stream, offset, len(got), "mem")) is not None:
        payload, offset = result
        got.append(payload)
    assert got == payloads
    assert offset == writer.bytes_written


def test_iteration_and_random_access_do_not_move_each_other(tmp_path: Path) -> None:
    rec = tmp_path / "m.rec"
    payloads = [bytes([n]) * (n * 5) for n in range(6)]
    write_rec(rec, payloads)
    with RecordReader(str(rec)) as reader:
        seen = []
        for record in reader:
            assert reader.read_key(5 - record.number) == payloads[5 - record.number]
            seen.append(record.payload)
    assert seen == payloads


def test_reader_without_index(tmp_path: Path) -> None:
    rec = tmp_path / "n.rec"
    write_rec(rec, [b"a", b"b"])
    (tmp_path / "n.idx").unlink()
    reader = RecordReader(str(rec))
    assert [r.payload for r in reader] == [b"a", b"b"]
    assert reader.read_at(12) == b"b"
    with pytest.raises(FormatError) as excinfo:
        reader.read_key(0)
    assert error_text(excinfo) == (
        f"{rec}: no index: random access needs the .idx beside the .rec "
        "(rebuild it with `imgfmt verify --fix-idx`)"
    )


def test_unknown_key(tmp_path: Path) -> None:
    rec = tmp_path / "k.rec"
    write_rec(rec, [b"a"], keys=[3])
    with pytest.raises(FormatError) as excinfo:
        RecordReader(str(rec)).read_key(4)
    assert error_text(excinfo) == f"{tmp_path / 'k.idx'}: no record with key 4 in the index"


# --------------------------------------------------------------------------- damage


def damaged(tmp_path: Path, data: bytes, idx: str | None = None) -> Path:
    rec = tmp_path / "bad.rec"
    rec.write_bytes(data)
    if idx is not None:
        (tmp_path / "bad.idx").write_text(idx)
    return rec


def first_error(rec: Path) -> FormatError:
    with pytest.raises(FormatError) as excinfo:
        read_all(rec)
    return excinfo.value


def test_bad_magic_names_file_record_and_byte(tmp_path: Path) -> None:
    good = encoded(b"abc") + encoded(b"defgh")
    rec = damaged(tmp_path, good[:12] + b"\xff" + good[13:])
    assert str(first_error(rec)) == (
        f"{rec}: record 1 at byte 12: bad magic 0xced723ff (expected 0xced7230a) "
        "(not a RecordIO file, or damaged here; `imgfmt verify` resynchronises)"
    )


def test_records_before_the_damage_are_still_yielded(tmp_path: Path) -> None:
    good = encoded(b"abc") + encoded(b"defgh")
    rec = damaged(tmp_path, good + b"junkjunk")
    got: list[bytes] = []
    with pytest.raises(FormatError, match="record 2 at byte 28: bad magic"):
        for record in RecordReader(str(rec)):
            got.append(record.payload)
    assert got == [b"abc", b"defgh"]


def test_truncated_head(tmp_path: Path) -> None:
    data = encoded(b"abc") + encoded(b"defgh")
    rec = damaged(tmp_path, data[:17])
    assert str(first_error(rec)) == (
        f"{rec}: record 1 at byte 12: file ends inside a record head (5 of 8 bytes) "
        "(the file is truncated; `imgfmt verify` lists the records still intact)"
    )


def test_truncated_piece(tmp_path: Path) -> None:
    data = encoded(b"abc") + encoded(b"defghijklm")
    rec = damaged(tmp_path, data[:24])
    assert str(first_error(rec)) == (
        f"{rec}: record 1 at byte 12: file ends inside a record: piece of 10 bytes has only 4 "
        "(the file is truncated, or this length is damaged; `imgfmt verify` lists the records "
        "still intact)"
    )


def test_missing_padding_is_a_truncation(tmp_path: Path) -> None:
    rec = damaged(tmp_path, encoded(b"abc")[:-1])
    assert (
        "record 0 at byte 0: file ends inside a record: the padding after its 3 bytes is cut short"
        in str(first_error(rec))
    )


def test_split_record_cut_after_its_first_piece(tmp_path: Path) -> None:
    data = encoded(b"abcd" + MAGIC_BYTES + b"efgh")
    rec = damaged(tmp_path, data[: 8 + 4])
    assert str(first_error(rec)).startswith(
        f"{rec}: record 0 at byte 12: file ends inside a record head (0 of 8 bytes)"
    )


@pytest.mark.parametrize("cflag", [2, 3, 4, 7])
def test_continuation_piece_at_record_start(tmp_path: Path, cflag: int) -> None:
    rec = damaged(tmp_path, encoded(b"ok") + head(cflag, 0))
    assert str(first_error(rec)) == (
        f"{rec}: record 1 at byte 12: record starts with a continuation piece (cflag {cflag}) "
        "(an index offset or a previous record is damaged)"
    )


@pytest.mark.parametrize("cflag", [0, 1, 5])
def test_whole_or_first_piece_inside_a_split_record(tmp_path: Path, cflag: int) -> None:
    rec = damaged(tmp_path, head(1, 4) + b"abcd" + head(cflag, 0))
    assert str(first_error(rec)) == (
        f"{rec}: record 0 at byte 12: expected a continuation piece, found cflag {cflag} "
        "(the record's pieces are out of sequence; the file is damaged)"
    )


def test_idx_offset_inside_a_payload(tmp_path: Path) -> None:
    data = encoded(b"abcdefgh") + encoded(b"x")
    rec = damaged(tmp_path, data, idx="0\t0\n1\t8\n")
    with pytest.raises(FormatError) as excinfo:
        RecordReader(str(rec)).read_key(1)
    assert str(excinfo.value) == (
        f"{rec}: key 1, record at byte 8: bad magic 0x64636261 (expected 0xced7230a) "
        "(not a RecordIO file, or damaged here; `imgfmt verify` resynchronises)"
    )


def test_idx_offset_at_a_middle_piece(tmp_path: Path) -> None:
    data = encoded(b"abcd" + MAGIC_BYTES + b"efgh")  # pieces at bytes 0 and 12
    rec = damaged(tmp_path, data, idx="0\t12\n")
    with pytest.raises(FormatError, match=r"key 0, record at byte 12: record starts with a contin"):
        RecordReader(str(rec)).read_key(0)


def test_idx_offset_past_the_end(tmp_path: Path) -> None:
    rec = damaged(tmp_path, encoded(b"abc"), idx="0\t0\n1\t4000\n")
    reader = RecordReader(str(rec))
    assert reader.read_key(0) == b"abc"
    with pytest.raises(FormatError) as excinfo:
        reader.read_key(1)
    assert str(excinfo.value) == (
        f"{rec}: key 1, byte 4000: offset 4000 is past the end of the file "
        "(the .idx does not match this .rec; rebuild it with `imgfmt verify --fix-idx`)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0\t0\n1 12\n", "line 2: expected 'key<TAB>offset', found '1 12'"),
        ("0\t0\t5\n", "line 1: expected 'key<TAB>offset', found '0\\t0\\t5'"),
        ("0\t0\ncat\t12\n", "line 2: key and offset must be integers, found 'cat\\t12'"),
        ("0\t1.5\n", "line 1: key and offset must be integers, found '0\\t1.5'"),
        ("0\t-4\n", "line 1: offset -4 cannot be a record head (records start at multiples of 4)"),
        ("0\t6\n", "line 1: offset 6 cannot be a record head (records start at multiples of 4)"),
        ("3\t0\n\n4\t8\n3\t16\n", "line 4: key 3 appears twice"),
    ],
)
def test_malformed_idx(tmp_path: Path, text: str, message: str) -> None:
    idx = tmp_path / "bad.idx"
    idx.write_text(text)
    with pytest.raises(FormatError) as excinfo:
        read_idx(str(idx))
    assert str(excinfo.value) == f"{idx}: {message} {IDX_HINT}"


def test_idx_that_is_not_text(tmp_path: Path) -> None:
    idx = tmp_path / "bin.idx"
    idx.write_bytes(b"0\t0\n\xff\xfe\x00\x01")
    with pytest.raises(FormatError, match=r"bin\.idx: not UTF-8 text"):
        read_idx(str(idx))


def test_idx_tolerates_blank_lines_and_crlf() -> None:
    assert parse_idx(["5\t0\r\n", "\n", "6\t12\n"], "mem") == {5: 0, 6: 12}


# --------------------------------------------------------------------------- fuzzing


def _iterate(path: Path) -> None:
    for _record in RecordReader(str(path), use_index=False):
        pass


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_format_error(tmp_path: Path, data: bytes) -> None:
    # Mostly start with a magic, so the fuzzing reaches past the first check.
    path = tmp_path / "fuzz.rec"
    for candidate in (data, MAGIC_BYTES + data, head(0, 0) + MAGIC_BYTES + data):
        path.write_bytes(candidate)
        try:
            _iterate(path)
        except FormatError:
            pass


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payloads=st.lists(payload_strategy, min_size=1, max_size=5),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 10_000),
    offset=st.integers(0, 300),
)
def test_damaged_valid_files_raise_only_format_error(
    tmp_path: Path,
    payloads: list[bytes],
    edits: list[tuple[int, int]],
    cut: int,
    offset: int,
) -> None:
    data = bytearray(b"".join(encoded(payload) for payload in payloads))
    for at, value in edits:
        data[at % len(data)] = value
    path = tmp_path / "fuzz.rec"
    path.write_bytes(bytes(data[: max(cut, len(data) // 2)]))
    try:
        _iterate(path)
    except FormatError:
        pass
    try:
        RecordReader(str(path), use_index=False).read_at(offset * 4)
    except FormatError:
        pass


@given(st.text(alphabet=st.sampled_from("0123456789-+ _\t\n\r.xé\x00"), max_size=60) | st.text())
def test_parse_idx_raises_only_format_error(text: str) -> None:
    try:
        index = parse_idx(io.StringIO(text, newline=""), "fuzz.idx")
    except FormatError:
        return
    assert all(offset >= 0 and offset % 4 == 0 for offset in index.values())


@given(
    st.binary(max_size=80)
    | st.builds(
        lambda flag, rest: struct.pack("<I", flag) + rest,
        st.integers(0, 2**32 - 1) | st.integers(0, 20),
        st.binary(max_size=120),
    )
)
def test_unpack_image_record_raises_only_format_error(payload: bytes) -> None:
    try:
        header, image = unpack_image_record(payload)
    except FormatError:
        return
    assert len(header.labels) == max(header.flag, 1)
    assert len(image) == len(payload) - 24 - 4 * header.flag


# --------------------------------------------------------------------------- image header


def test_pack_single_label_layout() -> None:
    packed = pack_image_record(3.0, 42, b"JPEG")
    assert packed == struct.pack("<IfQQ", 0, 3.0, 42, 0) + b"JPEG"
    assert unpack_image_record(packed) == (IRHeader(0, (3.0,), 42, 0), b"JPEG")


def test_pack_multi_label_layout() -> None:
    packed = pack_image_record([1.0, 0.0, 2.5], 7, b"PNG", id2=9)
    assert packed == struct.pack("<IfQQ3f", 3, 0.0, 7, 9, 1.0, 0.0, 2.5) + b"PNG"
    header, image = unpack_image_record(packed)
    assert header == IRHeader(3, (1.0, 0.0, 2.5), 7, 9)
    assert (header.label, image) == (1.0, b"PNG")


def test_one_label_in_a_list_is_still_multi_label() -> None:
    packed = pack_image_record([4.0], 1, b"i")
    assert packed[:4] == struct.pack("<I", 1)
    assert unpack_image_record(packed)[0] == IRHeader(1, (4.0,), 1, 0)


def test_empty_label_list_is_flag_zero_like_mxnet() -> None:
    assert pack_image_record([], 1, b"i") == struct.pack("<IfQQ", 0, 0.0, 1, 0) + b"i"


def test_numpy_labels_pack_like_python_numbers() -> None:
    assert pack_image_record(np.float32(2.0), 1, b"i") == pack_image_record(2.0, 1, b"i")
    assert pack_image_record(np.int64(2), 1, b"i") == pack_image_record(2.0, 1, b"i")
    labels: Any = np.array([1.0, 2.0], dtype=np.float32)  # mxnet packs arrays too
    assert pack_image_record(labels, 1, b"i") == pack_image_record([1.0, 2.0], 1, b"i")


@given(
    labels=st.floats(width=32, allow_nan=False) | st.lists(st.floats(width=32, allow_nan=False)),
    rec_id=st.integers(0, 2**64 - 1),
    id2=st.integers(0, 2**64 - 1),
    image=payload_strategy,
)
def test_image_record_round_trip(
    labels: float | list[float], rec_id: int, id2: int, image: bytes
) -> None:
    header, got_image = unpack_image_record(pack_image_record(labels, rec_id, image, id2=id2))
    assert (header.id, header.id2, got_image) == (rec_id, id2, image)
    if isinstance(labels, float) or not labels:
        assert header.flag == 0
        assert header.labels == ((labels if isinstance(labels, float) else 0.0),)
    else:
        assert header.flag == len(labels)
        assert header.labels == tuple(labels)


@pytest.mark.parametrize(
    ("labels", "rec_id"), [(1e39, 0), ([1.0, 1e39], 0), (1.0, -1), (1.0, 2**64), ([1.0], -1)]
)
def test_pack_refuses_what_the_header_cannot_hold(labels: float | list[float], rec_id: int) -> None:
    with pytest.raises(UsageError):
        pack_image_record(labels, rec_id, b"")


def test_unpack_short_payload() -> None:
    with pytest.raises(FormatError) as excinfo:
        unpack_image_record(b"\0" * 23, path="t.rec", where="record 4 at byte 96")
    assert str(excinfo.value) == (
        "t.rec: record 4 at byte 96: record of 23 bytes is shorter than the 24-byte image header "
        "(this is not an image record (made by im2rec / imgfmt pack))"
    )


def test_unpack_flag_larger_than_the_payload() -> None:
    payload = struct.pack("<IfQQ2f", 3, 0.0, 1, 0, 1.0, 2.0)
    with pytest.raises(FormatError, match="header says 3 labels but the record holds only 8 bytes"):
        unpack_image_record(payload)


@pytest.mark.parametrize(
    ("value", "exact"),
    [
        (17672687, False),
        (17672688, True),
        (2**24, True),
        (2**24 + 1, False),
        (0.5, True),
        (0.1, False),
        (-3.0, True),
        (1e39, False),
        (math.inf, True),
        (math.nan, True),
    ],
)
def test_survives_float32(value: float, exact: bool) -> None:
    assert survives_float32(value) is exact


def test_float32_label_loses_precision_as_documented() -> None:
    header, _image = unpack_image_record(pack_image_record(17672687, 0, b""))
    assert header.label == 17672688.0


# --------------------------------------------------------------------------- processes

_INHERITED: RecordReader | None = None


def _read_inherited(key: int) -> bytes:
    """Runs in a forked worker: reads through the reader object the parent opened."""
    assert _INHERITED is not None
    return _INHERITED.read_key(key)[:4]


def _many_payloads() -> tuple[list[int], list[bytes]]:
    keys = [1000 - 3 * n for n in range(60)]
    payloads = [bytes([n]) * (n * 37) + MAGIC_BYTES * (n % 3) for n in range(60)]
    return keys, payloads


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_reader_passed_to_worker_processes(tmp_path: Path, method: str) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is not available here")
    keys, payloads = _many_payloads()
    rec = tmp_path / "mp.rec"
    write_rec(rec, payloads, keys)
    reader = RecordReader(str(rec))
    reader.read_key(keys[0])  # the parent holds an open handle when the reader is pickled
    with multiprocessing.get_context(method).Pool(2) as pool:
        got = pool.map(reader.read_key, list(reversed(keys)), chunksize=3)
    assert got == list(reversed(payloads))


def test_forked_workers_do_not_share_the_parents_file_position(tmp_path: Path) -> None:
    # A forked child inherits the parent's open file, whose position the kernel shares: readers
    # that kept using it would seek and read over each other. Records larger than the read
    # buffer make every read hit the file, so sharing shows up as wrong payloads or damage.
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("fork is not available here")
    global _INHERITED
    count = 24
    rec = tmp_path / "fork.rec"
    with open(rec, "wb") as stream, open(tmp_path / "fork.idx", "w") as index:
        writer = RecordWriter(stream, index)
        for number in range(count):
            writer.write(number.to_bytes(4, "little") + bytes(300_000), key=number)
    keys = [(7 * n) % count for n in range(2000)]
    _INHERITED = RecordReader(str(rec))
    try:
        _INHERITED.read_key(0)  # the parent's handle is open when the workers fork
        parent_fd = _INHERITED._handle().fileno()
        position = os.lseek(parent_fd, 0, os.SEEK_CUR)
        with multiprocessing.get_context("fork").Pool(2) as pool:
            got = pool.map(_read_inherited, keys, chunksize=4)
        assert got == [key.to_bytes(4, "little") for key in keys]
        assert os.lseek(parent_fd, 0, os.SEEK_CUR) == position  # no worker moved it
        assert _INHERITED.read_key(5)[:4] == (5).to_bytes(4, "little")
    finally:
        _INHERITED.close()
        _INHERITED = None


# --------------------------------------------------------------------------- memory

MIB = 1 << 20


def _big_payloads(count: int) -> Iterator[bytes]:
    block = bytes(range(256)) * (MIB // 256)
    for number in range(count):
        yield number.to_bytes(4, "little") + block[4:]


def test_reading_is_lazy(tmp_path: Path) -> None:
    count = 48
    rec = tmp_path / "big.rec"
    # A plain RecordWriter on ordinary files: no fsync of 48 MB in a unit test.
    with open(rec, "wb") as stream, open(tmp_path / "big.idx", "w") as index:
        writer = RecordWriter(stream, index)
        for payload in _big_payloads(count):
            writer.write(payload)
    assert rec.stat().st_size == count * (MIB + 8)

    tracemalloc.start()
    try:
        numbers = []
        with RecordReader(str(rec)) as reader:
            for record in reader:
                numbers.append(int.from_bytes(record.payload[:4], "little"))
            middle = reader.read_key(count // 2)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert numbers == list(range(count))
    assert middle[:4] == (count // 2).to_bytes(4, "little")
    # A record or two plus the 1 MiB read buffer, never the 48 MiB file.
    assert peak < 6 * MIB, f"peak {peak / MIB:.1f} MiB"


@given(
    keys=st.lists(
        st.one_of(st.integers(0, 5000), st.integers(0, 2**64 - 1), st.integers(-5, -1)),
        max_size=300,
    )
)
def test_key_set_holds_what_a_set_holds(keys: list[int]) -> None:
    from imgfmt.formats.recordio import KeySet

    compact, plain = KeySet(), set()
    for key in keys:
        assert compact.add(key) == (key not in plain)
        plain.add(key)
        assert key in compact
    assert len(compact) == len(plain)
    assert all(k in compact for k in plain)
    assert not any(k in compact for k in range(-3, 6000) if k not in plain)


def test_key_set_stays_small_for_dense_keys() -> None:
    from imgfmt.formats.recordio import KeySet

    keys = KeySet()
    for key in reversed(range(100_000)):
        keys.add(key)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key in range(100_000, 200_000):
            keys.add(key)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 << 10  # a bit per key (a set would take megabytes)
