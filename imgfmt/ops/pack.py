"""pack: an image list (or folder) into a dataset: MXNet RecordIO ``.rec`` + ``.idx`` (the
default), JSON Lines with base64 images (``jsonlines``), or SageMaker RecordIO-protobuf dense
pixel tensors (``recordio-protobuf``).

Pipeline: the list is cut into small batches; workers read and (unless pass-through)
decode/convert/resize/encode each image; the main process writes the framed records
in list order. At most ``window`` batches are in flight, so memory does not grow
with the dataset. Pass-through is I/O bound and runs in threads; anything that
decodes runs in processes, one per core. Output bytes do not depend on the worker
count: results are written strictly in list order.

A bad image never stops the run: it is skipped, reported and counted.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice

from imgfmt import engines, formats, payloads, s3, storage
from imgfmt.engines import Engine
from imgfmt.errors import FormatError, ImgfmtError, UsageError
from imgfmt.formats import lst
from imgfmt.formats.base import (
    CombinedIndexWriter,
    DatasetWriter,
    Format,
    Item,
    ShardedWriter,
    shard_path,
)
from imgfmt.formats.recordio import as_float32, survives_float32
from imgfmt.images import ImageOptions, process_image
from imgfmt.ops.outcomes import Note, Outcome, Skipped, crashed, record
from imgfmt.storage import AtomicOutputs, PlannedOutputs

log = logging.getLogger(__name__)

#: Images handed to a worker at once: large enough to amortise inter-process overhead,
#: small enough that a window of them stays a few MB.
BATCH_SIZE = 8


@dataclass
class PackResult:
    """What a pack run made; ``to_dict`` is the ``--json`` summary."""

    outputs: list[str] = field(default_factory=list)
    #: The index files written beside them (a ``.idx`` for each ``.rec``), if any.
    indexes: list[str] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)
    packed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    bytes_written: int = 0
    seconds: float = 0.0
    #: List indices of the skipped images (the lists written beside the output leave them out).
    skipped_ids: set[int] = field(default_factory=set, repr=False)
    #: The index over all shards of a sharded dataset (RecordIO's ``OUT.combined.idx``).
    combined_indexes: list[str] = field(default_factory=list)
    #: Shards written by ``--shard-records`` / ``--shard-size`` (0: not sharded).
    shards: int = 0
    #: A dry run: no image was read and nothing written; the fields say what would be (each
    #: output named as the run names it, ``packed`` counting every image as packed).
    dry_run: bool = False
    #: The class map written beside the dataset, if one is.
    class_map: str | None = None
    #: Images in each data file and list (a dry run's plan).
    counts: dict[str, int] = field(default_factory=dict)
    #: Shards cut at about this many bytes: where is known only once encoded, so a dry run
    #: names them by a pattern (``OUT-*.rec``).
    shard_size: int | None = None
    #: Local folders the run creates for its outputs (a dry run's plan).
    folders: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        if self.dry_run:
            return {
                "dry_run": True,
                "outputs": self.outputs,
                "indexes": self.indexes,
                "combined_index": self.combined_indexes,
                "lists": self.lists,
                "class_map": self.class_map,
                "packed": self.packed,
                "counts": self.counts,
                "shard_size": self.shard_size,
                "folders": self.folders,
            }
        return {
            "outputs": self.outputs,
            "indexes": self.indexes,
            "combined_index": self.combined_indexes,
            "lists": self.lists,
            "packed": self.packed,
            "skipped": len(self.skipped),
            "skipped_items": [s.to_dict() for s in self.skipped],
            "warnings": [n.to_dict() for n in self.notes],
            "bytes": self.bytes_written,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs; small and picklable."""

    root: str
    options: ImageOptions
    pack_label: bool
    #: The output format, with its write options.
    fmt: Format
    #: How to reach S3: a spawned (not forked) worker does not inherit the CLI's settings.
    s3_settings: s3.S3Settings | None = None

    @property
    def decodes(self) -> bool:
        return not self.options.pass_through or self.fmt.decodes


