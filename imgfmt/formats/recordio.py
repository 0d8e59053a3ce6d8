"""MXNet/dmlc RecordIO: framing, the image record header, and the ``.idx`` index.

Byte layout (dmlc-core ``include/dmlc/recordio.h``, ``src/recordio.cc``)::

    record  := piece+                       one payload, split where it holds the magic
    piece   := u32 magic | u32 lrec | data | zero padding to a 4-byte boundary
    lrec    := cflag << 29 | len(data)      cflag 0 whole, 1 first, 2 middle, 3 last

The writer scans the payload at offsets 0, 4, 8, ... for the magic; at each hit it
ends a piece (the magic itself is dropped, the reader puts it back). Everything is
little-endian.

Framing is separate from decoding: ``RecordReader`` yields raw payloads,
``unpack_image_record`` turns one into an ``IRHeader`` and image bytes.
"""

from __future__ import annotations

import io
import logging
import math
import numbers
import os
import struct
from bisect import bisect_right
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import IO, Any, NamedTuple

from imgfmt import _libc, s3, storage
from imgfmt.errors import FormatError, ImageError, ImgfmtError, StorageError, UsageError
from imgfmt.formats.base import (
    IDS_HINT,
    CheckContext,
    DatasetWriter,
    FileWriter,
    Format,
    IdFilter,
    IdSelection,
    Item,
    Location,
    OnDamage,
    ShardIndex,
    SplitSource,
    input_changed,
    label_class,
)
from imgfmt.payloads import MXNET_READERS
from imgfmt.storage import IO_BUFFER_SIZE, AtomicFileWriter, AtomicOutputs, open_input, sibling

log = logging.getLogger(__name__)

#: dmlc ``RecordIOWriter::kMagic``; on disk as bytes ``0a 23 d7 ce``.
MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
#: Piece head: magic, then lrec.
_HEAD = struct.Struct("<II")
HEAD_SIZE = _HEAD.size
#: ``lrec`` keeps the length in its low 29 bits and the continuation flag in the top 3.
LENGTH_BITS = 29
LENGTH_MASK = (1 << LENGTH_BITS) - 1
#: dmlc ``CHECK(size < (1 << 29U))``: the largest payload a record can hold is 2**29 - 1.
MAX_PAYLOAD = (1 << LENGTH_BITS) - 1
CFLAG_WHOLE, CFLAG_FIRST, CFLAG_MIDDLE, CFLAG_LAST = 0, 1, 2, 3

#: MXNet ``IRHeader`` (``python/mxnet/recordio.py``: ``_IR_FORMAT = 'IfQQ'``, native order,
#: little-endian on every platform MXNet ships): flag u32, label f32, id u64, id2 u64.
_IR = struct.Struct("<IfQQ")
IR_HEADER_SIZE = _IR.size

#: im2rec and MXNet write the .idx as ``'%s\t%d\n' % (key, offset)``.
IDX_SUFFIX = ".idx"
#: The index over every shard of a sharded dataset (``data/train.combined.idx``), the one
#: index NVIDIA DALI reads several ``.rec`` files through.
COMBINED_IDX_SUFFIX = ".combined.idx"


def _pad(length: int) -> int:
    return -length % 4


# --------------------------------------------------------------------------- framing


def encode_record(payload: bytes | bytearray | memoryview) -> list[bytes | memoryview]:
    """Frame one payload as dmlc ``RecordIOWriter::WriteRecord`` does; returns the chunks.

    The chunks, concatenated, are the record's exact bytes (padding included).
    """
    data = memoryview(payload).cast("B")
    size = len(data)
    if size > MAX_PAYLOAD:
        raise ImgfmtError(
            f"record payload is {size} bytes; RecordIO holds at most {MAX_PAYLOAD} (2**29 - 1)",
            hint="resize or re-encode the image smaller",
        )
    raw = bytes(data) if not isinstance(payload, bytes) else payload
    chunks: list[bytes | memoryview] = []
    start = 0  # where the current piece begins
    hit = raw.find(MAGIC_BYTES)
    while hit != -1:
        if hit % 4 == 0:
            flag = CFLAG_FIRST if start == 0 else CFLAG_MIDDLE
            chunks.append(_HEAD.pack(MAGIC, (flag << LENGTH_BITS) | (hit - start)))
            if hit != start:
                chunks.append(data[start:hit])
            start = hit + 4
            hit = raw.find(MAGIC_BYTES, start)
        else:
            # Unaligned occurrences are not escaped (a reader never looks there).
            hit = raw.find(MAGIC_BYTES, hit + 1)
    flag = CFLAG_LAST if start != 0 else CFLAG_WHOLE
    chunks.append(_HEAD.pack(MAGIC, (flag << LENGTH_BITS) | (size - start)))
    if size != start:
        chunks.append(data[start:])
    if _pad(size):
        chunks.append(b"\0" * _pad(size))
    return chunks


