"""SageMaker augmented manifests for image classification, as Ground Truth writes them.

A manifest is JSON Lines: one object per line, the image's ``source-ref`` (an ``s3://`` URI),
the label attribute and ``<attribute>-metadata``. Single label (the developer guide's "Labeling
job output data" page, ``sms-data-output``, section "Classification Job Output")::

    {"source-ref":"s3://b/cat/1.jpg","class":0,"class-metadata":{"class-name":"cat",
     "confidence":1.0,"type":"groundtruth/image-classification","job-name":"labeling-job/imgfmt",
     "human-annotated":"yes","creation-date":"2026-01-01T00:00:00.000000"}}

Multi-label (same page, "Multi-label Classification Job Output"): the label is an array of
class indices, and ``class-map`` / ``confidence-map`` hold exactly the classes of that line's
array, keyed by the index as a string (the guide's example: labels ``[1,0,8]``, class-map keys
``"1"``, ``"0"``, ``"8"``)::

    {"source-ref":"s3://b/x.jpg","class":[0,2],"class-metadata":{"job-name":"labeling-job/imgfmt",
     "class-map":{"0":"bicycle","2":"person"},"human-annotated":"yes",
     "creation-date":"2026-01-01T00:00:00.000000","confidence-map":{"0":1.0,"2":1.0},
     "type":"groundtruth/image-classification-multilabel"}}

Choices, and where they come from:

- Lines are compact JSON (``separators=(",", ":")``), UTF-8, not ASCII-escaped: the guide shows
  its examples indented "for readability" and says the real file has one object per line; real
  Ground Truth output files quoted in the SageMaker, Rekognition and Lookout for Vision guides
  are compact.
- Metadata keys are in the order of the guide's examples (single and multi-label differ).
- ``confidence`` is 1.0: the labels are given, not voted on by workers.
- ``creation-date`` is UTC, ``YYYY-MM-DDTHH:MM:SS.ffffff`` without a zone, as in the guide;
  one timestamp per run (or ``creation_date``, for reproducible output).
- ``source-ref`` holds the raw S3 key, not URL-encoded, as Ground Truth writes it.
- A label attribute name must not contain ``-metadata`` or end in ``-ref`` (the guide: "You
  can't use -metadata in the label attribute name ... For any other type of job, the attribute
  name can't end with -ref").
- A multi-label ``.lst`` is read as multi-hot, SageMaker's own ``.lst`` convention for
  ``multi_label=1``: one 0/1 column per class. A line with no class set is refused: Ground
  Truth workers "must choose at least one" label, so such a line has no Ground Truth form.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any

from imgfmt import storage
from imgfmt.errors import FormatError, ImgfmtError, UsageError, excerpt, not_utf8
from imgfmt.formats import lst
from imgfmt.formats.base import CheckContext, Document, LineSplit, SplitSource, with_newline
from imgfmt.storage import AtomicOutputs, atomic_output, is_s3, open_input

#: The attribute holding the image's URI; Ground Truth's name for it.
SOURCE_REF = "source-ref"

#: Attributes ending in this hold S3 URIs (the augmented-manifest rule).
REF_SUFFIX = "-ref"

#: ``<attribute>-metadata`` sits beside every label attribute.
METADATA_SUFFIX = "-metadata"

#: Ground Truth's ``type`` values for single- and multi-label image classification.
TYPE_SINGLE = "groundtruth/image-classification"
TYPE_MULTI = "groundtruth/image-classification-multilabel"

#: Ground Truth writes ``job-name`` as ``labeling-job/<job name>``.
JOB_NAME_PREFIX = "labeling-job/"

#: Defaults of ``manifest-gen``: the attribute of the Ground Truth example (docs/formats.md
#: section 8), and this tool's name.
DEFAULT_LABEL_ATTRIBUTE = "class"
DEFAULT_JOB_NAME = "imgfmt"

#: ``creation-date`` as Ground Truth writes it: UTC, microseconds, no zone suffix.
CREATION_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"

#: The confidence of a given (not worker-voted) label.
CONFIDENCE = 1.0

#: Compact JSON, as in Ground Truth's output files.
JSON_SEPARATORS = (",", ":")

#: SageMaker labeling job names (CreateLabelingJob ``LabelingJobName``).
JOB_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")

#: ``s3://bucket[/key prefix]``; bucket names kept lenient (legacy buckets allow more).
S3_URI_PATTERN = re.compile(r"s3://(?P<bucket>[A-Za-z0-9._-]+)(?:/(?P<key>.*))?", re.DOTALL)


SINGLE = "single-label"
MULTI = "multi-label"


@dataclass(frozen=True)
class ManifestEntry:
    """One image of a classification manifest: its URI, class indices and their names.

    ``labels`` and ``names`` are parallel; a single-label entry holds one of each.
    """

    source_ref: str
    labels: tuple[int, ...]
    names: tuple[str, ...]
    multi_label: bool = False


@dataclass(frozen=True)
class ManifestResult:
    """What :func:`make_manifest` wrote."""

    manifest: str
    lines: int
    classes: dict[int, str]
    label_attribute: str
    multi_label: bool
    job_name: str
    creation_date: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "lines": self.lines,
            "label_attribute": self.label_attribute,
            "multi_label": self.multi_label,
            "job_name": self.job_name,
            "creation_date": self.creation_date,
            "classes": {str(label): name for label, name in sorted(self.classes.items())},
        }


@dataclass(frozen=True)
class LstFromManifestResult:
    """What :func:`manifest_to_lst` wrote."""

    list_path: str
    class_map_path: str | None  # None: the list went to standard output, alone
    lines: int
    classes: dict[int, str]
    label_attribute: str
    multi_label: bool
    s3_prefix: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "list": self.list_path,
            "class_map": self.class_map_path,
            "lines": self.lines,
            "label_attribute": self.label_attribute,
            "multi_label": self.multi_label,
            "s3_prefix": self.s3_prefix,
            "classes": {str(label): name for label, name in sorted(self.classes.items())},
        }


# --------------------------------------------------------------------------- options


def check_label_attribute(name: str) -> str:
    """``name`` if SageMaker accepts it as a classification label attribute, else UsageError."""
    bad = None
    if not name or not name.strip():
        bad = "is empty"
    elif name.endswith(REF_SUFFIX):
        bad = f"ends in {REF_SUFFIX!r}, which SageMaker keeps for S3 URIs"
    elif METADATA_SUFFIX in name:
        bad = f"contains {METADATA_SUFFIX!r}, which SageMaker keeps for metadata"
    elif name != name.strip() or any(c in name for c in "\t\r\n"):
        bad = "holds leading/trailing white space or a line break"
    if bad:
        raise UsageError(
            f"label attribute {name!r} {bad}",
            hint=f"choose another name, e.g. {DEFAULT_LABEL_ATTRIBUTE!r}",
        )
    return name


def check_job_name(name: str) -> str:
    """``name`` if it is a valid SageMaker labeling job name, else UsageError."""
    if not JOB_NAME_PATTERN.fullmatch(name):
        raise UsageError(
            f"job name {name!r} is not a SageMaker labeling job name",
            hint="1-63 letters, digits and hyphens, starting and ending with a letter or digit",
        )
    return name


def check_s3_prefix(prefix: str) -> str:
    """``s3://bucket[/prefix]`` without trailing slashes, or UsageError."""
    match = S3_URI_PATTERN.fullmatch(prefix)
    key = (match.group("key") or "").rstrip("/") if match else ""
    if match is None or "//" in key or any(c in key for c in "\r\n"):
        raise UsageError(
            f"S3 prefix {prefix!r} is not of the form s3://bucket[/prefix]",
            hint="e.g. --s3-prefix s3://my-bucket/datasets/photos",
        )
    return f"s3://{match.group('bucket')}" + (f"/{key}" if key else "")


