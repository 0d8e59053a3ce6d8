"""The format interface: what every dataset format module provides, and the types they share.

A dataset is a sequence of :class:`Item`: an encoded image with its id, labels and (where the
format keeps one) its path. A format reads items in order (:meth:`Format.read`), turns one
item into the bytes it stores (:meth:`Format.encode`, pure, so it runs in worker processes)
and appends those bytes, in order, to its outputs (:meth:`Format.writer`, in the main
process, on an ``AtomicOutputs`` group that publishes everything or nothing).

A format *instance* carries its write options (the pixel size of RecordIO-protobuf, the
shard size of WebDataset) and pickles, so workers get it whole. Operations (``imgfmt.ops``)
are written once over this interface; the registry (``imgfmt.formats``) finds a format by
name, by extension and, where an extension is shared, by content.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from imgfmt import storage
from imgfmt.errors import FormatError, ImgfmtError, UsageError
from imgfmt.images import ImageOptions
from imgfmt.payloads import Readers
from imgfmt.storage import AtomicOutputs

#: Where damaged records or lines go while a format reads: reported, skipped, counted.
OnDamage = Callable[[FormatError], None]


@dataclass(frozen=True)
class Location:
    """Where an item sits in its file, for messages and for programs."""

    #: 0-based record number (record formats), or None.
    record: int | None = None
    #: 1-based line number (line formats), or None.
    line: int | None = None
    #: Byte offset of the record, line or member, where known.
    offset: int | None = None
    #: The file it is in, when a dataset spans several (shards).
    file: str | None = None

    def __str__(self) -> str:
        if self.line is not None:
            text = f"line {self.line}"
        elif self.record is not None:
            text = f"record {self.record}"
            if self.offset is not None:
                text += f" at byte {self.offset}"
        else:
            text = f"byte {self.offset}" if self.offset is not None else ""
        return f"{self.file}: {text}" if self.file else text


@dataclass(frozen=True)
class Item:
    """One labelled image of a dataset, whatever the format."""

    #: Its id: the im2rec list index, a record header's id, a JSON id, a sample's number.
    index: int
    #: Its labels; empty when the dataset has none for it.
    labels: tuple[float, ...]
    #: The encoded image file (JPEG, PNG, ...), as a decoder reads it.
    image: bytes
    #: The relative path it was packed from, where the format keeps one.
    path: str | None = None
    where: Location | None = None
    #: Its labels are a list even when there is one (a multi-label record holding one
    #: label, as MXNet and JSON Lines can store it); always so for several.
    multi_label: bool = False

    @property
    def label(self) -> float | tuple[float, ...]:
        """The labels as a single-label format stores them: one number, or the tuple for a
        multi-label item. An item without labels stores 0.0 (a record needs one)."""
        if self.multi_label or len(self.labels) > 1:
            return self.labels
        return self.labels[0] if self.labels else 0.0


@dataclass(frozen=True)
class Deferred:
    """The part of reading an item that takes real work (base64 to decode, pixels to encode
    as a PNG), left for :meth:`Format.finish_image` to do in a worker process: ``data``
    (picklable) and the extension of the image file it makes (None: not known)."""

    data: Any
    extension: str | None


class DatasetWriter(ABC):
    """Appends encoded items, in order, to one dataset's outputs (opened on an
    ``AtomicOutputs`` group, which publishes them; the writer closes nothing it did not
    open)."""

    records_written: int = 0
    bytes_written: int = 0

    @abstractmethod
    def append(self, payload: bytes, item: Item) -> None:
        """Append what :meth:`Format.encode` made of ``item``."""

    def finish(self) -> None:  # noqa: B027 - most formats have no trailer to write
        """Write what follows the last item (a trailer, an index of all shards)."""

    @property
    @abstractmethod
    def outputs(self) -> list[str]:
        """The data files written (shards in order), for summaries."""

    @property
    def indexes(self) -> list[str]:
        """The index files written beside them, if the format has any."""
        return []

    @property
    def kept_index(self) -> ShardIndex | None:
        """What a combined index needs of this dataset as one shard of several (a writer
        from :meth:`Format.shard_writer` of a format with a combined index), else None."""
        return None


@dataclass(frozen=True)
class ShardIndex:
    """One shard, as a combined index over several shards sees it: the size in bytes of its
    data file and the text of its own index."""

    size: int
    text: str


def shard_path(path: str, number: int, count: int, ext: str | None = None) -> str:
    """``data/train-00003-of-00012.rec``: shard ``number`` (0-based) of ``count`` shards of
    the dataset ``data/train.rec`` (with ``ext``, another file of that shard: its ``.idx``).
    Numbers have 5 digits (more past 99,999 shards), so the names sort in shard order."""
    stem, own = storage.splitext(path)
    width = max(5, len(str(count)))
    return f"{stem}-{number:0{width}d}-of-{count:0{width}d}{own if ext is None else ext}"


class FileWriter(DatasetWriter):
    """The writer of a dataset that is one data file: ``put`` appends a payload to the
    format's own framing object (which counts ``records_written`` and ``bytes_written``);
    ``indexes`` are files written beside it."""

    def __init__(
        self,
        path: str,
        framing: Any,
        put: Callable[[bytes, Item], object],
        indexes: tuple[str, ...] = (),
        kept: list[str] | None = None,
    ) -> None:
        self._path, self._framing, self._put, self._indexes = path, framing, put, indexes
        #: The lines of its index, kept for a combined index (``Format.shard_writer``).
        self._kept = kept

    def append(self, payload: bytes, item: Item) -> None:
        self._put(payload, item)
        self.records_written = self._framing.records_written
        self.bytes_written = self._framing.bytes_written

    @property
    def outputs(self) -> list[str]:
        return [self._path]

    @property
    def indexes(self) -> list[str]:
        return list(self._indexes)

    @property
    def kept_index(self) -> ShardIndex | None:
        if self._kept is None:
            return None
        return ShardIndex(self._framing.bytes_written, "".join(self._kept))


class ShardedWriter(DatasetWriter):
    """Rolls over to a new shard once a shard holds ``shard_size`` bytes, each shard a whole
    dataset of its format with its own index; at the end the shards take their names
    (:func:`shard_path`: ``OUT-00000-of-00003.rec``, ...) and the format's combined index
    over all of them is written (:meth:`Format.combined_index`)."""

    def __init__(self, fmt: Format, path: str, outputs: AtomicOutputs, shard_size: int) -> None:
        self._fmt, self._path, self._outputs, self._size = fmt, path, outputs, shard_size
        self._shards: list[DatasetWriter] = []
        self._names: dict[str, str] = {}  # the name each output was opened under -> final
        self._combined: list[str] = []

    def append(self, payload: bytes, item: Item) -> None:
        shard = self._shards[-1] if self._shards else None
        if shard is None or (shard.records_written and shard.bytes_written >= self._size):
            if shard is not None:
                shard.finish()
            # Named for now as the shard of a count not known yet; renamed in finish().
            shard = self._fmt.shard_writer(self._opened_name(len(self._shards)), self._outputs)
            self._shards.append(shard)
        shard.append(payload, item)
        self.records_written += 1
        self.bytes_written += len(payload)

    def _opened_name(self, number: int) -> str:
        stem, ext = storage.splitext(self._path)
        return f"{stem}-{number:05d}{ext}"

    def finish(self) -> None:
        if not self._shards:
            return
        self._shards[-1].finish()
        count = len(self._shards)
        for number, shard in enumerate(self._shards):
            for opened in shard.outputs + shard.indexes:
                final = shard_path(self._path, number, count, storage.splitext(opened)[1])
                self._outputs.rename(opened, final)
                self._names[opened] = final
        self._combined = write_combined_index(self._fmt, self._path, self._outputs,
                                              [s.kept_index for s in self._shards])  # fmt: skip

    @property
    def outputs(self) -> list[str]:
        return [self._names.get(p, p) for shard in self._shards for p in shard.outputs]

    @property
    def indexes(self) -> list[str]:
        return [self._names.get(p, p) for shard in self._shards for p in shard.indexes]

    @property
    def combined_indexes(self) -> list[str]:
        return self._combined


class CombinedIndexWriter:
    """The format's index over every shard of the dataset ``path`` (if it has one), written
    on ``outputs`` shard by shard, in shard order: each shard's index is needed only until
    it is added."""

    def __init__(self, fmt: Format, path: str, outputs: AtomicOutputs) -> None:
        self._fmt = fmt
        self.path = fmt.combined_index(path)
        self._handle = None if self.path is None else outputs.open(self.path, "w")
        self._base = 0

    @property
    def written(self) -> list[str]:
        return [] if self.path is None else [self.path]

    def add(self, shard: ShardIndex | None) -> None:
        """Add the next shard (``DatasetWriter.kept_index`` of its writer)."""
        if self._handle is None:
            return
        if shard is None:
            raise ValueError("a shard writer did not keep its index")
        self._handle.write(self._fmt.combined_index_lines(shard, self._base))
        self._base += shard.size


def write_combined_index(
    fmt: Format, path: str, outputs: AtomicOutputs, shards: Iterable[ShardIndex | None]
) -> list[str]:
    """Write ``fmt``'s combined index over the ``shards`` of the dataset ``path`` on
    ``outputs``, if the format has one; returns the paths written."""
    combined = CombinedIndexWriter(fmt, path, outputs)
    for shard in shards:
        combined.add(shard)
    return combined.written


@dataclass(frozen=True)
class Problem:
    """One problem ``verify`` found: in which file, in which format, which check found it,
    where in the file, and what is wrong.

    ``offset`` (byte position) or ``line`` (1-based) locate it for a program; ``where``
    says the same for a person ("record 3 at byte 1240", "line 7").
    """

    path: str
    check: str
    where: str
    message: str
    offset: int | None = None
    line: int | None = None
    #: The canonical name of the file's format (``recordio``, ``lst``, ...).
    format: str = ""

    def __str__(self) -> str:
        return ": ".join(part for part in (self.path, self.where, self.message) if part)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "format": self.format,
            "check": self.check,
            "where": self.where,
            "message": self.message,
        }
        if self.offset is not None:
            out["offset"] = self.offset
        if self.line is not None:
            out["line"] = self.line
        return out


@dataclass
class CheckContext:
    """What a format's :meth:`Document.check` needs, and where it reports; ``verify`` makes
    one per input."""

    #: The input; a check may point it at the file it really checked (an ``.idx`` -> ``.rec``).
    path: str
    #: Where problems go (the report counts every one).
    add: Callable[[Problem], None]
    #: How much was checked, by what (``records``, ``images_decoded``, ...).
    checked: Counter[str] = field(default_factory=Counter)
    #: Remarks that are no problems ("no index: --fix-idx writes it").
    notes: list[str] = field(default_factory=list)
    #: Files a check rewrote (``--fix-idx``).
    fixed: list[str] = field(default_factory=list)
    #: Decode every image too.
    decode: bool = False
    #: A class map to check labels against (default: the one beside the input).
    classes: str | None = None
    #: The folder a list's paths are relative to (default: the list's folder).
    root: str | None = None
    #: Rebuild a missing or wrong index.
    fix_idx: bool = False
    workers: int = 1
    #: Called with the number of bytes read since the last call.
    progress: Callable[[int], None] = lambda _n: None

    def decoder(self, readers: Readers | None, on_failure: Callable[[Any, str], None]) -> Any:
        """A ``DecodePool`` (a context manager) checking images on ``workers`` processes."""
        from imgfmt.engines.local import DecodePool

        return DecodePool(self.workers, readers, on_failure)


def label_text(value: float) -> str:
    """A label as people read it: ``3`` for a whole number, else ``2.5``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def label_class(labels: tuple[float, ...] | list[float]) -> str:
    """The stratum ``split`` keeps a record's labels in: ``"3"``; multi-label ``"1,0,1"``;
    ``"unlabeled"`` for none."""
    if not labels:
        return "unlabeled"
    return ",".join(label_text(v) for v in labels)


