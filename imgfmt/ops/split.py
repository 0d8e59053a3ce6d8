"""split: cut a dataset (``.lst``, ``.rec`` + ``.idx``, augmented manifest, JSON Lines image
dataset or RecordIO-protobuf ``.rec``) into train/val/test.

Outputs take im2rec's names, ``PREFIX_train``, ``PREFIX_val``, ``PREFIX_test``, with the
input's extension. A split only selects: ``.lst``, manifest and JSON Lines lines are copied
byte for byte, ``.rec`` records are copied payload for payload (never re-encoded; MXNet ones
keep their ``.idx`` keys, RecordIO-protobuf ones keep the SageMaker framing). Each output is
a stable sub-sequence of the input (input order kept), and the outputs together hold every
input item exactly once.

Stratified (the default), every class is shuffled on its own with the seed and cut so that
each split holds ``ratio * class size`` of it rounded down or up, while each split's total is
``ratio * N`` rounded down or up (see :func:`allocate_counts`). Unstratified, the whole input
is shuffled with the seed and cut by the ratios. Same input, ratios and seed: same outputs.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from imgfmt import storage
from imgfmt.errors import FormatError, ImgfmtError, StorageError, UsageError, excerpt
from imgfmt.formats import content_format, jsonlines, lst
from imgfmt.formats.recordio import (
    IDX_SUFFIX,
    RecordReader,
    RecordWriter,
    read_idx,
    unpack_image_record,
)
from imgfmt.storage import AtomicOutputs, open_input, sibling

#: A split worth making keeps most for training and holds some back for validation.
DEFAULT_TRAIN_RATIO = 0.8
DEFAULT_TEST_RATIO = 0.0
#: im2rec's shuffle seed, so that one number reproduces a whole pipeline.
DEFAULT_SEED = lst.DEFAULT_SEED

#: im2rec's split names, in the order the outputs are written and reported.
SPLIT_NAMES = ("train", "val", "test")

#: Input kinds by extension (lower case); a manifest keeps whichever of these it has.
LST_EXTS = (".lst",)
REC_EXTS = (".rec",)
MANIFEST_EXTS = (".manifest", ".jsonl", ".json")

#: SageMaker: a label attribute ``NAME`` comes with ``NAME-metadata``; ``-ref`` ends a URI.
METADATA_SUFFIX = "-metadata"
REF_SUFFIX = "-ref"

#: Longest excerpt of a bad line quoted in an error message.
QUOTE_LIMIT = 80


# --------------------------------------------------------------------------- results


@dataclass
class SplitOutput:
    """One output: its split name, path (``index`` for a ``.rec``), and what went into it."""

    split: str
    path: str
    index: str | None = None
    count: int = 0
    classes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"split": self.split, "count": self.count}
        if self.index:
            out["index"] = self.index
        out["classes"] = dict(self.classes)
        return out


@dataclass
class SplitResult:
    input: str
    format: str
    outputs: list[SplitOutput]
    total_in: int
    classes: dict[str, int]
    stratified: bool
    seed: int
    ratios: dict[str, float]
    label_attribute: str | None = None
    class_map: str | None = None

    @property
    def total_out(self) -> int:
        return sum(out.count for out in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "input": self.input,
            "format": self.format,
            "stratified": self.stratified,
            "seed": self.seed,
            "ratios": dict(self.ratios),
            "outputs": {out.path: out.to_dict() for out in self.outputs},
            "total_in": self.total_in,
            "total_out": self.total_out,
            "classes": dict(self.classes),
            "class_map": self.class_map,
        }
        if self.label_attribute is not None:
            summary["label_attribute"] = self.label_attribute
        return summary


# --------------------------------------------------------------------------- ratios


def _exact(value: float | Fraction | str, name: str) -> Fraction:
    # Through the decimal text, so 0.7 + 0.3 is exactly 1 and 0.8 * 10 exactly 8.
    try:
        return value if isinstance(value, Fraction) else Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"{name} must be a number between 0 and 1, got {value!r}") from None


def split_ratios(
    train_ratio: float | Fraction = DEFAULT_TRAIN_RATIO,
    test_ratio: float | Fraction = DEFAULT_TEST_RATIO,
) -> dict[str, Fraction]:
    """The splits to make and their exact shares: ``{"train": 4/5, "val": 1/5}``.

    As im2rec: ``test`` only if ``test_ratio > 0``, ``val`` (what is left) only if
    ``train_ratio + test_ratio < 1``. Training must get something, and something must be
    left for validation or test, else there is nothing to split.
    """
    train = _exact(train_ratio, "train ratio")
    test = _exact(test_ratio, "test ratio")
    for name, value in (("train ratio", train), ("test ratio", test)):
        if not 0 <= value <= 1:
            raise UsageError(f"{name} must be between 0 and 1, got {float(value):g}")
    if train == 0:
        raise UsageError("train ratio must be more than 0", hint="e.g. --train-ratio 0.8")
    if train + test > 1:
        raise UsageError(
            f"train ratio {float(train):g} + test ratio {float(test):g} is more than 1",
            hint="the validation split gets what is left: 1 - train - test",
        )
    if train == 1:
        raise UsageError(
            "train ratio 1 leaves nothing for validation or test",
            hint="lower --train-ratio, e.g. 0.8",
        )
    ratios = {"train": train, "val": 1 - train - test, "test": test}
    return {name: ratios[name] for name in SPLIT_NAMES if ratios[name] > 0}


# --------------------------------------------------------------------------- allocation


def allocate_counts(sizes: dict[str, int], ratios: Sequence[Fraction]) -> dict[str, list[int]]:
    """How many items of each class go to each split: ``{class: [count per split]}``.

    Every count is ``ratio * class size`` rounded down or up (exactly it when that is whole),
    so each class keeps its proportion within one item; each split's total is
    ``ratio * N`` rounded down or up. Such a rounding always exists (Baranyai's rounding
    lemma); it is found by giving every class its rounded-down counts, handing each class's
    leftover items (at most one per split, only to splits where its share has a fraction) to
    the splits furthest below their target, then moving leftovers along chains of classes
    until every split total is within one of its target. Classes are handled in sorted
    order, so the result does not depend on dict order.
    """
    if sum(ratios) != 1 or any(r < 0 for r in ratios):
        raise ValueError(f"ratios must be non-negative and sum to 1, got {ratios}")
    names = sorted(sizes)
    splits = range(len(ratios))
    floors = {k: [math.floor(r * sizes[k]) for r in ratios] for k in names}
    has_fraction = {k: [r * sizes[k] != floors[k][s] for s, r in enumerate(ratios)] for k in names}
    counts = {k: list(floors[k]) for k in names}
    total = sum(sizes.values())
    targets = [r * total for r in ratios]
    need = [targets[s] - sum(floors[k][s] for k in names) for s in splits]

    # Greedy: each class's leftovers to the splits that need them most.
    for k in names:
        leftover = sizes[k] - sum(floors[k])
        open_splits = [s for s in splits if has_fraction[k][s]]
        for s in sorted(open_splits, key=lambda s: (-need[s], s))[:leftover]:
            counts[k][s] += 1
            need[s] -= 1

    # Repair: move leftovers until each split total is its target rounded down or up.
    low = [math.floor(t) for t in targets]
    high = [math.ceil(t) for t in targets]
    loads = [sum(counts[k][s] for k in names) for s in splits]
    while True:
        over = [s for s in splits if loads[s] > high[s]]
        under = [s for s in splits if loads[s] < low[s]]
        if not over and not under:
            return counts
        if over:
            sources, goals = {over[0]}, {s for s in splits if loads[s] < high[s]}
        else:
            sources, goals = {s for s in splits if loads[s] > low[s]}, {under[0]}
        # Split u -> split v when some class holds a leftover in u, none in v, and may in v.
        witness: dict[tuple[int, int], str] = {}
        for k in names:
            extra = [counts[k][s] > floors[k][s] for s in splits]
            for u in splits:
                for v in splits:
                    if extra[u] and not extra[v] and has_fraction[k][v]:
                        witness.setdefault((u, v), k)
        path = _find_path(sources, goals, witness)
        if path is None:  # impossible by the rounding lemma; never hand out a wrong split
            raise ImgfmtError(f"internal error: cannot balance split sizes {loads} to {targets}")
        for u, v in path:
            k = witness[(u, v)]
            counts[k][u] -= 1
            counts[k][v] += 1
        loads[path[0][0]] -= 1
        loads[path[-1][1]] += 1


def _find_path(
    sources: set[int], goals: set[int], edges: dict[tuple[int, int], str]
) -> list[tuple[int, int]] | None:
    """Shortest chain of edges from any source to any goal (breadth first), or None."""
    came_from: dict[int, tuple[int, int] | None] = {s: None for s in sorted(sources)}
    frontier = sorted(sources)
    while frontier:
        following: list[int] = []
        for u in frontier:
            for a, v in sorted(edges):
                if a != u or v in came_from:
                    continue
                came_from[v] = (u, v)
                if v in goals:
                    path = []
                    step = came_from[v]
                    while step is not None:
                        path.append(step)
                        step = came_from[step[0]]
                    return path[::-1]
                following.append(v)
        frontier = following
    return None


def assign_splits(
    classes: Sequence[Hashable],
    ratios: Sequence[Fraction],
    *,
    seed: int = DEFAULT_SEED,
    stratify: bool = True,
) -> list[int]:
    """The split (an index into ``ratios``) of each item, given each item's class.

    Stratified, each class's items are shuffled with ``random.Random(f"{seed}:{class}")``
    (string seeds hash the same in every process) and cut by :func:`allocate_counts`;
    otherwise all items are shuffled with ``random.Random(seed)`` and cut by the ratios.
    """
    groups: dict[str, list[int]] = {}
    for position, cls in enumerate(classes):
        groups.setdefault(str(cls) if stratify else "", []).append(position)
    counts = allocate_counts({k: len(v) for k, v in groups.items()}, ratios)
    assignment = [-1] * len(classes)
    for key in sorted(groups):
        members = list(groups[key])
        random.Random(f"{seed}:{key}" if stratify else seed).shuffle(members)
        start = 0
        for split, count in enumerate(counts[key]):
            for position in members[start : start + count]:
                assignment[position] = split
            start += count
    return assignment


# --------------------------------------------------------------------------- class names


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def label_class(labels: Sequence[float]) -> str:
    """The stratum of a list or record's labels: ``"3"``; multi-label ``"1,0,1"``."""
    return ",".join(_number(v) for v in labels)


