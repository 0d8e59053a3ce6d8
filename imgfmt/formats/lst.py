"""Image lists (``.lst``) exactly as mxnet 1.9.1's ``tools/im2rec.py`` writes and reads them.

A line is ``index<TAB>label[<TAB>label...]<TAB>relative/path<LF>``; labels are written with
``%f``. Listing, shuffling and splitting reproduce ``im2rec.py --list`` byte for byte
(``tests/golden/lst/`` holds its output; ``tests/test_lst_interop.py`` runs it live): the
same options give the same bytes, except where im2rec's result is surely unintended:

- a malformed line is a ``FormatError`` naming the line, not a printed message and a skip;
- a directory symlink that points back at one of its own ancestors is not followed (im2rec
  descends until the OS refuses, listing the same images dozens of times);
- an empty listing is an error that says what was searched, not an empty ``.lst``;
- a path a ``.lst`` line cannot hold (tab, line break, leading or trailing white space, not
  UTF-8) is refused when writing instead of producing a list that reads back differently;
- extensions are compared case-insensitively on both sides (im2rec lower-cases only the file's
  suffix, so ``--exts .JPG`` matches nothing there);
- a prefix ending in ``/`` is refused (im2rec's ``abspath`` turns ``out/`` into ``out.lst``
  beside the folder);
- a byte order mark at the start of a list is skipped.

Class names are kept in a class map beside the lists (im2rec only prints them):
``<prefix>.classes.tsv``, UTF-8, one line per class, ``label<TAB>name<LF>``, sorted by label,
no header. ``name`` is the class folder relative to the listed root (``cat``,
``animals/cat``), or the root folder's own name for images directly in the root.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, Any, NoReturn

from imgfmt import storage
from imgfmt.errors import FormatError, ImgfmtError, StorageError, UsageError, excerpt, not_utf8
from imgfmt.formats.base import (
    CheckContext,
    Document,
    LineSplit,
    NamedImage,
    SplitSource,
    label_class,
    with_newline,
)
from imgfmt.formats.recordio import MAGIC_BYTES, KeySet
from imgfmt.storage import AtomicOutputs, atomic_output, describe_os_error, is_s3, open_input

#: im2rec.py's ``--exts`` default.
DEFAULT_EXTS = (".jpeg", ".jpg", ".png")

#: im2rec.py's shuffle seed: ``random.seed(100)`` before ``random.shuffle``.
DEFAULT_SEED = 100

#: File name suffix of the class map written beside a list.
CLASS_MAP_SUFFIX = ".classes.tsv"

#: Extensions stripped from a dataset path to get its prefix: ``data/train.rec`` -> ``data/train``.
DATASET_EXTS = (".lst", ".rec", ".idx", ".manifest", ".jsonl", ".json", ".tar")

#: What im2rec appends to a prefix for splits and chunks: ``_train``, ``_val``, ``_test``, ``_3``.
SPLIT_SUFFIX = re.compile(r"_(?:train|val|test|\d+)$")

#: The .lst line format, for error hints.
LST_FORMAT = "a .lst line is index<TAB>label[<TAB>label...]<TAB>relative/path"

#: The class map line format, for error hints.
CLASS_MAP_FORMAT = "a class map line is label<TAB>name, label a whole number"

#: A byte order mark, as editors on Windows put at the start of a UTF-8 file.
BOM = "\ufeff"

#: A header ``id`` is a u64 (``IRHeader``), so a list index must fit one.
MAX_INDEX = 2**64 - 1

#: Longest excerpt of a bad line quoted in an error message.
QUOTE_LIMIT = 80


@dataclass(frozen=True, slots=True)  # slots: a pack may hold millions of them
class LstEntry:
    """One line of a ``.lst``: record index, labels, and image path relative to the root."""

    index: int
    labels: tuple[float, ...]
    path: str


@dataclass(frozen=True)
class ListResult:
    """What :func:`make_lists` wrote.

    ``counts`` maps each list file, in the order written, to its number of lines; a file
    can hold 0 lines (im2rec writes it all the same). ``unlisted`` counts images that
    im2rec's split arithmetic leaves out of every file (it truncates ``chunk * ratio``).
    """

    root: str
    counts: dict[str, int]
    class_map_path: str | None  # None: the list went to standard output, alone
    classes: dict[int, str]
    images: int
    unlisted: int = 0
    empty: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[str]:
        return list(self.counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "images": self.images,
            "lists": dict(self.counts),
            "empty_lists": list(self.empty),
            "unlisted": self.unlisted,
            "class_map": self.class_map_path,
            "classes": {str(label): name for label, name in sorted(self.classes.items())},
        }


# --------------------------------------------------------------------------- listing


def _normalise_exts(exts: Sequence[str]) -> frozenset[str]:
    if isinstance(exts, str):  # a lone ".jpg" would otherwise become {".", "j", "p", "g"}
        exts = (exts,)
    return frozenset(e.lower() if e.startswith(".") else "." + e.lower() for e in exts if e)


def _class_name(relpath: str, root: str) -> str:
    return storage.basename(root) if relpath == "." else storage.posix(relpath)


@dataclass(frozen=True)
class PathFilter:
    """Which listed files to keep, by glob patterns on their path relative to the root
    (``cat/img1.jpg``; ``*`` also matches ``/``, as in ``aws s3 cp --include``): every file
    when there is no ``include`` pattern, else those matching one; never one matching an
    ``exclude`` pattern (exclusion wins, whatever the order given)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __call__(self, relpath: str) -> bool:
        from fnmatch import fnmatchcase

        if self.include and not any(fnmatchcase(relpath, p) for p in self.include):
            return False
        return not any(fnmatchcase(relpath, p) for p in self.exclude)

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)