class SplitSource(ABC):
    """One input of ``split``: read once for the class of each of its units (record, line,
    sample), then copied unit by unit, unchanged, into the output its split names."""

    #: The class of each unit, in input order.
    classes: list[str]
    #: The label attribute a manifest was split by (None for other formats).
    label_attribute: str | None = None

    def companions(self, output: str) -> list[str]:
        """The files written beside an output besides itself (an ``.idx``)."""
        return []

    @abstractmethod
    def copy(
        self,
        assignment: list[int],
        outputs: list[str],
        group: AtomicOutputs,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Copy unit ``n`` into ``outputs[assignment[n]]`` (files opened on ``group``);
        returns how many went into each. ``StorageError`` if the input changed meanwhile."""


def input_changed(source: str) -> ImgfmtError:
    """The error of an input that changed between the two passes of a split."""
    from imgfmt.errors import StorageError

    return StorageError(
        "the file changed while it was being split",
        path=source,
        hint="run split again when nothing writes to it",
    )


@dataclass(frozen=True)
class NamedImage:
    """An image a list or manifest names: its id, where it is named, the path or URI as
    written, and its labels."""

    index: int
    where: str
    ref: str
    labels: tuple[float, ...]


class Document(ABC):
    """A file format ``verify`` checks: the dataset formats, and image lists and manifests
    (which name images rather than hold them)."""

    #: Canonical name, used in ``--format``, ``--json`` and messages.
    name: ClassVar[str]
    #: Extensions of its files, the first the one it writes.
    extensions: ClassVar[tuple[str, ...]]
    #: One line for help texts.
    summary: ClassVar[str]

    def sniff(self, path: str) -> bool:
        """Whether ``path``'s content is this format, for extensions formats share (a
        ``.rec``, a ``.jsonl``). The default trusts the extension."""
        return True

    def exists(self, path: str) -> bool:
        """Whether ``path`` names a dataset of this format (a dataset of several files, as
        WebDataset shards, exists when one of them does)."""
        return storage.is_file(path)

    @abstractmethod
    def check(self, path: str, ctx: CheckContext) -> None:
        """Find every problem in ``path``, reporting each to ``ctx.add`` and going on;
        count what was checked in ``ctx.checked``."""

    @abstractmethod
    def split_source(self, path: str, label_attribute: str | None = None) -> SplitSource:
        """``path`` read for ``split`` (its first pass); damage raises ``FormatError``.
        ``label_attribute`` chooses a manifest's label; other formats refuse it."""

    def listing(self, path: str) -> tuple[Iterator[tuple[str, tuple[float, ...]]], dict[int, str]]:
        """The images ``path`` names or holds, in order, each ``(path or URI, labels)``
        (what a batch transform was sent, for ``predictions``), and the class names the file
        holds itself (a manifest's; empty for the others)."""
        raise UsageError(f"a {self.name} file lists no images in the order they were sent")

    def named_images(self, path: str) -> tuple[Iterator[NamedImage], dict[int, str]]:
        """The images a list or manifest names, in order, with their ids (a ``.lst``'s
        index column; elsewhere the position), and the class names the file holds itself.
        The default numbers the entries of :meth:`listing`."""
        listed, names = self.listing(path)
        images = (NamedImage(n, f"entry {n + 1}", ref, labels)
                  for n, (ref, labels) in enumerate(listed))  # fmt: skip
        return images, names

    def images_root(self, path: str, root: str | None) -> str | None:
        """The folder the relative paths of ``path`` are under (``root``, or a default),
        checked where the format can tell a wrong one; None where paths are URIs."""
        return root

    def _no_label_attribute(self, label_attribute: str | None) -> None:
        if label_attribute is not None:
            raise UsageError(f"`label_attribute` applies to manifests only, not to {self.name}")

    def problem(self, path: str, check: str, where: object, message: str, **at: Any) -> Problem:
        """A problem in a file of this format (``at``: ``offset`` or ``line``)."""
        return Problem(path, check, str(where or ""), message, format=self.name, **at)