def aligned_magic_offset(data: bytes | bytearray) -> int | None:
    """The first offset (a multiple of 4) where ``data`` holds the magic, or None."""
    if not _libc.contains(data, MAGIC_BYTES):  # nearly always: one fast scan
        return None
    hit = data.find(MAGIC_BYTES)
    while hit != -1:
        if hit % 4 == 0:
            return hit
        hit = data.find(MAGIC_BYTES, hit + 1)
    return None


_PADDING = b"\0\0\0"


def frame_record(head: bytes, body: bytes | bytearray) -> bytes:
    """The record of the payload ``head + body`` framed whole, as one ``bytes``: equal to
    ``b"".join(encode_record(head + body))``, made with one copy of ``body`` instead of
    three. ``len(head)`` must be a multiple of 4 (an image header is), so that the aligned
    words of the payload are those of ``head`` and those of ``body``.

    RecordIO's ``encode`` frames here, where the payloads are made (in the decoding
    workers, when there are), and the writer writes what it gets
    (``RecordWriter.write_framed``).
    """
    size = len(head) + len(body)
    magic = aligned_magic_offset(head) is not None or aligned_magic_offset(body) is not None
    if len(head) % 4 or size > MAX_PAYLOAD or magic:
        return b"".join(encode_record(head + bytes(body)))
    return b"".join((_HEAD.pack(MAGIC, size), head, body, _PADDING[: _pad(size)]))


class Record(NamedTuple):
    """One raw record: its number in the file (0-based), byte offset, and payload."""

    number: int
    offset: int
    payload: bytes


@dataclass(frozen=True)
class Damage:
    """Why a record could not be read, at which byte (its head, or a later piece's), and
    what to do; ``truncated`` when the file ends inside it."""

    offset: int
    message: str
    hint: str | None = None
    truncated: bool = False


_ZERO_PADDING = b"\0\0\0"
_TRUNCATED = "the file is truncated; `imgfmt verify` lists the records still intact"


def read_pieces(stream: IO[bytes], start: int, size: int) -> tuple[bytes, int, int] | Damage:
    """The record whose first piece starts at ``start`` (the stream is there), in a file of
    ``size`` bytes: ``(payload, next offset, offset of non-zero padding or -1)``, or the
    :class:`Damage` that stops it. The one reader of RecordIO framing: ``read_record``
    raises its damage, ``verify`` reports it and resynchronises. It never reads past the end
    of the file, so a damaged length cannot make it allocate 512 MB."""
    pieces: list[bytes] = []
    pos = start
    first = True
    bad_padding = -1
    while True:
        if size - pos < HEAD_SIZE:
            message = f"file ends inside a record head ({max(size - pos, 0)} of {HEAD_SIZE} bytes)"
            return Damage(pos, message, _TRUNCATED, truncated=True)
        head = stream.read(HEAD_SIZE)
        if len(head) < HEAD_SIZE:  # the file shrank while we read it
            message = f"file ends inside a record head ({len(head)} of {HEAD_SIZE} bytes)"
            return Damage(pos, message, _TRUNCATED, truncated=True)
        magic, lrec = _HEAD.unpack(head)
        if magic != MAGIC:
            return Damage(
                pos,
                f"bad magic 0x{magic:08x} (expected 0x{MAGIC:08x})",
                "not a RecordIO file, or damaged here; `imgfmt verify` resynchronises",
            )
        cflag, length = lrec >> LENGTH_BITS, lrec & LENGTH_MASK
        if first and cflag not in (CFLAG_WHOLE, CFLAG_FIRST):
            return Damage(
                pos,
                f"record starts with a continuation piece (cflag {cflag})",
                "an index offset or a previous record is damaged",
            )
        if not first and cflag not in (CFLAG_MIDDLE, CFLAG_LAST):
            return Damage(
                pos,
                f"expected a continuation piece, found cflag {cflag}",
                "the record's pieces are out of sequence; the file is damaged",
            )
        pad = _pad(length)
        left = size - pos - HEAD_SIZE
        if length + pad > left:
            if length <= left:
                what = f"the padding after its {length} bytes is cut short"
            else:
                what = f"piece of {length} bytes has only {left}"
            return Damage(
                pos,
                f"file ends inside a record: {what}",
                "the file is truncated, or this length is damaged; `imgfmt verify` lists the "
                "records still intact",
                truncated=True,
            )
        data = stream.read(length + pad)
        if len(data) < length + pad:  # the file shrank while we read it
            return Damage(pos, "file ends inside a record", _TRUNCATED, truncated=True)
        if pad:
            if data[length:] != _ZERO_PADDING[:pad] and bad_padding < 0:
                bad_padding = pos + HEAD_SIZE + length
            data = data[:length]
        pieces.append(data)
        pos += HEAD_SIZE + length + pad
        if cflag in (CFLAG_WHOLE, CFLAG_LAST):
            break
        pieces.append(MAGIC_BYTES)
        first = False
    payload = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    return payload, pos, bad_padding


