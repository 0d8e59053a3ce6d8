"""preview: a contact sheet of a dataset, a few images per class, to check labels by eye.

Which images: a seeded, deterministic sample of each class (the same ``seed`` and input
give the same sheet).

- A dataset with an index (``Format.indexed_ids``: a ``.rec`` with its ``.idx``) is read
  in a seeded random order, record by record through the index (one ranged read each on
  S3), until every class has its images: a sheet of a large remote dataset reads about the
  records it shows, not the dataset. When the classes are known (a class map, or
  ``classes``) it stops as soon as each is full; otherwise once every class seen is full
  and :data:`DISCOVERY_READS` more records brought no new class.
- Anything else is read once, keeping a seeded reservoir sample per class (memory: the
  images shown), and its per-class counts go on the sheet. An image list or manifest is
  listed, and only the images chosen are fetched.

Thumbnails are made in worker processes under the decoding guards; an image that cannot
be decoded gets a marked placeholder on the sheet and is reported.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any

from imgfmt import s3, storage
from imgfmt.errors import FormatError, ImgfmtError, StorageError, UsageError
from imgfmt.formats.base import label_text
from imgfmt.images import DEFAULT_MAX_PIXELS, opened
from imgfmt.ops.sources import UNLABELED, Entry, Source, class_heading, class_order, open_source

#: Images per class on the sheet, by default.
DEFAULT_PER_CLASS = 8

#: Thumbnail cell edge in pixels, by default.
DEFAULT_CELL = 128

#: Classes shown at most, by default: a sheet stays a picture a viewer opens (50 rows of
#: 128-pixel tiles are about 9,500 pixels high).
DEFAULT_MAX_CLASSES = 50

#: Records read through an index after the last new class, when the classes are not known
#: in advance, before the sample is taken as complete.
DISCOVERY_READS = 500

#: Records asked of ``Format.read_ids`` at once.
READ_CHUNK = 16

#: Output extensions and what they are written as.
SHEET_EXTENSIONS = (".png", ".jpg", ".jpeg")


@dataclass
class ClassShown:
    key: str
    name: str | None
    #: The ids shown, in order.
    ids: list[int] = field(default_factory=list)
    #: The class's images in the input, when the whole input was read.
    images: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.key, "name": self.name, "ids": self.ids, "images": self.images}


@dataclass
class PreviewResult:
    """What :func:`preview` drew; ``to_dict`` is the ``--json`` summary."""

    input: str
    output: str
    format: str
    classes: list[ClassShown] = field(default_factory=list)
    #: Records or entries read to choose the images.
    read: int = 0
    #: Images in the input (the index's count where one was used).
    total: int | None = None
    unreadable: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    #: Classes found, of which the first ``max_classes`` are shown.
    classes_found: int = 0
    seconds: float = 0.0

    @property
    def shown(self) -> int:
        return sum(len(c.ids) for c in self.classes)

    @property
    def problems(self) -> int:
        return len(self.unreadable) + len(self.damaged)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "format": self.format,
            "images": self.total,
            "read": self.read,
            "shown": self.shown,
            "classes": [c.to_dict() for c in self.classes],
            "classes_found": self.classes_found,
            "unreadable": self.unreadable,
            "damaged": self.damaged,
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------- choosing


@dataclass
class _Sample:
    """The entries chosen per class key, and what was read to choose them."""

    chosen: dict[str, list[Entry]] = field(default_factory=dict)
    counts: dict[str, int] | None = None
    read: int = 0
    total: int | None = None


def _wanted(source: Source, classes: list[str] | None) -> set[str] | None:
    """The class keys asked for (by key or by name), or None for all."""
    if not classes:
        return None
    by_name = {name: str(label) for label, name in source.names.items()}
    wanted = set()
    for asked in classes:
        key = by_name.get(asked, asked)
        try:
            key = label_text(float(key))
        except ValueError:
            if key != UNLABELED:
                known = ", ".join(sorted(by_name)[:10])
                hint = f"give class labels or names ({known})" if known else "give class labels"
                raise UsageError(f"no class {asked!r} in {source.path}", hint=hint) from None
        wanted.add(key)
    return wanted


def _by_index(
    source: Source,
    ids: list[int],
    per_class: int,
    wanted: set[str] | None,
    rng: random.Random,
    on_damage: Callable[[FormatError], None],
) -> _Sample:
    fmt = source.document
    order = list(ids)
    rng.shuffle(order)
    known = wanted if wanted is not None else ({str(k) for k in source.names} or None)
    sample = _Sample(total=len(ids))
    # The classes still short of images: the known ones, or every one seen so far.
    short = set(known) if known is not None else set()
    since_new = 0

    def items() -> Iterator[Any]:
        it = iter(order)
        while chunk := list(islice(it, READ_CHUNK)):
            yield from fmt.read_ids(source.path, chunk, on_damage)

    for item in items():
        sample.read += 1
        entry = None
        new = False
        for key in source.classes_of(item.labels):
            if wanted is not None and key not in wanted:
                continue
            if key not in sample.chosen:
                new = True
                if known is None:
                    short.add(key)
            bucket = sample.chosen.setdefault(key, [])
            if len(bucket) < per_class:
                entry = entry or Entry.of_item(item)
                bucket.append(entry)
                if len(bucket) == per_class:
                    short.discard(key)
        since_new = 0 if new else since_new + 1
        if not short and (known is not None or since_new >= DISCOVERY_READS):
            break
    return sample


def _by_reservoir(
    source: Source,
    per_class: int,
    wanted: set[str] | None,
    rng: random.Random,
    on_damage: Callable[[FormatError], None],
) -> _Sample:
    sample = _Sample(counts={})
    assert sample.counts is not None
    for entry in source.entries(on_damage):
        sample.read += 1
        for key in source.classes_of(entry.labels):
            if wanted is not None and key not in wanted:
                continue
            seen = sample.counts[key] = sample.counts.get(key, 0) + 1
            bucket = sample.chosen.setdefault(key, [])
            if len(bucket) < per_class:
                bucket.append(entry)
            else:
                slot = rng.randrange(seen)
                if slot < per_class:
                    bucket[slot] = entry
    sample.total = sample.read
    return sample


# --------------------------------------------------------------------------- thumbnails


@dataclass(frozen=True)
class _Thumbs:
    cell: int
    max_pixels: int | None
    s3_settings: s3.S3Settings


#: One thumbnail to make: the entry and its name for messages.
_Unit = tuple[Entry, str]
#: The thumbnail (an RGB image of at most cell x cell), or why there is none.
_Made = tuple[Any, str | None]


def _thumb_one(job: _Thumbs, data: bytes | StorageError, name: str) -> _Made:
    from PIL import ImageOps

    from imgfmt import render

    if isinstance(data, StorageError):
        return None, data.reason
    try:
        with opened(data, name, max_pixels=job.max_pixels) as image:
            image.draft(image.mode, (job.cell, job.cell))  # JPEG: decode at a reduced scale
            shown = ImageOps.exif_transpose(image)  # as a viewer shows it
            return render.thumbnail(shown, job.cell), None
    except ImgfmtError as err:
        return None, err.reason


def _thumb_batch(job: _Thumbs, batch: list[_Unit]) -> list[_Made]:
    s3.adopt(job.s3_settings)
    refs = [entry.ref for entry, _name in batch if entry.image is None and entry.ref]
    fetched = iter(storage.read_many(refs)) if refs else iter(())
    return [
        _thumb_one(job, entry.image if entry.image is not None else next(fetched), name)
        for entry, name in batch
    ]


def _thumb_crashed(_unit: _Unit, why: str) -> _Made:
    return None, f"the decoder crashed on this image: {why}"


def _thumbnails(
    units: list[_Unit], job: _Thumbs, workers: int, on_progress: Callable[[int], None] | None
) -> Iterator[tuple[_Unit, _Made]]:
    from imgfmt.engines.local import BatchPool

    pool: BatchPool[_Unit, _Made] = BatchPool(
        partial(_thumb_batch, job), workers, _thumb_crashed, decoders=True
    )
    with pool:
        it = iter(units)
        while batch := list(islice(it, 8)):
            for done, made in pool.put(batch):
                yield from zip(done, made)
                if on_progress:
                    on_progress(len(done))
        for done, made in pool.drain():
            yield from zip(done, made)
            if on_progress:
                on_progress(len(done))


# --------------------------------------------------------------------------- the sheet


def preview(
    path: str,
    out: str,
    *,
    per_class: int = DEFAULT_PER_CLASS,
    classes: list[str] | None = None,
    seed: int = 0,
    root: str | None = None,
    class_map: str | None = None,
    cell: int = DEFAULT_CELL,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_classes: int = DEFAULT_MAX_CLASSES,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> PreviewResult:
    """Draw a contact sheet of ``path`` into ``out`` (PNG or JPEG, by its extension; written
    whole or not at all): ``per_class`` images of each class (of ``classes``, by key or name,
    if given), chosen with ``seed`` (see the module doc), each captioned with its id."""
    from imgfmt import render
    from imgfmt.ops.pack import default_workers

    started = time.perf_counter()
    ext = storage.splitext(out)[1].lower()
    if ext not in SHEET_EXTENSIONS:
        raise UsageError(f"cannot tell the image format of {out!r}", hint="name it .png or .jpg")
    if per_class < 1:
        raise UsageError(f"per_class must be at least 1, not {per_class}")
    storage.ensure_output_folder(out)
    source = open_source(path, root=root, class_map=class_map)
    result = PreviewResult(path, out, source.format)
    rng = random.Random(seed)
    wanted = _wanted(source, classes)
    ids = source.document.indexed_ids(path) if source.holds_images else None
    if ids is not None:
        sample = _by_index(source, ids, per_class, wanted, rng, _collect(result))
    else:
        sample = _by_reservoir(source, per_class, wanted, rng, _collect(result))
    result.read, result.total = sample.read, sample.total
    if not sample.chosen:
        raise FormatError(
            "no images to show" + (" of the classes asked for" if wanted else ""),
            path=path,
            hint="check --classes" if wanted else "the input is empty",
        )
    keys = sorted(sample.chosen, key=class_order)
    result.classes_found = len(keys)
    keys = keys[:max_classes]
    units: list[_Unit] = []
    for entry in {id(e): e for key in keys for e in sample.chosen[key]}.values():
        units.append((entry, f"{path}: {entry.name}"))
    job = _Thumbs(cell, max_pixels, s3.settings())
    workers = workers or default_workers()
    made = {
        id(entry): thumb for (entry, _n), thumb in _thumbnails(units, job, workers, on_progress)
    }
    rows = []
    for key in keys:
        name = source.name_of(key)
        shown = ClassShown(key, name, images=(sample.counts or {}).get(key))
        tiles = []
        for entry in sorted(sample.chosen[key], key=lambda e: e.index):
            image, problem = made[id(entry)]
            reason = f"{path}: {entry.name}: {problem}"
            if problem is not None and reason not in result.unreadable:
                result.unreadable.append(reason)
            caption = f"id {entry.index} · {name}" if name else f"id {entry.index}"
            tiles.append(render.Tile(image, caption))
            shown.ids.append(entry.index)
        result.classes.append(shown)
        count = f"  ({_count(shown.images, 'image')})" if shown.images is not None else ""
        rows.append(render.SheetRow(class_heading(key, name) + count, tiles))
    sheet = render.contact_sheet(storage.basename(path), _subtitle(result, source, per_class, seed),
                                 rows, cell=cell)  # fmt: skip
    try:
        data = render.encode_image(sheet, ext)
    except (OSError, ValueError) as err:  # an encoder's limit (JPEG: 65,500 pixels a side)
        raise UsageError(
            f"cannot write a {sheet.width}x{sheet.height} sheet as {ext}: {err}",
            hint="show fewer classes (--classes, --max-classes) or write a .png",
        ) from err
    storage.write_file(out, data)
    result.seconds = time.perf_counter() - started
    return result


def _collect(result: PreviewResult) -> Callable[[FormatError], None]:
    def damaged(err: FormatError) -> None:
        result.damaged.append(str(err))

    return damaged


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _subtitle(result: PreviewResult, source: Source, per_class: int, seed: int) -> str:
    total = _count(result.total, "image") if result.total is not None else "images"
    shown = _count(len(result.classes), "class", "classes")
    if result.classes_found > len(result.classes):
        shown = f"{len(result.classes)} of {result.classes_found:,} classes (--classes to choose)"
    return (
        f"{source.format}  ·  {total}  ·  {shown} shown  ·  "
        f"up to {per_class} per class (seed {seed})"
    )


def format_summary(result: PreviewResult) -> str:
    """The line saying what was written (problems go to stderr: ``problem_lines``)."""
    classes = _count(len(result.classes), "class", "classes")
    total = result.total if result.total is not None else "?"
    return (
        f"wrote {result.output}: {_count(result.shown, 'image')} of {classes} "
        f"(read {result.read} of {total})"
    )


def problem_lines(result: PreviewResult) -> list[str]:
    """Damaged records and undecodable images met, one line each."""
    return list(result.damaged) + list(result.unreadable)


__all__ = ["ClassShown", "PreviewResult", "format_summary", "preview", "problem_lines"]
