"""imgfmt for Ray Data users: read MXNet RecordIO shards into a ``ray.data.Dataset``, and write
a Dataset as RecordIO shards (``pip install "imgfmt[ray]"``).

>>> import ray, imgfmt.ray
>>> ds = imgfmt.ray.read_recordio("s3://bucket/out/train.rec")   # every shard of it
>>> ds.take(1)[0].keys()
dict_keys(['id', 'label', 'labels', 'image', 'path'])

>>> rows = ray.data.read_binary_files("photos/", include_paths=True).map(to_row)
>>> rows.write_datasink(imgfmt.ray.RecordIODatasink("out/train.rec", records_per_shard=10000))

Rows: ``id`` (the record's id, an int), ``label`` (its first label, a float; 0.0 for none),
``labels`` (every label, a list of floats), ``image`` (the encoded image file, bytes) and
``path`` (where known; RecordIO keeps none, so null when read back).

Reading is one read task per shard, or more: a shard larger than ``target_bytes`` (or
than the requested parallelism allows) is cut at record boundaries found in its ``.idx``,
and each task reads its byte range in one request (one ranged GET on S3).

Writing: each write task packs its rows into shards of ``records_per_shard`` (a remainder
under half of that joins the task's last shard) as ``imgfmt pack`` writes them, staged
(temporary local files, or S3 multipart uploads not yet completed). When every task is
done, the shards are named in task order (``OUT-00000-of-000NN.rec`` + ``.idx``) and
published with the combined index ``OUT.combined.idx`` for NVIDIA DALI; if any task fails,
nothing is published. Where the shard boundaries fall follows how Ray Data hands rows to
write tasks; ``imgfmt pack --engine ray --shard-records N`` cuts a list at exact positions.
"""

from __future__ import annotations

import io
import math
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from imgfmt import s3, storage
from imgfmt.engines.ray import import_ray
from imgfmt.errors import FormatError, StorageError, UsageError
from imgfmt.formats.base import (
    DatasetWriter,
    Item,
    ShardIndex,
    shard_path,
    write_combined_index,
)
from imgfmt.formats.recordio import (
    IDX_SUFFIX,
    Damage,
    RecordIO,
    read_idx,
    read_pieces,
    unpack_image_record,
)
from imgfmt.ops.shards import shard_ranges, stage_shard
from imgfmt.storage import AtomicOutputs, StagedOutput

ray = import_ray()
from ray.data import Dataset  # noqa: E402
from ray.data.block import BlockMetadata  # noqa: E402
from ray.data.datasource import Datasink, Datasource, ReadTask  # noqa: E402

#: A read task reads at most about this many bytes of a shard.
TARGET_BYTES = 128 << 20
#: Rows per block a read task yields.
ROWS_PER_BLOCK = 1000

COLUMNS = ("id", "label", "labels", "image", "path")


# --------------------------------------------------------------------------- reading


def shard_paths(path: str | Sequence[str]) -> list[str]:
    """The ``.rec`` files ``path`` names: a list of them; one ``.rec``; or a dataset that
    was sharded (``out/train.rec`` -> ``out/train-00000-of-00004.rec``, ...)."""
    if not isinstance(path, str):
        return list(path)
    if storage.is_file(path):
        return [path]
    stem, ext = storage.splitext(path)
    folder, name = storage.dirname(stem), storage.basename(stem)
    found = [
        storage.join(folder, n) if folder else n
        for n in storage.names_in(folder)
        if _is_shard(n, name, ext)
    ]
    if not found:
        raise StorageError("no such dataset: neither the file nor its shards exist",
                           path=path, hint="check the path")  # fmt: skip
    return found


def _is_shard(name: str, stem: str, ext: str) -> bool:
    if not (name.startswith(stem + "-") and name.endswith(ext)):
        return False
    parts = name[len(stem) + 1 : len(name) - len(ext)].split("-of-")
    return len(parts) == 2 and all(part.isdigit() for part in parts)


@dataclass(frozen=True)
class _Span:
    """Bytes ``[start, stop)`` of one ``.rec``, holding ``records`` whole records."""

    path: str
    start: int
    stop: int
    records: int