def _encode_one(job: _Job, entry: lst.LstEntry, data: bytes | ImgfmtError) -> Outcome:
    """Process and frame-ready pack one image."""
    if isinstance(data, ImgfmtError):
        return Outcome(None, f"cannot read: {data.reason}", "unreadable")
    multi = job.pack_label and len(entry.labels) > 1
    labels = entry.labels if multi else entry.labels[:1]
    for value in labels:
        if not math.isfinite(value):
            reason = f"label {value} is not a finite number (index {entry.index} in the list)"
            return Outcome(None, reason, "label")
    readers = job.fmt.readers
    if job.options.pass_through and data and readers is not None:
        # Not decoded, but not packed blind either: only formats every reader of the
        # dataset decodes (imgfmt.payloads). A truncated JPEG does pass; verify --decode
        # finds it. (An empty file, and for a format without such readers a file that is no
        # image, are refused by process_image and by the format's encode.)
        problem = payloads.payload_problem(data, readers)
        if problem is not None:
            return Outcome.failed(problem)
    notes: list[str] = []
    try:
        if job.fmt.decodes:
            image = data
        else:
            image = process_image(data, job.options, storage.join(job.root, entry.path), notes)
        item = Item(entry.index, labels, image, entry.path)
        payload = job.fmt.encode(item, notes)
    except ImgfmtError as err:
        return Outcome.failed(err, notes)
    return Outcome(payload, notes=tuple(notes))


def _encode_batch(job: _Job, batch: list[lst.LstEntry]) -> list[Outcome]:
    # The batch's images are fetched together: from S3 concurrently, so that a worker waits
    # for one round trip per batch, not one per image.
    if job.s3_settings is not None:
        s3.adopt(job.s3_settings)
    data = storage.read_many([storage.join(job.root, entry.path) for entry in batch])
    return [_encode_one(job, entry, item) for entry, item in zip(batch, data)]


