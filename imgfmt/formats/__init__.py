"""The dataset formats, one module each, and the registry that finds them.

A format is found by its canonical name (:func:`get`), or for a path by extension and, where
formats share one, by content (:func:`for_path`): a ``.jsonl`` (``.json``, ``.manifest``)
may be a SageMaker augmented manifest or a JSON Lines image dataset; a ``.rec`` may be MXNet
RecordIO or SageMaker RecordIO-protobuf (:func:`content_format` tells them apart, so that
every command agrees about a file). Format modules are imported on first use, so that
``imgfmt --help`` stays fast.

The interface every format implements is :class:`imgfmt.formats.base.Format`.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any

from imgfmt import storage
from imgfmt.errors import ImgfmtError, UsageError

if TYPE_CHECKING:
    from imgfmt.formats.base import Document, Format

JSONLINES = "jsonlines"
RECORDIO_PROTOBUF = "recordio-protobuf"

#: Extensions a JSON Lines image dataset may share with an augmented manifest.
JSON_EXTENSIONS = (".jsonl", ".json", ".manifest")


def content_format(path: str, *, has_index: bool | None = None) -> str | None:
    """:data:`JSONLINES` or :data:`RECORDIO_PROTOBUF` when ``path``'s content is one, else
    None (a manifest, an MXNet ``.rec``, any other file). A ``.rec`` with an ``.idx`` beside
    it is MXNet's without a look (only MXNet datasets come with one); ``has_index`` says
    whether there is one, when the caller already knows. ``StorageError`` for a file that
    cannot be read."""
    ext = storage.splitext(path)[1].lower()
    if ext in JSON_EXTENSIONS:
        from imgfmt.formats.jsonlines import sniff_jsonl

        return JSONLINES if sniff_jsonl(path) else None
    if ext == ".rec":
        if has_index is None:
            has_index = storage.is_file(storage.sibling(path, ".idx"))
        if has_index:
            return None
        from imgfmt.formats.rio_protobuf import sniff

        return RECORDIO_PROTOBUF if sniff(path) else None
    return None


#: Canonical name -> (module, class) of every dataset format that holds images.
_DATASETS: dict[str, tuple[str, str]] = {
    "recordio": ("imgfmt.formats.recordio", "RecordIO"),
    RECORDIO_PROTOBUF: ("imgfmt.formats.rio_protobuf", "RecordIOProtobuf"),
    JSONLINES: ("imgfmt.formats.jsonlines", "JsonLines"),
    "webdataset": ("imgfmt.formats.webdataset", "WebDataset"),
}

#: Dataset format names, for ``--format`` choices (in this order in help texts).
DATASET_FORMATS = tuple(_DATASETS)

#: Formats that name images rather than hold them: ``verify`` checks them too.
_LISTS: dict[str, tuple[str, str]] = {
    "lst": ("imgfmt.formats.lst", "ImageList"),
    "manifest": ("imgfmt.formats.manifest", "AugmentedManifest"),
}

#: The extensions ``verify`` reads, and the format each names before its content is seen.
CHECKED_EXTENSIONS = {
    ".rec": "recordio",
    ".idx": "recordio",
    ".lst": "lst",
    ".manifest": "manifest",
    ".jsonl": "manifest",
    ".json": "manifest",
    ".tar": "webdataset",
}


def get(name: str, **options: Any) -> Format:
    """The format called ``name``, with its write ``options`` (``size=(28, 28)`` for
    RecordIO-protobuf, ``shard_records=N`` for WebDataset)."""
    if name not in _DATASETS:
        raise UsageError(f"unknown format {name!r}", hint=f"use one of {', '.join(_DATASETS)}")
    cls = _format_class(name)
    known = {f.name for f in dataclasses.fields(cls)}
    for option in options:
        if option not in known:
            owners = [n for n in _DATASETS if option in _option_names(n)]
            where = f"an option of format {' and '.join(owners)}" if owners else "no option"
            raise UsageError(f"`{option}` is {where}, not of {name}")
    return cls(**options)  # type: ignore[no-any-return]


def _format_class(name: str) -> Any:
    module, cls = {**_DATASETS, **_LISTS}[name]
    return getattr(importlib.import_module(module), cls)


def for_check(path: str) -> Document:
    """The format ``verify`` checks ``path`` as: by extension (``UsageError`` for one it
    does not read), then, where formats share it, by content (a ``.jsonl`` image dataset or
    a manifest; a RecordIO-protobuf or an MXNet ``.rec``). A file that cannot be read keeps
    the extension's format: its check reports the problem."""
    ext = storage.splitext(path)[1].lower()
    name = CHECKED_EXTENSIONS.get(ext)
    if name is None:
        raise UsageError(
            f"cannot verify {path!r}: unknown extension {ext or '(none)'!r}",
            hint=f"verify reads {', '.join(CHECKED_EXTENSIONS)} files",
        )
    if ext != ".idx":
        try:
            name = content_format(path) or name
        except ImgfmtError:
            pass
    return _format_class(name)()  # type: ignore[no-any-return]


