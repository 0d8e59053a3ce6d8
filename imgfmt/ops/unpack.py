"""unpack: a dataset back into an image folder and a ``.lst``.

For a RecordIO ``.rec``, every record's image bytes are written unchanged to
``OUTDIR/<class>/<id><ext>`` (class name from the class map, else the label; the extension
from the bytes' real format), plus ``OUTDIR/<stem>.lst`` with paths relative to ``OUTDIR``,
so ``imgfmt pack OUTDIR/<stem>.lst NEW.rec --root OUTDIR --pass-through`` rebuilds the
original ``.rec`` byte for byte.

A JSON Lines dataset (``.jsonl``) keeps each image's own relative path (``OUTDIR/<path>``),
so packing the list back with ``--pass-through`` rebuilds the same ``.jsonl``. A
RecordIO-protobuf ``.rec`` (recognised by its first record) becomes PNGs of its pixel
tensors, ``OUTDIR/<class>/<record number>.png``.

Nothing is ever written outside ``OUTDIR``: class names that are absolute, hold
``..``, NUL or control characters, or are too long fall back to the numeric label.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from imgfmt import formats, storage
from imgfmt.errors import FormatError, StorageError, UsageError
from imgfmt.formats import content_format, jsonlines, lst
from imgfmt.formats.recordio import IRHeader, RecordReader, unpack_image_record
from imgfmt.images import sniff_extension
from imgfmt.storage import describe_os_error, is_s3

log = logging.getLogger(__name__)

#: Folder for records with several labels: they belong to no single class.
MULTI_LABEL_DIR = "_multilabel"
#: Folder for RecordIO-protobuf records without a label (listed with label 0).
UNLABELED_DIR = "_unlabeled"
#: Extension for payloads whose format is not recognised.
UNKNOWN_EXT = ".bin"
#: Longest class-name component we use as a folder name (most file systems allow 255 bytes).
MAX_NAME_BYTES = 200

_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


@dataclass
class UnpackResult:
    outdir: str
    format: str = "recordio"
    list_path: str = ""
    written: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    classes: dict[str, int] = field(default_factory=dict)
    #: Damaged records or lines that were skipped, one message each (file, where, what).
    damaged: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "outdir": self.outdir,
            "format": self.format,
            "list": self.list_path,
            "written": self.written,
            "bytes": self.bytes_written,
            "seconds": round(self.seconds, 3),
            "classes": self.classes,
            "damaged": len(self.damaged),
            "damaged_items": self.damaged,
        }


def parse_ids(text: str) -> list[int]:
    """``"3,7,100-200"`` -> ``[3, 7, 100, ..., 200]`` (ranges inclusive, order kept)."""
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                cut = part.index("-", 1)
                low, high = int(part[:cut]), int(part[cut + 1 :])
                if high < low:
                    raise ValueError
                ids.extend(range(low, high + 1))
            else:
                ids.append(int(part))
        except ValueError:
            raise UsageError(
                f"cannot read id {part!r}", hint="write ids like 3,7,100-200"
            ) from None
    return ids


def _some(ids: list[int], shown: int = 5) -> str:
    """``3, 7, 9`` or ``3, 7, 9, 12, 15 and 4 more``."""
    text = ", ".join(str(i) for i in ids[:shown])
    return f"{text} and {len(ids) - shown} more" if len(ids) > shown else text


def _label_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def safe_class_dir(name: str) -> str | None:
    """``name`` as a relative folder path inside the output, or None if it is not safe."""
    if not name or _UNSAFE_CHARS.search(name) or os.path.isabs(name):
        return None
    parts = name.split("/")
    if any(p in ("", ".", "..") or len(p.encode("utf-8")) > MAX_NAME_BYTES for p in parts):
        return None
    return "/".join(parts)


def class_dir_for(header: IRHeader, classes: dict[int, str]) -> str:
    if header.flag > 0:
        return MULTI_LABEL_DIR
    return _label_dir(header.label, classes)


def _label_dir(label: float, classes: dict[int, str]) -> str:
    if float(label).is_integer() and int(label) in classes:
        safe = safe_class_dir(classes[int(label)])
        if safe is not None:
            return safe
        log.warning("class name %r is not a safe folder name; using the label", classes[int(label)])
    return _label_text(label)


#: Where damaged records and lines go: reported, skipped, counted.
OnDamage = Callable[[FormatError], None]


def _select(
    reader: RecordReader, ids: list[int] | None, limit: int | None, skip: OnDamage
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(where, payload)`` for the records asked for; damaged ones go to ``skip``."""
    if ids is not None and reader.idx_path is not None:
        index = reader.index
        missing = [i for i in ids if i not in index]
        if missing:
            raise UsageError(
                f"requested ids not in the index: {_some(missing)}",
                path=reader.idx_path,
            )
        for count, key in enumerate(ids):
            if limit is not None and count >= limit:
                return
            try:
                payload = reader.read_at(index[key])
            except FormatError as err:
                skip(err)
                continue
            yield f"record with key {key} at byte {index[key]}", payload
        return
    wanted = set(ids) if ids is not None else None
    found: set[int] = set()
    count = 0
    last_offset = -1
    damaged_at_end = False

    def damaged(err: FormatError) -> None:
        nonlocal damaged_at_end
        damaged_at_end = True
        skip(err)

    for record in reader.salvage(damaged):
        damaged_at_end = False
        last_offset = record.offset
        if limit is not None and count >= limit:
            return
        where = f"record {record.number} at byte {record.offset}"
        if wanted is not None:
            try:
                header, _image = unpack_image_record(record.payload, path=reader.path, where=where)
            except FormatError as err:
                skip(err)
                continue
            found.add(header.id)
            if header.id not in wanted:
                continue
        count += 1
        yield where, record.payload
    if wanted is not None and wanted - found:
        absent = sorted(wanted - found)
        skip(
            FormatError(
                f"requested ids not in the file: {_some(absent)}",
                path=reader.path,
                hint="check --ids against `imgfmt verify --json` or the .lst",
            )
        )
    if reader.idx_path is not None and not damaged_at_end:
        # A file cut exactly at a record head reads as a clean end: the index knows better.
        try:
            past = sorted(offset for offset in reader.index.values() if offset > last_offset)
        except FormatError as err:  # a damaged .idx: the records were read without it
            skip(err)
            past = []
        if past:
            skip(
                FormatError(
                    f"the file ends before {len(past)} records its index lists (the first at "
                    f"byte {past[0]})",
                    path=reader.path,
                    hint="the .rec is truncated; `imgfmt verify` lists the records still intact",
                )
            )