def read_record(
    stream: IO[bytes], offset: int, number: int, name: str, size: int | None = None
) -> tuple[bytes, int] | None:
    """Read the record whose first piece starts at ``offset`` (the stream is positioned there).

    Returns ``(payload, next_offset)``, or ``None`` at a clean end of file. Damage raises
    ``FormatError`` naming ``name``, the record number and the byte offset of the bad piece.
    ``size`` is the file's size (found from the stream when not given).
    """
    if size is None:
        size = storage.input_size(stream)
    if offset >= size:
        return None
    result = read_pieces(stream, offset, size)
    if isinstance(result, Damage):
        # A read through the index does not know the record's number (-1).
        at = result.offset
        where = f"record {number} at byte {at}" if number >= 0 else f"record at byte {at}"
        raise FormatError(result.message, path=name, where=where, hint=result.hint)
    payload, next_offset, _bad_padding = result
    return payload, next_offset


# --------------------------------------------------------------------------- index


def parse_idx(lines: Iterator[str] | Sequence[str], name: str) -> dict[int, int]:
    """Parse ``key<TAB>offset`` lines into ``{key: offset}``, in file order.

    Keys must be unique integers (MXNet's reader needs int keys); offsets non-negative
    multiples of 4 (every record starts aligned).
    """
    index: dict[int, int] = {}
    for number, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        fields = text.split("\t")
        if len(fields) != 2:
            raise FormatError(
                f"expected 'key<TAB>offset', found {text[:60]!r}",
                path=name,
                where=f"line {number}",
                hint="rebuild the index with `imgfmt verify --fix-idx`",
            )
        try:
            key, offset = int(fields[0]), int(fields[1])
        except ValueError as err:
            raise FormatError(
                f"key and offset must be integers, found {text[:60]!r}",
                path=name,
                where=f"line {number}",
                hint="rebuild the index with `imgfmt verify --fix-idx`",
            ) from err
        if offset < 0 or offset % 4:
            raise FormatError(
                f"offset {offset} cannot be a record head (records start at multiples of 4)",
                path=name,
                where=f"line {number}",
                hint="rebuild the index with `imgfmt verify --fix-idx`",
            )
        if key in index:
            raise FormatError(
                f"key {key} appears twice",
                path=name,
                where=f"line {number}",
                hint="rebuild the index with `imgfmt verify --fix-idx`",
            )
        index[key] = offset
    return index


def read_idx(path: str) -> dict[int, int]:
    with open_input(path, "r") as handle:
        try:
            return parse_idx(handle, path)
        except UnicodeDecodeError as err:
            raise FormatError(
                f"not UTF-8 text ({err.reason})",
                path=path,
                hint="this is not an index; rebuild it with `imgfmt verify --fix-idx`",
            ) from err


def format_idx_line(key: int, offset: int) -> str:
    return f"{key}\t{offset}\n"


# --------------------------------------------------------------------------- writer