def s3_uri(prefix: str, relpath: str) -> str:
    """``prefix`` + ``/`` + ``relpath`` (``/``-separated), raw: S3 keys are not URL-encoded."""
    return f"{prefix}/{relpath}"


def parse_creation_date(text: str) -> datetime:
    """An ISO 8601 date/time as UTC; a time without zone is taken as UTC. UsageError if bad."""
    value = text.strip()
    if value.endswith(("Z", "z")):  # fromisoformat takes "Z" only from Python 3.11
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"creation date {text!r} is not an ISO 8601 date/time",
            hint="e.g. 2026-01-01T00:00:00 (UTC)",
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def format_creation_date(moment: datetime | None = None) -> str:
    """``creation-date`` text for ``moment`` (default: now), in UTC."""
    if moment is None:
        moment = datetime.now(timezone.utc)
    elif moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime(CREATION_DATE_FORMAT)


# --------------------------------------------------------------------------- writing


def manifest_object(
    entry: ManifestEntry,
    *,
    label_attribute: str = DEFAULT_LABEL_ATTRIBUTE,
    job_name: str = DEFAULT_JOB_NAME,
    creation_date: str,
) -> dict[str, Any]:
    """The Ground Truth object for ``entry``, keys in the developer guide's order."""
    metadata: dict[str, Any]
    if entry.multi_label:
        keys = [str(label) for label in entry.labels]
        metadata = {
            "job-name": JOB_NAME_PREFIX + job_name,
            "class-map": dict(zip(keys, entry.names)),
            "human-annotated": "yes",
            "creation-date": creation_date,
            "confidence-map": {key: CONFIDENCE for key in keys},
            "type": TYPE_MULTI,
        }
        label: Any = list(entry.labels)
    else:
        metadata = {
            "class-name": entry.names[0],
            "confidence": CONFIDENCE,
            "type": TYPE_SINGLE,
            "job-name": JOB_NAME_PREFIX + job_name,
            "human-annotated": "yes",
            "creation-date": creation_date,
        }
        label = entry.labels[0]
    return {
        SOURCE_REF: entry.source_ref,
        label_attribute: label,
        label_attribute + METADATA_SUFFIX: metadata,
    }