@dataclass(frozen=True)
class _Item:
    """One image to write: its path under OUTDIR, its class folder, bytes and list entry."""

    relpath: str
    folder: str
    image: bytes
    entry: lst.LstEntry


def _recordio_items(
    source: str, ids: list[int] | None, limit: int | None, classes: dict[int, str], skip: OnDamage
) -> Iterator[_Item]:
    with RecordReader(source) as reader:
        for where, payload in _select(reader, ids, limit, skip):
            try:
                header, image = unpack_image_record(payload, path=source, where=where)
            except FormatError as err:
                skip(err)
                continue
            folder = class_dir_for(header, classes)
            relpath = f"{folder}/{header.id}{sniff_extension(image) or UNKNOWN_EXT}"
            yield _Item(relpath, folder, image, lst.LstEntry(header.id, header.labels, relpath))


def _wanted(ids: list[int] | None) -> Callable[[int], bool]:
    wanted = set(ids) if ids is not None else None
    return lambda key: wanted is None or key in wanted


def _jsonl_items(
    source: str, ids: list[int] | None, limit: int | None, classes: dict[int, str], skip: OnDamage
) -> Iterator[_Item]:
    wanted = _wanted(ids)
    count = 0
    used: set[str] = set()  # two lines may name one path: the second must not overwrite
    for entry in jsonlines.read_jsonl(source, on_problem=skip):
        if limit is not None and count >= limit:
            return
        if not wanted(entry.index):
            continue
        count += 1
        folder = MULTI_LABEL_DIR if entry.multi_label else _label_dir(entry.labels[0], classes)
        fallback = f"{folder}/{entry.index}{sniff_extension(entry.image) or UNKNOWN_EXT}"
        relpath = safe_class_dir(entry.path)
        if relpath is None:
            log.warning("path %r is not a safe relative path; writing under the class", entry.path)
            relpath = fallback
        else:
            if relpath in used:
                stem, ext = os.path.splitext(relpath)
                relpath = f"{stem}.{entry.index}{ext}"
                log.warning(
                    "id %d: path %r was already written for another line; writing %s instead "
                    "(the list then packs to other paths)",
                    entry.index,
                    entry.path,
                    relpath,
                )
            folder = relpath.rpartition("/")[0] or "."
        if relpath in used:
            raise FormatError(f"two images would be written to {relpath}", path=source)
        used.add(relpath)
        yield _Item(relpath, folder, entry.image, lst.LstEntry(entry.index, entry.labels, relpath))