class KeySet:
    """A set of non-negative integers (record keys, ``.lst`` indices) that stays small for
    the keys datasets use: a bit each while they are dense (0..N-1 in any order: 2.5 KB for
    20,000 keys, where a ``set`` takes 2 MB, and a writer's memory would grow with the
    dataset), a ``set`` for the keys too far apart for that."""

    #: The bitmap grows to cover a key only while it stays within this many bytes, or
    #: within DENSE_BITS_PER_KEY bits per key held, whichever is more.
    DENSE_MIN_BYTES = 1 << 16
    DENSE_BITS_PER_KEY = 32

    def __init__(self) -> None:
        self._bits = bytearray()
        self._sparse: set[int] = set()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: object) -> bool:
        if isinstance(key, int) and 0 <= key < len(self._bits) * 8:
            if self._bits[key >> 3] & (1 << (key & 7)):
                return True
        return key in self._sparse

    def add(self, key: int) -> bool:
        """Add ``key``; False if it was there already."""
        if key in self:
            return False
        self._count += 1
        if key >= 0:
            need = (key >> 3) + 1
            if need > len(self._bits):
                limit = max(self.DENSE_MIN_BYTES, self._count * self.DENSE_BITS_PER_KEY // 8)
                if need <= limit:
                    # At least doubling, so that keys arriving in order grow it rarely.
                    grow = max(need, min(2 * len(self._bits), limit)) - len(self._bits)
                    self._bits.extend(bytes(grow))
            if need <= len(self._bits):
                self._bits[key >> 3] |= 1 << (key & 7)
                return True
        self._sparse.add(key)
        return True


class RecordWriter:
    """Append records to a binary stream, and their index lines to a text stream.

    Framing only: it knows nothing of files, temporary names or images. Keys must be
    unique; a record without a key gets its record number.
    """

    def __init__(self, stream: IO[bytes], index: IO[str] | None = None, name: str = "<stream>"):
        self._stream = stream
        self._index = index
        self.name = name
        self.bytes_written = 0
        self.records_written = 0
        self._keys = KeySet()

    def write(self, payload: bytes | bytearray | memoryview, key: int | None = None) -> int:
        """Write one record; returns the byte offset of its head."""
        return self._put(encode_record(payload), key)

    def write_framed(self, record: bytes, key: int | None = None) -> int:
        """Write one record framed already (:func:`frame_record`); returns its offset."""
        return self._put((record,), key)

    def _put(self, chunks: Iterable[bytes | memoryview], key: int | None) -> int:
        if key is None:
            key = self.records_written
        if key in self._keys:
            raise FormatError(
                f"index key {key} is used twice",
                path=self.name,
                hint="keys (the .lst index column) must be unique",
            )
        offset = self.bytes_written
        write = self._stream.write
        for chunk in chunks:
            write(chunk)
            self.bytes_written += len(chunk)
        if self._index is not None:
            self._index.write(format_idx_line(key, offset))
        self._keys.add(key)
        self.records_written += 1
        return offset


class RecordFileWriter(AtomicFileWriter, RecordWriter):
    """A ``.rec`` and its ``.idx`` that appear at their paths only when complete.

    >>> with RecordFileWriter("train.rec") as out:
    ...     out.write(pack_image_record(3.0, 0, jpeg_bytes), key=0)

    On an exception, or if no record was written (an empty .idx crashes some readers),
    neither file is left behind.
    """

    def __init__(self, path: str, idx_path: str | None = None, *, write_index: bool = True):
        self.path = path
        self.idx_path = (idx_path or sibling(path, IDX_SUFFIX)) if write_index else None
        AtomicFileWriter.__init__(self)
        stream = self._outputs.open(path, "wb")
        try:
            index = self._outputs.open(self.idx_path, "w") if self.idx_path else None
        except BaseException:
            self._outputs.abort()  # the .rec's temporary file must not stay behind
            raise
        RecordWriter.__init__(self, stream, index, name=path)


# --------------------------------------------------------------------------- reader

#: Bytes read at once while searching for the next record head after damage.
RESYNC_CHUNK = 1 << 20


def find_record_head(stream: IO[bytes], start: int, size: int) -> int | None:
    """The first record head at or after ``start``: an aligned magic whose next word has
    cflag 0 or 1 (docs/formats.md section 1); None if there is none before the end."""
    window = start + (-start % 4)
    while window < size:
        stream.seek(window)
        # 4 bytes more than the step, so a magic in the window's last word has its lrec.
        buf = stream.read(RESYNC_CHUNK + 4)
        hit = buf.find(MAGIC_BYTES)
        while hit != -1 and hit < RESYNC_CHUNK:
            if hit % 4 == 0 and hit + HEAD_SIZE <= len(buf):
                lrec = int.from_bytes(buf[hit + 4 : hit + 8], "little")
                if lrec >> LENGTH_BITS in (CFLAG_WHOLE, CFLAG_FIRST):
                    return window + hit
            hit = buf.find(MAGIC_BYTES, hit + 1)
        window += RESYNC_CHUNK
    return None


class RecordReader:
    """Read a ``.rec`` sequentially, or by key through its ``.idx``.

    Memory stays flat: records are read one at a time through a buffered stream.
    The file is opened lazily and reopened in a forked or spawned process, so one
    reader object can be handed to worker processes (pickling drops the handle).

    ``path`` may be an ``s3://`` URI: iterating streams one GET; a read through the index
    is one ranged GET of exactly the record (from its offset to the next offset in the
    index, or to the end of the object for the last).
    """

    def __init__(self, path: str, idx_path: str | None = None, *, use_index: bool = True):
        self.path = path
        default_idx = sibling(path, IDX_SUFFIX)
        if idx_path is None and use_index and storage.is_file(default_idx):
            idx_path = default_idx
        self.idx_path = idx_path if use_index else None
        self._index: dict[int, int] | None = None
        self._index_pending: Future[dict[int, int]] | None = None  # prefetch_index
        self._offsets: list[int] | None = None  # the index's offsets, sorted
        self._stream: IO[bytes] | None = None
        self._pid = -1

    # -- process-safe lazy handle
    def _handle(self) -> IO[bytes]:
        if self._stream is None or self._pid != os.getpid():
            self._stream = open_input(self.path, "rb")
            self._pid = os.getpid()
        return self._stream

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_stream"] = None
        state["_pid"] = -1
        state["_index_pending"] = None  # a Future does not pickle; the index is read again
        return state

    def close(self) -> None:
        if self._stream is not None and self._pid == os.getpid():
            self._stream.close()
        self._stream = None

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sequential
    def __iter__(self) -> Iterator[Record]:
        """Every record in file order. Raises ``FormatError`` at the first damage."""
        # A private handle, so that iteration and random access do not move each other.
        with open_input(self.path, "rb") as stream:
            size = storage.input_size(stream)
            offset, number = 0, 0
            while True:
                result = read_record(stream, offset, number, self.path, size)
                if result is None:
                    return
                payload, next_offset = result
                yield Record(number, offset, payload)
                offset, number = next_offset, number + 1

    def salvage(self, on_damage: Callable[[FormatError], None]) -> Generator[Record, None, None]:
        """Every intact record in file order, whatever the damage: a record that cannot be
        read is passed to ``on_damage`` and skipped, and reading resumes at the next record
        head (found as ``imgfmt verify`` finds it). Record numbers count the damaged ones."""
        with open_input(self.path, "rb") as stream:
            size = storage.input_size(stream)
            offset, number = 0, 0
            while True:
                try:
                    result = read_record(stream, offset, number, self.path, size)
                except FormatError as err:
                    err.offset = offset
                    on_damage(err)
                    resume = find_record_head(stream, offset + 4, size)
                    if resume is None:
                        return
                    stream.seek(resume)
                    offset, number = resume, number + 1
                    continue
                if result is None:
                    return
                payload, next_offset = result
                yield Record(number, offset, payload)
                offset, number = next_offset, number + 1

    # -- random access
    @property
    def index(self) -> dict[int, int]:
        """``{key: offset}`` from the ``.idx``; ``FormatError`` if there is none."""
        if self._index is None:
            if self.idx_path is None:
                raise FormatError(
                    "no index: random access needs the .idx beside the .rec",
                    path=self.path,
                    hint="rebuild it with `imgfmt verify --fix-idx`",
                )
            pending, self._index_pending = self._index_pending, None
            self._index = pending.result() if pending is not None else read_idx(self.idx_path)
        return self._index

    def prefetch_index(self) -> None:
        """Start reading a remote ``.idx`` on a thread: a sequential read that checks the
        index at its end (``RecordIO.read``) then finds it there instead of waiting a
        round trip for it."""
        if self._index is None and self._index_pending is None and self.idx_path is not None:
            if storage.is_s3(self.idx_path):
                self._index_pending = s3.executor().submit(read_idx, self.idx_path)

    def keys(self) -> list[int]:
        return list(self.index)

    def _record_span(self, offset: int) -> int | None:
        """Bytes from ``offset`` to the next indexed record (None: to the end of the file)."""
        if self._offsets is None:
            self._offsets = sorted(set(self.index.values()))
        following = bisect_right(self._offsets, offset)
        return self._offsets[following] - offset if following < len(self._offsets) else None

    def read_at(self, offset: int, number: int = -1) -> bytes:
        """The payload of the record whose head is at ``offset``."""
        if storage.is_s3(self.path) and self.idx_path is not None:
            # One ranged GET of just this record, instead of a stream from here to the end.
            data = storage.read_range(self.path, offset, self._record_span(offset))
            try:
                # The bytes start at ``offset``: the "file" they stand for ends there + len.
                end = offset + len(data)
                found = read_record(io.BytesIO(data), offset, number, self.path, end)
            except FormatError:
                found = None
            if found is not None:
                return found[0]
            # The index does not match the file here: read on as a stream, which reports
            # exactly what is wrong (or finds a record longer than the index says).
        stream = self._handle()
        try:
            stream.seek(offset)
        except (OSError, ValueError) as err:
            raise FormatError(f"cannot seek to byte {offset}", path=self.path) from err
        result = read_record(stream, offset, number, self.path)
        if result is None:
            raise FormatError(
                f"offset {offset} is past the end of the file",
                path=self.path,
                where=f"record {number} at byte {offset}" if number >= 0 else f"byte {offset}",
                hint="the .idx does not match this .rec; rebuild it with `imgfmt verify --fix-idx`",
            )
        return result[0]

    def read_key(self, key: int) -> bytes:
        """The payload of the record indexed under ``key``."""
        try:
            offset = self.index[key]
        except KeyError:
            raise FormatError(
                f"no record with key {key} in the index", path=self.idx_path
            ) from None
        try:
            return self.read_at(offset)
        except FormatError as err:
            err.where = f"key {key}, {err.where}" if err.where else f"key {key}"
            raise

    __getitem__ = read_key


# --------------------------------------------------------------------------- image header


@dataclass(frozen=True)
class IRHeader:
    """MXNet's image record header. ``labels`` holds one label, or all of a multi-label record."""

    flag: int
    labels: tuple[float, ...]
    id: int
    id2: int = 0

    @property
    def label(self) -> float:
        """The first label (the header's own for single-label records)."""
        return self.labels[0] if self.labels else 0.0


def as_float32(value: float) -> float:
    """``value`` as it reads back from a float32 field."""
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def survives_float32(value: float) -> bool:
    """Whether ``value`` reads back unchanged from a float32 (labels are stored as float32)."""
    if not math.isfinite(value):
        return True
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0] == value
    except OverflowError:
        return False


