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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any

from imgfmt import formats, s3, storage
from imgfmt.errors import FormatError, ImgfmtError, StorageError, UsageError
from imgfmt.formats import lst
from imgfmt.formats.base import Deferred, Format, IdSelection, Item, label_text
from imgfmt.images import sniff_extension
from imgfmt.storage import describe_os_error, is_s3

log = logging.getLogger(__name__)

#: Folder for records with several labels: they belong to no single class.
MULTI_LABEL_DIR = "_multilabel"
#: Folder for records without a label (listed without one: index<TAB>path).
UNLABELED_DIR = "_unlabeled"
#: Extension for payloads whose format is not recognised.
UNKNOWN_EXT = ".bin"
#: Longest class-name component we use as a folder name (most file systems allow 255 bytes).
MAX_NAME_BYTES = 200

_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")

#: What unpack reads, for messages about other inputs.
_READS = "unpack reads a .rec (MXNet or RecordIO-protobuf), a .jsonl or WebDataset .tar shards"


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
    #: A dry run: the items were read (none decoded) and nothing was written; the fields
    #: say what would be.
    dry_run: bool = False
    #: The class map written beside the list, if one is.
    class_map: str | None = None
    #: Local folders the run creates: OUTDIR (a dry run's plan; the class folders under it
    #: are ``classes``).
    folders: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        if self.dry_run:
            return {
                "dry_run": True,
                "outdir": self.outdir,
                "format": self.format,
                "list": self.list_path,
                "class_map": self.class_map,
                "written": self.written,
                "bytes": self.bytes_written,
                "classes": self.classes,
                "damaged": len(self.damaged),
                "damaged_items": self.damaged,
                "folders": self.folders,
            }
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


