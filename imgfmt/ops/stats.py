"""stats: what is in one or several inputs, and which images leak between them.

For each input (any format imgfmt reads; ``imgfmt.ops.sources``): images per class (named
from the class map), image formats, width and height (min, quartiles, max), file sizes,
labels per image, images that cannot be read, and exact copies inside it. The work on the
image bytes (their header, a digest, a perceptual hash) runs in worker processes under the
decoding guards, so a hostile file costs only itself.

With several inputs (the train/val/test outputs of ``split``), every pair of inputs is
checked for leakage:

- **exact** duplicates: the same image bytes (a 128-bit BLAKE2b digest) in both;
- **near** duplicates: the same picture stored differently (resized, re-encoded, another
  format): the 64-bit difference hashes (``imgfmt.neardup``) of the decoded images differ in
  at most ``near`` bits. A pair that is exact is not counted again as near.

The comparison is not quadratic: exact copies are grouped by digest, near ones found by
multi-index hashing (``imgfmt.neardup.near_pairs``). Every leaking pair is counted; the
first ``max_examples`` of each pair of inputs are listed with both locations.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any

from imgfmt import neardup, s3, storage
from imgfmt.errors import FormatError, ImgfmtError, StorageError, UsageError
from imgfmt.images import DEFAULT_MAX_PIXELS, format_name, opened
from imgfmt.ops.sources import Entry, Source, class_heading, class_order, open_source
from imgfmt.text import human_bytes

#: Hamming distance (bits of 64) up to which two images count as the same picture: every
#: re-encoding and resize of the same photo measured stays within it, no pair of different
#: ones came as close (``imgfmt.neardup``).
DEFAULT_NEAR = neardup.DEFAULT_MAX_DISTANCE

#: Leaking pairs listed per pair of inputs (all are counted).
DEFAULT_MAX_EXAMPLES = 20

#: Near pairs listed at most over all inputs (all are counted: a dataset of many copies of
#: one flat image makes billions of pairs).
MAX_NEAR_PAIRS = neardup.DEFAULT_LIMIT

#: Unreadable images described per input (all are counted).
MAX_UNREADABLE_LISTED = 20

#: Images handed to a worker at once.
BATCH_SIZE = 16


# --------------------------------------------------------------------------- per image


@dataclass(frozen=True)
class _Look:
    """What a worker does to each image; small and picklable."""

    hash: bool
    max_pixels: int | None
    s3_settings: s3.S3Settings


@dataclass(frozen=True)
class Seen:
    """What a worker found of one image."""

    size: int = 0
    digest: bytes = b""
    format: str | None = None
    width: int | None = None
    height: int | None = None
    #: Its 64-bit difference hash, when hashing and it decodes.
    dhash: int | None = None
    #: Why it cannot be read (its size and format then as far as known), or None.
    problem: str | None = None
    #: Why it was measured but not compared (too large to decode), or None.
    note: str | None = None


#: One image for a worker: the number of its input, its entry (its bytes or where to read
#: them) and its name for messages.
_Unit = tuple[int, Entry, str]


def _look_one(job: _Look, data: bytes | StorageError, name: str) -> Seen:
    if isinstance(data, StorageError):
        return Seen(problem=data.reason)
    size, digest = len(data), hashlib.blake2b(data, digest_size=16).digest()
    fmt = format_name(data)
    width = height = None
    try:
        # Only the header is read for the size: a picture too large to decode is measured.
        with opened(data, name, max_pixels=None) as image:
            fmt, (width, height) = image.format or fmt, image.size
            if not job.hash:
                return Seen(size, digest, fmt, width, height)
            if job.max_pixels is not None and width * height > job.max_pixels:
                reason = f"too large to compare: {width}x{height} exceeds the --max-pixels limit"
                return Seen(size, digest, fmt, width, height, note=reason)
            return Seen(size, digest, fmt, width, height, neardup.dhash(image))
    except ImgfmtError as err:
        return Seen(size, digest, fmt, width, height, problem=err.reason)


def _look_batch(job: _Look, batch: list[_Unit]) -> list[Seen]:
    s3.adopt(job.s3_settings)
    refs = [entry.ref for _group, entry, _name in batch if entry.image is None and entry.ref]
    fetched = iter(storage.read_many(refs)) if refs else iter(())
    return [
        _look_one(job, entry.image if entry.image is not None else next(fetched), name)
        for _group, entry, name in batch
    ]


def _crashed(_unit: _Unit, why: str) -> Seen:
    return Seen(problem=f"the decoder crashed on this image: {why}")


# --------------------------------------------------------------------------- results


def distribution(values: list[int]) -> dict[str, float] | None:
    """Min, quartiles and max of ``values`` (linear interpolation, as numpy's default);
    None for none."""
    if not values:
        return None
    import numpy as np

    q = np.percentile(np.asarray(values, dtype=np.float64), [0, 25, 50, 75, 100])
    keys = ("min", "q1", "median", "q3", "max")
    return {k: (int(v) if float(v).is_integer() else round(float(v), 2)) for k, v in zip(keys, q)}


@dataclass(frozen=True)
class Place:
    """Where an image is: its input, its id, its place in the input and its path."""

    input: str
    index: int
    where: str
    path: str | None

    def __str__(self) -> str:
        kept = f", {self.path}" if self.path else ""
        return f"{self.input}: {self.where} (id {self.index}{kept})"

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "id": self.index, "where": self.where, "path": self.path}


@dataclass
class InputStats:
    """What one input holds."""

    path: str
    format: str
    images: int = 0
    #: Images per class key (``imgfmt.formats.base.label_class``) and its name.
    classes: Counter[str] = field(default_factory=Counter)
    names: dict[str, str] = field(default_factory=dict)
    formats: Counter[str] = field(default_factory=Counter)
    labels_per_image: Counter[int] = field(default_factory=Counter)
    widths: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    unreadable: int = 0
    unreadable_listed: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    #: Images that are byte-for-byte copies of an earlier one of this input.
    duplicates: int = 0
    duplicate_examples: list[Leak] = field(default_factory=list)
    #: Why the input could not be read (whole or from some point on), or None.
    error: str | None = None

    def ordered_classes(self) -> list[tuple[str, int]]:
        return sorted(self.classes.items(), key=lambda kv: class_order(kv[0]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "images": self.images,
            "classes": [
                {"class": key, "name": self.names.get(key), "images": n}
                for key, n in self.ordered_classes()
            ],
            "image_formats": dict(self.formats.most_common()),
            "width": distribution(self.widths),
            "height": distribution(self.heights),
            "bytes": distribution(self.sizes),
            "total_bytes": sum(self.sizes),
            "labels_per_image": {str(k): v for k, v in sorted(self.labels_per_image.items())},
            "unreadable": self.unreadable,
            "unreadable_images": self.unreadable_listed,
            "damaged": self.damaged,
            "duplicates": self.duplicates,
            "duplicate_examples": [leak.to_dict() for leak in self.duplicate_examples],
            "error": self.error,
        }


@dataclass(frozen=True)
class Leak:
    """One image found in two inputs."""

    kind: str  # "exact" or "near"
    a: Place
    b: Place
    #: Bits in which their difference hashes differ (0 for exact copies).
    distance: int = 0

    def __str__(self) -> str:
        how = "same bytes" if self.kind == "exact" else f"near, {self.distance} bits apart"
        return f"{self.a}  ==  {self.b}  ({how})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "distance": self.distance, "a": self.a.to_dict(),
                "b": self.b.to_dict()}  # fmt: skip


@dataclass
class PairLeakage:
    """The images two inputs share."""

    a: str
    b: str
    exact: int = 0
    near: int = 0
    examples: list[Leak] = field(default_factory=list)

    @property
    def leaks(self) -> int:
        return self.exact + self.near

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "exact": self.exact, "near": self.near,
                "examples": [leak.to_dict() for leak in self.examples]}  # fmt: skip


@dataclass
class StatsResult:
    """What :func:`stats` found; ``to_dict`` is the ``--json`` summary."""

    inputs: list[InputStats]
    pairs: list[PairLeakage] = field(default_factory=list)
    #: The near-duplicate threshold in bits; None when only exact copies were compared.
    near: int | None = DEFAULT_NEAR
    #: More near pairs existed than were gathered: the near counts are lower bounds.
    near_truncated: bool = False
    seconds: float = 0.0

    @property
    def leaks(self) -> int:
        return sum(pair.leaks for pair in self.pairs)

    @property
    def problems(self) -> int:
        """Unreadable images and damaged records or lines, over all inputs."""
        return sum(s.unreadable + len(s.damaged) + (s.error is not None) for s in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [s.to_dict() for s in self.inputs],
            "compared": len(self.inputs) > 1,
            "near_threshold": self.near,
            "leaks": self.leaks,
            "near_truncated": self.near_truncated,
            "pairs": [pair.to_dict() for pair in self.pairs],
            "problems": self.problems,
            "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------- the scan


@dataclass
class _Seen:
    """What the scan keeps of every image for the comparison, in columns."""

    places: list[Place] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    #: Positions (into the columns above) of the images that have a hash, and the hashes.
    hashed: list[int] = field(default_factory=list)
    hashes: list[int] = field(default_factory=list)


def stats(
    paths: list[str],
    *,
    root: str | None = None,
    class_map: str | None = None,
    near: int | None = DEFAULT_NEAR,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> StatsResult:
    """Describe each of ``paths`` and, with several, find the images they share (see the
    module doc). ``root``: the folder of the lists' relative paths (default: each list's
    folder). ``class_map``: class names for every input (default: each one's own, found
    beside it). ``near``: the Hamming threshold for near duplicates, None to compare exact
    copies only (no image is decoded then)."""
    from imgfmt.engines.local import BatchPool
    from imgfmt.ops.pack import default_workers

    if not paths:
        raise UsageError("give at least one input")
    if near is not None and not 0 <= near <= NEAR_LIMIT:
        raise UsageError(f"near must be 0 to {NEAR_LIMIT} bits, not {near}")
    started = time.perf_counter()
    for i, path in enumerate(paths):
        if any(storage.same_path(path, other) for other in paths[:i]):
            raise UsageError(f"{path!r} is given twice", hint="give each input once")
    sources = [_open(path, root, class_map) for path in paths]
    if root is not None and all(source.holds_images for source in sources):
        raise UsageError("`root` applies to image lists and manifests; no input is one")
    compare = len(sources) > 1
    # Every image is decoded (at reduced scale, for its hash): a damaged one is found even in
    # one input. Only --exact-only reads headers alone.
    job = _Look(hash=near is not None, max_pixels=max_pixels, s3_settings=s3.settings())
    result = StatsResult([_summary(s) for s in sources], near=near)
    seen = _Seen()
    pool: BatchPool[_Unit, Seen] = BatchPool(
        partial(_look_batch, job), workers or default_workers(), _crashed, decoders=True
    )
    with pool:
        for batch, looks in _scan(pool, sources, result):
            for (group, entry, _name), look in zip(batch, looks):
                _add(result.inputs[group], sources[group], entry, look)
                _keep(seen, group, sources[group].path, entry, look)
                if on_progress:
                    on_progress(1)
    for source, summary in zip(sources, result.inputs):
        summary.names = {key: name for key in summary.classes
                         if (name := source.name_of(key)) is not None}  # fmt: skip
        if summary.images == 0 and summary.error is None:
            summary.error = "no images: the input is empty"
    _count_duplicates(result, seen, max_examples)
    if compare:
        result.pairs = _leaks(seen, [s.path for s in sources], near, max_examples, result)
    result.seconds = time.perf_counter() - started
    return result


#: The largest ``near`` threshold: beyond, different pictures start to match.
NEAR_LIMIT = neardup.MAX_DISTANCE


def _open(path: str, root: str | None, class_map: str | None) -> Source:
    """``path`` opened for the scan; an input that cannot be (missing, unreadable) is kept
    with its error, so the other inputs are still described and compared."""
    try:
        source = open_source(path, class_map=class_map)
    except UsageError:
        raise
    except ImgfmtError as err:
        return Source(path, "unknown", error=str(err))
    if not source.holds_images:
        source.root = root
    return source


def _summary(source: Source) -> InputStats:
    return InputStats(source.path, source.format, error=source.error)


def _scan(
    pool: Any, sources: list[Source], result: StatsResult
) -> Iterator[tuple[list[_Unit], list[Seen]]]:
    def units() -> Iterator[_Unit]:
        for group, source in enumerate(sources):
            summary = result.inputs[group]

            def damaged(err: FormatError, summary: InputStats = summary) -> None:
                summary.damaged.append(str(err))

            if source.error is not None:
                continue
            try:
                for entry in source.entries(damaged):
                    yield group, entry, f"{source.path}: {entry.name}"
            except ImgfmtError as err:  # this input cannot be read on: the others still are
                summary.error = str(err)

    it = units()
    while batch := list(islice(it, BATCH_SIZE)):
        yield from pool.put(batch)
    yield from pool.drain()


def _add(summary: InputStats, source: Source, entry: Entry, look: Seen) -> None:
    summary.images += 1
    for key in source.classes_of(entry.labels):
        summary.classes[key] += 1
    summary.labels_per_image[len(entry.labels)] += 1
    if look.size:
        summary.sizes.append(look.size)
    if look.width is not None and look.height is not None:
        summary.widths.append(look.width)
        summary.heights.append(look.height)
    if look.format:
        summary.formats[look.format] += 1
    if look.problem is not None:
        summary.unreadable += 1
        if len(summary.unreadable_listed) < MAX_UNREADABLE_LISTED:
            summary.unreadable_listed.append(f"{source.path}: {entry.name}: {look.problem}")


def _keep(seen: _Seen, group: int, path: str, entry: Entry, look: Seen) -> None:
    """Keep what the comparison needs of an image."""
    if not look.digest:
        return  # never read: nothing to compare
    position = len(seen.digests)
    seen.places.append(Place(path, entry.index, entry.where, entry.path))
    seen.groups.append(group)
    seen.digests.append(look.digest)
    if look.dhash is not None:
        seen.hashed.append(position)
        seen.hashes.append(look.dhash)


def _count_duplicates(result: StatsResult, seen: _Seen, max_examples: int) -> None:
    """Each input's images that are byte-for-byte copies of an earlier one of it, and the
    first ``max_examples`` such pairs."""
    for copies in _copies(seen):
        first: dict[int, int] = {}
        for position in copies:
            group = seen.groups[position]
            if group not in first:
                first[group] = position
                continue
            summary = result.inputs[group]
            summary.duplicates += 1
            if len(summary.duplicate_examples) < max_examples:
                leak = Leak("exact", seen.places[first[group]], seen.places[position])
                summary.duplicate_examples.append(leak)


def _copies(seen: _Seen) -> Iterator[list[int]]:
    """The positions of each set of images with the same bytes (two or more), in order."""
    import numpy as np

    if not seen.digests:
        return
    digests = np.array(seen.digests, dtype="S16")
    _values, inverse, counts = np.unique(digests, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    shared = np.nonzero(counts[inverse] > 1)[0]  # positions whose bytes occur again
    order = shared[np.argsort(inverse[shared], kind="stable")]
    if order.size == 0:
        return
    cuts = np.nonzero(np.diff(inverse[order]))[0] + 1
    for copies in np.split(order, cuts):
        yield copies.tolist()


def _leaks(
    seen: _Seen, paths: list[str], near: int | None, max_examples: int, result: StatsResult
) -> list[PairLeakage]:
    """Every pair of inputs, with the images they share."""
    pairs = {
        (a, b): PairLeakage(paths[a], paths[b])
        for a in range(len(paths))
        for b in range(a + 1, len(paths))
    }
    _exact(seen, pairs, max_examples)
    if near is not None and seen.hashes:
        result.near_truncated = _near(seen, pairs, near, max_examples)
    return list(pairs.values())


def _exact(seen: _Seen, pairs: dict[tuple[int, int], PairLeakage], max_examples: int) -> None:
    for copies in _copies(seen):
        by_group: dict[int, list[int]] = {}
        for position in copies:
            by_group.setdefault(seen.groups[position], []).append(position)
        groups = sorted(by_group)
        for i, a in enumerate(groups):
            for b in groups[i + 1 :]:
                pair = pairs[(a, b)]
                pair.exact += len(by_group[a]) * len(by_group[b])
                for pa in by_group[a]:
                    for pb in by_group[b]:
                        if len(pair.examples) >= max_examples:
                            break
                        pair.examples.append(Leak("exact", seen.places[pa], seen.places[pb]))


def _near(
    seen: _Seen, pairs: dict[tuple[int, int], PairLeakage], near: int, max_examples: int
) -> bool:
    """Count the near pairs (not exact) of every pair of inputs; whether there were more
    than :data:`MAX_NEAR_PAIRS`."""
    import numpy as np

    hashed = np.array(seen.hashed, dtype=np.int64)
    hashes = np.array(seen.hashes, dtype=np.uint64)
    groups = np.array(seen.groups, dtype=np.int64)[hashed]
    found = neardup.near_pairs(hashes, groups, near, limit=MAX_NEAR_PAIRS)
    for i, j, distance in found.pairs.tolist():
        pa, pb = int(hashed[i]), int(hashed[j])
        if seen.digests[pa] == seen.digests[pb]:
            continue  # counted as exact
        if seen.groups[pa] > seen.groups[pb]:
            pa, pb = pb, pa
        pair = pairs[(seen.groups[pa], seen.groups[pb])]
        pair.near += 1
        if len(pair.examples) < max_examples:
            pair.examples.append(Leak("near", seen.places[pa], seen.places[pb], int(distance)))
    return found.truncated


# --------------------------------------------------------------------------- summary

#: Classes listed per input in the human summary (``--json`` lists all).
CLASSES_SHOWN = 25


def _spread(values: dict[str, float] | None, unit: Callable[[float], str] = str) -> str:
    if values is None:
        return "-"
    return ", ".join(f"{k} {unit(v)}" for k, v in values.items())


def _input_text(summary: InputStats) -> list[str]:
    classes = summary.ordered_classes()
    lines = [
        f"{summary.path} ({summary.format}): {summary.images} image"
        f"{'s' * (summary.images != 1)}, {len(classes)} class{'es' * (len(classes) != 1)}"
    ]
    if summary.error and not summary.images:
        return [*lines, f"  error           {summary.error}"]
    if classes:
        shown = classes[:CLASSES_SHOWN]
        headings = [class_heading(key, summary.names.get(key)) for key, _n in shown]
        width = max(len(heading) for heading in headings)
        lines.append(f"  {'class':<{width}}  {'images':>7}")
        for heading, (_key, n) in zip(headings, shown):
            share = 100 * n / summary.images
            lines.append(f"  {heading:<{width}}  {n:>7}  {share:5.1f}%")
        if len(classes) > CLASSES_SHOWN:
            more = len(classes) - CLASSES_SHOWN
            lines.append(f"  ... and {more} more classes (--json lists all)")
    formats = ", ".join(f"{name} {n}" for name, n in summary.formats.most_common())
    per_image = ", ".join(f"{k}: {v}" for k, v in sorted(summary.labels_per_image.items()))
    lines += [
        f"  image formats   {formats or '-'}",
        f"  width (px)      {_spread(distribution(summary.widths))}",
        f"  height (px)     {_spread(distribution(summary.heights))}",
        f"  file size       {_spread(distribution(summary.sizes), human_bytes)}; "
        f"total {human_bytes(sum(summary.sizes))}",
        f"  labels/image    {per_image or '-'}",
    ]
    if summary.duplicates:
        lines.append(f"  duplicates      {summary.duplicates} (byte-for-byte copies of another "
                     "image of this input)")  # fmt: skip
        lines += [f"    {leak}" for leak in summary.duplicate_examples]
    if summary.unreadable:
        lines.append(f"  unreadable      {summary.unreadable}")
        lines += _examples(summary.unreadable_listed, summary.unreadable)
    if summary.error:
        lines.append(f"  error           {summary.error}")
    if summary.damaged:
        lines.append(f"  damaged         {len(summary.damaged)} record(s) or line(s) skipped")
        lines += [f"    {text}" for text in summary.damaged[:MAX_UNREADABLE_LISTED]]
    return lines


def _examples(shown: Sequence[object], total: int) -> list[str]:
    """The lines listing ``shown``, the first of ``total``: the rest counted."""
    lines = [f"    {example}" for example in shown]
    if total > len(shown):
        lines.append(f"    ... and {total - len(shown)} more")
    return lines


def format_summary(result: StatsResult) -> str:
    """The human summary: each input, then (with several) the leakage between them."""
    lines: list[str] = []
    for summary in result.inputs:
        lines += _input_text(summary)
    if len(result.inputs) < 2:
        return "\n".join(lines)
    how = (
        "exact copies only"
        if result.near is None
        else (f"exact copies, and near copies within {result.near} bits of 64")
    )
    lines.append(f"leakage between {len(result.inputs)} inputs ({how}):")
    for pair in result.pairs:
        counts = f"{pair.exact} exact, {pair.near} near" if pair.leaks else "none"
        lines.append(f"  {pair.a} / {pair.b}: {counts}")
        lines += _examples(pair.examples, pair.leaks)
    if result.near_truncated:
        lines.append(f"  (over {MAX_NEAR_PAIRS:,} near pairs: the near counts are lower bounds)")
    if result.leaks:
        lines.append(f"leakage: {result.leaks} image pair{'s' * (result.leaks != 1)} shared "
                     "between inputs")  # fmt: skip
    else:
        lines.append("no leakage: no image of one input is in another")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_NEAR",
    "InputStats",
    "Leak",
    "PairLeakage",
    "Place",
    "StatsResult",
    "distribution",
    "format_summary",
    "stats",
]