#: Ids shown in a message before "and N more".
SHOWN_IDS = 5

#: Where the ids of a dataset are to be seen, for messages about ids not found.
IDS_HINT = "the ids are the first column of the dataset's .lst, as unpack writes it"


@dataclass(frozen=True)
class IdSelection:
    """Ids asked for (``3,7,100-200``), kept as written: single ids, each of which must
    exist, and inclusive ranges, each selecting those of its ids that exist (the files of a
    split have gaps) and none of which may select nothing. Ranges are never expanded, so
    ``0-1000000000`` costs two numbers."""

    #: Each part in the order written: an id, or an inclusive range ``(low, high)``.
    parts: tuple[int | tuple[int, int], ...]
    _singles: frozenset[int] = field(init=False, repr=False, compare=False)
    #: The ranges merged and sorted, for lookups: their starts, and their ends.
    _lows: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _highs: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spans: list[list[int]] = []
        for low, high in sorted(p for p in self.parts if isinstance(p, tuple)):
            if high < low:
                raise ValueError(f"range {low}-{high} runs backwards")
            if spans and low <= spans[-1][1] + 1:
                spans[-1][1] = max(spans[-1][1], high)
            else:
                spans.append([low, high])
        singles = frozenset(p for p in self.parts if not isinstance(p, tuple))
        object.__setattr__(self, "_singles", singles)
        object.__setattr__(self, "_lows", tuple(low for low, _high in spans))
        object.__setattr__(self, "_highs", tuple(high for _low, high in spans))

    @classmethod
    def of(cls, ids: IdSelection | Iterable[int]) -> IdSelection:
        """``ids`` as a selection: plain ids are singles (each must exist)."""
        return ids if isinstance(ids, IdSelection) else cls(tuple(ids))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, int):
            return False
        if key in self._singles:
            return True
        at = bisect_right(self._lows, key) - 1
        return at >= 0 and key <= self._highs[at]

    @property
    def singles(self) -> list[int]:
        """The single ids, in the order written, each once."""
        return list(dict.fromkeys(p for p in self.parts if not isinstance(p, tuple)))

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        """The ranges, as written."""
        return tuple(p for p in self.parts if isinstance(p, tuple))

    def is_single(self, key: int) -> bool:
        return key in self._singles

    @property
    def last(self) -> int | None:
        """The highest id it can select (None when it selects none): a reader whose ids
        only grow (record numbers) can stop past it."""
        return max([*self._singles, *self._highs], default=None)

    def resolve(
        self, present: Collection[int], ordered: Sequence[int] | None = None
    ) -> Iterator[int]:
        """The ids selected of those ``present``, in the order asked, each once: a single as
        it is (whether or not it is there; see :meth:`unmatched`), a range as the ids in it,
        ascending. ``ordered``: ``present`` sorted, if the caller has it (else it is sorted
        here, when there are ranges)."""
        ordered = self._ordered(present, ordered)
        seen: set[int] = set()
        for part in self.parts:
            if isinstance(part, tuple):
                start, stop = bisect_left(ordered, part[0]), bisect_right(ordered, part[1])
                chosen: Iterable[int] = (ordered[n] for n in range(start, stop))
            else:
                chosen = (part,)
            for key in chosen:
                if key not in seen:
                    seen.add(key)
                    yield key

    def unmatched(
        self, present: Collection[int], where: str, ordered: Sequence[int] | None = None
    ) -> str | None:
        """What the ids ``present`` lack of the selection, as a message naming ``where``
        they are ("the index", "the file"): the single ids not there and the ranges with
        none of their ids there; None when nothing is missing. ``ordered`` as in
        :meth:`resolve`."""
        ordered = self._ordered(present, ordered)

        def empty(low: int, high: int) -> bool:
            at = bisect_left(ordered, low)
            return at == len(ordered) or ordered[at] > high

        missing = [key for key in self.singles if key not in present]
        unused = [span for span in dict.fromkeys(self.ranges) if empty(*span)]
        return _unmatched(missing, unused, where)

    def _ordered(self, present: Collection[int], ordered: Sequence[int] | None) -> Sequence[int]:
        if ordered is not None:
            return ordered
        return sorted(present) if self._lows else ()


