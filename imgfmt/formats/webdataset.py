"""WebDataset: image datasets as plain tar shards, as the ``webdataset`` library reads them.

A WebDataset is a sequence of POSIX (ustar) tar files, its *shards*. A *sample* is the run
of consecutive regular members that share a *key*, the member name up to the first dot of
its base name (``a/000017.seg.png`` has key ``a/000017`` and extension ``seg.png``); the
extension (lower-cased) names the field. Readers stream the shards member by member, so a
shard never needs to fit in memory and S3 objects are read as they arrive.

What imgfmt writes for an item whose id is 17::

    000017.cls    3                                  only for one whole-number label
    000017.jpg    the image file, byte for byte      extension from its content (jpg, png,
                                                     gif, webp, tiff, bmp, ...; bin if none)
    000017.json   {"id":17,"labels":[3],"path":"cat/img3.jpg"}

The key is the id zero-padded to 6 digits (ids are unique, non-negative whole numbers). The
members of a sample come in the order ``webdataset.TarWriter`` writes them (sorted by
extension). ``.json`` is compact UTF-8 JSON with sorted keys; ``labels`` is every label
(whole numbers without a fraction, ``[]`` for none) and ``path`` is ``null`` for an item
that has none. ``.cls`` is the class index as decimal ASCII text (``3``), for the common
single-label case.

Shards: writing the dataset ``out/train.tar`` writes ``out/train-000000.tar``,
``out/train-000001.tar``, ... (the ``%06d`` of ``webdataset.ShardWriter`` patterns), rolling
over to the next shard once a shard holds ``shard_records`` samples, or before a sample
that would make the shard file larger than ``shard_size`` bytes (its 1,024-byte end
included); a shard always holds at least one sample. Every shard ends with the two zero
blocks that end a tar.

Determinism: the same items give the same bytes. Each member is a ustar header with mtime
0, uid and gid 0, empty user and group names and mode 0o444 (no pax headers, no
timestamps), then its data, padded with zeros to a 512-byte block; these are exactly the
member bytes ``webdataset.TarWriter(stream, user="", group="", mtime=0)`` writes for the same
sample. A shard ends with the two zero blocks of a tar; ``tarfile`` (so TarWriter) also pads
the file to a multiple of 10240 bytes, which readers do not need.

Reading takes one shard (``out/train-000003.tar``), a dataset name (``out/train.tar``: every
``out/train-NNNNNN.tar`` there, in order, unless ``out/train.tar`` itself is a file), or a
brace pattern (``out/train-{000000..000009}.tar``). It reads shards written by any
WebDataset writer:

- the image is the first member whose extension is an image's (``jpg``, ``jpeg``, ``png``,
  ``gif``, ``webp``, ``bmp``, ``tif``, ``tiff``, ``ppm``, ``pgm``, ``pbm``, and the rarer
  formats imgfmt names by content, such as ``avif`` or ``jp2``), else the first whose last
  extension is (``input.png``); a sample without one is damage;
- the id is ``.json``'s ``"id"`` (a whole number >= 0), else the key if it is all digits,
  else the sample's number in the dataset (0-based, across shards);
- the labels are ``.json``'s ``"labels"`` (a number or a list of numbers), else ``.cls``,
  else none;
- the path is ``.json``'s ``"path"`` (``null``: none), else the image member's name;
- its place (``Item.where``) is its shard, its number in the dataset and the byte offset of
  its first member's header in the shard.

Labels read back as floats; an item with one label reads back as single-label (the
``.json`` list does not tell a one-label multi-label item from it).

Damage is reported (to ``on_damage``) and skipped: a sample without an image or with an
unreadable ``.json``/``.cls`` is skipped; a shard that is cut short or has a damaged header
is read up to the damage, reported once (its path and byte offset; the sample it cuts, or
the one just before a missing header, which may lack members, is skipped), and reading goes
on with the next shard. A shard missing from the middle of a dataset's numbering is
reported too. Shards are read with ``tarfile`` in stream mode (``r|``), which on its own
takes a missing or damaged header past the first for the end of the archive: only a zero
block ends a shard without a report here.

From PyTorch::

    import webdataset as wds
    urls = "out/train-{000000..000009}.tar"
    dataset = wds.WebDataset(urls).decode("pil").to_tuple("jpg;png", "cls")

(``.cls`` exists only for items with one whole-number label: for a dataset with others,
``.select(lambda s: "cls" in s)`` first, or take every item's labels from
``to_tuple("jpg;png", "json")``.) Any image file is stored as it is: decoding is up to the
reader (Pillow, with ``decode("pil")``).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from imgfmt import storage
from imgfmt.errors import FormatError, ImageError, ImgfmtError, UsageError, excerpt
from imgfmt.formats.base import DatasetWriter, Format, Item, Location, OnDamage
from imgfmt.formats.recordio import KeySet
from imgfmt.images import sniff_extension
from imgfmt.storage import AtomicOutputs, open_input

#: A tar block; headers and data padding come in blocks.
BLOCK_SIZE = tarfile.BLOCKSIZE
#: What ends a tar: two zero blocks.
END_OF_ARCHIVE = bytes(2 * BLOCK_SIZE)
#: Digits of a shard's number (``train-000003.tar``), as ``%06d`` writes them.
SHARD_DIGITS = 6
#: Digits a sample's key is zero-padded to (``000017`` for id 17).
KEY_DIGITS = 6
#: Mode of every member written, as ``webdataset.TarWriter`` writes them.
MEMBER_MODE = 0o444

#: Extensions of an image member, as ``webdataset``'s ``decode("pil")`` decodes them.
IMAGE_EXTENSIONS = frozenset(
    ("jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff", "ppm", "pgm", "pbm")
)
#: The rarer image formats imgfmt names by content (``images.sniff_extension``): read as
#: images too, so that every image imgfmt writes reads back.
OTHER_IMAGE_EXTENSIONS = frozenset(
    ("avif", "heic", "jp2", "jxl", "psd", "qoi", "dds", "blp", "icns", "fits", "sgi", "ras")
    + ("ico",)
)
_IMAGE_EXTENSIONS = IMAGE_EXTENSIONS | OTHER_IMAGE_EXTENSIONS


@functools.lru_cache(maxsize=1)
def _pillow_extensions() -> dict[str, str]:
    """Pillow format name -> the extension a member of that format gets (its first one)."""
    from PIL import Image

    Image.init()
    found: dict[str, str] = {}
    for extension, fmt in Image.registered_extensions().items():
        found.setdefault(fmt, extension.lstrip("."))
    found["JPEG"] = "jpg"
    return found


def image_extension(image: bytes) -> str:
    """The extension an image member is named with: its real format's, told by its first
    bytes or, for a format only Pillow knows (TGA, PCX...), by Pillow. ``ImageError`` for
    bytes that are no image: a member no reader could decode is not stored."""
    from imgfmt import payloads

    found = sniff_extension(image)
    if found is not None:
        return found.lstrip(".")
    fmt = payloads.identify(image)
    if fmt is None:
        from imgfmt.images import describe_start

        raise ImageError(
            f"not an image (unrecognised format; {describe_start(image)})", kind="not-image"
        )
    return _pillow_extensions().get(fmt, fmt.lower())


def _is_image_extension(extension: str) -> bool:
    if extension in _IMAGE_EXTENSIONS:
        return True
    return extension in set(_pillow_extensions().values())


#: Member extensions imgfmt reads besides the image.
CLS, JSON = "cls", "json"

#: A member name: its key (the name up to the first dot of its base name) and extension;
#: ``webdataset.tariterators.base_plus_ext``.
_KEY_AND_EXTENSION = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$", re.DOTALL)
#: Metadata members (``__info__``) that ``webdataset`` skips.
_META = re.compile(r"__[^/]*__($|/)")
#: A brace group of a shard pattern (``{000000..000009}``, ``{a,b}``).
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"(-?\d+)\.\.(-?\d+)")

#: Members not needed (or drained after a read error) are read in pieces of this size.
_CHUNK = 1 << 20

_HINT_CUT = "the shard is truncated, as by an interrupted copy: copy it again"
_HINT_NOT_TAR = "a shard is an uncompressed tar file"
_HINT_LAYOUT = "a sample is <key>.jpg (or .png, ...) with optional <key>.cls and <key>.json"

#: Makes the error that reports one sample: its message and hint.
_Damage = Callable[[str, "str | None"], FormatError]


# --------------------------------------------------------------------------- shard names


def shard_path(path: str, number: int) -> str:
    """``out/train-000003.tar`` for shard 3 of the dataset ``out/train.tar``."""
    stem, ext = storage.splitext(path)
    return f"{stem}-{number:0{SHARD_DIGITS}d}{ext or '.tar'}"


def dataset_shards(path: str) -> list[tuple[int, str]]:
    """The existing shards of the dataset ``path`` names (``out/train.tar``): the number
    and path of every ``out/train-NNNNNN.tar``, in order of number (empty if none). One
    listing of the folder (local, or one level of an S3 prefix)."""
    stem, ext = storage.splitext(path)
    folder, base = storage.dirname(stem), storage.basename(stem)
    pattern = re.compile(
        re.escape(base) + rf"-(\d{{{SHARD_DIGITS},}}){re.escape(ext or '.tar')}", re.DOTALL
    )
    found = []
    for name in storage.names_in(folder):
        match = pattern.fullmatch(name)
        if match:
            found.append((int(match.group(1)), storage.join(folder, name) if folder else name))
    return sorted(found)


def expand_braces(pattern: str) -> Iterator[str]:
    """The names a brace pattern stands for, in order: ``x-{000..002}.tar`` -> ``x-000.tar``,
    ``x-001.tar``, ``x-002.tar`` (zero-padded when an end is); ``{a,b}`` lists. With the
    ``braceexpand`` package (which ``webdataset`` uses) when installed, else these two
    forms by our own code."""
    try:
        import braceexpand
    except ImportError:
        yield from _expand_braces(pattern)
        return
    yield from braceexpand.braceexpand(pattern)


def _expand_braces(pattern: str) -> Iterator[str]:
    match = _BRACE.search(pattern)
    if match is None:
        yield pattern
        return
    head, body, tail = pattern[: match.start()], match.group(1), pattern[match.end() :]
    numeric = _RANGE.fullmatch(body)
    parts: Iterable[str]
    if numeric:
        first, last = numeric.group(1), numeric.group(2)
        padded = any(len(s.lstrip("-")) > 1 and s.lstrip("-")[0] == "0" for s in (first, last))
        width = max(len(first), len(last)) if padded else 0
        start, stop = int(first), int(last)
        step = 1 if stop >= start else -1
        parts = (f"{n:0{width}d}" for n in range(start, stop + step, step))
    elif "," in body:
        parts = body.split(",")
    else:
        parts = ["{" + body + "}"]  # not a brace expression: kept as written
    for part in parts:
        for rest in _expand_braces(tail):
            yield head + part + rest


def _is_pattern(path: str) -> bool:
    return any(_RANGE.fullmatch(m) or "," in m for m in _BRACE.findall(path))


def _shards(path: str) -> Iterator[tuple[str, int | None]]:
    """The shards ``path`` names, each with its number when it is one of a dataset's (for
    telling missing ones); ``StorageError`` when it names none."""
    if _is_pattern(path) and not storage.is_file(path):
        for name in expand_braces(path):
            yield name, None
        return
    if storage.is_file(path):
        yield path, None
        return
    found = dataset_shards(path)
    if not found:
        raise storage.missing(
            path,
            f"no such file, and no shards {storage.basename(shard_path(path, 0))}, ... beside it",
            hint="name one shard, the dataset (train.tar for train-000000.tar, ...) or a "
            "pattern such as train-{000000..000009}.tar",
        )
    yield from ((name, number) for number, name in found)


# --------------------------------------------------------------------------- the format


@dataclass(frozen=True)
class WebDataset(Format):
    """WebDataset tar shards: per item ``<key>.<image ext>``, ``<key>.cls`` and
    ``<key>.json``; a new shard every ``shard_records`` samples or ``shard_size`` bytes."""

    shard_records: int | None = None
    shard_size: int | None = None

    name = "webdataset"
    extensions = (".tar",)
    summary = "WebDataset tar shards (key.jpg + key.cls + key.json), for PyTorch"
    readers = None
    decodes = False
    keeps_unlabeled = True
    float32_labels = False

    def __post_init__(self) -> None:
        for option, value in (
            ("shard_records", self.shard_records),
            ("shard_size", self.shard_size),
        ):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(
                    f"{option} must be a whole number of at least 1, not {value!r}",
                    hint="leave it out for no limit",
                )

    def exists(self, path: str) -> bool:
        """A shard, a pattern whose first shard exists, or a dataset with any shard."""
        if storage.is_file(path):
            return True
        if _is_pattern(path):
            return storage.is_file(next(expand_braces(path)))
        return bool(dataset_shards(path))

    def sniff(self, path: str) -> bool:
        """Whether ``path`` (its first shard, for a dataset name or pattern) starts with a
        ustar header (magic ``ustar`` and a valid checksum)."""
        if _is_pattern(path) and not storage.is_file(path):
            first = next(expand_braces(path), None)
        elif storage.is_file(path):
            first = path
        else:
            found = dataset_shards(path)
            first = found[0][1] if found else None
        if first is None:
            return False
        return is_tar_header(storage.read_range(first, 0, BLOCK_SIZE))

    def read(self, path: str, on_damage: OnDamage) -> Iterator[Item]:
        number = 0  # samples seen, damaged ones included, across shards
        previous: int | None = None
        for shard, shard_number in _shards(path):
            if shard_number is not None and previous is not None and shard_number > previous + 1:
                on_damage(_missing_shards(path, previous + 1, shard_number))
            previous = shard_number
            try:
                stream = open_input(shard, "rb")
            except ImgfmtError as err:  # a shard a pattern names is missing: the rest is read
                on_damage(FormatError(err.reason, path=shard))
                continue
            with stream:
                for sample in _samples(shard, stream, on_damage):
                    try:
                        yield _item(sample, number)
                    except FormatError as err:
                        on_damage(err)
                    number += 1

    def encode(self, item: Item, notes: list[str] | None = None) -> bytes:
        if item.index < 0:
            raise UsageError(f"id {item.index} is negative; WebDataset keys are ids >= 0")
        key = f"{item.index:0{KEY_DIGITS}d}"
        extension = image_extension(item.image)
        members = {extension: item.image, JSON: _json_member(item)}
        cls = _cls_member(item.labels)
        if cls is not None:
            members[CLS] = cls
        out = io.BytesIO()
        for suffix in sorted(members):  # as webdataset.TarWriter orders them
            _write_member(out, f"{key}.{suffix}", members[suffix])
        return out.getvalue()

    def writer(self, path: str, outputs: AtomicOutputs) -> DatasetWriter:
        return _ShardedWriter(self, path, outputs)

    def sharded_by_count(self, records: int) -> WebDataset:
        return dataclasses.replace(self, shard_records=records)

    def sharded_by_size(self, size: int) -> WebDataset:
        return dataclasses.replace(self, shard_size=size)


def is_tar_header(block: bytes) -> bool:
    """Whether ``block`` is a ustar member header (POSIX or GNU magic, checksum right)."""
    if len(block) < BLOCK_SIZE or block[257:262] != b"ustar":
        return False
    try:
        tarfile.TarInfo.frombuf(block[:BLOCK_SIZE], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


# --------------------------------------------------------------------------- writing


def _label_json(value: float) -> int | float:
    value = float(value)
    if not math.isfinite(value):
        raise UsageError(f"label {value!r} is not a finite number; JSON cannot hold it")
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _json_member(item: Item) -> bytes:
    obj = {
        "id": int(item.index),
        "labels": [_label_json(v) for v in item.labels],
        "path": item.path,
    }
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a path with undecodable bytes (surrogates): JSON escapes
        return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("ascii")


def _cls_member(labels: tuple[float, ...]) -> bytes | None:
    """The class index as text for one whole-number label, else None."""
    if len(labels) != 1:
        return None
    value = float(labels[0])
    if not (math.isfinite(value) and value.is_integer() and abs(value) < 2**53):
        return None
    return str(int(value)).encode("ascii")


def _write_member(out: IO[bytes], name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = MEMBER_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    try:
        header = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    except ValueError as err:  # a size beyond ustar's 8 GiB - 1
        raise ImageError(
            f"{len(data)} bytes is more than a ustar tar member can hold", kind="too-large"
        ) from err
    out.write(header)
    out.write(data)
    out.write(bytes(-len(data) % BLOCK_SIZE))


class _ShardedWriter(DatasetWriter):
    """Appends samples to ``<stem>-000000.tar``, ``<stem>-000001.tar``, ..., each ended
    properly; a shard is opened only for a sample that goes into it."""

    def __init__(self, fmt: WebDataset, path: str, outputs: AtomicOutputs) -> None:
        earlier = dataset_shards(path)
        if earlier:
            # A write cannot remove shards: the new dataset would be read with the old ones.
            raise UsageError(
                f"{path}: shards of a dataset of that name are there already "
                f"({storage.basename(earlier[0][1])}, ...); the new shards would be read "
                "together with them",
                hint="remove them first, or write to another name",
            )
        self._path = path
        self._outputs = outputs
        self._max_records = fmt.shard_records
        self._max_size = fmt.shard_size
        self._shards: list[str] = []
        self._stream: IO[bytes] | None = None
        self._shard_records = 0
        self._shard_bytes = 0
        self._ids = KeySet()
        self._finished = False

    def append(self, payload: bytes, item: Item) -> None:
        if item.index in self._ids:
            raise FormatError(
                f"id {item.index} is used twice",
                path=self._path,
                hint="ids (the .lst index column) must be unique: each is a sample's key",
            )
        if self._stream is not None and self._full(len(payload)):
            self._end_shard()
        if self._stream is None:
            self._start_shard()
        assert self._stream is not None
        self._write(payload)
        self._ids.add(item.index)
        self._shard_records += 1
        self.records_written += 1

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._stream is None and not self._shards:
            self._start_shard()  # no items: one empty tar, so that the dataset exists
        if self._stream is not None:
            self._end_shard()

    @property
    def outputs(self) -> list[str]:
        return list(self._shards)

    def _full(self, incoming: int) -> bool:
        if self._max_records is not None and self._shard_records >= self._max_records:
            return True
        if self._max_size is not None:
            return self._shard_bytes + incoming + len(END_OF_ARCHIVE) > self._max_size
        return False

    def _start_shard(self) -> None:
        shard = shard_path(self._path, len(self._shards))
        self._stream = self._outputs.open(shard, "wb")
        self._shards.append(shard)
        self._shard_records = self._shard_bytes = 0

    def _end_shard(self) -> None:
        self._write(END_OF_ARCHIVE)
        self._stream = None  # closed by the outputs group when it commits

    def _write(self, data: bytes) -> None:
        assert self._stream is not None
        self._stream.write(data)
        self._shard_bytes += len(data)
        self.bytes_written += len(data)


# --------------------------------------------------------------------------- reading


@dataclass
class _Sample:
    """The members of one sample that imgfmt uses (the others are read past)."""

    shard: str
    key: str
    offset: int
    extensions: set[str] = field(default_factory=set)
    image: tuple[str, bytes] | None = None  # name, data: extension an image's
    fallback: tuple[str, bytes] | None = None  # name, data: last extension an image's
    cls: bytes | None = None
    json: bytes | None = None
    repeated: str | None = None  # a member name whose extension came before in the sample


def _wanted(sample: _Sample, extension: str) -> bool:
    if extension in (CLS, JSON):
        return True
    if sample.image is not None:
        return False
    if _is_image_extension(extension):
        return True
    return sample.fallback is None and _is_image_extension(extension.rsplit(".", 1)[-1])


def _keep(sample: _Sample, name: str, extension: str, data: bytes) -> None:
    if extension == CLS:
        sample.cls = data
    elif extension == JSON:
        sample.json = data
    elif _is_image_extension(extension):
        sample.image = (name, data)
    else:
        sample.fallback = (name, data)


def _header_recorder(stops: list[Exception]) -> type[tarfile.TarInfo]:
    """A ``TarInfo`` class that notes why a header could not be read: ``tarfile`` in stream
    mode takes a missing, cut or damaged header after the first for the end of the archive
    without a word, where only a zero block is one."""

    class _Recorded(tarfile.TarInfo):
        @classmethod
        def fromtarfile(cls, archive: tarfile.TarFile) -> _Recorded:
            try:
                return super().fromtarfile(archive)
            except tarfile.HeaderError as err:
                stops.append(err)
                raise

    return _Recorded


#: Why ``tarfile`` found no header where one should be: a zero block (the end of the
#: archive), no bytes at all, or fewer than a block (module names its stubs leave out).
_EOF_HEADER: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]
_EMPTY_HEADER: type[Exception] = tarfile.EmptyHeaderError  # type: ignore[attr-defined]
_TRUNCATED_HEADER: type[Exception] = tarfile.TruncatedHeaderError  # type: ignore[attr-defined]

#: What a damaged or cut tar raises from ``tarfile``.
_TAR_ERRORS = (tarfile.TarError, EOFError, ValueError, OverflowError)


def _samples(shard: str, stream: IO[bytes], on_damage: OnDamage) -> Iterator[_Sample]:
    """The samples of one shard, in order. Damage is reported once and ends the shard; the
    sample it cuts (or that comes right before a missing or damaged header, and may be
    incomplete) is skipped."""
    stops: list[Exception] = []
    try:
        tar = tarfile.open(
            fileobj=stream,
            mode="r|",
            tarinfo=_header_recorder(stops),
            encoding="utf-8",
            errors="surrogateescape",
        )
    except _TAR_ERRORS as err:
        on_damage(_damage(shard, 0, f"not a tar file: {err}", _HINT_NOT_TAR))
        return
    current: _Sample | None = None
    problem: tuple[int, str, str] | None = None  # offset, message, hint
    while True:
        try:
            info = tar.next()
        except _TAR_ERRORS as err:
            problem = (tar.offset, f"the tar is cut short or damaged here: {err}", _HINT_CUT)
            break
        # Stream mode keeps every header it read: dropped, so that memory stays flat.
        tar.members = []  # type: ignore[attr-defined]
        if info is None:
            problem = _end_problem(tar.offset, stops[-1] if stops else None)
            break
        match = _KEY_AND_EXTENSION.match(info.name)
        if not info.isreg() or _META.match(info.name) or match is None:
            continue  # tarfile reads past its data before the next header
        key, extension = match.group(1), match.group(2).lower()
        if current is None or key != current.key:
            if current is not None:
                yield current
            current = _Sample(shard, key, info.offset)
        repeated = extension in current.extensions
        if repeated and current.repeated is None:
            current.repeated = info.name
        wanted = not repeated and _wanted(current, extension)
        current.extensions.add(extension)
        try:
            data = _read_member(tar, info, keep=wanted)
        except _TAR_ERRORS as err:
            message = f"member {info.name!r} is cut short or damaged: {err}"
            on_damage(_damage(shard, info.offset, f"{message}; its sample is skipped", _HINT_CUT))
            return
        if data is not None:
            _keep(current, info.name, extension, data)
    if problem is not None:
        offset, message, hint = problem
        if current is not None:
            message += f"; sample {current.key!r} before it may be incomplete and is skipped"
        on_damage(_damage(shard, offset, message, hint))
        return
    if current is not None:
        yield current


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo, *, keep: bool) -> bytes | None:
    """The data of ``info`` if ``keep``, else None; read either way (in pieces when not
    kept), so that a member cut short is found here."""
    handle = tar.extractfile(info)
    if handle is None:
        return None
    with handle:
        if keep:
            data = handle.read()
            if len(data) != info.size:
                raise tarfile.ReadError("unexpected end of data")
            return data
        while handle.read(_CHUNK):
            pass
    return None


def _end_problem(offset: int, stop: Exception | None) -> tuple[int, str, str] | None:
    """What the header that ended the member list says: None for a zero block, the end."""
    if stop is None or isinstance(stop, _EOF_HEADER):
        return None
    if isinstance(stop, _EMPTY_HEADER):
        return offset, "the tar ends here, without its end-of-archive blocks", _HINT_CUT
    if isinstance(stop, _TRUNCATED_HEADER):
        return offset, "the tar ends inside a member header", _HINT_CUT
    return offset, f"damaged member header: {stop}", "the shard is damaged from here on"


def _damage(shard: str, offset: int, message: str, hint: str) -> FormatError:
    return FormatError(message, path=shard, where=f"byte {offset}", hint=hint)


def _missing_shards(path: str, first: int, stop: int) -> FormatError:
    names = [storage.basename(shard_path(path, n)) for n in range(first, stop)]
    listed = names[0] if len(names) == 1 else f"{names[0]} to {names[-1]}"
    return FormatError(
        f"shard {listed} is missing from the dataset",
        path=path,
        hint="the shards around it are read; copy the missing one again",
    )


def _item(sample: _Sample, number: int) -> Item:
    """The item of a sample; ``FormatError`` (to report and skip) when it has none."""
    location = Location(record=number, offset=sample.offset)

    def damage(message: str, hint: str | None = None) -> FormatError:
        return FormatError(
            f"sample {sample.key!r}: {message}", path=sample.shard, where=str(location), hint=hint
        )

    if sample.repeated is not None:
        raise damage(f"member {sample.repeated!r} repeats an extension of the sample")
    image = sample.image or sample.fallback
    if image is None:
        extensions = ", ".join(f".{e}" for e in sorted(sample.extensions))
        raise damage(f"no image member (it has {extensions})", _HINT_LAYOUT)
    image_name, image_bytes = image
    meta: dict[str, Any] = {}
    if sample.json is not None:
        try:
            parsed = json.loads(sample.json.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise damage("its .json member is not UTF-8 JSON", _HINT_LAYOUT) from None
        if isinstance(parsed, dict):
            meta = parsed
    index = meta.get("id")
    if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < 2**64):
        key = sample.key
        index = int(key) if key.isascii() and key.isdigit() else number
    if "labels" in meta:
        labels = _json_labels(meta["labels"], damage)
    elif sample.cls is not None:
        labels = _cls_labels(sample.cls, damage)
    else:
        labels = ()
    path = meta["path"] if "path" in meta else image_name
    if path is not None and not isinstance(path, str):
        path = image_name
    where = Location(record=number, offset=sample.offset, file=sample.shard)
    return Item(index, labels, image_bytes, path, where, len(labels) > 1)


def _label(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _json_labels(value: object, damage: _Damage) -> tuple[float, ...]:
    if value is None:
        return ()
    labels = [_label(v) for v in (value if isinstance(value, list) else [value])]
    numbers = tuple(v for v in labels if v is not None)
    if len(numbers) != len(labels):
        raise damage(
            f'its .json "labels" {excerpt(value)} are not finite numbers',
            '"labels" is a number or a list of numbers',
        )
    return numbers


def _cls_labels(data: bytes, damage: _Damage) -> tuple[float, ...]:
    text = data.decode("utf-8", "replace").strip()
    try:
        value = float(int(text)) if text.lstrip("+-").isdigit() else float(text)
    except (ValueError, OverflowError):
        value = math.nan
    if not math.isfinite(value):
        raise damage(f"its .cls member {excerpt(text)} is not a number", "e.g. 3")
    return (value,)


__all__ = [
    "BLOCK_SIZE",
    "END_OF_ARCHIVE",
    "IMAGE_EXTENSIONS",
    "KEY_DIGITS",
    "OTHER_IMAGE_EXTENSIONS",
    "SHARD_DIGITS",
    "WebDataset",
    "dataset_shards",
    "expand_braces",
    "is_tar_header",
    "shard_path",
]