def pack_image_record(
    labels: float | Sequence[float], id: int, image: bytes, id2: int = 0
) -> bytes:
    """Header plus image bytes, as ``mxnet.recordio.pack``.

    A number gives a single-label record (``flag = 0``, label in the header). A sequence
    gives a multi-label record: ``flag = n``, header label 0.0, and the ``n`` float32
    labels before the image bytes (even for n = 1, as MXNet does).
    """
    return image_record_head(labels, id, id2) + image


def image_record_head(labels: float | Sequence[float], id: int, id2: int = 0) -> bytes:
    """What :func:`pack_image_record` puts before the image bytes: the ``IRHeader`` and,
    for a multi-label record, the labels (a multiple of 4 bytes either way)."""
    if not (0 <= id < 2**64 and 0 <= id2 < 2**64):
        raise UsageError(f"id {id} does not fit the record header's u64 field")
    # numbers.Real as mxnet (numbers.Number): numpy scalars are single labels too.
    if isinstance(labels, (int, float, numbers.Real)):
        try:
            return _IR.pack(0, labels, id, id2)
        except (struct.error, OverflowError) as err:
            raise UsageError(f"label {labels!r} does not fit a float32 record header") from err
    values = tuple(float(v) for v in labels)
    try:
        return _IR.pack(len(values), 0.0, id, id2) + struct.pack(f"<{len(values)}f", *values)
    except (struct.error, OverflowError) as err:
        raise UsageError(f"labels {values!r} (id {id}) do not fit float32 / u64 fields") from err