def list_images(
    root: str,
    *,
    recursive: bool = False,
    exts: Sequence[str] = DEFAULT_EXTS,
    select: PathFilter | None = None,
) -> tuple[list[LstEntry], dict[int, str]]:
    """List the images under ``root`` as im2rec's ``list_image`` does.

    Recursive: ``os.walk(root, followlinks=True)`` with folders and files sorted by code
    point; each folder takes the next label when its first image is met. Otherwise the
    sorted top-level files, all label 0. Returns the entries (indices 0, 1, ... in listing
    order) and the class map ``{label: class name}``.

    An ``s3://`` root is listed as the folder tree its keys make (see
    :func:`imgfmt.storage.walk_s3`), giving the same list as a local copy of it. ``select``
    keeps only some files (before labels are given: a folder none of whose files is kept
    takes no label).
    """
    select = select or PathFilter()
    if is_s3(root):
        return _list_s3(root, recursive, _normalise_exts(exts), select)
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        reason = "is not a folder" if os.path.exists(root) else "no such folder (check the path)"
        raise StorageError(reason, path=root)
    wanted = _normalise_exts(exts)
    entries: list[LstEntry] = []
    labels: dict[str, int] = {}  # folder path, as os.walk gives it -> label

    def add(folder: str, fname: str) -> None:
        fpath = os.path.join(folder, fname)
        if os.path.splitext(fname)[1].lower() in wanted and os.path.isfile(fpath):
            relpath = storage.posix(os.path.relpath(fpath, root))
            if select(relpath):
                label = labels.setdefault(folder, len(labels))
                entries.append(LstEntry(len(entries), (float(label),), relpath))

    if recursive:
        # Real paths of each pending folder's ancestors (itself included): a folder whose
        # real path is among them is a symlink cycle, and is not entered.
        chains: dict[str, frozenset[str]] = {root: frozenset([os.path.realpath(root)])}
        for folder, dirs, files in os.walk(root, onerror=_unreadable, followlinks=True):
            chain = chains.pop(folder, frozenset())
            kept = []
            for name in sorted(dirs):
                real = os.path.realpath(os.path.join(folder, name))
                if real not in chain:
                    kept.append(name)
                    chains[os.path.join(folder, name)] = chain | {real}
            dirs[:] = kept
            for fname in sorted(files):
                add(folder, fname)
    else:
        try:
            names = sorted(os.listdir(root))
        except OSError as err:
            _unreadable(err)
        for fname in names:
            add(root, fname)

    if not entries:
        raise _nothing_found(root, recursive, wanted, select=select)
    classes = {
        label: _class_name(os.path.relpath(folder, root), root) for folder, label in labels.items()
    }
    return entries, classes


def _list_s3(
    root: str, recursive: bool, wanted: frozenset[str], select: PathFilter
) -> tuple[list[LstEntry], dict[int, str]]:
    root = storage.abspath(root)
    entries: list[LstEntry] = []
    labels: dict[str, int] = {}  # folder relative to root -> label
    has_folders = has_files = False
    for folder, dirs, files in storage.walk_s3(root, recursive=recursive):
        rel = storage.relpath(folder, root)
        has_folders = has_folders or bool(dirs)
        has_files = has_files or bool(files)
        for fname in files:
            path = fname if rel == "." else f"{rel}/{fname}"
            if os.path.splitext(fname)[1].lower() in wanted and select(path):
                label = labels.setdefault(rel, len(labels))
                entries.append(LstEntry(len(entries), (float(label),), path))
    if not entries:
        if not has_folders and not has_files:
            raise storage.missing(root, "no objects under this prefix", "check the prefix")
        raise _nothing_found(root, recursive, wanted, has_folders=has_folders, select=select)
    classes = {label: _class_name(rel, root) for rel, label in labels.items()}
    return entries, classes


def _unreadable(err: OSError) -> NoReturn:
    # im2rec (os.walk's default) skips a folder it cannot read, and with it a whole class.
    raise StorageError(f"cannot list folder: {describe_os_error(err)}", path=err.filename) from err


def _nothing_found(
    root: str,
    recursive: bool,
    exts: frozenset[str],
    *,
    has_folders: bool | None = None,
    select: PathFilter | None = None,
) -> UsageError:
    mode = "recursive" if recursive else "top level only"
    message = f"no images with extensions {', '.join(sorted(exts))} found under {root} ({mode})"
    if select:
        message += " that --include/--exclude keep"
        return UsageError(message, hint="check the patterns: they match paths like cat/1.jpg")
    hint = None
    if not recursive:
        if has_folders is None:
            with os.scandir(root) as it:
                has_folders = any(entry.is_dir() for entry in it)
        if has_folders:
            hint = "images in class sub-folders need --recursive"
    return UsageError(message, hint=hint)


def shuffle_entries(entries: list[LstEntry], seed: int = DEFAULT_SEED) -> list[LstEntry]:
    """A shuffled copy, in the order ``random.seed(seed); random.shuffle(entries)`` gives."""
    shuffled = list(entries)
    random.Random(seed).shuffle(shuffled)
    return shuffled