def _json_class(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, list) and value:
        parts = [_json_class(v) for v in value]
        return None if any(p is None for p in parts) else ",".join(str(p) for p in parts)
    if isinstance(value, list):
        return "[]"
    return None


def _quote(text: str) -> str:
    return excerpt(text, QUOTE_LIMIT)


# --------------------------------------------------------------------------- readers


@dataclass
class _Items:
    """What a reader found: each item's class, and what the writer needs to copy it."""

    classes: list[str] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)  # lst and manifest: the raw lines
    keys: list[int] = field(default_factory=list)  # rec: each record's .idx key
    offsets: list[int] = field(default_factory=list)  # rec: each record's byte offset
    label_attribute: str | None = None


def _with_newline(line: bytes) -> bytes:
    return line if line.endswith(b"\n") else line + b"\n"


def _read_lst(path: str) -> _Items:
    with open_input(path, "rb") as handle:
        data = handle.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    raw = data.splitlines(keepends=True)
    texts = [line.decode("utf-8", errors="surrogateescape") for line in raw]
    # parse_lst skips exactly the lines that strip to nothing; the rest pair up with entries.
    kept = [line for line, text in zip(raw, texts) if text.strip()]
    items = _Items()
    for entry, line in zip(lst.parse_lst(texts, path), kept):
        items.classes.append(label_class(entry.labels))
        items.lines.append(_with_newline(line))
    return items