def _option_names(name: str) -> set[str]:
    return {f.name for f in dataclasses.fields(_format_class(name))}


def name_for_path(path: str) -> str | None:
    """The dataset format a path names, by extension and (for shared ones) content; None
    when it names none. Reads the file's start only for a ``.rec`` without ``.idx`` or a
    ``.jsonl``."""
    ext = storage.splitext(path)[1].lower()
    if ext == ".rec":
        found = content_format(path) if storage.is_file(path) else None
        return found or "recordio"
    if ext == ".jsonl":
        return JSONLINES
    if path.lower().endswith(".tar") or path.lower().endswith(".tar}"):  # a shard or a pattern
        return "webdataset"
    return None


def webdataset_first_shard(path: str) -> str:
    """``train-000000.tar`` for ``train.tar``, the first shard of a WebDataset named so."""
    stem, ext = storage.splitext(path)
    return f"{stem}-{0:06d}{ext or '.tar'}"


def for_input(path: str, name: str | None = None) -> Format:
    """The format to read ``path`` as: ``name`` if given, else from the path."""
    found = name or name_for_path(path)
    if found is None:
        raise UsageError(
            f"cannot tell the format of {path} from its name: a dataset's name ends in .rec, "
            ".jsonl or .tar",
            hint=f"name its format with `source_format`: {', '.join(_DATASETS)}",
        )
    return get(found)


def existing(path: str, name: str | None = None) -> Format:
    """The format of the dataset ``path`` (as :func:`for_input`), which must exist:
    ``StorageError`` naming what to check, else (also for a name that tells no format)."""
    found = name or name_for_path(path)
    if found is None and not storage.exists(path):
        raise storage.missing(path, "no such file", hint="check the path")
    fmt = for_input(path, found)
    if not fmt.exists(path):
        raise _missing(path, fmt)
    return fmt


def _missing(path: str, fmt: Format) -> ImgfmtError:
    """The error for a dataset of format ``fmt`` that is not at ``path``: for WebDataset,
    the shards looked for; else the kind of file to check the path of (its extension)."""
    if fmt.name == "webdataset":
        from imgfmt.formats import webdataset

        first = next(webdataset.expand_braces(path), path)
        if first != path:
            return storage.missing(
                path,
                f"no such file {storage.basename(first)}, the first shard the pattern names",
                hint="check the path and the numbers in braces",
            )
        shard = storage.basename(webdataset.shard_path(path, 0))
        return storage.missing(
            path,
            f"no such file, and no shards {shard}, ... beside it",
            hint="name one shard, a pattern such as train-{000000..000009}.tar, or the "
            "dataset: train.tar for train-000000.tar, ...",
        )
    kind = storage.splitext(path)[1].lower() or fmt.extensions[0]
    return storage.missing(path, "no such file", hint=f"check the path of the {kind}")


def for_output(path: str, name: str | None = None, **options: Any) -> Format:
    """The format to write ``path`` as: ``name`` if given, else from the extension; checks
    that the extension fits the format."""
    ext = storage.splitext(path)[1].lower()
    found = name or {".rec": "recordio", ".jsonl": JSONLINES, ".tar": "webdataset"}.get(ext)
    if found is None:
        raise UsageError(
            f"cannot tell the format to write from {path!r}",
            hint=f"name it with --format ({', '.join(_DATASETS)})",
        )
    fmt = get(found, **options)
    fmt.check_output(path)
    return fmt


__all__ = [
    "DATASET_FORMATS",
    "JSONLINES",
    "JSON_EXTENSIONS",
    "RECORDIO_PROTOBUF",
    "CHECKED_EXTENSIONS",
    "content_format",
    "existing",
    "for_check",
    "for_input",
    "for_output",
    "get",
    "name_for_path",
]
