"""The fast paths of a pass-through pack: the framed record made where the payload is
made, ``memmem`` for the magic, the lean file read, early writeback. Each must give exactly
what the plain way gives."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgfmt import _libc, storage
from imgfmt.errors import ImgfmtError
from imgfmt.formats import lst
from imgfmt.formats.base import Item
from imgfmt.formats.recordio import (
    MAGIC_BYTES,
    MAX_PAYLOAD,
    RecordIO,
    RecordReader,
    RecordWriter,
    encode_record,
    frame_record,
    image_record_head,
    unpack_image_record,
)
from imgfmt.images import ImageOptions
from imgfmt.ops.pack import pack

MAGIC_WORD = 0xCED7230A


def plain(head: bytes, body: bytes) -> bytes:
    return b"".join(encode_record(head + body))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xd8\xff",
        b"\xff\xd8\xff\xe0" * 10,
        MAGIC_BYTES,  # the whole body is the magic, at an aligned offset
        b"abcd" + MAGIC_BYTES + b"efgh",  # aligned inside
        b"abc" + MAGIC_BYTES + b"efgh",  # unaligned: not escaped
        MAGIC_BYTES * 3 + b"x",  # consecutive pieces, empty between them
        b"ab" + MAGIC_BYTES + b"cd" + MAGIC_BYTES,  # unaligned then aligned
        os.urandom(4093),
    ],
)
@pytest.mark.parametrize("labels", [3.0, (1.0, 2.0, 5.0)])
def test_frame_record_is_the_plain_framing(body: bytes, labels: float | tuple[float, ...]) -> None:
    head = image_record_head(labels, 7)
    assert frame_record(head, body) == plain(head, body)


def test_a_magic_in_the_header_itself_is_escaped() -> None:
    # An id whose low word is the magic puts it at an aligned offset of the header.
    head = image_record_head(1.0, MAGIC_WORD)
    assert MAGIC_BYTES in head
    framed = frame_record(head, b"jpeg bytes")
    assert framed == plain(head, b"jpeg bytes")
    assert framed.count(MAGIC_BYTES) == 2  # split in two pieces


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.lists(st.integers(0, 15), max_size=4), st.integers(0, 3))
def test_frame_record_matches_for_any_body(data: bytes, spots: list[int], shift: int) -> None:
    body = bytearray(data)
    for spot in spots:  # plant magics at aligned and unaligned offsets
        at = min(spot * 4 + shift, len(body))
        body[at:at] = MAGIC_BYTES
    head = image_record_head(2.0, 11)
    assert frame_record(head, bytes(body)) == plain(head, bytes(body))


def test_too_large_a_payload_is_refused_as_before() -> None:
    with pytest.raises(ImgfmtError, match="2\\*\\*29 - 1"):
        frame_record(b"", bytes(MAX_PAYLOAD + 1))


def test_recordio_encode_and_writer_give_what_mxnet_pack_and_write_give(tmp_path: Path) -> None:
    """The format's encode returns framed records and its writer writes them as they are:
    the file is the one ``RecordWriter.write`` of ``mxnet.recordio.pack`` payloads gives."""
    images = [b"\xff\xd8\xff" + bytes([i]) * (i * 37) + MAGIC_BYTES for i in range(12)]
    items = [Item(i, (float(i % 3),), image, f"{i}.jpg") for i, image in enumerate(images)]
    fmt = RecordIO()
    with storage.AtomicOutputs() as outputs:
        writer = fmt.writer(str(tmp_path / "a.rec"), outputs)
        for item in items:
            writer.append(fmt.encode(item), item)
        writer.finish()
    rec, idx = (tmp_path / "b.rec").open("wb"), (tmp_path / "b.idx").open("w")
    with rec, idx:
        plain_writer = RecordWriter(rec, idx)
        for item in items:
            plain_writer.write(image_record_head(item.label, item.index) + item.image, item.index)
    assert (tmp_path / "a.rec").read_bytes() == (tmp_path / "b.rec").read_bytes()
    assert (tmp_path / "a.idx").read_text() == (tmp_path / "b.idx").read_text()
    with RecordReader(str(tmp_path / "a.rec")) as reader:
        read = [unpack_image_record(r.payload)[1] for r in reader]
    assert read == images


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(min_size=1, max_size=6))
def test_contains_is_the_in_operator(data: bytes, needle: bytes) -> None:
    big = data * (_libc.MEMMEM_FROM // max(1, len(data)) + 1)  # long enough for memmem
    assert _libc.contains(big, needle) == (needle in big)
    assert _libc.contains(data, needle) == (needle in data)
    assert _libc.contains(data + needle, needle)
    assert _libc.contains(bytearray(data), needle) == (needle in data)  # no memmem: `in`


def test_contains_without_the_c_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_libc, "_functions", lambda: (None, None))
    assert _libc.contains(b"xx" + MAGIC_BYTES, MAGIC_BYTES)
    assert not _libc.contains(b"xx", MAGIC_BYTES)


def test_read_local_reads_what_open_reads(tmp_path: Path) -> None:
    for size in (0, 1, 4096, 1 << 17):
        path = tmp_path / f"{size}.bin"
        path.write_bytes(os.urandom(size))
        assert storage.read_local(str(path)) == path.read_bytes()
    # A file without a size (the kernel's files): read to the end all the same.
    status = storage.read_local("/proc/self/status") if Path("/proc/self").exists() else b"x"
    assert status
    with pytest.raises(IsADirectoryError):
        storage.read_local(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        storage.read_local(str(tmp_path / "missing"))


def test_writeback_is_started_over_the_whole_file_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ranges: list[tuple[int, int]] = []
    monkeypatch.setattr(storage, "WRITEBACK_STEP", 1 << 16)
    monkeypatch.setattr(_libc, "start_writeback", lambda fd, start, n: ranges.append((start, n)))
    data = os.urandom(1 << 20)
    with storage.AtomicOutputs() as outputs:
        handle = outputs.open(str(tmp_path / "out.bin"), "wb")
        for at in range(0, len(data), 5000):
            handle.write(data[at : at + 5000])
    assert (tmp_path / "out.bin").read_bytes() == data
    assert ranges and ranges[0][0] == 0
    for (start, n), (following, _) in zip(ranges, ranges[1:]):
        assert following == start + n  # contiguous, nothing asked twice
    assert ranges[-1][0] + ranges[-1][1] <= len(data)


def test_pass_through_pack_parses_its_list_twice_not_three_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pass checks the labels, one packs: nothing counts the list on the side."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    lines = []
    for i in range(5):
        (folder / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0" + struct.pack(">H", 2) + bytes(i))
        lines.append(f"{i}\t{i % 2}.000000\t{i}.jpg\n")
    (tmp_path / "x.lst").write_text("".join(lines))
    passes = []  # lists read to their end (the root check reads only the first lines)
    real = lst.read_lst

    def read_lst(path: str) -> Iterator[lst.LstEntry]:
        yield from real(path)
        passes.append(path)

    monkeypatch.setattr(lst, "read_lst", read_lst)
    result = pack(str(tmp_path / "x.lst"), str(tmp_path / "x.rec"), root=str(folder),
                  options=ImageOptions(pass_through=True))  # fmt: skip
    assert result.packed == 5
    assert len(passes) == 2


# ----------------------------------------------------------------- JSON Lines fast path

_labels = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.lists(st.integers(-5, 1000).map(float), min_size=1, max_size=3),
)


@st.composite
def jsonl_lines(draw: st.DrawFn) -> bytes:
    """A line as imgfmt writes it, often damaged: a byte changed, dropped or added,
    whitespace or CR at the end, keys reordered, the base64 or its padding spoiled."""
    from imgfmt.formats.jsonlines import format_jsonl_line

    index = draw(st.integers(0, 2**64 - 1))
    path = draw(st.text(max_size=12))
    image = draw(st.binary(max_size=40))
    try:
        line = format_jsonl_line(index, draw(_labels), path or "p", image).encode()
    except ImgfmtError:
        line = b'{"id":1,"path":"p","label":1,"image":"AAAA"}\n'
    edits = ["none", "set", "drop", "insert", "tail", "pad", "quad", "order"]
    edit = draw(st.sampled_from(edits))
    at = draw(st.integers(0, max(0, len(line) - 1)))
    byte = bytes([draw(st.integers(0, 255))])
    if edit == "set":
        line = line[:at] + byte + line[at + 1 :]
    elif edit == "drop":
        line = line[:at] + line[at + 1 :]
    elif edit == "insert":
        line = line[:at] + draw(st.sampled_from([byte, b"=", b'"', b"\\", b" ", b"\n"])) + line[at:]
    elif edit == "tail":
        line = line.rstrip(b"\n") + draw(st.sampled_from([b"\r\n", b"  \n", b"\t", b""]))
    elif edit == "pad":
        line = line.replace(b'"}', draw(st.sampled_from([b'="}', b'=="}', b'A="}', b'==="}'])))
    elif edit == "quad" and line.endswith(b'"}\n') and len(line) > 50:
        quad = draw(
            st.sampled_from([b"A===", b"====", b"AA=A", b"A=A=", b"AAA=", b"AA==", rb"A\u0041"])
        )
        line = line[:-7] + quad + line[-3:]
    elif edit == "order":
        line = line.replace(b'{"id":', b'{"x":0,"id":')
    return line


def _checked(lines: list[bytes], decode: bool, fast: bool) -> list[object]:
    from imgfmt.formats import jsonlines

    real = jsonlines._canonical_fields
    jsonlines._canonical_fields = real if fast else (lambda raw: None)  # type: ignore[assignment]
    try:
        return list(jsonlines.check_jsonl(lines, decode=decode))
    finally:
        jsonlines._canonical_fields = real


@settings(max_examples=600, deadline=None)
@given(st.lists(jsonl_lines(), min_size=1, max_size=3))
def test_canonical_lines_read_as_the_full_parse_reads_them(lines: list[bytes]) -> None:
    """Whatever the line, the fast path finds the same entry and the same problems as
    ``json.loads`` and ``b64decode`` of the whole line (ids already used included)."""
    assert _checked(lines, True, True) == _checked(lines, True, False)
    fast, full = _checked(lines, False, True), _checked(lines, False, False)
    assert [(n, p) for n, _e, p in fast] == [(n, p) for n, _e, p in full]
    for (_n, ours, _p), (_m, theirs, _q) in zip(fast, full):
        assert (ours is None) == (theirs is None)


def test_verify_without_decode_takes_the_fast_path_and_still_finds_bad_base64() -> None:
    from imgfmt.formats.jsonlines import check_jsonl

    good = b'{"id":0,"path":"a.jpg","label":1,"image":"/9j/4AA="}\n'
    bad = b'{"id":1,"path":"b.jpg","label":1,"image":"/9j/4A*="}\n'
    empty = b'{"id":2,"path":"c.jpg","label":1,"image":""}\n'
    checked = list(check_jsonl([good, bad, empty], decode=False))
    assert checked[0][1] is not None and checked[0][1].image == b"" and not checked[0][2]
    assert checked[1][2] and "not valid base64" in checked[1][2][0][1]
    assert checked[2][2] == [("image", '"image" is empty (0 bytes)')]
    decoded = list(check_jsonl([good], decode=True))
    assert decoded[0][1] is not None and decoded[0][1].image == b"\xff\xd8\xff\xe0\x00"


def test_write_file_writes_whole_files_and_replaces_what_was_there(tmp_path: Path) -> None:
    target = tmp_path / "a.jpg"
    target.write_bytes(b"old content, longer than the new one")
    storage.write_file(str(target), b"new")
    assert target.read_bytes() == b"new"
    big = os.urandom(3 << 20)
    storage.write_file(str(tmp_path / "big.bin"), big)
    assert (tmp_path / "big.bin").read_bytes() == big
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "big.bin"]  # no temporary
    with pytest.raises(ImgfmtError, match="cannot write"):
        storage.write_file(str(tmp_path / "missing" / "x.jpg"), b"x")


# ----------------------------------------------------------------- unpack and symlinks

JPEG = b"\xff\xd8\xff\xe0" + bytes(60) + b"\xff\xd9"


def _one_record(tmp_path: Path) -> Path:
    from imgfmt.formats.recordio import RecordFileWriter, pack_image_record

    rec = tmp_path / "one.rec"
    with RecordFileWriter(str(rec)) as out:
        out.write(pack_image_record(0.0, 5, JPEG), key=5)
    return rec


def test_unpack_refuses_a_class_folder_that_links_out_of_outdir(tmp_path: Path) -> None:
    from imgfmt.ops.unpack import unpack

    rec, outside = _one_record(tmp_path), tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "0").symlink_to(outside)  # the class folder of label 0
    with pytest.raises(ImgfmtError, match="refusing to write outside"):
        unpack(str(rec), str(tmp_path / "out"))
    assert list(outside.iterdir()) == []


def test_unpack_replaces_a_link_at_a_file_name_and_never_writes_through_one(
    tmp_path: Path,
) -> None:
    from imgfmt.ops.unpack import unpack

    rec, secret = _one_record(tmp_path), tmp_path / "secret.txt"
    secret.write_text("keep me")
    folder = tmp_path / "out" / "0"
    folder.mkdir(parents=True)
    (folder / "5.jpg").symlink_to(secret)  # the image's own name: renamed over
    unpack(str(rec), str(tmp_path / "out"))
    assert not (folder / "5.jpg").is_symlink() and (folder / "5.jpg").read_bytes() == JPEG
    assert secret.read_text() == "keep me"
    # A link at the temporary name is removed, not followed: the image is written.
    (folder / "5.jpg").unlink()
    (folder / (storage.TEMP_PREFIX + "5.jpg")).symlink_to(secret)
    unpack(str(rec), str(tmp_path / "out"))
    assert (folder / "5.jpg").read_bytes() == JPEG and secret.read_text() == "keep me"
    assert not (folder / (storage.TEMP_PREFIX + "5.jpg")).exists()


@pytest.mark.parametrize("at", [4096, 8192 + 4, 40_000])
def test_frame_record_escapes_a_magic_found_by_memmem(at: int) -> None:
    """Bodies of 4 KiB and more are scanned by memmem first: a magic there is escaped."""
    body = bytearray(os.urandom(50_000).replace(MAGIC_BYTES, b"xxxx"))
    body[at : at + 4] = MAGIC_BYTES
    head = image_record_head(1.0, 3)
    framed = frame_record(head, bytes(body))
    assert framed == plain(head, bytes(body))
    assert framed.count(MAGIC_BYTES) == 2  # two pieces


@pytest.mark.parametrize(
    "line, check",
    [
        (b'{"id":' + b"1" * 5000 + b',"path":"a.jpg","label":1,"image":"/9j/4AA="}\n', "json"),
        (b'{"id":18446744073709551616,"path":"a.jpg","label":1,"image":"/9j/4AA="}\n', "id"),
        (b'{"id":1,"path":"a.jpg","label":' + b"9" * 400 + b',"image":"/9j/4AA="}\n', "label"),
        (b'{"id":1,"path":"a.jpg","label":[2,' + b"9" * 400 + b'],"image":"/9j/4AA="}\n', "label"),
    ],
)
def test_numbers_too_large_are_problems_not_crashes(line: bytes, check: str) -> None:
    from imgfmt.formats.jsonlines import check_jsonl

    for decode in (True, False, "defer"):
        ((_number, entry, problems),) = list(check_jsonl([line], decode=decode))
        assert entry is None and [found for found, _message in problems] == [check]


def test_a_link_or_a_fifo_at_the_temporary_name_is_replaced_not_used(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"keep")
    target = tmp_path / "a.jpg"
    temp = tmp_path / (storage.TEMP_PREFIX + "a.jpg")
    os.link(secret, temp)  # a hard link: O_TRUNC on it would empty the secret
    storage.write_file(str(target), b"image")
    assert target.read_bytes() == b"image" and secret.read_bytes() == b"keep"
    os.mkfifo(temp)  # a FIFO: opening it to write would wait for a reader forever
    storage.write_file(str(target), b"again")
    assert target.read_bytes() == b"again" and not temp.exists()


def test_pass_through_reads_local_files_on_threads_only_when_workers_are_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One thread by default (faster on a local disk); -j N: N reader threads (a network
    file system, where each file waits on the network)."""
    from imgfmt.engines import local

    made: list[tuple[int, bool]] = []
    real = local.BatchPool

    def pool(func, workers, crashed, *, threads=False, decoders=False):  # type: ignore[no-untyped-def]
        made.append((workers, threads))
        return real(func, workers, crashed, threads=threads, decoders=decoders)

    monkeypatch.setattr(local, "BatchPool", pool)
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "0.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(20))
    (tmp_path / "x.lst").write_text("0\t1.000000\t0.jpg\n")
    for workers, expected in ((None, (1, True)), (3, (3, True))):
        made.clear()
        options = ImageOptions(pass_through=True)
        pack(str(tmp_path / "x.lst"), str(tmp_path / f"{workers}.rec"), root=str(folder),
             options=options, workers=workers)  # fmt: skip
        assert made == [expected]
