"""pack --shard-records: a dataset cut into shards by record count, packed shard by shard
on an engine (``imgfmt.engines``: this process's pool, or a Ray cluster).

Shard ``k`` of ``count`` holds the images at list positions ``[k*N, (k+1)*N)``, except that
a remainder under ``N/2`` goes to the last shard instead of making a small shard of its own
(MXNet's ``ImageRecordIter`` refuses a file with fewer records than its batch). So what a
shard holds depends only on the list and ``N``: never on the engine or its worker count,
and each shard is packed by the same code (:func:`pack_shard`) wherever it runs.

The driver (this process) reads the list once: it checks every line and notes the byte
offset of every N-th entry, nothing else, so its memory does not grow with the list. Each
task reads its own byte range of the list, packs its shard into outputs named with the
run's token, and *stages* them (``AtomicOutputs.stage``: local files under temporary
names, S3 multipart uploads with every part up) instead of publishing them. The driver
gathers counts and skipped images, then commits everything as one group: the shards in
order with the format's combined index, the lists and the class map. A failed task (an
error, a killed worker, a refused upload) stops the run; every staged output and whatever
a dead worker left under the run's token is removed, so nothing appears.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from imgfmt import s3, storage
from imgfmt.engines import Engine, Progress
from imgfmt.errors import ImgfmtError, UsageError
from imgfmt.formats import lst
from imgfmt.formats.base import (
    CombinedIndexWriter,
    DatasetWriter,
    Format,
    ShardIndex,
    shard_path,
)
from imgfmt.ops.outcomes import Note, Skipped
from imgfmt.ops.pack import PackResult, _Job, write_entries
from imgfmt.storage import AtomicOutputs, StagedOutput


def shard_starts(total: int, per_shard: int) -> list[int]:
    """The list position each shard starts at: every ``per_shard``-th, the last shard
    taking a remainder under ``per_shard / 2`` (always at least one shard)."""
    if per_shard < 1:
        raise UsageError("--shard-records must be at least 1")
    count = max(1, total // per_shard)
    if total > count * per_shard and 2 * (total - count * per_shard) >= per_shard:
        count += 1
    return [k * per_shard for k in range(count)]


def shard_ranges(total: int, per_shard: int) -> list[tuple[int, int]]:
    """``(start, stop)`` list positions of each shard of ``total`` (:func:`shard_starts`)."""
    starts = shard_starts(total, per_shard)
    return list(zip(starts, [*starts[1:], total]))


def stage_shard(
    fmt: Format, path: str, token: str, fill: Callable[[DatasetWriter], None]
) -> tuple[DatasetWriter, list[StagedOutput]]:
    """Write the shard ``path`` of format ``fmt`` with ``fill`` and stage its outputs under
    the run's ``token`` (``AtomicOutputs.stage``); if ``fill`` raises, nothing is left."""
    group = AtomicOutputs(token=token)
    with group:
        writer = fmt.shard_writer(path, group)
        fill(writer)
        return writer, group.stage()


@dataclass(frozen=True)
class ListRange:
    """Some lines of a ``.lst``: bytes ``[start, stop)`` (to the end if ``stop`` is None),
    the first of them line ``first_line``."""

    path: str
    start: int
    stop: int | None
    first_line: int

    def entries(self) -> list[lst.LstEntry]:
        length = None if self.stop is None else self.stop - self.start
        data = storage.read_range(self.path, self.start, length)
        lines = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape")
        return list(lst.parse_lst(lines, self.path, first_line=self.first_line))