# --------------------------------------------------------------------------- splitting


def _check_ratios(train_ratio: float, test_ratio: float, chunks: int) -> None:
    for name, value in (("train ratio", train_ratio), ("test ratio", test_ratio)):
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"{name} must be between 0 and 1, got {value}")
    # 1e-9: float rounding must not turn a sum meant to be exactly 1 into an error.
    if train_ratio + test_ratio > 1.0 + 1e-9:
        raise UsageError(
            f"train ratio {train_ratio} + test ratio {test_ratio} is more than 1",
            hint="the validation list gets what is left: 1 - train - test",
        )
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise UsageError(f"chunks must be a whole number of at least 1, got {chunks!r}")


def plan_splits(
    entries: Sequence[LstEntry],
    prefix: str,
    *,
    train_ratio: float = 1.0,
    test_ratio: float = 0.0,
    chunks: int = 1,
) -> dict[str, list[LstEntry]]:
    """Cut ``entries`` into list files, with im2rec's names and arithmetic: output path -> entries.

    ``chunk_size = ceil(N / chunks)``; each chunk ``i`` (suffix ``_i`` only when
    ``chunks > 1``) gives ``PREFIX[_i].lst`` when ``train_ratio == 1``, else
    ``PREFIX[_i]_test.lst`` (if ``test_ratio``), ``PREFIX[_i]_val.lst`` (if
    ``train_ratio + test_ratio < 1``) and ``PREFIX[_i]_train.lst``, in that order. Both cut
    points come from ``chunk_size`` (not the chunk's own length) and are truncated.

    Choice: the file set is exactly im2rec's, so a file whose slice is empty (a chunk past
    the end, a 0-sized split, the last, shorter chunk) is still planned, with no entries;
    callers report such files (:class:`ListResult` ``empty``) rather than skip them, so a
    run never leaves a stale list from an earlier run under the same name.
    """
    _check_ratios(train_ratio, test_ratio, chunks)
    items = list(entries)
    chunk_size = (len(items) + chunks - 1) // chunks
    plan: dict[str, list[LstEntry]] = {}
    for i in range(chunks):
        chunk = items[i * chunk_size : (i + 1) * chunk_size]
        stem = prefix + (f"_{i}" if chunks > 1 else "")
        sep = int(chunk_size * train_ratio)
        sep_test = int(chunk_size * test_ratio)
        if train_ratio == 1.0:
            plan[stem + ".lst"] = chunk
            continue
        if test_ratio:
            plan[stem + "_test.lst"] = chunk[:sep_test]
        if train_ratio + test_ratio < 1.0:  # the same float test as im2rec
            plan[stem + "_val.lst"] = chunk[sep_test + sep :]
        plan[stem + "_train.lst"] = chunk[sep_test : sep_test + sep]
    return plan


#: Extensions of the other datasets, for telling a user which command reads them.
OTHER_KINDS = {
    ".rec": "a RecordIO file",
    ".idx": "a RecordIO index",
    ".jsonl": "a JSON Lines file",
    ".json": "a JSON file",
    ".manifest": "a manifest",
}


def require_list_or_folder(source: str, command: str) -> None:
    """``UsageError`` when ``source`` is plainly another kind of dataset (by its extension):
    ``command`` reads a ``.lst`` or an image folder."""
    ext = storage.splitext(source)[1].lower()
    if ext in OTHER_KINDS and not storage.is_dir(source):
        raise UsageError(
            f"{source} is {OTHER_KINDS[ext]}, but {command} reads a .lst or an image folder",
            hint="unpack a .rec or .jsonl first (imgfmt unpack), or turn a manifest into a "
            ".lst (imgfmt manifest-to-lst)",
        )


# --------------------------------------------------------------------------- writing


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_entry(entry: LstEntry) -> None:
    path = entry.path
    if not entry.labels and _is_number(path.strip()):
        # An unlabeled line is index<TAB>path: a path that reads as a number would read back
        # as a line that lost its path.
        raise FormatError(
            f"entry {entry.index} has no label and its path {path!r} reads as a number, so a "
            ".lst line cannot hold it",
            hint="give it a label, or a path that is not a number",
        )
    bad = None
    if any(c in path for c in "\t\n\r"):
        bad = "holds a tab or line break"
    elif path != path.strip():
        bad = "starts or ends with white space, which .lst readers strip"
    else:
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            bad = "is not valid UTF-8"
    if bad:
        raise FormatError(
            f"image path {path!r} (index {entry.index}) {bad}, so a .lst line cannot hold it",
            hint="rename the file or folder",
        )


def format_lst_line(entry: LstEntry) -> str:
    """One ``.lst`` line, as im2rec's ``write_list`` formats it (``%d``, ``%f``, path, LF)."""
    _check_entry(entry)
    # Printf-style on purpose: these are im2rec's own format strings.
    line = "%d\t" % entry.index  # noqa: UP031
    line += "".join("%f\t" % label for label in entry.labels)  # noqa: UP031
    return line + entry.path + "\n"


def write_entries(handle: IO[str], entries: Iterable[LstEntry]) -> int:
    """Write ``.lst`` lines to an open text handle (from ``AtomicOutputs``); returns the count."""
    count = 0
    for entry in entries:
        handle.write(format_lst_line(entry))
        count += 1
    return count


