"""convert: any dataset format imgfmt reads into any format it writes.

Written once over the format interface (``imgfmt.formats.base``): the source format reads
items (id, labels, path, image) in order, the target format encodes each one (in worker
processes when images may be decoded) and its writer appends them, in order, to outputs
that appear whole or not at all. No format is named here.

Images are carried as they are where the target's readers decode them (a JPEG from a
``.rec`` into a ``.jsonl`` or a WebDataset shard, unchanged), and re-encoded with pack's
image options where asked (any image option given) or needed (a GIF going into a ``.rec``,
whose readers decode JPEG and PNG only). A target that stores pixels (RecordIO-protobuf)
decodes every image. Ids, labels and paths are carried; an item that cannot be converted
is skipped with its reason, a damaged record or line of the source is reported and skipped,
and everything else is still converted.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING

from imgfmt import payloads, s3, storage
from imgfmt.errors import FormatError, ImgfmtError
from imgfmt.formats import existing, for_output, lst
from imgfmt.formats.base import Format, Item
from imgfmt.images import DEFAULT_MAX_PIXELS, ImageOptions, process_image
from imgfmt.ops.outcomes import SKIPPED, Note, Outcome, Skipped, crashed, record
from imgfmt.storage import AtomicOutputs, PlannedOutputs

if TYPE_CHECKING:
    from imgfmt.engines.local import BatchPool

log = logging.getLogger(__name__)

#: Items handed to a worker at once.
BATCH_SIZE = 8


@dataclass
class ConvertResult:
    """What a convert run made; ``to_dict`` is the ``--json`` summary."""

    source: str
    source_format: str
    format: str
    outputs: list[str] = field(default_factory=list)
    converted: int = 0
    reencoded: int = 0
    unlabeled: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    bytes_written: int = 0
    seconds: float = 0.0
    #: The index files written beside the outputs, if the format has any.
    indexes: list[str] = field(default_factory=list)
    #: A dry run: nothing was converted or written; the fields say what would be (each
    #: output named as the run names it, ``converted`` counting every item it would take).
    dry_run: bool = False
    #: Items in the source (a dry run's count), and how they were counted: ``index`` (the
    #: ids of its index, nothing else read) or ``read`` (every item read, none decoded).
    items: int = 0
    counted_by: str = ""
    #: Items in each output (a dry run's plan).
    counts: dict[str, int] = field(default_factory=dict)
    #: Shards cut at about this many bytes: a dry run names them by a pattern (``OUT-*.tar``).
    shard_size: int | None = None
    #: Local folders the run creates for its outputs (a dry run's plan).
    folders: list[str] = field(default_factory=list)
    #: The source's class map, copied beside the outputs (None: it has none).
    class_map: str | None = None

    def to_dict(self) -> dict[str, object]:
        if self.dry_run:
            return {
                "dry_run": True,
                "source": self.source,
                "source_format": self.source_format,
                "format": self.format,
                "items": self.items,
                "counted_by": self.counted_by,
                "outputs": self.outputs,
                "indexes": self.indexes,
                "counts": self.counts,
                "shard_size": self.shard_size,
                "converted": self.converted,
                # Known only where the items were read (an index holds no labels).
                "unlabeled": self.unlabeled if self.counted_by == "read" else None,
                "skipped": len(self.skipped),
                "skipped_items": [s.to_dict() for s in self.skipped],
                "damaged": self.damaged,
                "class_map": self.class_map,
                "folders": self.folders,
            }
        return {
            "source": self.source,
            "source_format": self.source_format,
            "format": self.format,
            "outputs": self.outputs,
            "class_map": self.class_map,
            "converted": self.converted,
            "reencoded": self.reencoded,
            "unlabeled": self.unlabeled,
            "skipped": len(self.skipped),
            "skipped_items": [s.to_dict() for s in self.skipped],
            "damaged": self.damaged,
            "warnings": [n.to_dict() for n in self.notes],
            "bytes": self.bytes_written,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class _Job:
    """What a worker needs to convert one item; small and picklable."""

    target: Format
    #: Re-encode every image with these; None: only where the target's readers need it.
    options: ImageOptions | None
    #: The decompression-bomb limit of images re-encoded because they had to be.
    max_pixels: int | None = DEFAULT_MAX_PIXELS


def _convert_one(job: _Job, item: Item) -> Outcome:
    notes: list[str] = []
    reencoded = False
    try:
        if not job.target.decodes:
            options = job.options
            if options is None and job.target.readers is not None:
                problem = payloads.payload_problem(item.image, job.target.readers)
                if problem is not None:
                    log.debug("%s: re-encoding: %s", item.where, problem.reason)
                    options = ImageOptions(max_pixels=job.max_pixels)
            if options is not None:
                image = process_image(item.image, options, _name(item), notes)
                path = item.path
                if path is not None:  # the name says what the bytes are now
                    path = os.path.splitext(path)[0] + options.encoding
                item, reencoded = replace(item, image=image, path=path), True
        payload = job.target.encode(item, notes)
    except ImgfmtError as err:
        return Outcome.failed(err, notes)
    return Outcome(payload, notes=tuple(notes), reencoded=reencoded)


def _convert_batch(job: _Job, batch: list[Item]) -> list[Outcome]:
    return [_convert_one(job, item) for item in batch]


def _name(item: Item) -> str:
    """How messages name an item: its path where the source kept one, else where it is."""
    return item.path or str(item.where or f"id {item.index}")


def convert(
    source: str,
    out: str,
    *,
    to: str | None = None,
    source_format: str | None = None,
    options: ImageOptions | None = None,
    write_options: dict[str, object] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    dry_run: bool = False,
    on_start: Callable[[int], None] | None = None,
) -> ConvertResult:
    """Convert the dataset ``source`` (format ``source_format``, else told by its name and
    content) into ``out`` (format ``to``, else told by its extension, with the format's
    ``write_options``: ``size`` and ``color`` for RecordIO-protobuf, ``shard_records`` or
    ``shard_size`` for WebDataset). ``options``: re-encode every image so (pack's image
    options); by default images are carried unchanged where the target's readers decode
    them, and re-encoded (within ``max_pixels``) where they do not. See the module doc for
    what is kept and what is skipped.

    ``dry_run``: the same checks, then what would be written, without converting or
    writing anything (:func:`_plan_writes`). ``on_start`` gets the number of items when an
    index tells it (a progress bar's total)."""
    from imgfmt.engines.local import BatchPool
    from imgfmt.ops.pack import default_workers

    started = time.perf_counter()
    if options is not None and options.pass_through:
        options = None  # carrying images unchanged is what convert does by default
    reader = existing(source, source_format)
    target = for_output(out, to, **(write_options or {}))
    if on_start is not None:  # a progress bar's total, where an index tells it
        indexed = reader.indexed_ids(source)
        if indexed is not None:
            on_start(len(indexed))
    # A missing folder or bucket is found before the work, not after it.
    folder = None  # the folder a dry run would create
    if dry_run:
        folder = storage.planned_output_folder(out)
    else:
        storage.ensure_output_folder(out)
    if options is not None or target.decodes:
        # A format that decodes takes its part of the image options (the pixel limit, ...).
        given = options or ImageOptions(max_pixels=max_pixels)
        target = target.with_image_options(given)
        target.check_output(out)
        if target.decodes:
            options = None
    result = ConvertResult(source, reader.name, target.name, dry_run=dry_run)

    def damaged(err: FormatError) -> None:
        result.damaged.append(str(err))
        log.log(SKIPPED, "skipped %s", err)

    carried = lst.class_map_copy(source, out)  # the classes keep their names
    if dry_run:
        result.class_map = carried[1] if carried else None
        result.folders.extend(filter(None, [folder]))
        size = (write_options or {}).get("shard_size")
        shard_size = size if isinstance(size, int) else None
        _plan_writes(reader, source, target, out, shard_size, result, damaged, on_progress)
        if result.converted == 0:
            raise _nothing_converted(result, source)
        return result

    # Images are decoded in worker processes (memory budget, crash isolation) whenever
    # they may be; a conversion that only re-frames runs in this thread.
    may_decode = options is not None or target.decodes or target.readers is not None
    pool: BatchPool[Item, Outcome] = BatchPool(
        partial(_convert_batch, _Job(target, options, max_pixels)),
        (workers or default_workers()) if may_decode else 1,
        crashed,
        threads=not may_decode,
        decoders=may_decode,
    )
    with AtomicOutputs() as outputs, s3.reading_through():  # the source is read whole
        writer = target.writer(out, outputs)
        with pool:
            for batch, outcomes in _run(pool, reader.read(source, damaged)):
                for item, outcome in zip(batch, outcomes):
                    if outcome.payload is not None:
                        try:
                            writer.append(outcome.payload, item)
                        except FormatError as err:  # a repeated id, which the target refuses
                            outcome = Outcome(None, err.message, "corrupt", outcome.notes)
                    _record(result, item, outcome, source)
                    if on_progress:
                        on_progress(1)
        writer.finish()
        result.outputs = writer.outputs
        result.indexes = writer.indexes
        result.converted = writer.records_written
        result.bytes_written = writer.bytes_written
        if result.converted == 0:
            raise _nothing_converted(result, source)
        if carried is not None:
            lst.copy_class_map(carried, outputs)
            result.class_map = carried[1]
    if result.unlabeled and not target.keeps_unlabeled:
        log.warning(
            "%s: %d items had no label and were written with label 0", out, result.unlabeled
        )
    result.seconds = time.perf_counter() - started
    return result


def _nothing_converted(result: ConvertResult, source: str) -> FormatError:
    failure = FormatError(
        f"nothing could be converted ({len(result.skipped)} skipped, "
        f"{len(result.damaged)} damaged)",
        path=source,
        hint="see the reasons above; nothing was written",
    )
    failure.details = result.to_dict()
    return failure


def _plan_writes(
    reader: Format,
    source: str,
    target: Format,
    out: str,
    shard_size: int | None,
    result: ConvertResult,
    damaged: Callable[[FormatError], None],
    on_progress: Callable[[int], None] | None,
) -> None:
    """What converting ``source`` writes, added to ``result``, without converting: its
    items are counted through its index where it has one (the ids alone), else by reading
    it (nothing decoded, damage reported as the run reports it); the target's writer, opened
    as the run opens it on a ``storage.PlannedOutputs``, is fed an empty payload per item,
    so that it names its outputs as in the run and counts what each holds (assuming every
    image converts: which ones cannot is known only by converting them). Shards cut by
    size are named by a pattern: where they are cut depends on the encoded sizes."""
    from imgfmt.ops.pack import feed_placeholders

    ids = reader.indexed_ids(source)
    items: Iterator[Item]
    if ids is not None:
        result.counted_by = "index"
        items = (Item(key, (), b"") for key in ids)
    else:
        result.counted_by = "read"
        items = reader.read(source, damaged)

    def counted(items: Iterator[Item]) -> Iterator[Item]:
        for item in items:
            result.items += 1
            if ids is None:
                result.unlabeled += not item.labels
            if on_progress:
                on_progress(1)
            yield item

    def refused(item: Item, err: FormatError) -> None:
        result.skipped.append(Skipped(f"{source}: {_name(item)}", err.message, "corrupt"))
        log.log(SKIPPED, "would skip %s: %s", _name(item), err.message)

    writer = target.writer(out, PlannedOutputs())  # as the run makes it, with its checks
    if shard_size:
        stem, ext = storage.splitext(out)
        pattern = f"{stem}-*{ext}"
        result.items = result.converted = sum(1 for _item in counted(items))
        result.outputs, result.counts, result.indexes = [pattern], {pattern: result.items}, []
        result.shard_size = shard_size
        return
    feed_placeholders(writer, counted(items), result.counts, refused)
    result.outputs, result.indexes = writer.outputs, writer.indexes
    result.converted = writer.records_written


def _run(
    pool: BatchPool[Item, Outcome], items: Iterator[Item]
) -> Iterator[tuple[list[Item], list[Outcome]]]:
    while batch := list(islice(items, BATCH_SIZE)):
        yield from pool.put(batch)
    yield from pool.drain()


def _record(result: ConvertResult, item: Item, outcome: Outcome, source: str) -> None:
    if record(outcome, f"{source}: {_name(item)}", result.notes, result.skipped):
        result.reencoded += outcome.reencoded
        result.unlabeled += not item.labels


__all__ = ["ConvertResult", "convert"]
