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

import math
import os
import random
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from imgfmt import formats, s3, storage
from imgfmt.errors import FormatError, ImgfmtError, StorageError, UsageError
from imgfmt.formats import lst
from imgfmt.formats.base import Document, Format, label_class
from imgfmt.formats.recordio import IDX_SUFFIX
from imgfmt.storage import AtomicOutputs, PlannedOutputs

#: A split worth making keeps most for training and holds some back for validation.
DEFAULT_TRAIN_RATIO = 0.8
DEFAULT_TEST_RATIO = 0.0
#: im2rec's shuffle seed, so that one number reproduces a whole pipeline.
DEFAULT_SEED = lst.DEFAULT_SEED

#: im2rec's split names, in the order the outputs are written and reported.
SPLIT_NAMES = ("train", "val", "test")

# --------------------------------------------------------------------------- results


@dataclass
class SplitOutput:
    """One output: its split name, path (``index`` for a ``.rec``), and what went into it."""

    split: str
    path: str
    index: str | None = None
    #: The list written beside it (a RecordIO-protobuf output's map to its images).
    list: str | None = None
    count: int = 0
    classes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"split": self.split, "count": self.count}
        if self.index:
            out["index"] = self.index
        if self.list:
            out["list"] = self.list
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
    #: Where ``class_map`` was copied from, when it is a copy written beside the outputs.
    class_map_source: str | None = None
    #: A dry run: the input was read once and its split planned, nothing written; the
    #: outputs and counts are what would be.
    dry_run: bool = False
    #: Local folders the run creates for its outputs (a dry run's plan).
    folders: list[str] = field(default_factory=list)

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
        if self.dry_run:
            summary = {"dry_run": True, **summary, "folders": self.folders}
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


# --------------------------------------------------------------------------- splitting


def _source_format(path: str) -> Document:
    """The format of the input, by extension and content (``UsageError`` for one split does
    not read)."""
    ext = storage.splitext(path)[1].lower()
    if ext == IDX_SUFFIX:
        raise UsageError(
            "split reads the .rec, not its .idx", path=path, hint="give the .rec beside it"
        )
    try:
        return formats.for_check(path)
    except UsageError as err:
        raise UsageError(
            f"cannot tell the format from the extension {ext or '(none)'!r}",
            path=path,
            hint=err.hint,
        ) from err


def _prefix(out_prefix: str, folders: list[str] | None = None) -> str:
    """The prefix of the outputs, their folder made (``folders``: a dry run, where the
    folder that would be made is noted instead)."""
    storage.require_file_prefix(out_prefix, "outputs are PREFIX_train, PREFIX_val, ...")
    stem, ext = storage.splitext(out_prefix)
    prefix = stem if ext.lower() in lst.DATASET_EXTS else out_prefix
    if folders is None:
        storage.ensure_output_folder(prefix)
    else:
        folders.extend(filter(None, [storage.planned_output_folder(prefix)]))
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
    dry_run: bool = False,
) -> SplitResult:
    """Split ``source`` into ``out_prefix_train``, ``_val``, ``_test`` (with its extension).

    ``label_attribute`` names a manifest's label (default: the one attribute with a
    ``-metadata`` sibling). The input's class map, if one is found, is copied to
    ``out_prefix.classes.tsv``. All outputs appear together when complete, or none do.
    ``on_start(n)`` and ``on_progress(1)`` follow the copying of a ``.rec``'s records.

    ``dry_run``: the first pass and the assignment as in a run (every check, the same
    counts per output and class), then nothing copied or written, no folder made.
    """
    ratios = split_ratios(train_ratio, test_ratio)
    document = _source_format(source)
    ext = storage.splitext(source)[1]
    folders: list[str] = []
    prefix = _prefix(out_prefix, folders if dry_run else None)
    if not document.exists(source):
        if storage.is_s3(source):
            raise storage.missing(source, "no such object", hint="check the path")
        reason = "is a folder, not a file" if os.path.isdir(source) else "no such file"
        raise StorageError(f"{reason} (check the path)", path=source)
    items = document.split_source(source, label_attribute)
    outputs = [SplitOutput(name, f"{prefix}_{name}{ext}") for name in ratios]
    inputs = [source, *items.companions(source)]
    for out in outputs:
        companions = items.companions(out.path)
        out.index = next((c for c in companions if c.endswith(IDX_SUFFIX)), None)
        out.list = next((c for c in companions if c.endswith(".lst")), None)
        for target in (out.path, *companions):
            for existing in inputs:
                if _same_file(target, existing) and storage.exists(existing):
                    raise UsageError(
                        f"output {target} would overwrite the input",
                        path=source,
                        hint="choose another OUT_PREFIX",
                    )
    if on_start:
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
    carried = lst.class_map_copy(source, prefix)  # the class map, copied beside the outputs
    copy_to = carried[1] if carried else None
    if dry_run:
        if isinstance(document, Format):
            # The writers a copy may make check their outputs when made (WebDataset: no
            # shards of that name there yet): made here on a group that opens nothing.
            for out in outputs:
                document.writer(out.path, PlannedOutputs())
    else:
        with AtomicOutputs() as group, s3.reading_through():  # every unit is copied
            written = items.copy(assignment, [out.path for out in outputs], group, on_progress)
            if written != [out.count for out in outputs]:  # checked before any commit
                raise ImgfmtError(f"internal error: wrote {written} items, planned {outputs}")
            if carried is not None:
                lst.copy_class_map(carried, group)

    return SplitResult(
        input=source,
        format=document.name,
        outputs=outputs,
        total_in=total,
        classes=classes,
        stratified=stratify,
        seed=seed,
        ratios={name: float(r) for name, r in ratios.items()},
        label_attribute=items.label_attribute,
        class_map=copy_to or source_map,
        class_map_source=source_map if copy_to else None,
        dry_run=dry_run,
        folders=folders,
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