def write_lst(path: str, entries: Iterable[LstEntry]) -> int:
    """Write a ``.lst`` (UTF-8, LF) atomically; returns the number of lines."""
    with atomic_output(path, "w") as handle:
        return write_entries(handle, entries)


# --------------------------------------------------------------------------- reading


def _quote(text: str) -> str:
    return excerpt(text, QUOTE_LIMIT)


#: Label tuples shared between entries with the same label fields (a classification list
#: has one per class), up to this many per list; beyond it, each entry gets its own.
SHARED_LABELS_MAX = 4096


def parse_lst(lines: Iterable[str], name: str, first_line: int = 1) -> Iterator[LstEntry]:
    """Parse ``.lst`` lines strictly; ``name`` names the input in errors.

    Fields are split on tabs after stripping the line, and each field is stripped, as
    im2rec's ``read_list`` does (so a path keeps inner spaces but not leading or trailing
    ones). Blank lines are skipped. A line of two fields, an index and a path that is not a
    number, is an image without a label (``labels`` empty: what ``unpack`` lists for an
    unlabeled RecordIO-protobuf record; im2rec would skip such a line). Any other line with
    fewer than 3 fields, an index that is not a whole number in 0..2**64-1, a label that is
    not a number, a repeated index, or bytes that are not UTF-8 raise ``FormatError`` naming
    the line. ``first_line`` is the number of the first of ``lines`` (a range of a list).
    """
    # Memory that grows with the list stays small: the indices seen, a bit each while they
    # are dense (KeySet). The line an index was first used on is found only when it repeats
    # (``first_use``), by reading the input again where the caller can.
    seen = KeySet()
    shared: dict[tuple[str, ...], tuple[float, ...]] = {}  # label fields -> labels
    for number, raw in enumerate(lines, start=first_line):
        where = f"line {number}"
        if not_utf8(raw):
            raise FormatError(
                f"not valid UTF-8: {_quote(raw.rstrip())}",
                path=name,
                where=where,
                hint="save the list as UTF-8",
            )
        if number == 1:
            raw = raw.removeprefix(BOM)
        line = raw.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split("\t")]
        # index<TAB>path: an image without a label (what unpack lists for an unlabeled
        # record; im2rec would skip the line). index<TAB>number is a line missing its path.
        unlabeled = len(fields) == 2 and bool(fields[1]) and not _is_number(fields[1])
        if len(fields) < 3 and not unlabeled:
            raise FormatError(
                f"expected at least 3 tab-separated fields, found {len(fields)}: {_quote(line)}",
                path=name,
                where=where,
                hint=LST_FORMAT,
            )
        try:
            index = int(fields[0])
        except ValueError:
            index = -1
        if not 0 <= index <= MAX_INDEX:
            raise FormatError(
                f"index {_quote(fields[0])} is not a whole number from 0 to 2**64-1",
                path=name,
                where=where,
                hint=LST_FORMAT,
            )
        texts = tuple(fields[1:-1])
        labels = shared.get(texts)
        if labels is None:
            parsed = []
            for column, text in enumerate(texts, start=2):
                try:
                    parsed.append(float(text))
                except ValueError:
                    raise FormatError(
                        f"label {_quote(text)} in field {column} is not a number",
                        path=name,
                        where=where,
                        hint=LST_FORMAT,
                    ) from None
            labels = tuple(parsed)
            if len(shared) < SHARED_LABELS_MAX:
                shared[texts] = labels
        if not seen.add(index):
            raise RepeatedIndex(index, name, where)
        yield LstEntry(index, labels, fields[-1])


class RepeatedIndex(FormatError):
    """An index used twice; :meth:`on_line` names the line that used it first."""

    def __init__(self, index: int, path: str, where: str) -> None:
        super().__init__(f"index {index} already used on an earlier line", path=path,
                         where=where, hint="every index must be unique")  # fmt: skip
        self.index = index

    def on_line(self, first: int) -> RepeatedIndex:
        self.message = f"index {self.index} already used on line {first}"
        return self