def _protobuf_items(
    source: str, ids: list[int] | None, limit: int | None, classes: dict[int, str], skip: OnDamage
) -> Iterator[_Item]:
    from imgfmt.formats import rio_protobuf

    wanted = _wanted(ids)
    count = 0
    for record in RecordReader(source, use_index=False).salvage(skip):
        if limit is not None and count >= limit:
            return
        if not wanted(record.number):
            continue
        where = f"record {record.number} at byte {record.offset}"
        try:
            values, shape, labels = rio_protobuf.decode_dense(record.payload)
        except FormatError as err:
            err.path, err.where = source, where
            skip(err)
            continue
        count += 1
        shape = shape or rio_protobuf.guess_shape(values.size)
        if shape is None:
            raise FormatError(
                f"{values.size} values with no shape are not a square image",
                path=source,
                where=where,
                hint="this file holds vectors, not images; nothing to unpack",
            )
        try:
            image = rio_protobuf.pixels_to_png(values, shape)
        except UsageError as err:
            raise FormatError(
                err.message,
                path=source,
                where=where,
                hint="this file holds vectors or tensors, not images; nothing to unpack",
            ) from err
        if not labels:
            folder, labels = UNLABELED_DIR, (0.0,)
        elif len(labels) > 1:
            folder = MULTI_LABEL_DIR
        else:
            folder = _label_dir(labels[0], classes)
        relpath = f"{folder}/{record.number}.png"
        yield _Item(relpath, folder, image, lst.LstEntry(record.number, labels, relpath))


def source_format(source: str) -> str:
    """``"jsonlines"`` for a ``.jsonl``; for a ``.rec``, ``"recordio-protobuf"`` when its
    records are protobuf ``Record``s, else ``"recordio"``."""
    if storage.splitext(source)[1].lower() == ".jsonl":
        return formats.JSONLINES
    return content_format(source) or "recordio"


