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
from imgfmt.formats.base import Format, Item, label_class


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
        listed, names = document.listing(self.path)
        if not self.names:  # a manifest names its classes on its lines
            self.names = names
        for number, (where, labels) in enumerate(listed):
            yield Entry(number, labels, f"entry {number + 1}", where, ref=self._resolve(where))

    def _resolve(self, where: str) -> str:
        if storage.is_s3(where) or os.path.isabs(where):
            return where
        return storage.join(self.root or storage.dirname(self.path), where)

    def class_of(self, labels: tuple[float, ...]) -> tuple[str, str | None]:
        """The class key of ``labels`` (``"3"``, ``"1,0,1"``, ``"unlabeled"``) and its name,
        when the input has one for it."""
        key = label_class(labels)
        name = None
        if len(labels) == 1 and float(labels[0]).is_integer():
            name = self.names.get(int(labels[0]))
        return key, name


def open_source(path: str, *, root: str | None = None, class_map: str | None = None) -> Source:
    """``path`` opened for looking (see the module doc); ``StorageError`` when it is missing,
    ``UsageError`` when imgfmt does not read its kind."""
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


__all__ = ["Entry", "Source", "class_heading", "open_source"]