def _label_candidates(record: dict[str, Any]) -> list[str]:
    return [
        key
        for key in record
        if not key.endswith(METADATA_SUFFIX)
        and not key.endswith(REF_SUFFIX)
        and key + METADATA_SUFFIX in record
    ]


def _read_manifest(path: str, label_attribute: str | None) -> _Items:
    items = _Items(label_attribute=label_attribute)
    offset = 0
    with open_input(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            where = f"line {number} at byte {offset}"
            offset += len(line)
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
                text = line.decode("utf-8", errors="replace").strip()
                raise FormatError(
                    f"not a JSON object: {getattr(err, 'msg', err)}: {_quote(text)}",
                    path=path,
                    where=where,
                    hint="a manifest holds one JSON object per line",
                ) from err
            if not isinstance(record, dict):
                raise FormatError(
                    f"expected a JSON object, found {type(record).__name__}",
                    path=path,
                    where=where,
                    hint="a manifest holds one JSON object per line",
                )
            if items.label_attribute is None:
                found = _label_candidates(record)
                if len(found) != 1:
                    what = "no label attribute" if not found else f"label attributes {found}"
                    raise UsageError(
                        f"found {what} (an attribute NAME with a NAME-metadata beside it)",
                        path=path,
                        where=where,
                        hint="name the one to split by with --label-attribute NAME",
                    )
                items.label_attribute = found[0]
            attribute = items.label_attribute
            if attribute not in record:
                raise FormatError(
                    f"no {attribute!r} attribute, so the item's class is unknown",
                    path=path,
                    where=where,
                    hint="every line needs the label attribute; choose another "
                    "with --label-attribute",
                )
            cls = _json_class(record[attribute])
            if cls is None:
                raise FormatError(
                    f"cannot read a class from {attribute!r}: "
                    f"{_quote(json.dumps(record[attribute]))}",
                    path=path,
                    where=where,
                    hint="a label is a number, a string or a list of them",
                )
            items.classes.append(cls)
            items.lines.append(_with_newline(line))
    return items


def _read_jsonl(path: str) -> _Items:
    """First pass over a JSON Lines image dataset: each line's class (lines not kept: they
    hold whole images; the copy streams them again)."""
    items = _Items()
    with open_input(path, "r", encoding="utf-8-sig", errors="surrogateescape") as handle:
        for entry in jsonlines.parse_jsonl(handle, path):
            items.classes.append(label_class(entry.labels))
    return items


def _copy_lines(
    source: str, assignment: list[int], outputs: list[SplitOutput], group: AtomicOutputs
) -> list[int]:
    """Second pass over a JSON Lines dataset: each non-blank line, unchanged, to its split."""
    handles = [group.open(out.path, "wb") for out in outputs]
    written = [0] * len(outputs)
    number = 0
    with open_input(source, "rb") as stream:
        for line in stream:
            if number == 0 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            if number >= len(assignment):
                raise _changed(source)
            split = assignment[number]
            handles[split].write(_with_newline(line))
            written[split] += 1
            number += 1
    return written


def _changed(source: str) -> StorageError:
    return StorageError(
        "the file changed while it was being split",
        path=source,
        hint="run split again when nothing writes to it",
    )


def _read_protobuf(path: str) -> _Items:
    """First pass over a RecordIO-protobuf file: each record's class and offset."""
    from imgfmt.formats import rio_protobuf

    items = _Items()
    for record in rio_protobuf.iter_records(path):
        items.classes.append(label_class(record.labels) if record.labels else "unlabeled")
        items.offsets.append(record.offset)
    return items


def _copy_protobuf(
    source: str,
    items: _Items,
    assignment: list[int],
    outputs: list[SplitOutput],
    group: AtomicOutputs,
    on_progress: Callable[[int], None] | None,
) -> list[int]:
    """Second pass: every payload, unchanged, to its split, in the SageMaker SDK's framing."""
    from imgfmt.formats import rio_protobuf

    writers = [
        rio_protobuf.RioProtobufWriter(group.open(out.path, "wb"), name=out.path) for out in outputs
    ]
    for number, offset, payload in rio_protobuf.iter_payloads(source):
        if number >= len(assignment) or offset != items.offsets[number]:
            raise _changed(source)
        writers[assignment[number]].write_payload(payload)
        if on_progress:
            on_progress(1)
    return [writer.records_written for writer in writers]


def _read_rec(path: str, idx_path: str | None) -> _Items:
    """First pass over a ``.rec``: each record's offset, key and class; payloads dropped."""
    keys_at: dict[int, int] = {}
    if idx_path is not None:
        for key, offset in read_idx(idx_path).items():
            keys_at.setdefault(offset, key)
    items = _Items()
    seen: dict[int, int] = {}  # key -> record number
    for record in RecordReader(path, use_index=False):
        where = f"record {record.number} at byte {record.offset}"
        header, _image = unpack_image_record(record.payload, path=path, where=where)
        if idx_path is not None:
            if record.offset not in keys_at:
                raise FormatError(
                    "record is missing from the index",
                    path=idx_path,
                    where=where,
                    hint="rebuild the index with `imgfmt verify --fix-idx`",
                )
            key = keys_at[record.offset]
        else:
            key = header.id
        if key in seen:
            raise FormatError(
                f"key {key} already used by record {seen[key]}",
                path=path,
                where=where,
                hint="keys must be unique; rebuild the index with `imgfmt verify --fix-idx`",
            )
        seen[key] = record.number
        items.classes.append(label_class(header.labels))
        items.keys.append(key)
        items.offsets.append(record.offset)
    if idx_path is not None and len(keys_at) != len(items.offsets):
        stray = sorted(set(keys_at) - set(items.offsets))[0]
        raise FormatError(
            f"offset {stray} (key {keys_at[stray]}) is not the head of a record",
            path=idx_path,
            hint="rebuild the index with `imgfmt verify --fix-idx`",
        )
    return items


# --------------------------------------------------------------------------- splitting


def _kind(path: str) -> tuple[str, str]:
    ext = storage.splitext(path)[1]
    lowered = ext.lower()
    for kind, exts in (("lst", LST_EXTS), ("rec", REC_EXTS), ("manifest", MANIFEST_EXTS)):
        if lowered in exts:
            return kind, ext
    raise UsageError(
        f"cannot tell the format from the extension {ext or '(none)'!r}",
        path=path,
        hint="split reads a .lst, a .rec (with its .idx) or a manifest (.manifest, .jsonl)",
    )


def _refine_kind(source: str, kind: str, idx_path: str | None) -> str:
    """A ``.jsonl`` may be a manifest or an image dataset, a ``.rec`` without an ``.idx`` an
    MXNet or a RecordIO-protobuf file: the content tells (:mod:`imgfmt.formats`)."""
    if kind not in ("manifest", "rec"):
        return kind
    return content_format(source, has_index=idx_path is not None) or kind


def _prefix(out_prefix: str) -> str:
    if not out_prefix or out_prefix.endswith(("/", os.sep)):
        raise UsageError(
            f"prefix {out_prefix!r} names a folder, but outputs are PREFIX_train, PREFIX_val, ...",
            hint=f"give a file prefix, e.g. {os.path.join(out_prefix or '.', 'data')}",
        )
    stem, ext = storage.splitext(out_prefix)
    prefix = stem if ext.lower() in lst.DATASET_EXTS else out_prefix
    storage.check_output_folder(prefix, hint="create it first")
    return prefix


_same_file = storage.same_path


def split_dataset(
    source: str,
    out_prefix: str,
    *,
    train_ratio: float | Fraction = DEFAULT_TRAIN_RATIO,
    test_ratio: float | Fraction = DEFAULT_TEST_RATIO,
    seed: int = DEFAULT_SEED,
    stratify: bool = True,
    label_attribute: str | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SplitResult:
    """Split ``source`` into ``out_prefix_train``, ``_val``, ``_test`` (with its extension).

    ``label_attribute`` names a manifest's label (default: the one attribute with a
    ``-metadata`` sibling). The input's class map, if one is found, is copied to
    ``out_prefix.classes.tsv``. All outputs appear together when complete, or none do.
    ``on_start(n)`` and ``on_progress(1)`` follow the copying of a ``.rec``'s records.
    """
    ratios = split_ratios(train_ratio, test_ratio)
    kind, ext = _kind(source)
    prefix = _prefix(out_prefix)
    if not storage.is_file(source):
        if storage.is_s3(source):
            raise storage.missing(source, "no such object", hint="check the path")
        reason = "is a folder, not a file" if os.path.isdir(source) else "no such file"
        raise StorageError(f"{reason} (check the path)", path=source)
    idx_path: str | None = None
    if kind == "rec":
        candidate = sibling(source, IDX_SUFFIX)
        idx_path = candidate if storage.is_file(candidate) else None
    kind = _refine_kind(source, kind, idx_path)
    if label_attribute is not None and kind != "manifest":
        raise UsageError("--label-attribute applies to manifests only", path=source)

    outputs = [
        SplitOutput(
            name,
            f"{prefix}_{name}{ext}",
            f"{prefix}_{name}{IDX_SUFFIX}" if kind == "rec" else None,
        )
        for name in ratios
    ]
    for out in outputs:
        for target in (out.path, out.index):
            for existing in (source, idx_path):
                if target and existing and _same_file(target, existing):
                    raise UsageError(
                        f"output {target} would overwrite the input",
                        path=source,
                        hint="choose another OUT_PREFIX",
                    )

    if kind == "lst":
        items = _read_lst(source)
    elif kind == "manifest":
        items = _read_manifest(source, label_attribute)
    elif kind == "jsonlines":
        items = _read_jsonl(source)
    elif kind == "recordio-protobuf":
        items = _read_protobuf(source)
    else:
        items = _read_rec(source, idx_path)
    if on_start and kind in ("rec", "recordio-protobuf"):
        on_start(len(items.classes))
    total = len(items.classes)
    if total == 0:
        raise FormatError("holds no items; nothing to split", path=source)

    assignment = assign_splits(items.classes, list(ratios.values()), seed=seed, stratify=stratify)
    for split, out in enumerate(outputs):
        members = [cls for cls, s in zip(items.classes, assignment) if s == split]
        out.count = len(members)
        out.classes = _sorted_counts(Counter(members))
        if out.count == 0:
            raise _empty_split(source, out.split, total, ratios[out.split])
    classes = _sorted_counts(Counter(items.classes))
    _check_partition(source, total, classes, outputs)

    source_map = lst.find_class_map(source)
    class_map = source_map
    with AtomicOutputs() as group:
        if kind == "rec":
            written = _copy_records(source, items, assignment, outputs, group, on_progress)
        elif kind == "recordio-protobuf":
            written = _copy_protobuf(source, items, assignment, outputs, group, on_progress)
        elif kind == "jsonlines":
            written = _copy_lines(source, assignment, outputs, group)
        else:
            handles = [group.open(out.path, "wb") for out in outputs]
            written = [0] * len(outputs)
            for line, split in zip(items.lines, assignment):
                handles[split].write(line)
                written[split] += 1
        if written != [out.count for out in outputs]:  # checked before anything is committed
            raise ImgfmtError(f"internal error: wrote {written} items, planned {outputs}")
        if source_map is not None and not _same_file(source_map, lst.class_map_path(prefix)):
            class_map = lst.class_map_path(prefix)
            with open_input(source_map, "rb") as handle:
                group.open(class_map, "wb").write(handle.read())

    return SplitResult(
        input=source,
        format=kind,
        outputs=outputs,
        total_in=total,
        classes=classes,
        stratified=stratify,
        seed=seed,
        ratios={name: float(r) for name, r in ratios.items()},
        label_attribute=items.label_attribute,
        class_map=class_map,
    )


def _empty_split(source: str, split: str, total: int, ratio: Fraction) -> UsageError:
    if split == "val":
        hint = "lower --train-ratio or --test-ratio"
    else:
        hint = f"raise --{split}-ratio, or set it to 0"
    return UsageError(
        f"the {split} split would be empty ({total} items x {float(ratio):g} "
        f"= {float(total * ratio):.2g})",
        path=source,
        hint=hint,
    )


def _sorted_counts(counter: Counter[str]) -> dict[str, int]:
    def order(name: str) -> tuple[int, Any]:
        try:
            return (0, tuple(float(p) for p in name.split(",")))
        except ValueError:
            return (1, name)

    return {name: counter[name] for name in sorted(counter, key=order)}


def _copy_records(
    source: str,
    items: _Items,
    assignment: list[int],
    outputs: list[SplitOutput],
    group: AtomicOutputs,
    on_progress: Callable[[int], None] | None,
) -> list[int]:
    """Second pass: every payload, unchanged, to its split's ``.rec``, under its own key."""
    writers = []
    for out in outputs:
        assert out.index is not None
        stream = group.open(out.path, "wb")
        writers.append(RecordWriter(stream, group.open(out.index, "w"), name=out.path))
    copied = 0
    for record in RecordReader(source, use_index=False):
        if record.number >= len(assignment) or record.offset != items.offsets[record.number]:
            error = _changed(source)
            error.where = f"record {record.number} at byte {record.offset}"
            raise error
        writers[assignment[record.number]].write(record.payload, key=items.keys[record.number])
        copied += 1
        if on_progress:
            on_progress(1)
    if copied != len(assignment):
        raise StorageError(
            f"the file changed while it was being split ({copied} records, "
            f"{len(assignment)} before)",
            path=source,
            hint="run split again when nothing writes to it",
        )
    return [writer.records_written for writer in writers]


def _check_partition(
    source: str, total: int, classes: dict[str, int], outputs: list[SplitOutput]
) -> None:
    # Every item lands in exactly one output by construction; the summary says so, so check.
    per_class: Counter[str] = Counter()
    for out in outputs:
        per_class.update(out.classes)
    if sum(out.count for out in outputs) != total or dict(per_class) != classes:
        raise ImgfmtError(f"internal error: split counts {per_class} do not add up", path=source)


__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_TEST_RATIO",
    "DEFAULT_TRAIN_RATIO",
    "SplitOutput",
    "SplitResult",
    "allocate_counts",
    "assign_splits",
    "label_class",
    "split_dataset",
    "split_ratios",
]