class ListPlanner(Collection[lst.LstEntry]):
    """One pass over a ``.lst`` (strictly parsed: a bad line stops the run before any work)
    that notes where every ``per_shard``-th entry starts, then cuts it into
    :class:`ListRange` s. Memory: two numbers per shard."""

    def __init__(self, path: str, per_shard: int) -> None:
        self.path, self.per_shard = path, per_shard
        self.total = 0
        #: Its one pass has been read to the end: the counts and marks are complete.
        self.planned = False
        self._marks: list[tuple[int, int]] = []  # (byte offset, line number) of entry k*N

    def __iter__(self) -> Iterator[lst.LstEntry]:
        self.total, self._marks = 0, []
        where = [0, 0, 0]  # byte offset and number of the line just read, next offset

        def lines(handle: io.TextIOWrapper) -> Iterator[str]:
            for line in handle:
                where[0], where[1] = where[2], where[1] + 1
                where[2] += len(line.encode("utf-8", "surrogateescape"))
                yield line

        with storage.open_input(self.path, "rb") as raw:
            # Split where a text read splits (universal newlines), keeping the endings so
            # that the byte offsets add up.
            text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")
            for entry in lst.parse_file(lines(text), self.path):
                if self.total % self.per_shard == 0:
                    # A range read from byte 0 as line 1 drops a BOM as the whole list does.
                    self._marks.append((where[0], where[1]))
                self.total += 1
                yield entry
        self.planned = True

    def __len__(self) -> int:
        if not self.planned:
            for _entry in self:
                pass
        return self.total

    def __contains__(self, item: object) -> bool:
        return any(entry == item for entry in self)

    def ranges(self) -> list[ListRange]:
        starts = shard_starts(self.total, self.per_shard)
        marks = [self._marks[s // self.per_shard] for s in starts]
        stops: list[int | None] = [offset for offset, _line in marks[1:]] + [None]
        return [
            ListRange(self.path, offset, stop, line) for (offset, line), stop in zip(marks, stops)
        ]


@dataclass(frozen=True)
class ShardTask:
    """One shard to pack: small and picklable (it travels to a cluster's workers)."""

    number: int
    count: int
    #: The dataset's path (``data/train.rec``); the shard's is :attr:`path`.
    dataset: str
    #: Its entries, or where in the list they are.
    source: ListRange | tuple[lst.LstEntry, ...]
    job: _Job
    #: Names the run's temporary outputs (``storage.temp_path``).
    token: str
    #: Decoding processes of its own (None: the default, as ``pack -j`` not given).
    workers: int | None = 1

    @property
    def path(self) -> str:
        return shard_path(self.dataset, self.number, self.count)


@dataclass
class ShardDone:
    """What packing one shard made, staged for the driver to commit."""

    number: int
    outputs: list[str]
    indexes: list[str]
    index: ShardIndex | None
    staged: list[StagedOutput]
    entries: int
    packed: int
    bytes_written: int
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    skipped_ids: set[int] = field(default_factory=set)


def pack_shard(task: ShardTask, on_progress: Progress | None = None) -> ShardDone:
    """Pack one shard and stage its outputs (the body of every engine's task)."""
    if task.job.s3_settings is not None:
        s3.adopt(task.job.s3_settings)
    source = task.source
    entries = source.entries() if isinstance(source, ListRange) else list(source)
    result = PackResult()

    def fill(writer: DatasetWriter) -> None:
        write_entries(task.job, entries, writer, task.workers, result, on_progress)
        if writer.records_written == 0:
            raise ImgfmtError(
                f"every image of shard {task.number} ({len(entries)} images) was skipped",
                path=task.path,
                hint="see the reasons above; nothing was written (fix or leave out those "
                "images, or pack with a larger --shard-records)",
            )

    writer, staged = stage_shard(task.job.fmt, task.path, task.token, fill)
    return ShardDone(
        task.number,
        writer.outputs,
        writer.indexes,
        writer.kept_index,
        staged,
        len(entries),
        writer.records_written,
        writer.bytes_written,
        result.skipped,
        result.notes,
        result.skipped_ids,
    )


def pack_sharded(
    entries: Sequence[lst.LstEntry] | ListPlanner,
    out: str,
    per_shard: int,
    job: _Job,
    engine: Engine,
    workers: int | None,
    outputs: AtomicOutputs,
    result: PackResult,
    on_progress: Progress | None = None,
) -> None:
    """Pack ``entries`` (a list in memory, or a planned ``.lst`` already read once) into
    shards of ``per_shard`` on ``engine``; add the staged shards, then the combined index,
    to ``outputs`` (which the caller commits) and the counts to ``result``."""
    token = secrets.token_hex(6)
    if isinstance(entries, ListPlanner):
        sources: list[ListRange | tuple[lst.LstEntry, ...]] = list(entries.ranges())
    else:
        sources = [tuple(entries[a:b]) for a, b in shard_ranges(len(entries), per_shard)]
    count = len(sources)
    each = engine.task_workers(workers)
    tasks = [ShardTask(k, count, out, src, job, token, each) for k, src in enumerate(sources)]
    done: dict[int, ShardDone] = {}
    combined_count = 0  # shards whose index is in the combined index
    try:
        combined = CombinedIndexWriter(job.fmt, out, outputs)
        live = on_progress if engine.live_progress else None
        for _number, shard in engine.run(pack_shard, tasks, live):
            done[shard.number] = shard
            if on_progress is not None and not engine.live_progress:
                on_progress(shard.entries)
            # Shards finish in any order; each index goes into the combined one as soon as
            # the shards before it are in, and is dropped then (~17 B an image).
            while combined_count in done:
                ready = done[combined_count]
                combined.add(ready.index)
                ready.index = None
                combined_count += 1
        ordered = [done[k] for k in range(count)]
        for shard in ordered:
            outputs.adopt(shard.staged)
    except BaseException:
        _discard(tasks, token, done.values())
        raise
    for shard in ordered:
        result.outputs.extend(shard.outputs)
        result.indexes.extend(shard.indexes)
        result.packed += shard.packed
        result.bytes_written += shard.bytes_written
        result.skipped.extend(shard.skipped)
        result.notes.extend(shard.notes)
        result.skipped_ids |= shard.skipped_ids
    result.combined_indexes.extend(combined.written)
    result.shards += count


def _discard(tasks: Sequence[ShardTask], token: str, done: Iterable[ShardDone]) -> None:
    """After a failure: what finished tasks staged, and whatever a killed one left."""
    staged = [output for shard in done for output in shard.staged]
    group = AtomicOutputs()
    group.adopt(staged)
    group.abort()
    stems = {storage.splitext(task.path)[0] for task in tasks}
    storage.discard_staged(stems, token)