def _batches(
    entries: Iterable[lst.LstEntry], size: int, workers: int = 1
) -> Iterator[list[lst.LstEntry]]:
    """``entries`` in lists of ``size``; with several ``workers``, the last ones smaller, so
    that the workers finish together instead of one running the last full batch alone (the
    benchmark's 120 photos, 15 batches of 8 at 11 ms an image on 2 workers: 0.905 -> 0.88 s).

    Reading ``size * (2 * workers + 1)`` entries ahead, once fewer than that are left each
    batch holds ``max(1, left // (2 * workers))`` at most: a list shorter than the lookahead
    is cut small from the start, and the very last batches hold one entry each.
    """
    it = iter(entries)
    if workers <= 1:
        while batch := list(islice(it, size)):
            yield batch
        return
    ahead: deque[lst.LstEntry] = deque()
    horizon = size * (2 * workers + 1)
    while True:
        ahead.extend(islice(it, horizon - len(ahead)))
        if not ahead:
            return
        count = size if len(ahead) >= horizon else min(size, len(ahead) // (2 * workers))
        yield [ahead.popleft() for _ in range(max(1, count))]


def _ordered_results(
    job: _Job, entries: Iterable[lst.LstEntry], workers: int | None
) -> Iterator[tuple[lst.LstEntry, Outcome]]:
    """Encode every entry with ``workers`` workers; yield results in list order.

    Decoding runs in worker processes, also with one worker: each image then has a memory
    budget, and a decoder that crashes takes only its own image down (``BatchPool``).
    Pass-through is I/O bound: from S3 on threads, each fetching its batch with concurrent
    GETs; local files, unless ``workers`` is given, in this thread. (Threads reading local
    files made a pass-through pack of 20,000 of them 1.4x slower on 2 cores, 2.5 s against
    1.75 s with a warm page cache: each open, read and close of a small file hands the GIL
    over. Given, ``workers`` threads read: for a network file system, where a file waits
    on the network.) ``workers`` None: the default, one a core.
    """
    from imgfmt.engines.local import BatchPool

    if workers is None:
        local_copy = not job.decodes and not storage.is_s3(job.root)
        workers = 1 if local_copy else default_workers()

    pool: BatchPool[lst.LstEntry, Outcome] = BatchPool(
        partial(_encode_batch, job),
        workers,
        crashed,
        threads=not job.decodes,
        decoders=job.decodes,
    )
    with pool:
        for batch in _batches(entries, BATCH_SIZE, workers):
            for done, outcomes in pool.put(batch):
                yield from zip(done, outcomes)
        for done, outcomes in pool.drain():
            yield from zip(done, outcomes)


class _StreamedList(Collection[lst.LstEntry]):
    """A ``.lst`` parsed anew on each pass (label check, pack), never held whole, so memory
    does not grow with the list; its length is counted on the first pass that asks."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._length: int | None = None

    def __iter__(self) -> Iterator[lst.LstEntry]:
        return lst.read_lst(self.path)

    def __len__(self) -> int:
        if self._length is None:
            self._length = sum(1 for _entry in self)
        return self._length

    def __bool__(self) -> bool:
        # Without it ``if entries:`` would count the whole list (a pass of its own).
        if self._length is not None:
            return self._length > 0
        entries = iter(self)
        try:
            return next(entries, None) is not None
        finally:
            entries.close()  # type: ignore[attr-defined]

    def __contains__(self, item: object) -> bool:
        return any(entry == item for entry in self)


def _check_labels(
    entries: Iterable[lst.LstEntry], pack_label: bool, name: str, target: Format
) -> None:
    """Warn once about labels that ``target`` will not hold as the list says (one pass):
    extra labels without ``pack_label``, labels that change as float32, entries without a
    label in a format that must store one."""
    multi = inexact = unlabeled = 0
    example: tuple[lst.LstEntry, float] | None = None
    for entry in entries:
        multi += len(entry.labels) > 1
        unlabeled += not entry.labels
        if not target.float32_labels:
            continue
        for value in entry.labels if pack_label else entry.labels[:1]:
            if not survives_float32(value):
                inexact += 1
                example = example or (entry, value)
    if multi and not pack_label:
        log.warning(
            "%s: %d entries have several labels; only the first is kept (pass --pack-label "
            "to store them all)",
            name,
            multi,
        )
    if unlabeled and not target.keeps_unlabeled:
        log.warning(
            "%s: %d entries have no label; %s stores label 0 for them", name, unlabeled,
            target.name,
        )  # fmt: skip
    if example is not None:
        entry, value = example
        log.warning(
            "%s: %d labels change when stored as float32 (e.g. index %d: %r reads back as %r); "
            "keep labels below 2**24",
            name,
            inexact,
            entry.index,
            value,
            as_float32(value),
        )


def default_workers() -> int:
    return os.cpu_count() or 1


def parse_size(text: str) -> int:
    """``256MB``, ``1GiB``, ``500k``, ``1000`` -> bytes."""
    units = {
        "": 1,
        "k": 10**3,
        "m": 10**6,
        "g": 10**9,
        "t": 10**12,
        "ki": 2**10,
        "mi": 2**20,
        "gi": 2**30,
        "ti": 2**40,
    }
    raw = text.strip().lower().removesuffix("b")
    number = raw.rstrip("kmgtib")
    unit = raw[len(number) :]
    try:
        value = float(number)
    except ValueError:
        raise UsageError(f"cannot read size {text!r}", hint="write it like 256MB or 1GiB") from None
    if unit not in units or value <= 0:
        raise UsageError(f"cannot read size {text!r}", hint="write it like 256MB or 1GiB")
    return int(value * units[unit])


def write_entries(
    job: _Job,
    entries: Iterable[lst.LstEntry],
    writer: DatasetWriter,
    workers: int | None,
    result: PackResult,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Encode ``entries`` on ``workers`` processes and append them, in list order, to
    ``writer``; skipped images and decoder notes go to ``result``."""
    for entry, outcome in _ordered_results(job, entries, workers):
        if on_progress:
            on_progress(1)
        if outcome.notes or outcome.payload is None:
            record(outcome, storage.join(job.root, entry.path), result.notes, result.skipped)
        if outcome.payload is None:
            result.skipped_ids.add(entry.index)
            continue
        writer.append(outcome.payload, Item(entry.index, entry.labels, b"", entry.path))
    writer.finish()


def pack_entries(
    entries: Iterable[lst.LstEntry],
    out_rec: str,
    *,
    root: str,
    options: ImageOptions | None = None,
    pack_label: bool = False,
    workers: int | None = None,
    shard_size: int | None = None,
    shard_records: int | None = None,
    engine: str | Engine | None = None,
    on_progress: Callable[[int], None] | None = None,
    result: PackResult | None = None,
    outputs: AtomicOutputs | None = None,
    fmt: str | Format | None = None,
    size: tuple[int, int] | None = None,
    dry_run: bool = False,
) -> PackResult:
    """Pack ``entries`` (paths relative to ``root``) into the dataset ``out_rec`` of format
    ``fmt`` (a name or a ``Format``; default: from the extension): MXNet RecordIO ``.rec``
    + ``.idx``, JSON Lines, RecordIO-protobuf (``size``: the ``(width, height)`` of its
    pixel tensors), ...

    With ``shard_records`` N, shard k holds list positions ``[k*N, (k+1)*N)`` (a remainder
    under N/2 joins the last shard), packed one task per shard on ``engine`` (``"local"``,
    the default, or ``"ray"``: ``imgfmt.engines``); with ``shard_size``, records roll over
    to the next shard at about that many bytes (local only). Either way the shards are
    ``OUT-00000-of-00012.rec``, ... each with its own index, plus the format's combined
    index (RecordIO: ``OUT.combined.idx``, for NVIDIA DALI). All outputs appear together
    when the run completes; an error or interruption leaves none of them. Pass ``outputs``
    to make them part of a larger group that the caller commits.

    ``dry_run``: the same checks, then only what would be written (:func:`_plan_writes`):
    no image is read, and nothing is written (``outputs``, if given, must be a
    ``storage.PlannedOutputs``).
    """
    options = options or ImageOptions()
    result = result or PackResult()
    started = time.perf_counter()
    target = output_format(out_rec, fmt, size, options)
    runner = engines.get(engine)
    own = _own_sharding(target, shard_size, shard_records, runner)
    planned = getattr(entries, "planned", False)
    if not isinstance(entries, Collection):
        entries = list(entries)  # read twice: the label check, then the packing
    if not planned:
        _check_labels(entries, pack_label, out_rec, target)
    job = _Job(root, options, pack_label, target, s3.settings())
    owned = outputs is None
    if outputs is None:
        group = PlannedOutputs() if dry_run else AtomicOutputs()
    else:
        group = outputs
    with group if owned else contextlib.nullcontext(group):
        if dry_run:
            before = result.packed
            _plan_writes(target, own, out_rec, entries, shard_size, shard_records, group, result)
            if result.packed == before:
                raise _nothing_packed(out_rec, result)
            return result
        if shard_records and own is None:
            from imgfmt.ops import shards

            if not isinstance(entries, (shards.ListPlanner, Sequence)):
                entries = list(entries)
            before = result.packed
            shards.pack_sharded(
                entries, out_rec, shard_records, job, runner, workers, group, result, on_progress
            )
            result.seconds += time.perf_counter() - started
            if result.packed == before:
                raise _nothing_packed(out_rec, result)
            return result
        if own is not None:  # a format that shards itself (WebDataset) rolls over so
            writer = own.writer(out_rec, group)
        elif shard_size:
            writer = ShardedWriter(target, out_rec, group, shard_size)
        else:
            writer = target.writer(out_rec, group)
        write_entries(job, entries, writer, workers, result, on_progress)
        if writer.records_written == 0:
            raise _nothing_packed(out_rec, result)
    result.outputs.extend(writer.outputs)
    result.indexes.extend(writer.indexes)
    if isinstance(writer, ShardedWriter):
        result.combined_indexes.extend(writer.combined_indexes)
        result.shards += len(writer.outputs)
    result.packed += writer.records_written
    result.bytes_written += writer.bytes_written
    result.seconds += time.perf_counter() - started
    return result


def _plan_writes(
    target: Format,
    own: Format | None,
    out: str,
    entries: Collection[lst.LstEntry],
    shard_size: int | None,
    shard_records: int | None,
    group: AtomicOutputs,
    result: PackResult,
) -> None:
    """What packing ``entries`` into ``out`` writes, added to ``result``: the format's own
    writers, opened on ``group`` (a ``PlannedOutputs``) as the run opens them, are fed an
    empty payload per entry, so every output is named as the run names it and counts the
    entries the run puts in it (all of them: which images cannot be packed is known only by
    reading them). Shards cut by size are named by a pattern, since where they are cut
    depends on the encoded sizes."""
    if shard_size:
        stem, ext = storage.splitext(out)
        pattern = f"{stem}-*{ext}"
        if own is not None:  # the run's writer, for its checks (no shards of that name yet)
            writer = own.writer(out, group)
        else:  # a shard's writer, for the names of a shard's files
            writer = target.shard_writer(pattern, group)
            result.combined_indexes.extend(CombinedIndexWriter(target, out, group).written)
        result.outputs.append(pattern)
        result.indexes.extend(writer.indexes)
        result.counts[pattern] = len(entries)
        result.packed += len(entries)
        result.shard_size = shard_size
        return
    items = (Item(entry.index, entry.labels, b"", entry.path) for entry in entries)
    writers: list[DatasetWriter] = []
    if shard_records and own is None:
        from imgfmt.ops.shards import shard_ranges

        ranges = shard_ranges(len(entries), shard_records)
        combined = CombinedIndexWriter(target, out, group)
        for number, (start, stop) in enumerate(ranges):
            writers.append(target.shard_writer(shard_path(out, number, len(ranges)), group))
            feed_placeholders(writers[-1], islice(items, stop - start), result.counts)
            combined.add(writers[-1].kept_index)
        result.combined_indexes.extend(combined.written)
        result.shards += len(ranges)
    else:
        writers.append((own or target).writer(out, group))
        feed_placeholders(writers[-1], items, result.counts)
    for writer in writers:
        result.outputs.extend(writer.outputs)
        result.indexes.extend(writer.indexes)
        result.packed += writer.records_written


def feed_placeholders(
    writer: DatasetWriter,
    items: Iterable[Item],
    counts: dict[str, int],
    on_refused: Callable[[Item, FormatError], None] | None = None,
) -> None:
    """What a dry run learns from a writer opened on a ``storage.PlannedOutputs``: each
    item is appended with an empty payload, as the run appends its encoded one, so the
    writer names and cuts its outputs as in the run; ``counts`` gets the items each output
    holds (an item goes to the writer's last output: a shard is opened for the item that
    goes into it). An item the writer refuses (an id used twice) goes to ``on_refused``
    (a run that skips it) or raises (a run that stops). The writer is finished at the end.
    """
    for item in items:
        try:
            writer.append(b"", item)
        except FormatError as err:
            if on_refused is None:
                raise
            on_refused(item, err)
            continue
        name = writer.outputs[-1]
        counts[name] = counts.get(name, 0) + 1
    writer.finish()


def _nothing_packed(out_rec: str, result: PackResult) -> ImgfmtError:
    failure = ImgfmtError(
        f"no image could be packed ({len(result.skipped)} skipped)",
        path=out_rec,
        hint="see the reasons above; nothing was written",
    )
    failure.details = result.to_dict()
    return failure


def _own_sharding(
    target: Format, shard_size: int | None, shard_records: int | None, runner: Engine
) -> Format | None:
    """The format itself, when it names and cuts its own shards (WebDataset), else None;
    checks that the sharding options fit together and fit the engine."""
    if shard_size and shard_records:
        raise UsageError("`shard_size` and `shard_records` do not go together: pick one")
    own = None
    if shard_size:
        own = target.sharded_by_size(shard_size)
    elif shard_records:
        own = target.sharded_by_count(shard_records)
    if not runner.local and (own is not None or not shard_records):
        raise UsageError(
            f"`engine` {runner.name} runs one task per shard: it needs `shard_records`"
            + ("" if own is None else f", and format {target.name} cuts its own shards"),
            hint="e.g. --shard-records 10000 with a .rec, .jsonl or RecordIO-protobuf output",
        )
    return own


def output_format(
    path: str,
    fmt: str | Format | None,
    size: tuple[int, int] | None = None,
    options: ImageOptions | None = None,
) -> Format:
    """The format ``pack`` writes ``path`` in: ``fmt`` (a name, or a ``Format`` with its
    write options), else from the extension; ``size`` is the pixel size of a format that
    stores pixels. Checks that the path and options fit it (``UsageError``)."""
    if isinstance(fmt, Format):
        target = fmt
    else:
        write_options: dict[str, object] = {} if size is None else {"size": size}
        target = formats.for_output(path, fmt, **write_options)
    if options is not None:
        target = target.with_image_options(options)
    target.check_output(path)
    return target


def _plan(
    source: str,
    out_rec: str,
    root: str | None,
    target: Format,
    chunks: int,
    shuffle: bool,
    seed: int,
    exts: Sequence[str],
    outputs: AtomicOutputs,
    select: lst.PathFilter | None = None,
) -> tuple[
    str, dict[str, Collection[lst.LstEntry]], dict[str, Collection[lst.LstEntry]], str | None
]:
    """What ``pack`` will pack: the root of the images, each output's entries (keyed by the
    list path it takes its name from), the lists to write once packed, and the class map,
    written on ``outputs`` now (a folder's, or the one beside the list), if any."""
    stem = storage.splitext(out_rec)[0]
    plan: dict[str, Collection[lst.LstEntry]]
    lists: dict[str, Collection[lst.LstEntry]] = {}  # written after packing
    class_map = lst.class_map_path(stem)
    if storage.is_dir(source):
        entries, classes = lst.list_images(source, recursive=True, exts=exts, select=select)
        if shuffle:
            entries = lst.shuffle_entries(entries, seed)
        plan = dict(lst.plan_splits(entries, stem, chunks=chunks))
        lst.write_class_map_to(outputs.open(class_map, "w"), classes)
        return (source if root is None else root), plan, dict(plan), class_map
    if not storage.exists(source):
        raise storage.missing(source, "no such file or folder", hint="check the path")
    root = lst.check_root(source, root)  # a wrong root: one error, not one per image
    if chunks > 1:
        plan = dict(lst.plan_splits(list(lst.read_lst(source)), stem, chunks=chunks))
    else:
        plan = {out_rec: _StreamedList(source)}
    # The dataset carries its class names along: unpack and manifest-gen look beside it.
    found = lst.find_class_map(source)
    copied = None
    if found and storage.abspath(found) != storage.abspath(class_map):
        lst.write_class_map_to(outputs.open(class_map, "w"), lst.read_class_map(found))
        copied = class_map
    if target.needs_list:
        # Its records hold no id and no path: a list beside each output is the only map
        # from record number to image (and what `imgfmt predictions` reads).
        for key, chunk in plan.items():
            list_path = storage.splitext(key)[0] + ".lst"
            if not storage.same_path(list_path, source):
                lists[list_path] = chunk
    return root, plan, lists, copied


def pack(
    source: str,
    out_rec: str,
    *,
    root: str | None = None,
    options: ImageOptions | None = None,
    pack_label: bool = False,
    workers: int | None = None,
    shard_size: int | None = None,
    shard_records: int | None = None,
    engine: str | Engine | None = None,
    chunks: int = 1,
    shuffle: bool = True,
    seed: int = 100,
    exts: Sequence[str] = lst.DEFAULT_EXTS,
    select: lst.PathFilter | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    fmt: str | Format | None = None,
    size: tuple[int, int] | None = None,
    dry_run: bool = False,
) -> PackResult:
    """The ``pack`` command: ``source`` is a ``.lst`` or an image folder; ``fmt`` the output
    format (default: from ``out_rec``'s extension, see :func:`output_format`).

    A folder is listed with lst-gen's rules (recursive, shuffled with ``seed`` unless
    ``shuffle`` is off; ``exts`` and ``select`` choose the files) and the list and class map
    are written beside ``out_rec``.
    With ``chunks > 1`` the list is cut as im2rec cuts it and each chunk packed into
    ``OUT_i.rec``.

    ``dry_run``: every check a run makes before it reads an image (options, the list and
    its labels, the root, the output format, the sharding, the folder's listing), then what
    it would write, named as it names it, with the images each output would hold; no image
    is read, no file or folder made (``result.folders`` names the folders that would be),
    nothing uploaded. See :func:`_plan_writes`.
    """
    target = output_format(out_rec, fmt, size, options)
    ext = storage.splitext(out_rec)[1]
    lst.require_list_or_folder(source, "pack")
    if select and not storage.is_dir(source):
        raise UsageError("`include` and `exclude` choose the files of a folder SOURCE, not a list")
    if chunks < 1:
        raise UsageError("--chunks must be at least 1")
    runner = engines.get(engine)
    _own_sharding(target, shard_size, shard_records, runner)
    result = PackResult(dry_run=dry_run)
    # A missing folder or bucket is found before the work, not after it.
    if dry_run:
        result.folders.extend(filter(None, [storage.planned_output_folder(out_rec)]))
    else:
        storage.ensure_output_folder(out_rec)
    # Lists, class map and records are one group: they appear together or not at all.
    with PlannedOutputs() if dry_run else AtomicOutputs() as outputs:
        root, plan, lists, result.class_map = _plan(
            source, out_rec, root, target, chunks, shuffle, seed, exts, outputs, select
        )
        if shard_records and isinstance(plan.get(out_rec), _StreamedList):
            # One pass over the list checks it, its labels, and notes where shards start.
            from imgfmt.ops.shards import ListPlanner

            planner = ListPlanner(source, shard_records)
            _check_labels(planner, pack_label, out_rec, target)
            plan[out_rec] = planner
        if on_start:
            on_start(sum(len(chunk) for chunk in plan.values()))
        for list_path, chunk in plan.items():
            if not chunk:
                continue
            pack_entries(
                chunk,
                storage.splitext(list_path)[0] + ext,
                root=root,
                options=options,
                pack_label=pack_label,
                workers=workers,
                shard_size=shard_size,
                shard_records=shard_records,
                engine=runner,
                on_progress=on_progress,
                result=result,
                outputs=outputs,
                fmt=target,
                dry_run=dry_run,
            )
        for list_path, chunk in lists.items():
            # Exactly the images packed, in record order: the list a batch transform's
            # output lines up with (`imgfmt predictions`).
            packed = (e for e in chunk if e.index not in result.skipped_ids)
            result.counts[list_path] = lst.write_entries(outputs.open(list_path, "w"), packed)
            result.lists.append(list_path)
        if result.skipped and target.needs_list and not lists:
            log.warning(
                "%s: skipped images are still in %s, so its lines no longer match the records "
                "one to one; pack to another name to get a list of what was packed",
                out_rec,
                source,
            )
    return result