def parse_ids(text: str) -> IdSelection:
    """``"3,7,100-200"`` -> the ids 3 and 7, each of which must exist, and those of 100 to
    200 (inclusive) that exist; kept as written (a range is never expanded)."""
    parts: list[int | tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                cut = part.index("-", 1)
                low, high = int(part[:cut]), int(part[cut + 1 :])
                if high < low:
                    raise UsageError(
                        f"range {part!r} runs backwards", hint=f"write it {high}-{low}"
                    )
                parts.append((low, high))
            else:
                parts.append(int(part))
        except ValueError:
            raise UsageError(
                f"cannot read id {part!r}", hint="write ids like 3,7,100-200"
            ) from None
    if not parts:
        raise UsageError("no ids given", hint="write ids like 3,7,100-200")
    return IdSelection(tuple(parts))


def safe_class_dir(name: str) -> str | None:
    """``name`` as a relative folder path inside the output, or None if it is not safe."""
    if not name or _UNSAFE_CHARS.search(name) or os.path.isabs(name):
        return None
    parts = name.split("/")
    if any(p in ("", ".", "..") or len(p.encode("utf-8")) > MAX_NAME_BYTES for p in parts):
        return None
    return "/".join(parts)


def _label_dir(label: float, classes: dict[int, str]) -> str:
    if float(label).is_integer() and int(label) in classes:
        safe = safe_class_dir(classes[int(label)])
        if safe is not None:
            return safe
        log.warning("class name %r is not a safe folder name; using the label", classes[int(label)])
    return label_text(label)


@dataclass(frozen=True)
class _Output:
    """One image to write: its path under OUTDIR, its class folder, and its list entry."""

    relpath: str
    folder: str
    entry: lst.LstEntry


class _Namer:
    """Where each item goes under OUTDIR: its own relative path where the format kept one
    (and it is safe and not taken), else ``<class>/<id><ext>``."""

    def __init__(self, source: str, classes: dict[int, str]) -> None:
        self.source = source
        self.classes = classes
        self.used: set[str] = set()  # two items may name one path: the second must not overwrite

    def __call__(self, item: Item, extension: str | None = None) -> _Output:
        """``extension``: the image's, when its bytes are not made yet (else sniffed)."""
        if not item.labels:
            folder = UNLABELED_DIR
        elif item.multi_label or len(item.labels) > 1:
            folder = MULTI_LABEL_DIR
        else:
            folder = _label_dir(item.labels[0], self.classes)
        ext = extension if extension is not None else sniff_extension(item.image)
        relpath = f"{folder}/{item.index}{ext or UNKNOWN_EXT}"
        if item.path is not None:
            own = safe_class_dir(item.path)
            if own is None:
                log.warning(
                    "path %r is not a safe relative path; writing under the class", item.path
                )
            else:
                if own in self.used:
                    stem, ext = os.path.splitext(own)
                    renamed = f"{stem}.{item.index}{ext}"
                    log.warning(
                        "id %d: path %r was already written for another item; writing %s "
                        "instead (the list then packs to other paths)",
                        item.index,
                        item.path,
                        renamed,
                    )
                    own = renamed
                relpath, folder = own, own.rpartition("/")[0] or "."
        if relpath in self.used:
            # Two items with one id (a .rec from another tool): neither overwrites the other.
            stem, ext = os.path.splitext(relpath)
            taken, n = relpath, 1
            while relpath in self.used:
                relpath, n = f"{stem}.{n}{ext}", n + 1
            log.warning("%s: %s was already written; writing %s", self.source, taken, relpath)
        self.used.add(relpath)
        # An item without labels is listed as index<TAB>path: it packs back unlabeled.
        return _Output(relpath, folder, lst.LstEntry(item.index, item.labels, relpath))


def unpack(
    source: str,
    outdir: str,
    *,
    ids: IdSelection | Iterable[int] | None = None,
    limit: int | None = None,
    class_map: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    dry_run: bool = False,
    on_start: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> UnpackResult:
    """Write the images of ``source`` (a ``.rec``, RecordIO-protobuf ``.rec``, ``.jsonl``
    or WebDataset shards) into ``outdir``; see the module doc.

    Either may be an ``s3://`` URI: an S3 ``outdir`` is a prefix, each image one object
    (uploaded concurrently). ``ids`` (:func:`parse_ids`, or ids that must each exist)
    selects the items by id; with the ``.idx``, only those records are read, each with one
    ranged GET on S3.

    Damage does not stop the run: a damaged record or line is logged, counted in
    ``result.damaged`` and skipped (reading resumes at the next record head), so every intact
    image is written, and the list names exactly those.

    ``dry_run``: the same checks and the same reading (nothing decoded), the same names,
    but nothing written and no folder made: ``result`` says how many images (and bytes)
    would go into which class folders, and which list and class map would be written.

    ``workers`` (default: one a core): processes that finish the images of a format whose
    images take work to get out (``Format.read_deferred``: JSON Lines' base64, the PNGs of
    RecordIO-protobuf) and write them, when the whole dataset goes into a local folder.
    The files and the list are the same whatever the number.
    """
    started = time.perf_counter()
    ext = storage.splitext(source)[1].lower()
    if ext in (".lst", ".idx", ".manifest", ".json"):
        raise UsageError(
            f"{source} is a {ext[1:]} file: {_READS}",
            hint="a .lst is packed with imgfmt pack; give the .rec beside an .idx",
        )
    if not is_s3(source) and os.path.isdir(source):
        raise UsageError(
            f"{source} is a folder: unpack reads a dataset (.rec, .jsonl, .tar shards)",
            hint="to pack a folder, use imgfmt pack",
        )
    name = formats.name_for_path(source)
    if name is None and storage.exists(source):
        raise UsageError(
            f"cannot tell the format of {source} from its name: {_READS}",
            hint="give a dataset named with its format's extension",
        )
    fmt = formats.existing(source, name)
    if on_start is not None and ids is None:  # a progress bar's total, where an index tells it
        indexed = fmt.indexed_ids(source)
        if indexed is not None:
            on_start(len(indexed) if limit is None else min(limit, len(indexed)))
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
    result = UnpackResult(outdir=outdir, list_path=list_path, dry_run=dry_run)
    if dry_run:
        if remote:
            storage.planned_output_folder(storage.abspath(outdir))
        else:
            result.folders.extend(filter(None, [storage.planned_folder(outdir)]))
    elif remote:
        storage.ensure_output_folder(storage.abspath(outdir))
    else:
        created = not os.path.exists(outdir)
        _make_folder(outdir)
    try:
        _unpack_into(fmt, source, outdir, result, ids, limit, classes, on_progress, workers)
    except BaseException:
        if created:
            _remove_empty_folders(outdir)  # a failed run leaves no empty folder behind
        raise
    if class_map:
        result.class_map = lst.class_map_path(result.list_path)
        if not dry_run:
            lst.write_class_map(result.class_map, classes)
    result.seconds = time.perf_counter() - started
    return result


#: Deferred images sent to a worker at once (JSON Lines: about 850 KB of base64).
FINISH_BATCH = 16


@dataclass(frozen=True)
class _Job:
    """One deferred image for a worker: where its entry is, its class folder, where in the
    dataset it was (for a message), the file to write, and what ``finish_image`` takes."""

    position: int
    folder: str
    where: str | None
    target: str
    data: Any


def _finish_and_write(fmt: Format, jobs: list[_Job]) -> list[int | str]:
    """In a worker: each image made (``fmt.finish_image``) and written; its size, or why it
    could not be made. A file that cannot be written raises: that stops the unpack."""
    done: list[int | str] = []
    for job in jobs:
        try:
            image = fmt.finish_image(job.data)
        except ImgfmtError as err:
            done.append(err.reason)
            continue
        storage.write_file(job.target, image)
        done.append(len(image))
    return done


def _died(_job: _Job, why: str) -> str:
    return f"the worker making this image died: {why}"


def _count(
    result: UnpackResult, folder: str, size: int, on_progress: Callable[[int], None] | None
) -> None:
    result.written += 1
    result.bytes_written += size
    result.classes[folder] = result.classes.get(folder, 0) + 1
    if on_progress:
        on_progress(1)


class _LocalFolders:
    """Where each image goes under a local OUTDIR. Each folder's real path is resolved
    once (not every file's: 5 stats a file) and one leading out of OUTDIR (a symlink) is
    refused; the file itself is never followed (written under a temporary name made anew,
    then renamed over whatever has its name)."""

    def __init__(self, root: str, outdir: str, source: str, make: bool) -> None:
        self.root, self.outdir, self.source, self.make = root, outdir, source, make
        self._real: dict[str, str] = {}  # relative folder -> its real path

    def target(self, relpath: str) -> str:
        within, _slash, filename = relpath.rpartition("/")
        parent = self._real.get(within)
        if parent is None:
            parent = os.path.realpath(os.path.join(self.root, within))
            if os.path.commonpath([self.root, parent]) != self.root:
                raise FormatError(
                    f"refusing to write outside {self.outdir}: {relpath}", path=self.source
                )
            if self.make:
                _make_folder(parent)
            self._real[within] = parent
        if filename in ("", ".", ".."):  # _Namer never makes one: a last guard
            raise FormatError(f"not a file name: {relpath!r}", path=self.source)
        return os.path.join(parent, filename)

    def remove_temporaries(self) -> None:
        """Remove what a stopped run left under temporary names in the folders it wrote."""
        for folder in self._real.values():
            with contextlib.suppress(OSError), os.scandir(folder) as found:
                for entry in found:
                    if entry.name.startswith(storage.TEMP_PREFIX):
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)


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
    fmt: Format,
    source: str,
    outdir: str,
    result: UnpackResult,
    ids: IdSelection | Iterable[int] | None,
    limit: int | None,
    classes: dict[int, str],
    on_progress: Callable[[int], None] | None,
    workers: int | None = None,
) -> None:
    """Write the images and the list (see :func:`unpack`), filling in ``result``."""
    from imgfmt.engines.local import BatchPool

    remote = is_s3(outdir)
    root = storage.abspath(outdir) if remote else os.path.realpath(outdir)
    entries: list[lst.LstEntry | None] = []  # None: an image that could not be made
    folders = None if remote else _LocalFolders(root, outdir, source, make=not result.dry_run)

    def skip(err: FormatError) -> None:
        result.damaged.append(str(err))
        log.warning("skipped %s", err)

    dry_run = result.dry_run
    workers = workers or os.cpu_count() or 1
    pairs: Iterator[tuple[Item, Deferred | None]] | None = None
    if ids is None and not dry_run and not remote and workers > 1:
        pairs = fmt.read_deferred(source, skip)  # the images' making, for the workers
    if pairs is None:
        read = fmt.read(source, skip) if ids is None else fmt.read_ids(source, ids, skip)
        pairs = ((item, None) for item in read)
    name = _Namer(source, classes)
    result.format = fmt.name
    finishing: list[_Job] = []  # deferred images, sent to the workers a batch at a time

    def finished(done: Iterator[tuple[list[_Job], list[int | str]]]) -> None:
        for jobs, sizes in done:
            for job, size in zip(jobs, sizes):
                if isinstance(size, str):  # it could not be made: damage, as in a read
                    entries[job.position] = None
                    skip(FormatError(size, path=source, where=job.where))
                    continue
                _count(result, job.folder, size, on_progress)

    pool = BatchPool(partial(_finish_and_write, fmt), workers, _died)
    # Everything is read: a large object on S3 is read ahead as soon as it is opened.
    whole = s3.reading_through() if ids is None and limit is None else contextlib.nullcontext()
    try:
        with whole, storage.ObjectWriter() as writer, pool:
            for item, deferred in islice(pairs, limit):
                image = item.image
                output = name(item, deferred.extension if deferred else None)
                relpath, folder = output.relpath, output.folder
                if folders is None:  # S3: no symlinks, a safe relative path stays inside
                    target = storage.join(root, relpath)
                else:
                    target = folders.target(relpath)
                entries.append(output.entry)
                if deferred is not None:
                    where = str(item.where) if item.where else None
                    finishing.append(_Job(len(entries) - 1, folder, where, target, deferred.data))
                    if len(finishing) == FINISH_BATCH:
                        finished(pool.put(finishing))
                        finishing = []
                    continue
                if not dry_run:
                    writer.write(target, image)
                _count(result, folder, len(image), on_progress)
            if finishing:
                finished(pool.put(finishing))
            finished(pool.drain())
    except BaseException:
        # Stopped (an error, Ctrl-C): the workers are gone, and so must be any file one
        # of them, or this process, was writing under its temporary name.
        if folders is not None:
            folders.remove_temporaries()
        raise
    made = [entry for entry in entries if entry is not None]
    if not made and result.damaged:
        raise FormatError(
            f"no intact item to unpack ({len(result.damaged)} damaged, listed above)",
            path=source,
            hint="`imgfmt verify` shows the damage",
        )
    if not made:
        if ids is None and limit is None:
            raise FormatError("holds no records; nothing written", path=source)
        raise UsageError("no records matched; nothing written", path=source)
    if not dry_run:
        lst.write_lst(result.list_path, made)