def unpack_image_record(
    payload: bytes, *, path: str | None = None, where: str | None = None
) -> tuple[IRHeader, bytes]:
    """Split a payload into its ``IRHeader`` and the image bytes, as ``mxnet.recordio.unpack``."""
    if len(payload) < IR_HEADER_SIZE:
        raise FormatError(
            f"record of {len(payload)} bytes is shorter than the "
            f"{IR_HEADER_SIZE}-byte image header",
            path=path,
            where=where,
            hint="this is not an image record (made by im2rec / imgfmt pack)",
        )
    flag, label, rec_id, id2 = _IR.unpack_from(payload)
    if flag == 0:
        return IRHeader(0, (label,), rec_id, id2), payload[IR_HEADER_SIZE:]
    end = IR_HEADER_SIZE + 4 * flag
    if end > len(payload):
        raise FormatError(
            f"header says {flag} labels but the record holds only {len(payload) - IR_HEADER_SIZE} "
            "bytes after the header",
            path=path,
            where=where,
            hint="the header flag is damaged",
        )
    labels = struct.unpack_from(f"<{flag}f", payload, IR_HEADER_SIZE)
    return IRHeader(flag, labels, rec_id, id2), payload[end:]


# --------------------------------------------------------------------------- the format


@dataclass(frozen=True)
class RecordIO(Format):
    """MXNet RecordIO: ``.rec`` + ``.idx``, im2rec's records (``IRHeader`` + image file)."""

    name = "recordio"
    extensions = (".rec",)
    summary = "MXNet RecordIO .rec + .idx, as im2rec writes it"
    readers = MXNET_READERS
    float32_labels = True

    def sniff(self, path: str) -> bool:
        from imgfmt.formats import RECORDIO_PROTOBUF, content_format

        return content_format(path) != RECORDIO_PROTOBUF

    def check(self, path: str, ctx: CheckContext) -> None:
        """Framing, padding, headers, labels, the ``.idx`` (``fix_idx`` rebuilds it) and,
        with ``decode``, every image (``imgfmt.formats.recordio_check``). ``path`` may be
        the ``.rec`` or its ``.idx``."""
        from imgfmt.formats.recordio_check import check_recordio

        check_recordio(self, path, ctx)

    def read(self, path: str, on_damage: OnDamage) -> Iterator[Item]:
        """Every record, salvaging past damage (resynchronising on the next record head);
        with an ``.idx``, a file that ends before records its index lists is damage too (a
        cut exactly at a record head reads as a clean end: the index knows better)."""
        with RecordReader(path) as reader:
            yield from self._scan(reader, None, on_damage)

    def indexed_ids(self, path: str) -> list[int] | None:
        """The ids of the ``.idx`` beside ``path``, in record order; None without one."""
        with RecordReader(path) as reader:
            if reader.idx_path is None:
                return None
            index = reader.index
            return sorted(index, key=index.__getitem__)

    def read_ids(
        self, path: str, ids: IdSelection | Iterable[int], on_damage: OnDamage
    ) -> Iterator[Item]:
        """With an ``.idx``, exactly the records selected, in the order asked (a range's in
        ascending id order), each read at its offset (one ranged GET on S3); ranges are
        resolved against the index's ids, without reading the file. A single id the index
        lacks, or a range with none of its ids in it, is a ``UsageError`` before anything
        is read. Without one, the file is scanned (see :class:`IdFilter`)."""
        selection = IdSelection.of(ids)
        with RecordReader(path) as reader:
            if reader.idx_path is None:
                yield from self._scan(reader, selection, on_damage)
                return
            index = reader.index
            ordered = sorted(index) if selection.ranges else None  # ranges need the ids in order
            unmatched = selection.unmatched(index, "the index", ordered)
            if unmatched:
                raise UsageError(unmatched, path=reader.idx_path, hint=IDS_HINT)
            for key in selection.resolve(index, ordered):
                where = Location(offset=index[key])
                try:
                    payload = reader.read_at(index[key])
                    item = self._item(payload, path, f"record with key {key} at byte {index[key]}")
                except FormatError as err:
                    on_damage(err)
                    continue
                yield replace(item, where=where)

    def _item(self, payload: bytes, path: str, where: str) -> Item:
        header, image = unpack_image_record(payload, path=path, where=where)
        return Item(header.id, header.labels, image, None, None, header.flag > 0)

    def _scan(
        self, reader: RecordReader, selection: IdSelection | None, on_damage: OnDamage
    ) -> Iterator[Item]:
        wanted = None if selection is None else IdFilter(selection, reader.path, on_damage)
        report = on_damage if wanted is None else wanted.on_damage
        last_offset = -1
        damaged_at_end = False

        def damaged(err: FormatError) -> None:
            nonlocal damaged_at_end
            damaged_at_end = True
            report(err)

        if selection is None and s3.read_through():
            reader.prefetch_index()  # checked at the end (not by a read stopped early)
        for record in reader.salvage(damaged):
            damaged_at_end = False
            last_offset = record.offset
            where = Location(record=record.number, offset=record.offset)
            try:
                item = self._item(record.payload, reader.path, str(where))
            except FormatError as err:
                report(err)
                continue
            if wanted is None or wanted.keep(item.index):
                yield replace(item, where=where)
        if wanted is not None:
            wanted.finish()
        if reader.idx_path is not None and not damaged_at_end:
            try:
                past = sorted(offset for offset in reader.index.values() if offset > last_offset)
            except FormatError as err:  # a damaged .idx: the records were read without it
                on_damage(err)
                past = []
            if past:
                on_damage(
                    FormatError(
                        f"the file ends before {len(past)} records its index lists (the first "
                        f"at byte {past[0]})",
                        path=reader.path,
                        hint="the .rec is truncated; `imgfmt verify` lists the records still "
                        "intact",
                    )
                )

    def split_source(self, path: str, label_attribute: str | None = None) -> SplitSource:
        """Each record's class from its header; the copy moves every payload unchanged,
        under its ``.idx`` key (its header id when there is no ``.idx``), into each split's
        ``.rec`` and ``.idx``."""
        self._no_label_attribute(label_attribute)
        return _RecordSplit(path)

    def encode(self, item: Item, notes: list[str] | None = None) -> bytes:
        extra = 4 * len(item.labels) if isinstance(item.label, tuple) else 0
        if len(item.image) + IR_HEADER_SIZE + extra > MAX_PAYLOAD:
            raise ImageError(
                f"{len(item.image)} bytes is more than one record can hold (2**29 - 1)",
                kind="too-large",
            )
        # The framed record (what the file holds for the item): the framing, a scan of the
        # image for the magic, runs with the rest of the encoding (in the decoding workers,
        # when there are), not in the one thread that writes the file.
        return frame_record(image_record_head(item.label, item.index), item.image)

    def writer(
        self, path: str, outputs: AtomicOutputs, kept: list[str] | None = None
    ) -> DatasetWriter:
        index = sibling(path, IDX_SUFFIX)
        stream: IO[str] = outputs.open(index, "w")
        if kept is not None:
            stream = _KeepLines(stream, kept)  # type: ignore[assignment]
        records = RecordWriter(outputs.open(path, "wb"), stream, path)
        put = records.write_framed  # encode's records are framed
        return FileWriter(path, records, lambda record, item: put(record, item.index),
                          (index,), kept)  # fmt: skip

    def shard_writer(self, path: str, outputs: AtomicOutputs) -> DatasetWriter:
        return self.writer(path, outputs, kept=[])

    def combined_index(self, path: str) -> str | None:
        return storage.splitext(path)[0] + COMBINED_IDX_SUFFIX

    def combined_index_lines(self, shard: ShardIndex, base: int) -> str:
        """The shard's index lines, each offset moved on by ``base``: offsets into the
        shards as if they were one file."""
        lines = []
        for line in shard.text.splitlines():
            key, offset = line.split("\t")
            lines.append(format_idx_line(int(key), int(offset) + base))
        return "".join(lines)