def _first_use(path: str, index: int) -> int | None:
    """The number of the first line of ``path`` with ``index`` (read again)."""
    with open_input(path, "r", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            head = line.removeprefix(BOM).strip().split("\t", 1)[0].strip()
            if head.isdigit() and int(head) == index:
                return number
    return None


def parse_file(lines: Iterable[str], path: str) -> Iterator[LstEntry]:
    """:func:`parse_lst` over the lines of the file ``path``: a repeated index names the
    line that used it first (the file is read again to find it), and a file that is no
    text at all (an image, a RecordIO file) says what it is (:func:`not_a_list`) rather
    than quote its bytes as a bad line."""
    try:
        yield from parse_lst(lines, path)
    except RepeatedIndex as err:
        first = _first_use(path, err.index)
        raise (err if first is None else err.on_line(first)) from None
    except FormatError as err:
        found = sniff_not_a_list(path)
        if found is None:
            raise
        raise found from err


#: Bytes of a file's start looked at to tell what it is, when it does not parse as a list.
SNIFF_BYTES = 512

#: What to give instead of a file that is no list.
NOT_A_LIST_HINT = "give the .lst, or the folder of images"


def not_a_list(head: bytes, path: str) -> FormatError | None:
    """The error for a file whose first bytes (``head``) show it is no image list at all: an
    image, a RecordIO file, text in UTF-16, other binary data (a NUL byte); None when it
    may be a list (text, even if not UTF-8)."""
    from imgfmt.images import format_name  # Pillow: only for a file that is no list

    image = format_name(head)
    if image is not None:
        article = "an" if image[:1] in "AEIOU" else "a"
        what = f"{article} {image} image"
    elif head.startswith(MAGIC_BYTES):
        what = "a RecordIO file (.rec)"
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")):  # the byte order mark of UTF-16
        return FormatError(
            "this list is UTF-16 text, not UTF-8", path=path, hint="save the list as UTF-8"
        )
    elif b"\0" in head:
        what = "a binary file"
    else:
        return None
    message = f"this is {what}, not an image list (.lst)"
    return FormatError(message, path=path, hint=NOT_A_LIST_HINT)


def sniff_not_a_list(path: str) -> FormatError | None:
    """:func:`not_a_list` of the file ``path`` (its first :data:`SNIFF_BYTES` read; one
    ranged GET on S3); None also when it cannot be read."""
    try:
        head = storage.read_range(path, 0, SNIFF_BYTES)
    except ImgfmtError:
        return None
    return not_a_list(head, path)


def read_lst(path: str) -> Generator[LstEntry, None, None]:
    """The entries of a ``.lst`` file, parsed strictly (see :func:`parse_lst`)."""
    with open_input(path, "r", errors="surrogateescape") as handle:
        yield from parse_file(handle, path)


# --------------------------------------------------------------------------- the root

#: Images of a list looked up before its root is trusted: the first of them found is
#: enough. Only when none is found is the root looked at closer.
ROOT_PROBE = 5

#: What ``--root`` is, for errors about it.
ROOT_HINT = "pass --root, the folder the list's paths are relative to"


def root_error(
    list_path: str,
    root: str,
    paths: Iterable[str],
    *,
    given: bool = True,
    exists: Callable[[str], bool] | None = None,
    sample: int | None = None,
) -> ImgfmtError | None:
    """Whether the images of the list ``list_path`` are under ``root`` at all, before one
    image is read: None when one of them is; else the one error that says the root is wrong
    (rather than one per image).

    ``paths`` are the list's image paths in list order (relative to the root); ``given``:
    the root was given, not the list's own folder; ``exists(path)`` tells whether one is
    there (default: the file ``root/path`` exists, a HEAD request on S3).

    Cheap for a list of any length while the root is right: the first of the first
    :data:`ROOT_PROBE` entries found ends the search. When none of them is, a root that does
    not exist is a ``UsageError``; else the rest are looked up until one is found, all of
    them, or with ``sample`` only that many, drawn evenly at random (same draw every run)
    from the rest: what a HEAD request each can afford on S3.
    """
    if exists is None:

        def exists(path: str) -> bool:
            return storage.is_file(storage.join(root, path))

    it = iter(paths)
    first = None
    count = 0
    for path in islice(it, ROOT_PROBE):
        first = path if first is None else first
        count += 1
        if exists(path):
            return None
    if first is None:
        return None  # an empty list: nothing to look for
    if not storage.is_dir(root):
        what = "the `root` folder" if given else "the list's folder"
        return UsageError(
            f"{what} {root} does not exist",
            hint="give the folder the list's paths are relative to",
        )
    looked = count
    if sample is None:
        for path in it:
            count += 1
            if exists(path):
                return None
        looked = count
    else:
        drawn: list[str] = []
        draw = random.Random(DEFAULT_SEED)
        for seen, path in enumerate(it):  # reservoir sampling: memory for ``sample`` paths
            count += 1
            if len(drawn) < sample:
                drawn.append(path)
            elif (slot := draw.randrange(seen + 1)) < sample:
                drawn[slot] = path
        if any(exists(path) for path in drawn):
            return None
        looked += len(drawn)
    folder = root if given else f"the list's folder {root}"
    full = storage.join(root, first)
    if count == 1:
        message = f"the image of {list_path} is not under {folder} ({full} does not exist)"
    else:
        images = f"the {count}" if looked == count else f"{looked} sampled from the {count}"
        message = f"none of {images} images of {list_path} is under {folder}"
        message += f" (the first, {full}, does not exist)"
    return StorageError(message, hint=ROOT_HINT)


def check_root(list_path: str, root: str | None) -> str:
    """The folder the images of the list ``list_path`` are under: ``root``, or the list's
    own folder when None; raises :func:`root_error` (read from the list, strictly) when
    none of its images is there. On S3 a few images are looked up, not all."""
    folder = storage.dirname(storage.abspath(list_path)) if root is None else root
    with contextlib.closing(read_lst(list_path)) as entries:
        found = root_error(
            list_path,
            folder,
            (entry.path for entry in entries),
            given=root is not None,
            sample=ROOT_PROBE if is_s3(folder) else None,
        )
    if found is not None:
        raise found
    return folder


# --------------------------------------------------------------------------- class map


def _dataset_stem(path: str) -> str:
    if path.endswith(CLASS_MAP_SUFFIX):
        return path[: -len(CLASS_MAP_SUFFIX)]
    stem, ext = storage.splitext(path)
    return stem if ext.lower() in DATASET_EXTS else path


def class_map_copy(source: str, dataset: str) -> tuple[str, str] | None:
    """``(class map of source, where its copy goes beside dataset)``, when ``source`` has a
    class map and ``dataset``'s would be another file: what an operation that writes a new
    dataset from ``source`` (split, convert) carries along, so that its output's classes
    keep their names."""
    found = find_class_map(source)
    if found is None:
        return None
    target = class_map_path(dataset)
    return None if storage.same_path(found, target) else (found, target)


def copy_class_map(copy: tuple[str, str], outputs: AtomicOutputs) -> None:
    """Write the copy :func:`class_map_copy` planned, on ``outputs``."""
    found, target = copy
    with open_input(found, "rb") as handle:
        outputs.open(target, "wb").write(handle.read())


def class_map_path(prefix_or_list_path: str) -> str:
    """Where a prefix's class map lives: ``data/train`` -> ``data/train.classes.tsv``.

    A dataset path loses its extension first (``.lst``, ``.rec``, ``.idx``, ``.manifest``,
    ``.json``, ``.jsonl``): ``data/train.lst`` -> ``data/train.classes.tsv``.
    """
    return _dataset_stem(prefix_or_list_path) + CLASS_MAP_SUFFIX


def find_class_map(dataset_path: str) -> str | None:
    """The class map that belongs to a ``.lst``/``.rec``/``.manifest``, or None.

    Tries ``<stem>.classes.tsv``, then strips im2rec's split and chunk suffixes one at a
    time and tries again: ``data_0_train.rec`` -> ``data_0_train``, ``data_0``, ``data``.
    """
    stem = _dataset_stem(dataset_path)
    while True:
        candidate = stem + CLASS_MAP_SUFFIX
        if storage.is_file(candidate):
            return candidate
        shorter = SPLIT_SUFFIX.sub("", stem)
        if shorter == stem or not storage.basename(shorter):
            return None
        stem = shorter


def write_class_map(path: str, mapping: dict[int, str]) -> None:
    """Write ``label<TAB>name`` lines sorted by label, atomically."""
    with atomic_output(path, "w") as handle:
        write_class_map_to(handle, mapping)


def write_class_map_to(handle: IO[str], mapping: dict[int, str]) -> None:
    """Write class map lines to an open text handle (e.g. from ``AtomicOutputs``)."""
    for label, name in sorted(mapping.items()):
        if any(c in name for c in "\t\n\r"):
            raise FormatError(
                f"class name {name!r} holds a tab or line break", hint="rename the folder"
            )
        handle.write(f"{label}\t{name}\n")


def read_class_map(path: str) -> dict[int, str]:
    """Read a class map strictly: ``FormatError`` with the line number on any bad line."""
    mapping: dict[int, str] = {}
    lines: dict[int, int] = {}
    with open_input(path, "r", encoding="utf-8-sig", errors="surrogateescape") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"line {number}"
            line = raw.rstrip("\r\n")
            if not_utf8(line):
                raise FormatError(f"not valid UTF-8: {_quote(line)}", path=path, where=where)
            if not line.strip():
                continue
            label_text, tab, name = line.partition("\t")
            try:
                label = int(label_text) if tab and name else -1
            except ValueError:
                label = -1
            if label < 0:
                raise FormatError(
                    f"expected label<TAB>name, found {_quote(line)}",
                    path=path,
                    where=where,
                    hint=CLASS_MAP_FORMAT,
                )
            if label in mapping:
                raise FormatError(
                    f"label {label} already named on line {lines[label]}", path=path, where=where
                )
            mapping[label] = name
            lines[label] = number
    return mapping


# --------------------------------------------------------------------------- lst-gen


def list_prefix(prefix: str) -> str:
    """A PREFIX given with its ``.lst`` (``data/x.lst``) means ``data/x``: the lists are
    ``data/x.lst``, never ``data/x.lst.lst`` (as ``split`` reads its OUT_PREFIX too)."""
    stem, ext = storage.splitext(prefix)
    return stem if ext.lower() == ".lst" and stem and not stem.endswith(("/", os.sep)) else prefix


def _check_prefix(prefix: str) -> None:
    # im2rec runs the prefix through abspath, so "out/" silently becomes "out.lst" beside
    # the folder: the classic prefix/root mix-up. Refuse it rather than guess.
    storage.require_file_prefix(prefix, "lists are written to PREFIX.lst", "images")
    if is_s3(prefix) and not storage.s3.split_uri(prefix)[1]:
        raise UsageError(f"prefix {prefix!r} names a bucket", hint="e.g. s3://bucket/images")
    storage.ensure_output_folder(prefix)


def load_class_map(
    path: str | None, fmt: Document, ctx: CheckContext
) -> tuple[str, dict[int, str]] | None:
    """For ``verify``: the class map at ``path`` (or None); a damaged one is a problem
    reported to ``ctx``, not a crash."""
    if path is None:
        return None
    try:
        return path, read_class_map(path)
    except ImgfmtError as err:
        ctx.add(fmt.problem(err.path or path, "classes", err.where or "", err.reason))
        return None


def label_problems(
    labels: Sequence[float], single: bool, classes: dict[int, str] | None, class_path: str
) -> Iterator[str]:
    """What is wrong with a record's or a line's labels (``single``: one class label), for
    ``verify``."""
    for value in labels:
        if not math.isfinite(value):
            yield f"label {value} is not a finite number"
    if single and classes is not None:
        (value,) = labels
        if math.isfinite(value):
            if value != int(value):
                yield f"label {value} is not a whole number, so it is no class of {class_path}"
            elif int(value) not in classes:
                yield (
                    f"label {int(value)} is not in the class map {class_path} "
                    f"({len(classes)} classes)"
                )


def make_lists(
    root: str,
    prefix: str,
    *,
    recursive: bool = False,
    exts: Sequence[str] = DEFAULT_EXTS,
    shuffle: bool = True,
    seed: int = DEFAULT_SEED,
    train_ratio: float = 1.0,
    test_ratio: float = 0.0,
    chunks: int = 1,
    select: PathFilter | None = None,
) -> ListResult:
    """``im2rec.py --list PREFIX ROOT``: list, shuffle, split and write, plus the class map;
    ``select`` lists only some files (``--include``/``--exclude``).

    ``prefix`` is relative to the current folder, the paths in the lists relative to
    ``root``. Every list file and ``PREFIX.classes.tsv`` appear together or not at all.
    """
    _check_ratios(train_ratio, test_ratio, chunks)
    to_stdout = prefix == storage.STREAM
    if to_stdout and (train_ratio != 1.0 or test_ratio or chunks != 1):
        raise UsageError(
            "PREFIX '-' (standard output) takes one list: splits and chunks are several files",
            hint="give a PREFIX to write PREFIX_train.lst, PREFIX_val.lst, ...",
        )
    prefix = list_prefix(prefix)
    if not to_stdout:
        _check_prefix(prefix)
    entries, classes = list_images(root, recursive=recursive, exts=exts, select=select)
    if shuffle:
        entries = shuffle_entries(entries, seed)
    if to_stdout:  # the list alone: the class map has no stream to go to
        plan, map_path = {storage.STREAM: list(entries)}, None
    else:
        plan = plan_splits(
            entries, prefix, train_ratio=train_ratio, test_ratio=test_ratio, chunks=chunks
        )
        map_path = prefix + CLASS_MAP_SUFFIX  # find_class_map(PREFIX.lst) looks exactly here
    counts: dict[str, int] = {}
    with AtomicOutputs() as outputs:
        for path, part in plan.items():
            counts[path] = write_entries(outputs.open(path, "w"), part)
        if map_path is not None:
            write_class_map_to(outputs.open(map_path, "w"), classes)
    return ListResult(
        root=storage.abspath(root),
        counts=counts,
        class_map_path=map_path,
        classes=classes,
        images=len(entries),
        unlisted=len(entries) - sum(counts.values()),
        empty=[path for path, count in counts.items() if count == 0],
    )


# --------------------------------------------------------------------------- verify


class ImageList(Document):
    """im2rec's image list (``.lst``): it names images rather than holding them."""

    name = "lst"
    extensions = (".lst",)
    summary = "im2rec image list: index, labels and relative path a line"

    def listing(self, path: str) -> tuple[Iterator[tuple[str, tuple[float, ...]]], dict[int, str]]:
        return ((entry.path, entry.labels) for entry in read_lst(path)), {}

    def named_images(self, path: str) -> tuple[Iterator[NamedImage], dict[int, str]]:
        """Each entry with its index as its id."""
        images = (NamedImage(entry.index, f"entry {n + 1}", entry.path, entry.labels)
                  for n, entry in enumerate(read_lst(path)))  # fmt: skip
        return images, {}

    def images_root(self, path: str, root: str | None) -> str | None:
        """``root`` or the list's folder, once some listed image is found there."""
        return check_root(path, root)

    def split_source(self, path: str, label_attribute: str | None = None) -> SplitSource:
        """Each entry's line, copied byte for byte; its class from its labels."""
        self._no_label_attribute(label_attribute)
        with open_input(path, "rb") as handle:
            data = handle.read()
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        raw = data.splitlines(keepends=True)
        texts = [line.decode("utf-8", errors="surrogateescape") for line in raw]
        # parse_lst skips exactly the lines that strip to nothing; the rest pair with entries.
        kept = [line for line, text in zip(raw, texts) if text.strip()]
        classes, lines = [], []
        for entry, line in zip(parse_file(texts, path), kept):
            classes.append(label_class(entry.labels))
            lines.append(with_newline(line))
        return LineSplit(classes, lines)

    def check(self, path: str, ctx: CheckContext) -> None:
        """Every line parsed (all bad lines reported, not the first), indices unique, labels
        finite (and classes of the class map), every image present under the root, and with
        ``decode`` every image decodes (on ``ctx.workers`` processes). When none of the
        images is under the root, that is one problem (the root is wrong), not one per line."""
        _ListCheck(self, path, ctx).run()


#: Images read at once for ``verify --decode`` of a list: on S3 fetched concurrently.
DECODE_READ_BATCH = 32


class _ListCheck:
    """One ``verify`` of a ``.lst``: a single pass over its lines (read again only when none
    of the first :data:`ROOT_PROBE` images is found, to tell a wrong root)."""

    def __init__(self, fmt: ImageList, path: str, ctx: CheckContext) -> None:
        self.fmt, self.path, self.ctx = fmt, path, ctx
        root = ctx.root
        self.given_root = root is not None
        self.folder = root if root is not None else storage.dirname(storage.abspath(path))
        #: Whether the images are under the root: None until an image is found or
        #: :func:`root_error` has looked.
        self.root_ok: bool | None = None
        #: Missing images (line, full path) while that is not known yet.
        self.deferred: list[tuple[int, str]] = []
        #: Images to read and decode next: (line, full path).
        self.to_read: list[tuple[int, str]] = []
        self.remote_keys: set[str] | None = None
        self.decoder: Any = None
        self.present = self.decoded = 0
        #: The images cannot be read at all: decoding stopped.
        self.unreadable = False

    def problem(self, check: str, where: str, message: str, line: int | None = None) -> None:
        self.ctx.add(self.fmt.problem(self.path, check, where, message, line=line))

    def exists(self, relative: str) -> bool:
        if self.remote_keys is None:
            return os.path.isfile(storage.join(self.folder, relative))
        return relative in self.remote_keys

    def run(self) -> None:
        ctx = self.ctx
        try:
            handle = open_input(self.path, "r", encoding="utf-8-sig", errors="surrogateescape")
        except ImgfmtError as err:
            self.problem("input", "", err.reason)
            return
        found = load_class_map(ctx.classes or find_class_map(self.path), self.fmt, ctx)
        class_path, class_map = found if found else ("", None)
        # Under S3 one listing of the prefix (paginated) answers for every line, not one
        # request per image.
        if storage.is_s3(self.folder):
            self.remote_keys = set(storage.list_s3(self.folder))
        seen: dict[int, int] = {}  # index -> line number
        lines = entries = 0
        failed = self._decode_failed
        self.decoder = ctx.decoder(None, failed) if ctx.decode else None
        with handle, self.decoder or contextlib.nullcontext():
            for line_no, raw in enumerate(handle, start=1):
                lines += 1
                where = f"line {line_no}"
                try:
                    parsed = list(parse_lst([raw], self.path))
                except FormatError as err:
                    other = sniff_not_a_list(self.path) if line_no == 1 else None
                    if other is not None:  # an image, say, not a list: one problem
                        self.problem("lst", "", other.reason)
                        return
                    self.problem("lst", where, err.message, line=line_no)
                    continue
                if not parsed:
                    continue  # a blank line
                entry = parsed[0]
                entries += 1
                if entry.index in seen:
                    message = f"index {entry.index} already used on line {seen[entry.index]}"
                    self.problem("lst", where, message, line=line_no)
                else:
                    seen[entry.index] = line_no
                single = len(entry.labels) == 1
                for message in label_problems(entry.labels, single, class_map, class_path):
                    self.problem("label", where, message, line=line_no)
                self._look_up(line_no, entry.path)
            if self.root_ok is None and self.deferred:
                self._judge_root()  # a list shorter than ROOT_PROBE, no image found
            self._read_batch()
            if self.decoder is not None:
                self.decoder.finish()
        ctx.checked["lst_lines"] = lines
        ctx.checked["lst_entries"] = entries
        ctx.checked["files_found"] = self.present
        if self.decoder is not None:
            ctx.checked["images_decoded"] = self.decoded
        if entries == 0:
            self.problem("lst", "", "no entries: the list is empty")

    def _look_up(self, line_no: int, relative: str) -> None:
        full = storage.join(self.folder, relative)
        if self.exists(relative):
            self.present += 1
            if self.root_ok is None:
                self.root_ok = True
                self._report_deferred()
            if self.decoder is not None:
                self.to_read.append((line_no, full))
                if len(self.to_read) >= DECODE_READ_BATCH:
                    self._read_batch()
        elif self.root_ok:
            self._missing(line_no, full)
        elif self.root_ok is None:
            self.deferred.append((line_no, full))
            if len(self.deferred) >= ROOT_PROBE:
                self._judge_root()

    def _judge_root(self) -> None:
        """None of the first images is there: is any of them?"""
        with contextlib.closing(_listed_paths(self.path)) as paths:
            wrong = root_error(
                self.path, self.folder, paths, given=self.given_root, exists=self.exists
            )
        self.root_ok = wrong is None
        if wrong is None:
            self._report_deferred()
        else:
            self.deferred.clear()
            self.problem("root", "", wrong.reason)

    def _report_deferred(self) -> None:
        for line_no, full in self.deferred:
            self._missing(line_no, full)
        self.deferred.clear()

    def _missing(self, line_no: int, full: str) -> None:
        self.problem("file", f"line {line_no}", f"image not found: {full}", line=line_no)

    def _read_batch(self) -> None:
        batch, self.to_read = self.to_read, []
        if not batch or self.unreadable:
            return
        try:
            fetched = storage.read_many([full for _line, full in batch])
        except StorageError as err:  # what every image meets (access denied): said once
            self.unreadable = True
            self.problem("file", "", f"cannot read the images to decode them: {err}")
            return
        for (line_no, full), data in zip(batch, fetched):
            if isinstance(data, StorageError):
                message = f"cannot read {full}: {data.reason}"
                self.problem("file", f"line {line_no}", message, line=line_no)
                continue
            self.decoded += 1
            self.decoder.submit((line_no, full), f"line {line_no}", data)

    def _decode_failed(self, token: tuple[int, str], reason: str) -> None:
        line_no, full = token
        self.problem("decode", f"line {line_no}", f"{full}: {reason}", line=line_no)


def _listed_paths(path: str) -> Generator[str, None, None]:
    """The image path of every line of the list ``path`` that parses (the others are
    skipped: ``verify`` reports them), read anew."""
    with open_input(path, "r", encoding="utf-8-sig", errors="surrogateescape") as handle:
        for raw in handle:
            try:
                parsed = list(parse_lst([raw], path))
            except FormatError:
                continue
            for entry in parsed:
                yield entry.path