class IdFilter:
    """One whole read for an :class:`IdSelection`, in file order: which items to keep, and
    at the end (:meth:`finish`) what was not found. Memory is bounded by the selection, not
    by the dataset: ``0-1000000000`` over ten million records keeps no id."""

    def __init__(self, selection: IdSelection, path: str, on_damage: OnDamage) -> None:
        self.selection, self.path, self._report = selection, path, on_damage
        self.kept = 0
        self.damaged = False
        self._singles_found: set[int] = set()
        self._ranges_unused = list(dict.fromkeys(selection.ranges))

    def on_damage(self, err: FormatError) -> None:
        """Where the read reports damage (passed on)."""
        self.damaged = True
        self._report(err)

    def keep(self, key: int) -> bool:
        """Whether the item with id ``key`` is selected (noting it as found)."""
        if key not in self.selection:
            return False
        self.kept += 1
        if self.selection.is_single(key):
            self._singles_found.add(key)
        if self._ranges_unused:
            self._ranges_unused = [s for s in self._ranges_unused if not s[0] <= key <= s[1]]
        return True

    def finish(self) -> None:
        """Report what the read did not find: single ids not there, ranges that selected
        none. When it found nothing in an intact file, the selection is wrong:
        ``UsageError``. Else this is damage to report (the records asked for may be the
        damaged ones), after the items that were found."""
        missing = [key for key in self.selection.singles if key not in self._singles_found]
        message = _unmatched(missing, self._ranges_unused, "the file")
        if message is None:
            return
        if not self.kept and not self.damaged:
            raise UsageError(message, path=self.path, hint=IDS_HINT)
        self._report(FormatError(message, path=self.path, hint=IDS_HINT))