class _KeepLines:
    """A text stream that also keeps what is written to it."""

    def __init__(self, stream: IO[str], kept: list[str]) -> None:
        self._stream, self._kept = stream, kept

    def write(self, text: str) -> int:
        self._kept.append(text)
        return self._stream.write(text)


class _RecordSplit(SplitSource):
    """First pass over a ``.rec``: each record's offset, key and class; payloads dropped."""

    def __init__(self, path: str) -> None:
        candidate = sibling(path, IDX_SUFFIX)
        idx_path = candidate if storage.is_file(candidate) else None
        self.path, self.idx_path = path, idx_path
        keys_at: dict[int, int] = {}
        if idx_path is not None:
            for key, offset in read_idx(idx_path).items():
                keys_at.setdefault(offset, key)
        self.classes: list[str] = []
        self.keys: list[int] = []
        self.offsets: list[int] = []
        seen: dict[int, int] = {}  # key -> record number
        for record in RecordReader(path, use_index=False):
            where = f"record {record.number} at byte {record.offset}"
            header, _image = unpack_image_record(record.payload, path=path, where=where)
            if idx_path is not None:
                if record.offset not in keys_at:
                    raise FormatError(
                        "record is missing from the index",
                        path=idx_path,
                        where=where,
                        hint="rebuild the index with `imgfmt verify --fix-idx`",
                    )
                key = keys_at[record.offset]
            else:
                key = header.id
            if key in seen:
                raise FormatError(
                    f"key {key} already used by record {seen[key]}",
                    path=path,
                    where=where,
                    hint="keys must be unique; rebuild the index with `imgfmt verify --fix-idx`",
                )
            seen[key] = record.number
            self.classes.append(label_class(header.labels))
            self.keys.append(key)
            self.offsets.append(record.offset)
        if idx_path is not None and len(keys_at) != len(self.offsets):
            stray = sorted(set(keys_at) - set(self.offsets))[0]
            raise FormatError(
                f"offset {stray} (key {keys_at[stray]}) is not the head of a record",
                path=idx_path,
                hint="rebuild the index with `imgfmt verify --fix-idx`",
            )

    def companions(self, output: str) -> list[str]:
        return [sibling(output, IDX_SUFFIX)]

    def copy(
        self,
        assignment: list[int],
        outputs: list[str],
        group: AtomicOutputs,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Second pass: every payload, unchanged, to its split's ``.rec``, under its key."""
        writers = []
        for path in outputs:
            stream = group.open(path, "wb")
            writers.append(RecordWriter(stream, group.open(sibling(path, IDX_SUFFIX), "w"), path))
        copied = 0
        for record in RecordReader(self.path, use_index=False):
            if record.number >= len(assignment) or record.offset != self.offsets[record.number]:
                error = input_changed(self.path)
                error.where = f"record {record.number} at byte {record.offset}"
                raise error
            writers[assignment[record.number]].write(record.payload, key=self.keys[record.number])
            copied += 1
            if on_progress:
                on_progress(1)
        if copied != len(assignment):
            raise StorageError(
                f"the file changed while it was being split ({copied} records, "
                f"{len(assignment)} before)",
                path=self.path,
                hint="run split again when nothing writes to it",
            )
        return [writer.records_written for writer in writers]


__all__ = [
    "aligned_magic_offset",
    "MAGIC",
    "MAGIC_BYTES",
    "MAX_PAYLOAD",
    "IRHeader",
    "KeySet",
    "Record",
    "RecordFileWriter",
    "RecordReader",
    "RecordWriter",
    "encode_record",
    "frame_record",
    "image_record_head",
    "pack_image_record",
    "parse_idx",
    "read_idx",
    "read_record",
    "as_float32",
    "survives_float32",
    "unpack_image_record",
    "IO_BUFFER_SIZE",
    "RecordIO",
]
