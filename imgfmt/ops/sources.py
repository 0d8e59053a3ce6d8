"""Any input imgfmt reads, seen as a sequence of labelled images: what ``stats`` and
``preview`` look at.

A dataset (``.rec``, JSON Lines, RecordIO-protobuf, WebDataset) holds its images: its
format reads them (``Format.read``). An image list or manifest names them: its entries
(``Document.listing``) are read from where they point, a ``.lst``'s paths under ``root``
(default: the list's folder), a manifest's ``source-ref`` as written. The bytes of a named
image are read where they are looked at (in a worker), so a listing of S3 objects is fetched
concurrently, not one by one here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from imgfmt import formats, storage
from imgfmt.errors import FormatError, UsageError
from imgfmt.formats import lst
from imgfmt.formats.base import Format, Item, label_text


@dataclass(frozen=True)
class Entry:
    """One image of an input: its id, labels, where it is, and its bytes or where to read
    them."""

    index: int
    labels: tuple[float, ...]
    #: Where it is in its input, for people ("record 3 at byte 1240", "entry 7").
    where: str
    #: The path the input keeps for it (a list's, a record's), if any.
    path: str | None = None
    #: Its encoded image, when the input holds it.
    image: bytes | None = None
    #: Where its bytes are, when the input only names it.
    ref: str | None = None

    @property
    def name(self) -> str:
        """How messages name it: ``record 3 (cat/1.jpg)``."""
        return f"{self.where} ({self.path})" if self.path else self.where

    @classmethod
    def of_item(cls, item: Item) -> Entry:
        where = str(item.where) if item.where is not None else f"id {item.index}"
        return cls(item.index, item.labels, where, item.path, item.image)


@dataclass
class Source:
    """An input opened for looking: its format, its class names, its entries."""

    path: str
    #: The canonical name of its format (``recordio``, ``lst``, ``manifest``, ...).
    format: str
    #: Class names: the class map beside it (or given), else those a manifest holds (known
    #: once its entries are read).
    names: dict[int, str] = field(default_factory=dict)
    #: The folder a list's relative paths are under.
    root: str | None = None
    #: Its format (``Format``, which holds images) or document (a list or manifest).
    document: Any = None
    #: Why it cannot be read, for a caller that goes on without it.
    error: str | None = None

    @property
    def holds_images(self) -> bool:
        return isinstance(self.document, Format)

    def entries(self, on_damage: Callable[[FormatError], None]) -> Iterator[Entry]:
        """Every image, in order; damaged records or lines go to ``on_damage``."""
        document = self.document
        if isinstance(document, Format):
            for item in document.read(self.path, on_damage):
                yield Entry.of_item(item)
            return
        assert document is not None
        root = document.images_root(self.path, self.root)
        listed, names = document.named_images(self.path)
        if not self.names:  # a manifest names its classes on its lines
            self.names = names
        for image in listed:
            ref = self._resolve(root, image.ref)
            yield Entry(image.index, image.labels, image.where, image.ref, ref=ref)

    def _resolve(self, root: str | None, ref: str) -> str:
        if storage.is_s3(ref) or os.path.isabs(ref):
            return ref
        return storage.join(root or storage.dirname(self.path), ref)

    def classes_of(self, labels: tuple[float, ...]) -> list[str]:
        """The classes an image with ``labels`` belongs to, as keys (``"3"``): its label;
        for several labels, each class they name, once. Several labels that are all 0 or 1
        are read as a multi-hot vector (class ``i`` where position ``i`` is 1, as SageMaker's
        multi-label image classification writes them) when there are as many as the class
        map has classes, or more than two without a class map; otherwise as class labels
        (as Ground Truth's multi-label manifests list them). No labels: ``unlabeled``."""
        if not labels:
            return [UNLABELED]
        if len(labels) == 1:
            return [label_text(labels[0])]
        if self._multi_hot(labels):
            return [str(i) for i, value in enumerate(labels) if value == 1] or [NO_CLASS]
        return sorted({label_text(v) for v in labels}, key=class_order)

    def _multi_hot(self, labels: tuple[float, ...]) -> bool:
        if any(value not in (0.0, 1.0) for value in labels):
            return False
        return len(labels) == len(self.names) if self.names else len(labels) > 2

    def name_of(self, key: str) -> str | None:
        """The class name of a class key, if the input has one."""
        try:
            return self.names.get(int(key))
        except ValueError:
            return None


#: The class key of an image without labels, and of a multi-hot vector of zeros.
UNLABELED = "unlabeled"
NO_CLASS = "none"


def class_order(key: str) -> tuple[int, float, str]:
    """Classes in label order, ``unlabeled`` and ``none`` last."""
    try:
        return (0, float(key), key)
    except ValueError:
        return (1, 0.0, key)


def open_source(path: str, *, root: str | None = None, class_map: str | None = None) -> Source:
    """``path`` opened for looking (see the module doc); ``StorageError`` when it is missing,
    ``UsageError`` when imgfmt does not read its kind."""
    if storage.is_dir(path):
        raise UsageError(
            f"{path!r} is a folder of images",
            hint=f"list it first (imgfmt lst-gen {path} data/x --recursive) and pass data/x.lst "
            f"with --root {path}",
        )
    try:
        document = formats.for_check(path)
    except UsageError:
        raise UsageError(
            f"cannot tell what {path!r} is from its extension",
            hint="give a .rec, .jsonl, .tar, .lst or manifest",
        ) from None
    if not document.exists(path):
        raise storage.missing(path, "no such file", hint="check the path")
    if root is not None and isinstance(document, Format):
        raise UsageError(f"`root` applies to lists, not to {path!r}, which holds its images")
    names: dict[int, str] = {}
    map_path = class_map if class_map is not None else lst.find_class_map(path)
    if map_path is not None:
        names = lst.read_class_map(map_path)
    return Source(path, document.name, names, root, document)


def class_heading(key: str, name: str | None) -> str:
    """``3 cat`` or ``3``: a class as a person reads it."""
    return f"{key} {name}" if name else key


__all__ = ["Entry", "Source", "class_heading", "class_order", "open_source"]