def _unmatched(missing: list[int], unused: list[tuple[int, int]], where: str) -> str | None:
    """The message for single ids ``missing`` and ranges ``unused`` (that selected none)
    from ``where`` ("the index", "the file"); None when there are neither."""
    parts: list[str] = []
    if missing:
        parts.append(f"requested ids not in {where}: {_some(missing)}")
    if unused:
        spans = _some([f"{low}-{high}" for low, high in unused])
        what = "range {} selects" if len(unused) == 1 else "ranges {} select"
        parts.append(f"{what.format(spans)} no id in {where}")
    return "; ".join(parts) or None


def _some(values: Sequence[object]) -> str:
    """The first :data:`SHOWN_IDS` of ``values``, for a message."""
    text = ", ".join(str(v) for v in values[:SHOWN_IDS])
    more = len(values) - SHOWN_IDS
    return f"{text} and {more} more" if more > 0 else text


class Format(Document):
    """One dataset format; a subclass per format module, registered in ``imgfmt.formats``.

    Its default :meth:`check` reads every item (``read``), reports damage and repeated ids,
    and with ``decode`` decodes every image under the rule of the format's readers."""

    #: Who decodes its images: pass-through keeps only what they all read
    #: (``imgfmt.payloads``); None: any image file is stored as it is.
    readers: ClassVar[Readers | None] = None
    #: Labels are stored as float32 (integers above 2**24 change: callers warn).
    float32_labels: ClassVar[bool] = False
    #: The format stores decoded pixels, not image files: ``encode`` decodes (so it runs in
    #: worker processes, under the image guards), and nothing is passed through.
    decodes: ClassVar[bool] = False
    #: Its records hold neither id nor path: ``pack`` writes the list of what it packed
    #: beside each output, the only map from record number to image.
    needs_list: ClassVar[bool] = False
    #: It can store an item without labels as such (others store label 0: callers warn).
    keeps_unlabeled: ClassVar[bool] = False

    def check(self, path: str, ctx: CheckContext) -> None:
        def damaged(err: FormatError) -> None:
            where = err.where or ""
            ctx.add(self.problem(err.path or path, "framing", where, err.reason))

        def failed(where: Location, reason: str) -> None:
            ctx.add(self.problem(path, "decode", where, reason, offset=where.offset))

        seen: dict[int, str] = {}
        decoder = ctx.decoder(self.readers, failed) if ctx.decode else None
        try:
            with decoder or contextlib.nullcontext():
                self._check_items(path, ctx, damaged, seen, decoder)
        except ImgfmtError as err:  # the input cannot be read at all: a problem, not a stop
            ctx.add(self.problem(err.path or path, "input", err.where or "", err.reason))
            return
        if ctx.checked["items"] == 0:
            ctx.add(self.problem(path, "framing", "", "no items: the dataset is empty"))

    def _check_items(
        self,
        path: str,
        ctx: CheckContext,
        damaged: OnDamage,
        seen: dict[int, str],
        decoder: Any,
    ) -> None:
        for item in self.read(path, damaged):
            ctx.checked["items"] += 1
            where = item.where or Location()
            if item.index in seen:
                message = f"id {item.index} already used at {seen[item.index]}"
                ctx.add(self.problem(path, "id", where, message, offset=where.offset))
            else:
                seen[item.index] = str(where)
            if decoder is not None:
                ctx.checked["images_decoded"] += 1
                decoder.submit(where, str(where), item.image)
        if decoder is not None:
            decoder.finish()

    def listing(self, path: str) -> tuple[Iterator[tuple[str, tuple[float, ...]]], dict[int, str]]:
        items = self.read(path, _raise)
        return ((item.path or default_name(item), item.labels) for item in items), {}

    def split_source(self, path: str, label_attribute: str | None = None) -> SplitSource:
        """By default a split reads the items and writes them again with this format's
        writer (a lossless copy where reading and encoding round-trip, as in the shards
        imgfmt writes); formats that can copy their records as they are do so instead."""
        self._no_label_attribute(label_attribute)
        return _ItemSplit(self, path)

    @abstractmethod
    def read(self, path: str, on_damage: OnDamage) -> Iterator[Item]:
        """The items of ``path`` in order. A damaged record or line is passed to
        ``on_damage`` and skipped, and reading goes on where it can."""

    def read_deferred(
        self, path: str, on_damage: OnDamage
    ) -> Iterator[tuple[Item, Deferred | None]] | None:
        """As :meth:`read`, for a format whose images take work to get out: each item with,
        when that work is still to do, its :class:`Deferred` (the item's ``image`` is then
        empty), so that a reader with workers (``unpack``) spreads the work over them and
        gets from :meth:`finish_image` what :meth:`read` would have given. None (the
        default): :meth:`read` gives the images ready."""
        return None

    def finish_image(self, data: Any) -> bytes:
        """The image of a :class:`Deferred` item, from its ``data`` (pure; runs in worker
        processes). ``ImgfmtError`` when it cannot be made."""
        raise NotImplementedError(f"{self.name} defers no images")

    def read_ids(
        self, path: str, ids: IdSelection | Iterable[int], on_damage: OnDamage
    ) -> Iterator[Item]:
        """The items ``ids`` selects (an :class:`IdSelection`, or ids that must each exist).
        The default reads every item and keeps those, in file order, and reports what was
        not found at the end (:class:`IdFilter`); a format with an index reads only
        the ones asked for, in the order asked."""
        wanted = IdFilter(IdSelection.of(ids), path, on_damage)
        for item in self.read(path, wanted.on_damage):
            if wanted.keep(item.index):
                yield item
        wanted.finish()

    def indexed_ids(self, path: str) -> list[int] | None:
        """The ids of ``path``'s items in file order, when any of them can be read without
        reading the others (``read_ids`` through an index): what lets a reader look at a
        sample of a large remote dataset. None when only a whole read finds them."""
        return None

    @abstractmethod
    def encode(self, item: Item, notes: list[str] | None = None) -> bytes:
        """What the format stores for ``item`` (pure; runs in worker processes). Raises an
        ``ImgfmtError`` when this item cannot be stored (the caller skips it); ``notes``
        collects what a decoder said, for formats that decode."""

    @abstractmethod
    def writer(self, path: str, outputs: AtomicOutputs) -> DatasetWriter:
        """A writer of the dataset at ``path``, its files opened on ``outputs``."""

    def with_image_options(self, options: ImageOptions) -> Format:
        """This format as it stores images processed with ``options`` (pack's image
        options): itself, unless it decodes images itself (then it takes what applies, and
        refuses with ``UsageError`` what does not)."""
        return self

    def shard_writer(self, path: str, outputs: AtomicOutputs) -> DatasetWriter:
        """A writer of ``path`` as one shard of several: as :meth:`writer`, and keeping
        what :meth:`combined_index_lines` needs of it (``DatasetWriter.kept_index``)."""
        return self.writer(path, outputs)

    def combined_index(self, path: str) -> str | None:
        """Where the index over every shard of the dataset ``path`` goes, if the format
        has one (RecordIO: the single index NVIDIA DALI reads many ``.rec`` through)."""
        return None

    def combined_index_lines(self, shard: ShardIndex, base: int) -> str:
        """What the combined index holds for ``shard``, whose data starts ``base`` bytes into
        the dataset (the sizes of the shards before it)."""
        raise NotImplementedError(f"{self.name} has no combined index")

    def sharded_by_count(self, records: int) -> Format | None:
        """This format cutting its own shards every ``records`` items, if it names and cuts
        its shards itself (WebDataset); None: ``pack`` cuts them (``OUT-00000-of-00003.rec``)."""
        return None

    def sharded_by_size(self, size: int) -> Format | None:
        """This format rolling over to a new shard of its own naming every ``size`` bytes,
        if it shards itself (WebDataset); None: ``ShardedWriter`` names the shards
        (``OUT-00000-of-00003.rec``, ...)."""
        return None

    def check_output(self, path: str) -> None:
        """A ``UsageError`` when ``path`` cannot name this format's output."""
        ext = storage.splitext(path)[1].lower()
        if ext not in self.extensions:
            raise UsageError(
                f"output {path!r} must end in {self.extensions[0]} for format {self.name}",
                hint=f"e.g. data/train{self.extensions[0]}",
            )