def format_manifest_line(entry: ManifestEntry, **options: Any) -> str:
    """One manifest line (with its LF); ``options`` as for :func:`manifest_object`."""
    obj = manifest_object(entry, **options)
    return json.dumps(obj, ensure_ascii=False, separators=JSON_SEPARATORS) + "\n"


# --------------------------------------------------------------------------- sources


def _check_relative(path: str, src: str, index: int) -> str:
    parts = path.split("/")
    if (
        path.startswith("/")
        or re.match(r"[A-Za-z]:", path)
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise FormatError(
            f"image path {path!r} (index {index}) is not a plain relative path, "
            "so it cannot become an S3 key",
            path=src,
            hint="list paths relative to the image root, without '.', '..' or '//'",
        )
    return path


def folder_entries(
    src: str, s3_prefix: str, *, root: str | None = None, multi_label: bool = False
) -> tuple[list[ManifestEntry], dict[int, str]]:
    """Entries for an image folder (one sub-folder per class), in im2rec's listing order.

    Keys are the image paths relative to ``root`` (default: ``src`` itself), under ``s3_prefix``.
    """
    entries, classes = lst.list_images(src, recursive=True)
    base = storage.abspath(src)
    top = storage.abspath(root) if root is not None else base
    result = []
    for entry in entries:
        relpath = storage.posix(storage.relpath(storage.join(base, entry.path), top))
        if relpath == ".." or relpath.startswith("../"):
            raise UsageError(
                f"{src} is not inside --root {root}",
                hint="--root must be SRC or a folder that holds it",
            )
        label = int(entry.labels[0])
        result.append(
            ManifestEntry(s3_uri(s3_prefix, relpath), (label,), (classes[label],), multi_label)
        )
    return result, classes


def _class_index(value: float, src: str, entry: lst.LstEntry) -> int:
    if not value.is_integer() or value < 0:
        raise FormatError(
            f"label {value:g} of index {entry.index} is not a class index",
            path=src,
            hint="single-label .lst labels are whole numbers from 0",
        )
    return int(value)


def _class_name(mapping: dict[int, str] | None, label: int, src: str, map_path: str) -> str:
    if mapping is None:
        return str(label)
    if label not in mapping:
        raise FormatError(
            f"class {label} has no name in the class map {map_path}",
            path=src,
            hint="add a line 'label<TAB>name' to the class map, or remove it to use numbers",
        )
    return mapping[label]


def lst_entries(
    src: str, s3_prefix: str, *, multi_label: bool = False
) -> tuple[list[ManifestEntry], dict[int, str]]:
    """Entries for a ``.lst``: paths used as they are, under ``s3_prefix``.

    Class names come from the list's class map (:func:`lst.find_class_map`), else the class
    number. Single-label lists need exactly one label column; with ``multi_label`` every line
    has the same number of 0/1 columns (multi-hot), and the classes are the columns set to 1.
    """
    map_path = lst.find_class_map(src)
    mapping = lst.read_class_map(map_path) if map_path else None
    entries = list(lst.read_lst(src))
    if not entries:
        raise FormatError("the list holds no lines", path=src, hint="list some images first")
    result: list[ManifestEntry] = []
    classes: dict[int, str] = {}
    width = len(entries[0].labels)
    for entry in entries:
        path = _check_relative(entry.path, src, entry.index)
        if multi_label:
            if len(entry.labels) != width:
                raise FormatError(
                    f"index {entry.index} has {len(entry.labels)} label columns, "
                    f"the first line {width}",
                    path=src,
                    hint="a multi-hot .lst has one 0/1 column per class on every line",
                )
            odd = [v for v in entry.labels if v not in (0.0, 1.0)]
            if odd:
                raise FormatError(
                    f"index {entry.index} has label {odd[0]:g}, but a multi-label .lst is "
                    "multi-hot (one 0/1 column per class, SageMaker's convention)",
                    path=src,
                    hint="write one 0/1 column per class instead of class indices",
                )
            labels = tuple(i for i, v in enumerate(entry.labels) if v == 1.0)
            if not labels:
                raise FormatError(
                    f"index {entry.index} sets no class (every column is 0); Ground Truth "
                    "multi-label lines name at least one class",
                    path=src,
                    hint="add a column for a 'none' class",
                )
        else:
            if len(entry.labels) != 1:
                raise UsageError(
                    f"{src}: index {entry.index} has {len(entry.labels)} label columns",
                    hint="pass --multi-label for a multi-hot list, one 0/1 column per class",
                )
            labels = (_class_index(entry.labels[0], src, entry),)
        names = tuple(_class_name(mapping, label, src, map_path or "") for label in labels)
        classes.update(zip(labels, names))
        result.append(ManifestEntry(s3_uri(s3_prefix, path), labels, names, multi_label))
    if multi_label:  # every column is a class, set on some line or not
        classes = {i: _class_name(mapping, i, src, map_path or "") for i in range(width)}
    return result, classes


def make_manifest(
    src: str,
    out: str,
    *,
    s3_prefix: str | None,
    label_attribute: str = DEFAULT_LABEL_ATTRIBUTE,
    job_name: str = DEFAULT_JOB_NAME,
    multi_label: bool = False,
    root: str | None = None,
    creation_date: datetime | None = None,
    stdout: IO[str] | None = None,
) -> ManifestResult:
    """Write the Ground Truth manifest of ``src`` (an image folder or a ``.lst``) to ``out``.

    ``out`` ``"-"`` writes to ``stdout`` (default ``sys.stdout``); otherwise the file appears
    complete or not at all. Every input is read and checked before the first line is written.
    ``root``: for a folder ``src``, the folder ``s3_prefix`` stands for (default ``src``);
    a ``.lst``'s paths are already relative to its root and are used unchanged.

    An ``s3://`` ``src`` needs no ``s3_prefix``: each ``source-ref`` is then the image
    object's own URI (``root``, default ``src``, for a folder; the list's folder for a
    ``.lst``).
    """
    check_label_attribute(label_attribute)
    check_job_name(job_name)
    lst.require_list_or_folder(src, "manifest-gen")
    remote_folder = is_s3(src) and storage.is_dir(src)
    if s3_prefix is None and is_s3(src):  # source-ref: each image object's own URI
        if remote_folder:
            s3_prefix = storage.abspath(root or src)
        else:
            s3_prefix = storage.dirname(storage.abspath(src))
    if s3_prefix is None:
        raise UsageError(
            f"a local source ({src}) needs --s3-prefix: source-ref must be an s3:// URI",
            hint="pass the S3 folder the images are uploaded to, e.g. --s3-prefix s3://bucket/photos",
        )
    prefix = check_s3_prefix(s3_prefix)
    if out != "-":
        storage.ensure_output_folder(out)
    if remote_folder if is_s3(src) else os.path.isdir(src):
        entries, classes = folder_entries(src, prefix, root=root, multi_label=multi_label)
    else:
        entries, classes = lst_entries(src, prefix, multi_label=multi_label)
    date = format_creation_date(creation_date)
    options = {"label_attribute": label_attribute, "job_name": job_name, "creation_date": date}
    if out == "-":
        _write_stdout(stdout or sys.stdout, entries, options)
    else:
        with atomic_output(out, "w") as handle:
            _write_lines(handle, entries, options)
    return ManifestResult(out, len(entries), classes, label_attribute, multi_label, job_name, date)


def _write_lines(handle: IO[str], entries: Iterable[ManifestEntry], options: Any) -> None:
    for entry in entries:
        handle.write(format_manifest_line(entry, **options))
    handle.flush()


def _write_stdout(stream: IO[str], entries: Iterable[ManifestEntry], options: Any) -> None:
    # Manifests are UTF-8 whatever the terminal's locale: write bytes when the stream allows.
    binary = getattr(stream, "buffer", None)
    if binary is None:
        _write_lines(stream, entries, options)
        return
    stream.flush()
    for entry in entries:
        binary.write(format_manifest_line(entry, **options).encode("utf-8"))
    binary.flush()


# --------------------------------------------------------------------------- checking


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_s3_uri(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    match = S3_URI_PATTERN.fullmatch(value)
    return bool(match and match.group("key") and not match.group("key").endswith("/"))


def _label_candidates(obj: dict[str, Any]) -> list[str]:
    return [
        key
        for key in obj
        if not key.endswith(REF_SUFFIX)
        and METADATA_SUFFIX not in key
        and key + METADATA_SUFFIX in obj
    ]


def _is_classification(obj: dict[str, Any], key: str) -> bool:
    meta = obj.get(key + METADATA_SUFFIX)
    return isinstance(meta, dict) and meta.get("type") in (TYPE_SINGLE, TYPE_MULTI)


def label_attributes(obj: dict[str, Any]) -> list[str]:
    """The attributes of a manifest line that may be its label: those with a ``-metadata``
    beside them; of several, those whose metadata says image classification (a ``boxes``
    attribute beside ``class`` is not a label). One: the label attribute."""
    candidates = _label_candidates(obj)
    if len(candidates) > 1:
        candidates = [key for key in candidates if _is_classification(obj, key)] or candidates
    return candidates


def _json_class(value: Any) -> str | None:
    """The class (split stratum) of a label attribute's value: a number, a string, or a
    list of them."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, list) and value:
        parts = [_json_class(v) for v in value]
        return None if any(p is None for p in parts) else ",".join(str(p) for p in parts)
    if isinstance(value, list):
        return "[]"
    return None


#: What a line check finds: (check, message, hint); verify makes each a Problem.
LineProblem = tuple[str, str, str | None]


class _LineChecker:
    """Checks manifest lines one by one, remembering what earlier lines established:
    the label attribute (given, or found on the first object), single- or multi-label,
    and the name of each class index."""

    def __init__(self, label_attribute: str | None = None) -> None:
        self.attribute = label_attribute
        self.kind: str | None = None
        self.kind_line = 0
        self.names: dict[int, tuple[str, int]] = {}  # class -> (name, line number)

    def check(
        self, number: int, raw: str
    ) -> tuple[dict[str, Any] | None, ManifestEntry | None, list[LineProblem]]:
        problems: list[LineProblem] = []
        obj = self._parse(raw, problems)
        if obj is None:
            return None, None, problems
        self._check_refs(obj, problems)
        entry = self._check_label(number, obj, problems)
        return obj, (entry if not problems else None), problems

    @staticmethod
    def _parse(raw: str, problems: list[LineProblem]) -> dict[str, Any] | None:
        if not_utf8(raw):  # bytes that were not UTF-8
            problems.append(("json", "not valid UTF-8", "save the manifest as UTF-8"))
            return None
        if not raw.strip():
            problems.append(("json", "blank line", "JSON Lines holds one object on every line"))
            return None
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            problems.append(("json", f"not valid JSON: {reason}", "one JSON object per line"))
            return None
        if not isinstance(obj, dict):
            problems.append(
                ("json", f"expected a JSON object, found {excerpt(obj)}", "one object per line")
            )
            return None
        return obj

    @staticmethod
    def _check_refs(obj: dict[str, Any], problems: list[LineProblem]) -> None:
        if SOURCE_REF not in obj:
            problems.append(
                ("source-ref", f'no "{SOURCE_REF}"', "each line needs the image's s3:// URI")
            )
        for key, value in obj.items():
            if key.endswith(REF_SUFFIX) and not _is_s3_uri(value):
                problems.append(
                    (
                        "source-ref",
                        f"{key!r} is {excerpt(value)}, not an s3://bucket/key URI",
                        f"every attribute ending in {REF_SUFFIX!r} must be an S3 object URI",
                    )
                )
        for key in obj:
            if key.endswith(METADATA_SUFFIX) and key[: -len(METADATA_SUFFIX)] not in obj:
                base = key[: -len(METADATA_SUFFIX)]
                problems.append(
                    ("metadata", f"{key!r} has no label attribute {base!r} beside it", None)
                )

    def _find_attribute(self, obj: dict[str, Any], problems: list[LineProblem]) -> str | None:
        if self.attribute is not None:
            return self.attribute
        candidates = label_attributes(obj)
        if len(candidates) == 1:
            self.attribute = candidates[0]
            return self.attribute
        if candidates:
            problems.append(
                (
                    "label",
                    f"several label attributes ({', '.join(map(repr, candidates))})",
                    "name the one to use with --label-attribute",
                )
            )
        else:
            problems.append(
                (
                    "label",
                    "no label attribute (a key with a '<key>-metadata' sibling)",
                    'Ground Truth writes e.g. "class": 0 and "class-metadata": {...}',
                )
            )
        return None

    def _check_label(
        self, number: int, obj: dict[str, Any], problems: list[LineProblem]
    ) -> ManifestEntry | None:
        attribute = self._find_attribute(obj, problems)
        if attribute is None:
            return None
        meta_key = attribute + METADATA_SUFFIX
        if attribute not in obj:
            problems.append(("label", f"no label attribute {attribute!r}", None))
        meta = obj.get(meta_key)
        if meta_key not in obj:
            problems.append(("metadata", f"no {meta_key!r}", "Ground Truth writes it per line"))
        elif not isinstance(meta, dict):
            problems.append(("metadata", f"{meta_key!r} is {excerpt(meta)}, not an object", None))
        if attribute not in obj or not isinstance(meta, dict):
            return None
        label = obj[attribute]
        kind_type = meta.get("type")
        if kind_type not in (TYPE_SINGLE, TYPE_MULTI):
            problems.append(
                (
                    "metadata",
                    f"{meta_key!r} type is {excerpt(kind_type)}",
                    f"expected {TYPE_SINGLE!r} or {TYPE_MULTI!r}",
                )
            )
        kind = MULTI if (kind_type == TYPE_MULTI or isinstance(label, list)) else SINGLE
        if kind_type in (TYPE_SINGLE, TYPE_MULTI) and (kind_type == TYPE_MULTI) != isinstance(
            label, list
        ):
            problems.append(
                (
                    "metadata",
                    f"type {kind_type!r} does not match the label {excerpt(label)}",
                    "single-label: a class index; multi-label: an array of class indices",
                )
            )
            return None
        if self.kind is None:
            self.kind, self.kind_line = kind, number
        elif kind != self.kind:
            problems.append(
                (
                    "metadata",
                    f"a {kind} line, but line {self.kind_line} is {self.kind}",
                    "a manifest holds one kind of classification",
                )
            )
        if kind == SINGLE:
            return self._check_single(number, obj.get(SOURCE_REF), attribute, label, meta, problems)
        return self._check_multi(number, obj.get(SOURCE_REF), attribute, label, meta, problems)

    def _check_single(
        self,
        number: int,
        source_ref: Any,
        attribute: str,
        label: Any,
        meta: dict[str, Any],
        problems: list[LineProblem],
    ) -> ManifestEntry | None:
        ok = True
        if not _is_index(label):
            problems.append(
                (
                    "label",
                    f"{attribute!r} is {excerpt(label)}, not a class index",
                    'write a whole number from 0, e.g. 0 (not "0")',
                )
            )
            ok = False
        name = meta.get("class-name")
        if not isinstance(name, str) or not name:
            problems.append(
                ("metadata", f"class-name is {excerpt(name)}", 'name the class, e.g. "cat"')
            )
            return None
        if not ok or not self._check_name(number, label, name, problems):
            return None
        return ManifestEntry(str(source_ref), (label,), (name,), False)

    def _check_multi(
        self,
        number: int,
        source_ref: Any,
        attribute: str,
        label: Any,
        meta: dict[str, Any],
        problems: list[LineProblem],
    ) -> ManifestEntry | None:
        if not isinstance(label, list) or not label or not all(_is_index(v) for v in label):
            problems.append(
                (
                    "label",
                    f"{attribute!r} is {excerpt(label)}, not an array of class indices",
                    "write e.g. [1, 0, 8], at least one class",
                )
            )
            return None
        if len(set(label)) != len(label):
            problems.append(("label", f"{attribute!r} repeats a class: {excerpt(label)}", None))
            return None
        keys = {str(v) for v in label}
        class_map = meta.get("class-map")
        if not isinstance(class_map, dict):
            problems.append(
                ("metadata", f"class-map is {excerpt(class_map)}", "map each label to its name")
            )
            return None
        ok = True
        if set(class_map) != keys:
            problems.append(
                (
                    "metadata",
                    f"class-map keys {sorted(class_map)} differ from the labels {label}",
                    "class-map names exactly the classes of the line's label array",
                )
            )
            ok = False
        confidence_map = meta.get("confidence-map")
        if confidence_map is not None and (
            not isinstance(confidence_map, dict) or set(confidence_map) != keys
        ):
            problems.append(
                (
                    "metadata",
                    f"confidence-map {excerpt(confidence_map)} does not match the labels {label}",
                    None,
                )
            )
            ok = False
        names: list[str] = []
        for value in label:
            name = class_map.get(str(value))
            if not isinstance(name, str) or not name:
                if str(value) in class_map:
                    problems.append(("metadata", f"class-map {value!r} is {excerpt(name)}", None))
                ok = False
            elif not self._check_name(number, value, name, problems):
                ok = False
            else:
                names.append(name)
        if not ok:
            return None
        return ManifestEntry(str(source_ref), tuple(label), tuple(names), True)

    def _check_name(self, number: int, label: int, name: str, problems: list[LineProblem]) -> bool:
        known = self.names.setdefault(label, (name, number))
        if known[0] != name:
            problems.append(
                (
                    "metadata",
                    f"class {label} is named {name!r} here but {known[0]!r} on line {known[1]}",
                    "one name per class index",
                )
            )
            return False
        return True


def _with_hint(message: str, hint: str | None) -> str:
    return f"{message} ({hint})" if hint else message


def iter_manifest_problems(
    lines: Iterable[str], name: str, *, label_attribute: str | None = None
) -> Iterator[tuple[int, str, str]]:
    """Every problem of a classification manifest: ``(line number from 1, check, message)``.

    ``check`` is ``json``, ``source-ref``, ``label`` or ``metadata``. Nothing raises, whatever
    the text. The label attribute is ``label_attribute``, or found on the first object (the
    key with a ``<key>-metadata`` sibling). ``name`` names the input (kept for symmetry with
    the other readers; messages do not repeat it).
    """
    del name  # messages are per line; the caller names the file
    checker = _LineChecker(label_attribute)
    for number, raw in enumerate(lines, start=1):
        for check, message, hint in checker.check(number, raw)[2]:
            yield number, check, _with_hint(message, hint)


def _read(
    path: str, label_attribute: str | None
) -> Iterator[tuple[_LineChecker, dict[str, Any], ManifestEntry | None]]:
    checker = _LineChecker(label_attribute)
    with open_input(path, "r", encoding="utf-8-sig", errors="surrogateescape") as handle:
        for number, raw in enumerate(handle, start=1):
            obj, entry, problems = checker.check(number, raw)
            if problems:
                _check, message, hint = problems[0]
                raise FormatError(message, path=path, where=f"line {number}", hint=hint)
            assert obj is not None
            yield checker, obj, entry


def read_manifest(path: str, *, label_attribute: str | None = None) -> Iterator[dict[str, Any]]:
    """The objects of a classification manifest, checked strictly: the first problem (see
    :func:`iter_manifest_problems`) raises ``FormatError`` naming the file and line."""
    for _checker, obj, _entry in _read(path, label_attribute):
        yield obj


def read_entries(
    path: str, *, label_attribute: str | None = None
) -> tuple[str, list[ManifestEntry]]:
    """The label attribute and the entries of a classification manifest, checked strictly."""
    entries: list[ManifestEntry] = []
    attribute = label_attribute
    for checker, _obj, entry in _read(path, label_attribute):
        assert entry is not None
        entries.append(entry)
        attribute = checker.attribute
    if not entries or attribute is None:
        raise FormatError("the manifest holds no lines", path=path, hint="nothing to convert")
    return attribute, entries


# --------------------------------------------------------------------------- to .lst


def _common_folder(uris: Sequence[str]) -> str:
    """The longest ``/``-bounded folder holding every URI: ``s3://b/x/a.jpg``, ``s3://b/x/y/c.jpg``
    -> ``s3://b/x``."""
    folders = [uri.rsplit("/", 1)[0].split("/") for uri in uris]
    common = folders[0]
    for parts in folders[1:]:
        n = 0
        while n < min(len(common), len(parts)) and common[n] == parts[n]:
            n += 1
        common = common[:n]
    return "/".join(common)


def manifest_to_lst(
    manifest: str,
    prefix: str,
    *,
    label_attribute: str | None = None,
    s3_prefix: str | None = None,
) -> LstFromManifestResult:
    """Turn a classification manifest into ``PREFIX.lst`` and ``PREFIX.classes.tsv``.

    Indices are 0, 1, ... in manifest order. A path is the ``source-ref`` with ``s3_prefix``
    stripped, or else with the longest folder common to every ``source-ref`` stripped (so a
    manifest of one class folder loses that folder name: pass ``s3_prefix`` to keep it).
    Single-label lines give one label column; multi-label lines give multi-hot columns, one
    per class 0..K-1 with K one more than the largest class index. Class names come from
    ``class-name`` / ``class-map``. Both files appear together or not at all.
    """
    if label_attribute is not None:
        check_label_attribute(label_attribute)
    to_stdout = prefix == storage.STREAM
    prefix = lst.list_prefix(prefix)
    if not to_stdout:
        storage.require_file_prefix(prefix, "the list is written to PREFIX.lst", "images")
        storage.ensure_output_folder(prefix)
    if storage.splitext(manifest)[1].lower() in (".rec", ".idx", ".lst"):
        raise UsageError(
            f"{manifest} is not a manifest: manifest-to-lst reads SageMaker augmented "
            "manifests (JSON Lines with source-ref)",
            hint="a .lst is already a list; a .rec is unpacked with imgfmt unpack",
        )
    attribute, entries = read_entries(manifest, label_attribute=label_attribute)
    multi = entries[0].multi_label
    uris = [entry.source_ref for entry in entries]
    if s3_prefix is not None:
        base = check_s3_prefix(s3_prefix)
    else:
        base = _common_folder(uris)
        if not S3_URI_PATTERN.fullmatch(base):
            raise FormatError(
                "the source-refs lie in several buckets, so no common prefix can be stripped",
                path=manifest,
                hint="pass --s3-prefix to choose the part to strip",
            )
    classes: dict[int, str] = {}
    for entry in entries:
        classes.update(zip(entry.labels, entry.names))
    width = max(classes) + 1
    items: list[lst.LstEntry] = []
    for index, entry in enumerate(entries):
        if not entry.source_ref.startswith(base + "/"):
            raise FormatError(
                f"source-ref {entry.source_ref!r} is not under {base}",
                path=manifest,
                where=f"line {index + 1}",
                hint="pass an --s3-prefix that holds every image",
            )
        relpath = entry.source_ref[len(base) + 1 :]
        if multi:
            labels = tuple(1.0 if i in entry.labels else 0.0 for i in range(width))
        else:
            labels = (float(entry.labels[0]),)
        items.append(lst.LstEntry(index, labels, relpath))
    # PREFIX '-': the list alone on standard output (the class map has no stream to go to).
    list_path = storage.STREAM if to_stdout else prefix + ".lst"
    map_path = None if to_stdout else lst.class_map_path(prefix)
    with AtomicOutputs() as outputs:
        handle = outputs.open(list_path, "w")
        for item in items:
            handle.write(lst.format_lst_line(item))
        if map_path is not None:
            lst.write_class_map_to(outputs.open(map_path, "w"), classes)
    return LstFromManifestResult(list_path, map_path, len(entries), classes, attribute, multi, base)


# --------------------------------------------------------------------------- verify


class AugmentedManifest(Document):
    """A SageMaker augmented manifest: JSON Lines of ``source-ref`` and labels; it names
    images (``s3://`` URIs) rather than holding them."""

    name = "manifest"
    extensions = (".manifest", ".jsonl", ".json")
    summary = "SageMaker augmented manifest (Ground Truth image-classification lines)"

    def listing(self, path: str) -> tuple[Iterator[tuple[str, tuple[float, ...]]], dict[int, str]]:
        """Each line's ``source-ref`` and class indices, and the class names the lines give
        (``class-name`` / ``class-map``)."""
        _attribute, entries = read_entries(path)
        names: dict[int, str] = {}
        for entry in entries:
            names.update(zip(entry.labels, entry.names))
        listed = ((e.source_ref, tuple(float(v) for v in e.labels)) for e in entries)
        return listed, names

    def split_source(self, path: str, label_attribute: str | None = None) -> SplitSource:
        """Each line copied byte for byte; its class from the label attribute (given, or
        the one :func:`label_attributes` finds on the first line)."""
        return _manifest_split(path, label_attribute)

    def check(self, path: str, ctx: CheckContext) -> None:
        """Each line (``iter_manifest_problems``), and that there is one."""
        try:
            handle = open_input(path, "r", encoding="utf-8-sig", errors="surrogateescape")
        except ImgfmtError as err:
            ctx.add(self.problem(path, "input", "", err.reason))
            return
        lines = entries = 0

        def counted(stream: Iterable[str]) -> Iterator[str]:
            nonlocal lines, entries
            for text in stream:
                lines += 1
                entries += bool(text.strip())
                yield text

        with handle:
            for line_no, check, message in iter_manifest_problems(counted(handle), path):
                ctx.add(self.problem(path, check, f"line {line_no}", message, line=line_no))
        ctx.checked["manifest_lines"] = lines
        if entries == 0:
            ctx.add(self.problem(path, "manifest", "", "no entries: the file is empty"))


def _manifest_split(path: str, label_attribute: str | None) -> LineSplit:
    items = LineSplit([], [], label_attribute)
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
                    f"not a JSON object: {getattr(err, 'msg', err)}: {excerpt(text, 80)}",
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
                found = label_attributes(record)
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
                    f"cannot read a class from {attribute!r}: {excerpt(record[attribute], 80)}",
                    path=path,
                    where=where,
                    hint="a label is a number, a string or a list of them",
                )
            items.classes.append(cls)
            items.lines.append(with_newline(line))
    return items