def unpack(
    source: str,
    outdir: str,
    *,
    ids: list[int] | None = None,
    limit: int | None = None,
    class_map: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> UnpackResult:
    """Write the images of ``source`` (a ``.rec``, RecordIO-protobuf ``.rec`` or ``.jsonl``)
    into ``outdir``; see the module doc.

    Either may be an ``s3://`` URI: an S3 ``outdir`` is a prefix, each image one object
    (uploaded concurrently). With ``ids`` and the ``.idx``, only those records are read,
    each with one ranged GET on S3.

    Damage does not stop the run: a damaged record or line is logged, counted in
    ``result.damaged`` and skipped (reading resumes at the next record head), so every intact
    image is written, and the list names exactly those.
    """
    started = time.perf_counter()
    ext = storage.splitext(source)[1].lower()
    if ext in (".lst", ".idx", ".manifest", ".json"):
        raise UsageError(
            f"{source} is a {ext[1:]} file: unpack reads a .rec (MXNet or RecordIO-protobuf) "
            "or a .jsonl dataset",
            hint="a .lst is packed with imgfmt pack; give the .rec beside an .idx",
        )
    if not storage.is_file(source):
        if not is_s3(source) and os.path.isdir(source):
            raise UsageError(
                f"{source} is a folder: unpack reads a .rec or .jsonl file",
                hint="to pack a folder, use imgfmt pack",
            )
        raise storage.missing(source, "no such file", hint="check the path of the .rec")
    class_map = class_map or lst.find_class_map(source)
    classes = lst.read_class_map(class_map) if class_map else {}
    stem = storage.splitext(storage.basename(source))[0]
    list_path = storage.join(outdir, stem + ".lst")
    if storage.same_path(list_path, storage.sibling(source, ".lst")):
        raise UsageError(
            f"unpacking into {outdir} would overwrite the list beside {source}",
            hint="unpack into another folder",
        )
    remote = is_s3(outdir)
    created = False
    if remote:
        storage.check_output_folder(storage.abspath(outdir))
    else:
        created = not os.path.exists(outdir)
        _make_folder(outdir)
    result = UnpackResult(outdir=outdir, list_path=list_path)
    try:
        _unpack_into(source, outdir, result, ids, limit, classes, on_progress)
    except BaseException:
        if created:
            _remove_empty_folders(outdir)  # a failed run leaves no empty folder behind
        raise
    if class_map:
        lst.write_class_map(lst.class_map_path(result.list_path), classes)
    result.seconds = time.perf_counter() - started
    return result


def _make_folder(folder: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise StorageError(f"cannot create folder: {describe_os_error(err)}", path=folder) from err


def _remove_empty_folders(folder: str) -> None:
    for parent, _dirs, _files in os.walk(folder, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(parent)


def _unpack_into(
    source: str,
    outdir: str,
    result: UnpackResult,
    ids: list[int] | None,
    limit: int | None,
    classes: dict[int, str],
    on_progress: Callable[[int], None] | None,
) -> None:
    """Write the images and the list (see :func:`unpack`), filling in ``result``."""
    remote = is_s3(outdir)
    root = storage.abspath(outdir) if remote else os.path.realpath(outdir)
    entries: list[lst.LstEntry] = []
    made_dirs: set[str] = set()
    fmt = source_format(source)

    def skip(err: FormatError) -> None:
        result.damaged.append(str(err))
        log.warning("skipped %s", err)

    items = {
        "recordio": _recordio_items,
        "jsonlines": _jsonl_items,
        "recordio-protobuf": _protobuf_items,
    }[fmt](source, ids, limit, classes, skip)
    result.format = fmt
    with storage.ObjectWriter() as writer:
        for item in items:
            relpath, folder, image = item.relpath, item.folder, item.image
            if remote:  # no symlinks in S3: a safe relative path stays inside the prefix
                target = storage.join(root, relpath)
            else:
                target = os.path.realpath(os.path.join(root, relpath))
                if os.path.commonpath([root, target]) != root:  # a symlink inside outdir
                    raise FormatError(f"refusing to write outside {outdir}: {relpath}", path=source)
                parent = os.path.dirname(target)
                if parent not in made_dirs:
                    _make_folder(parent)
                    made_dirs.add(parent)
            writer.write(target, image)
            entries.append(item.entry)
            result.written += 1
            result.bytes_written += len(image)
            result.classes[folder] = result.classes.get(folder, 0) + 1
            if on_progress:
                on_progress(1)
    if not entries and result.damaged:
        raise FormatError(
            f"no intact item to unpack ({len(result.damaged)} damaged, listed above)",
            path=source,
            hint="`imgfmt verify` shows the damage",
        )
    if not entries:
        if ids is None and limit is None:
            raise FormatError("holds no records; nothing written", path=source)
        raise UsageError("no records matched; nothing written", path=source)
    lst.write_lst(result.list_path, entries)