class LineSplit(SplitSource):
    """A split of a text format held as lines (a ``.lst``, a manifest): each non-blank line
    is one unit, copied byte for byte."""

    def __init__(self, classes: list[str], lines: list[bytes], label_attribute: str | None = None):
        self.classes, self.lines, self.label_attribute = classes, lines, label_attribute

    def copy(
        self,
        assignment: list[int],
        outputs: list[str],
        group: AtomicOutputs,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[int]:
        handles = [group.open(path, "wb") for path in outputs]
        written = [0] * len(outputs)
        for line, split in zip(self.lines, assignment):
            handles[split].write(line)
            written[split] += 1
        return written


def with_newline(line: bytes) -> bytes:
    return line if line.endswith(b"\n") else line + b"\n"


def _raise(err: FormatError) -> None:
    raise err


class _ItemSplit(SplitSource):
    def __init__(self, fmt: Format, path: str) -> None:
        self.fmt, self.path = fmt, path
        self.classes = [label_class(item.labels) for item in fmt.read(path, _raise)]

    def copy(
        self,
        assignment: list[int],
        outputs: list[str],
        group: AtomicOutputs,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[int]:
        writers = [self.fmt.writer(path, group) for path in outputs]
        for number, item in enumerate(self.fmt.read(self.path, _raise)):
            if number >= len(assignment):
                raise input_changed(self.path)
            writers[assignment[number]].append(self.fmt.encode(item), item)
            if on_progress:
                on_progress(1)
        for writer in writers:
            writer.finish()
        return [writer.records_written for writer in writers]


def default_name(item: Item) -> str:
    """A name for an item whose format kept none: its id and its image's usual extension
    (``17.jpg``)."""
    from imgfmt.images import sniff_extension

    return f"{item.index}{sniff_extension(item.image) or '.bin'}"


__all__ = [
    "CheckContext",
    "DatasetWriter",
    "Deferred",
    "Document",
    "FileWriter",
    "Format",
    "IdFilter",
    "IdSelection",
    "Problem",
    "Item",
    "Location",
    "OnDamage",
    "ShardedWriter",
    "LineSplit",
    "NamedImage",
    "SplitSource",
    "with_newline",
    "default_name",
    "input_changed",
    "label_class",
    "label_text",
]