def _spans(path: str, pieces: int, target_bytes: int) -> list[_Span]:
    size = storage.file_size(path)
    index = storage.sibling(path, IDX_SUFFIX)
    offsets = sorted(set(read_idx(index).values())) if storage.is_file(index) else []
    want = max(pieces, math.ceil(size / target_bytes))
    if want <= 1 or len(offsets) < 2:
        return [_Span(path, 0, size, len(offsets) or -1)]
    want = min(want, len(offsets))
    cuts = [offsets[len(offsets) * k // want] for k in range(want)] + [size]
    counts = [len(offsets) * (k + 1) // want - len(offsets) * k // want for k in range(want)]
    return [_Span(path, a, b, n) for a, b, n in zip(cuts, cuts[1:], counts)]


def _read_span(span: _Span, settings: s3.S3Settings) -> Iterator[Any]:
    import pyarrow as pa

    s3.adopt(settings)
    data = storage.read_range(span.path, span.start, span.stop - span.start)
    stream, pos, rows = io.BytesIO(data), 0, _Rows()
    while pos < len(data):
        result = read_pieces(stream, pos, len(data))
        if isinstance(result, Damage):
            where = f"record at byte {span.start + result.offset}"
            raise FormatError(result.message, path=span.path, where=where, hint=result.hint)
        where = f"record at byte {span.start + pos}"
        payload, pos, _padding = result
        header, image = unpack_image_record(payload, path=span.path, where=where)
        rows.add(Item(header.id, header.labels, image))
        if len(rows) >= ROWS_PER_BLOCK:
            yield pa.table(rows.take())
    if len(rows):
        yield pa.table(rows.take())


class _Rows:
    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}

    def __len__(self) -> int:
        return len(self.columns["id"])

    def add(self, item: Item) -> None:
        self.columns["id"].append(item.index)
        self.columns["label"].append(item.labels[0] if item.labels else 0.0)
        self.columns["labels"].append(list(item.labels))
        self.columns["image"].append(item.image)
        self.columns["path"].append(item.path)

    def take(self) -> dict[str, Any]:
        import pyarrow as pa

        columns = self.columns
        self.columns = {name: [] for name in COLUMNS}
        return {
            "id": pa.array(columns["id"], pa.uint64()),
            "label": pa.array(columns["label"], pa.float64()),
            "labels": pa.array(columns["labels"], pa.list_(pa.float64())),
            "image": pa.array(columns["image"], pa.binary()),
            "path": pa.array(columns["path"], pa.string()),
        }


class RecordIODatasource(Datasource):
    """MXNet RecordIO shards as a Ray Data source (see the module's docstring)."""

    def __init__(self, paths: str | Sequence[str], target_bytes: int = TARGET_BYTES) -> None:
        self.paths = shard_paths(paths)
        self.target_bytes = target_bytes
        self._sizes: list[int] | None = None

    def estimate_inmemory_data_size(self) -> int | None:
        if self._sizes is None:
            self._sizes = [storage.file_size(path) for path in self.paths]
        return sum(self._sizes)

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        each = max(1, math.ceil(parallelism / max(1, len(self.paths))))
        settings = s3.settings()
        tasks = []
        for path in self.paths:
            for span in _spans(path, each, self.target_bytes):
                metadata = BlockMetadata(
                    num_rows=span.records if span.records >= 0 else None,
                    size_bytes=span.stop - span.start,
                    input_files=(path,),
                    exec_stats=None,
                )
                tasks.append(ReadTask(partial(_read_span, span, settings), metadata))
        return tasks


def read_recordio(paths: str | Sequence[str], **read_options: Any) -> Dataset:
    """A ``ray.data.Dataset`` of every record of the ``.rec`` shards ``paths`` names (see
    :func:`shard_paths`); ``read_options`` go to ``ray.data.read_datasource``."""
    return ray.data.read_datasource(RecordIODatasource(paths), **read_options)


# --------------------------------------------------------------------------- writing


@dataclass
class _Written:
    """What one write task staged: each shard's outputs and index, in order."""

    task: int
    shards: list[tuple[list[StagedOutput], ShardIndex | None]]


class RecordIODatasink(Datasink):
    """Write a Dataset of rows with ``image`` (bytes of an image file) and ``label`` (a
    number, or a list for several labels), optionally ``id`` (default: its row number within
    its write task, offset so ids stay unique), as MXNet RecordIO shards of
    ``records_per_shard`` with their ``.idx`` files and the combined index. The images are
    stored as they are (pass-through): encode them as you need upstream."""

    def __init__(self, path: str, records_per_shard: int = 10_000) -> None:
        if records_per_shard < 1:
            raise UsageError("records_per_shard must be at least 1")
        RecordIO().check_output(path)
        self.path, self.records_per_shard = path, records_per_shard
        self.token = secrets.token_hex(6)
        self.settings = s3.settings()
        self.outputs: list[str] = []
        self.combined: str | None = None

    @property
    def min_rows_per_write(self) -> int | None:
        return self.records_per_shard

    def on_write_start(self, schema: Any = None) -> None:
        storage.ensure_output_folder(self.path)

    def _task_path(self, task: int, number: int) -> str:
        stem, ext = storage.splitext(self.path)
        return f"{stem}-task{task:05d}-{number:05d}{ext}"

    def write(self, blocks: Iterable[Any], ctx: Any) -> _Written:
        from ray.data.block import BlockAccessor

        s3.adopt(self.settings)
        rows: list[Any] = []
        for block in blocks:
            rows.extend(BlockAccessor.for_block(block).iter_rows(False))
        task = int(ctx.task_idx)
        fmt = RecordIO()
        written = _Written(task, [])
        bounds = shard_ranges(len(rows), self.records_per_shard) if rows else []
        for number, (start, stop) in enumerate(bounds):

            def fill(writer: DatasetWriter, start: int = start, stop: int = stop) -> None:
                for position in range(start, stop):
                    item = _item(rows[position], task, position)
                    writer.append(fmt.encode(item), item)

            writer, staged = stage_shard(fmt, self._task_path(task, number), self.token, fill)
            written.shards.append((staged, writer.kept_index))
        return written

    def on_write_complete(self, write_result: Any) -> None:
        results = sorted(write_result.write_returns, key=lambda w: w.task)
        shards = [shard for result in results for shard in result.shards]
        count = len(shards)
        group = AtomicOutputs()
        with group:
            for number, (staged, _index) in enumerate(shards):
                renamed = [
                    replace(out, final=shard_path(self.path, number, count, _ext(out)))
                    for out in staged
                ]
                group.adopt(renamed)
                self.outputs += [out.final or out.path for out in renamed]
            indexes = [index for _staged, index in shards]
            written = write_combined_index(RecordIO(), self.path, group, indexes)
        self.combined = written[0] if written else None

    def on_write_failed(self, error: Exception) -> None:
        """Drop what every task staged: local files by this sink's token, S3 uploads by
        their keys (``OUT-task*``)."""
        stem = storage.splitext(self.path)[0]
        if storage.is_s3(stem):
            for key, upload_id in s3.uploads_under(stem + "-task"):
                s3.abort_upload(key, upload_id)
        else:
            storage.discard_staged([stem], self.token)


def _ext(staged: StagedOutput) -> str:
    return storage.splitext(staged.final or staged.path)[1]


def _item(row: dict[str, Any], task: int, position: int) -> Item:
    """A row as a record: several ``labels`` (as :func:`read_recordio` gives them) make a
    multi-label record; else ``label``, a number or a list."""
    several = row.get("labels")
    label = several if several is not None and len(several) > 1 else row.get("label", ())
    labels = tuple(float(v) for v in label) if _is_list(label) else (float(label),)
    index = row.get("id")
    if index is None:
        index = (task << 32) + position
    image = row.get("image")
    if not isinstance(image, (bytes, bytearray)):
        raise UsageError("each row needs an `image` column of bytes (an encoded image file)")
    return Item(int(index), labels, bytes(image), row.get("path"), None, _is_list(label))


def _is_list(value: Any) -> bool:
    return hasattr(value, "__len__") and not isinstance(value, (str, bytes))


__all__ = ["COLUMNS", "RecordIODatasink", "RecordIODatasource", "read_recordio", "shard_paths"]
