"""Image datasets as JSON Lines (content type ``application/jsonlines``): one image per line.

A line is one compact JSON object, UTF-8, ending in a line feed::

    {"id":3,"path":"cat/img3.jpg","label":1,"image":"/9j/4AAQSkZJRgABAQAAAQ..."}

- ``id``: the record index (the ``.lst`` index column), a whole number 0..2**64-1, unique.
- ``path``: the image path relative to the dataset root, as in the ``.lst`` (``/``-separated).
- ``label``: a number for a single-label image, an array of numbers for a multi-label one
  (``"label":[1,0,1]``); whole numbers are written without a fraction (``1``, not ``1.0``),
  as Ground Truth writes class indices. Labels read back as floats, as from a ``.lst``.
- ``image``: the image file's bytes (after any resizing / re-encoding, or unchanged with
  ``--pass-through``), base64 with the standard alphabet and padding (RFC 4648 section 4).

Why these names: SageMaker defines no JSON Lines layout for images. Its built-in image
classification algorithm takes images only as ``application/x-image`` / ``image/*`` bodies;
the built-in algorithms that read JSON Lines do so for numeric vectors (``{"features":
[...]}``, the "Common data formats for inference" page), and batch transform with
``SplitType: Line`` hands each line unchanged to the model container. So the layout is ours,
for your own containers and tools: ``id``, ``path`` and ``label`` mirror the ``.lst`` columns
(so a line converts to a ``.lst`` line and back), ``label`` is the manifest's name for the
class, and ``image`` comes last so that ``head -c 200`` shows the readable fields. Keys are
written in this order; readers must not rely on order, and ignore keys they do not know.

Framing is by line only. JSON escapes ``\n`` and ``\r`` inside strings, base64 holds no line
break, and the writer also escapes U+0085, U+2028 and U+2029 (as ``\u2028`` ...), which JSON
allows raw but some line splitters (Python's ``str.splitlines``, JavaScript) take for line ends.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import numbers
import re
import string
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from imgfmt.errors import FormatError, ImgfmtError, UsageError, excerpt, not_utf8
from imgfmt.formats.base import (
    CheckContext,
    DatasetWriter,
    Deferred,
    FileWriter,
    Format,
    Item,
    Location,
    OnDamage,
    SplitSource,
    default_name,
    input_changed,
    label_class,
    with_newline,
)
from imgfmt.formats.lst import MAX_INDEX, LstEntry
from imgfmt.payloads import MXNET_READERS
from imgfmt.storage import AtomicFileWriter, AtomicOutputs, open_input

#: The content type of a JSON Lines channel or batch transform input.
CONTENT_TYPE = "application/jsonlines"

#: The usual file extension.
EXTENSION = ".jsonl"

#: Field names, in the order they are written (see the module docstring).
ID, PATH, LABEL, IMAGE = "id", "path", "label", "image"
FIELDS = (ID, PATH, LABEL, IMAGE)

#: Compact JSON, no ASCII escaping (paths stay readable), as manifest lines.
JSON_SEPARATORS = (",", ":")

#: Characters JSON may hold raw that some line splitters break lines at: escaped on output.
_LINE_SEPARATORS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}

#: A byte order mark, as some editors write at the start of a UTF-8 file.
BOM = "\ufeff"
BOM_BYTES = BOM.encode("utf-8")

#: The problem of a line holding bytes that are not UTF-8.
NOT_UTF8 = "not valid UTF-8 (save the file as UTF-8)"


#: How each line must look, for error hints.
LINE_FORMAT = 'each line is {"id":N,"path":"...","label":L,"image":"<base64>"}'


@dataclass(frozen=True)
class JsonlEntry:
    """One line: record index, labels (one, or all of a multi-label image), path and bytes."""

    index: int
    labels: tuple[float, ...]
    path: str
    image: bytes
    multi_label: bool = False
    #: ``image`` is still its base64 (a line read with ``decode="defer"``).
    encoded: bool = False

    @property
    def lst_entry(self) -> LstEntry:
        """The ``.lst`` line that lists this image."""
        return LstEntry(self.index, self.labels, self.path)


# --------------------------------------------------------------------------- writing


def _label_json(value: float) -> int | float:
    value = float(value)
    if not math.isfinite(value):
        raise UsageError(f"label {value!r} is not a finite number; JSON cannot hold it")
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def format_jsonl_line(
    index: int,
    labels: float | Sequence[float],
    path: str,
    image: bytes,
) -> str:
    """One line for an image: compact JSON, keys in :data:`FIELDS` order, ending in LF.

    A number gives a single label (``"label":3``); a sequence gives an array, whatever its
    length (``"label":[3]``), as ``pack --pack-label`` stores every label of a line.
    """
    if not 0 <= index <= MAX_INDEX:
        raise UsageError(f"id {index} is not a whole number from 0 to 2**64-1")
    if isinstance(labels, (int, float, numbers.Real)):  # numpy scalars too
        label: Any = _label_json(float(labels))
    else:
        label = [_label_json(v) for v in labels]
        if not label:
            raise UsageError(f"id {index}: no label to write", hint="give at least one label")
    obj = {
        ID: int(index),
        PATH: path,
        LABEL: label,
        IMAGE: base64.b64encode(image).decode("ascii"),
    }
    text = json.dumps(obj, ensure_ascii=False, separators=JSON_SEPARATORS)
    for char, escape in _LINE_SEPARATORS.items():
        if char in text:  # only ever inside a string: JSON's own syntax is ASCII
            text = text.replace(char, escape)
    return text + "\n"


class JsonlWriter:
    """Append image lines to an open binary stream (from ``AtomicOutputs``), UTF-8; ids must
    be unique. Closes nothing: the stream belongs to the caller."""

    def __init__(self, stream: IO[bytes], name: str = "<stream>") -> None:
        self._stream = stream
        self.name = name
        self.records_written = 0
        self.bytes_written = 0
        self._ids: set[int] = set()

    def write(self, index: int, labels: float | Sequence[float], path: str, image: bytes) -> None:
        self.write_line(format_jsonl_line(index, labels, path, image).encode("utf-8"), index)

    def write_line(self, line: bytes, index: int) -> None:
        """Write a line already made by :func:`format_jsonl_line` (and encoded), whose id is
        ``index`` (``pack`` makes lines in its workers)."""
        if index in self._ids:
            raise FormatError(
                f"id {index} is used twice",
                path=self.name,
                hint="ids (the .lst index column) must be unique",
            )
        self._stream.write(line)
        self._ids.add(index)
        self.records_written += 1
        self.bytes_written += len(line)

    def write_entry(self, entry: JsonlEntry) -> None:
        labels = entry.labels if entry.multi_label else entry.labels[0]
        self.write(entry.index, labels, entry.path, entry.image)


class JsonlFileWriter(AtomicFileWriter, JsonlWriter):
    """A ``.jsonl`` that appears at its path only when complete (never empty).

    >>> with JsonlFileWriter("train.jsonl") as out:
    ...     out.write(0, 3.0, "cat/img0.jpg", jpeg_bytes)
    """

    def __init__(self, path: str) -> None:
        self.path = path
        AtomicFileWriter.__init__(self)
        JsonlWriter.__init__(self, self._outputs.open(path, "wb"), name=path)


# --------------------------------------------------------------------------- checking

#: What a line check finds: (check, message with its hint); verify makes each a Problem.
LineProblem = tuple[str, str]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer of 309 digits or more: no float holds it
        return False


#: The base64 alphabet (RFC 4648 section 4), without the padding character.
_BASE64_ALPHABET = (string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/").encode()


def _canonical_base64(data: bytes) -> bool:
    """Whether ``data`` is base64 in its canonical form: alphabet characters, a length
    that is a multiple of 4, and at most two ``=`` at the end. Such text always decodes
    (``base64.b64decode(data, validate=True)`` accepts it); this tells so without decoding,
    5x faster than decoding (CPython decodes base64 at about 0.5 GB/s). False means: decode
    to know (``b64decode`` also accepts some padding that is not canonical)."""
    if len(data) % 4:
        return False
    rest = data.translate(None, _BASE64_ALPHABET)
    return not rest or (rest in (b"=", b"==") and data.endswith(rest))


#: The start of a line as :func:`format_jsonl_line` writes it, up to the image's base64:
#: the id (20 digits at most: a u64; a longer one is for the full parse to refuse), the
#: path as a JSON string, the label as a number or an array (each parsed by ``json.loads``,
#: so they mean what they mean in the slow path).
_CANONICAL_LINE = re.compile(
    rb'\{"id":(0|[1-9][0-9]{0,19}),"path":("(?:[^"\\]|\\.)*"),'
    rb'"label":(-?[0-9][-+0-9.eE]*|\[[^\]]*\]),"image":"'
)
_JSON_SPACE = b" \t\r\n"


def _canonical_fields(raw: bytes) -> dict[str, Any] | None:
    """A line exactly as imgfmt writes it, parsed without ``json.loads`` of the whole
    line (which spends most of its time copying the base64 into a ``str``): its fields,
    ``image`` being the base64 as ``bytes``, already known canonical and not empty.
    None for any other line, which the full parse then checks (so that every accepted line
    reads as ``json.loads`` reads it: one key of each in this order, nothing else, image
    text that can hold no quote nor escape)."""
    match = _CANONICAL_LINE.match(raw)
    if match is None:
        return None
    end = len(raw)
    while end and raw[end - 1] in _JSON_SPACE:
        end -= 1
    start = match.end()
    if end - start < 6 or raw[end - 2 : end] != b'"}':
        return None
    image = raw[start : end - 2]
    if not _canonical_base64(image):
        return None
    try:
        path, label = json.loads(match[2]), json.loads(match[3])
    except (ValueError, RecursionError):  # UnicodeDecodeError too
        return None
    return {ID: int(match[1]), PATH: path, LABEL: label, IMAGE: image}


class _LineChecker:
    """Checks lines one by one; remembers the ids seen (with their line numbers).
    ``decode``: decode each image's base64 (False: only check it, and entries carry no
    image bytes; ``"defer"``: a line as imgfmt writes it keeps its base64, ``encoded``)."""

    def __init__(self, decode: bool | str = True) -> None:
        self.ids: dict[int, int] = {}
        self.decode = decode

    def check(self, number: int, raw: str | bytes) -> tuple[JsonlEntry | None, list[LineProblem]]:
        problems: list[LineProblem] = []
        obj = _canonical_fields(raw) if isinstance(raw, bytes) else None
        if obj is None:
            obj = self._parse(raw, problems)
        if obj is None:
            return None, problems
        missing = [key for key in FIELDS if key not in obj]
        if missing:
            names = ", ".join(f'"{key}"' for key in missing)
            problems.append(("field", f"missing {names} ({LINE_FORMAT})"))
        index = self._check_id(number, obj.get(ID), problems) if ID in obj else None
        path = obj.get(PATH)
        if PATH in obj and (not isinstance(path, str) or not path.strip()):
            problems.append(("path", f'"path" must be a non-empty string, found {excerpt(path)}'))
        labels = self._check_label(obj[LABEL], problems) if LABEL in obj else None
        image = self._check_image(obj[IMAGE], problems) if IMAGE in obj else None
        if problems or index is None or labels is None or image is None:
            return None, problems
        assert isinstance(path, str)
        encoded = self.decode == DEFER and isinstance(obj[IMAGE], bytes)
        multi = isinstance(obj[LABEL], list)
        return JsonlEntry(index, labels, path, image, multi, encoded), problems

    @staticmethod
    def _parse(raw: str | bytes, problems: list[LineProblem]) -> dict[str, Any] | None:
        # Bytes (as the readers give them) go to json.loads whole, which decodes them as
        # UTF-8 in C: a separate scan for bad bytes cost more than the parse.
        if isinstance(raw, str) and not_utf8(raw):  # bytes that were not UTF-8
            problems.append(("json", NOT_UTF8))
            return None
        if not raw.strip():
            problems.append(("json", "blank line (JSON Lines holds one object on every line)"))
            return None
        try:
            obj = json.loads(raw)
        except UnicodeDecodeError:
            problems.append(("json", NOT_UTF8))
            return None
        except (ValueError, RecursionError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            problems.append(("json", f"not valid JSON: {reason} ({LINE_FORMAT})"))
            return None
        if not isinstance(obj, dict):
            problems.append(("json", f"expected a JSON object, found {excerpt(obj)}"))
            return None
        return obj

    def _check_id(self, number: int, value: Any, problems: list[LineProblem]) -> int | None:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_INDEX:
            problems.append(
                ("id", f'"id" must be a whole number from 0 to 2**64-1, found {excerpt(value)}')
            )
            return None
        if value in self.ids:
            problems.append(("id", f"id {value} already used on line {self.ids[value]}"))
            return None
        self.ids[value] = number
        return value

    @staticmethod
    def _check_label(value: Any, problems: list[LineProblem]) -> tuple[float, ...] | None:
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            problems.append(("label", '"label" is an empty array (give at least one label)'))
            return None
        if not all(_is_number(v) and _finite(v) for v in values):
            problems.append(
                (
                    "label",
                    f'"label" must be a finite number or an array of them, found {excerpt(value)}',
                )
            )
            return None
        return tuple(float(v) for v in values)

    def _check_image(self, value: Any, problems: list[LineProblem]) -> bytes | None:
        if isinstance(value, bytes):  # from _canonical_fields: valid base64, not empty
            if self.decode == DEFER:
                return value
            return binascii.a2b_base64(value) if self.decode else b""
        if not isinstance(value, str):
            problems.append(("image", f'"image" must be a base64 string, found {excerpt(value)}'))
            return None
        if not self.decode and value and value.isascii() and _canonical_base64(value.encode()):
            return b""  # valid and not empty; not decoded
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as err:
            problems.append(("image", f'"image" is not valid base64 ({err})'))
            return None
        if not data:
            problems.append(("image", '"image" is empty (0 bytes)'))
            return None
        return data


#: ``check_jsonl(..., decode=DEFER)``: leave the base64 of lines as imgfmt writes them.
DEFER = "defer"


def check_jsonl(
    lines: Iterable[str | bytes], *, decode: bool | str = True
) -> Iterator[tuple[int, JsonlEntry | None, list[LineProblem]]]:
    """Every line of JSON Lines, checked: ``(line number from 1, entry or None, problems)``,
    ``problems`` being ``(check, message)`` pairs (empty for a good line). Nothing raises,
    whatever the content. Lines are bytes (a file opened ``"rb"``: fastest), or text decoded
    with ``errors="surrogateescape"`` so that bytes that are not UTF-8 are reported.
    ``decode=False``: the same checks, but entries' ``image`` is left empty (``b""``) when
    the base64 is valid without decoding it (a check that needs no image bytes);
    ``decode=DEFER``: a line as imgfmt writes it keeps its (valid) base64 as ``image``,
    with ``encoded`` set, for ``binascii.a2b_base64`` elsewhere."""
    checker = _LineChecker(decode)
    for number, raw in enumerate(lines, start=1):
        if number == 1:
            raw = raw.removeprefix(BOM) if isinstance(raw, str) else raw.removeprefix(BOM_BYTES)
        entry, problems = checker.check(number, raw)
        yield number, entry, problems


def iter_jsonl_problems(lines: Iterable[str], name: str) -> Iterator[tuple[int, str, str]]:
    """Every problem of a JSON Lines image dataset: ``(line number from 1, check, message)``.

    ``check`` is ``json``, ``field``, ``id``, ``path``, ``label`` or ``image``; see
    :func:`check_jsonl`. ``name`` names the input; messages do not repeat it.
    """
    del name  # messages are per line; the caller names the file
    for number, _entry, problems in check_jsonl(lines, decode=False):
        for check, message in problems:
            yield number, check, message


def parse_jsonl(
    lines: Iterable[str | bytes], name: str, on_problem: Callable[[FormatError], None] | None = None
) -> Iterator[JsonlEntry]:
    """The entries of JSON Lines text, checked strictly: the first problem (see
    :func:`check_jsonl`) of a line raises ``FormatError`` naming ``name`` and the line;
    with ``on_problem``, that error is passed to it instead and the line skipped."""
    for number, entry, problems in check_jsonl(lines):
        if problems:
            _check, message = problems[0]
            error = FormatError(message, path=name, where=f"line {number}")
            if on_problem is None:
                raise error
            on_problem(error)
            continue
        assert entry is not None
        yield entry


def read_jsonl(
    path: str, on_problem: Callable[[FormatError], None] | None = None
) -> Iterator[JsonlEntry]:
    """The entries of a ``.jsonl`` image dataset, one at a time (memory stays flat); bad
    lines raise, or go to ``on_problem`` (see :func:`parse_jsonl`)."""
    with open_input(path, "rb") as handle:
        yield from parse_jsonl(handle, path, on_problem)


#: Lines looked at to tell a JSON Lines image dataset from a manifest.
SNIFF_LINES = 10


def sniff_jsonl(path: str) -> bool:
    """Whether a ``.jsonl``/``.json``/``.manifest`` file is an image dataset (lines with
    ``image`` and ``id``) rather than an augmented manifest. Looks at the first
    :data:`SNIFF_LINES` non-blank lines, so that one damaged line does not decide."""
    with open_input(path, "r", encoding="utf-8-sig", errors="replace") as handle:
        lines = (line for line in handle if line.strip())
        for _number, line in zip(range(SNIFF_LINES), lines):
            if looks_like_jsonl_dataset(line):
                return True
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(obj, dict) and ("source-ref" in obj or "source" in obj):
                return False
    return False


def looks_like_jsonl_dataset(first_line: str) -> bool:
    """Whether a line is one of this module's image lines (an object with ``image`` and
    ``id``), as opposed to a manifest line (``source-ref``) or a prediction line."""
    try:
        obj = json.loads(first_line.removeprefix(BOM))
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and IMAGE in obj and ID in obj


# --------------------------------------------------------------------------- the format


@dataclass(frozen=True)
class JsonLines(Format):
    """JSON Lines image datasets: one JSON object a line, the image base64-encoded."""

    name = "jsonlines"
    extensions = (EXTENSION,)
    summary = "JSON Lines, one image a line (base64), for SageMaker batch transform"
    readers = MXNET_READERS

    def sniff(self, path: str) -> bool:
        return sniff_jsonl(path)

    def check(self, path: str, ctx: CheckContext) -> None:
        """Every line's JSON, fields, unique ids and base64; with ``decode``, every image
        decoded (by workers, in the same pass: the check already holds its bytes)."""
        try:
            handle = open_input(path, "rb")
        except ImgfmtError as err:
            ctx.add(self.problem(path, "input", "", err.reason))
            return

        def decode_failed(line_no: int, reason: str) -> None:
            ctx.add(self.problem(path, "decode", f"line {line_no}", reason, line=line_no))

        decoder = ctx.decoder(self.readers, decode_failed) if ctx.decode else None
        with handle, decoder or contextlib.nullcontext():
            for line_no, entry, problems in check_jsonl(handle, decode=decoder is not None):
                ctx.checked["jsonl_lines"] += 1
                where = f"line {line_no}"
                for check, message in problems:
                    ctx.add(self.problem(path, check, where, message, line=line_no))
                if decoder is not None and entry is not None:
                    ctx.checked["images_decoded"] += 1
                    decoder.submit(line_no, where, entry.image)
            if decoder is not None:
                decoder.finish()
        if ctx.checked["jsonl_lines"] == 0:
            ctx.add(self.problem(path, "jsonl", "", "no lines: the dataset is empty"))

    def split_source(self, path: str, label_attribute: str | None = None) -> SplitSource:
        """Each line's class from its labels (first pass; lines are not kept, they hold
        whole images); the copy streams the lines again, byte for byte."""
        self._no_label_attribute(label_attribute)
        return _JsonlSplit(path)

    def read(self, path: str, on_damage: OnDamage) -> Iterator[Item]:
        for item, _deferred in self._read(path, on_damage, True):
            yield item

    def read_deferred(
        self, path: str, on_damage: OnDamage
    ) -> Iterator[tuple[Item, Deferred | None]] | None:
        """Lines as imgfmt writes them keep their base64, to be decoded in workers (CPython
        decodes base64 at about 0.5 GB/s, one core); other lines come decoded."""
        return self._read(path, on_damage, DEFER)

    def _read(
        self, path: str, on_damage: OnDamage, decode: bool | str
    ) -> Iterator[tuple[Item, Deferred | None]]:
        from imgfmt.images import sniff_extension

        with open_input(path, "rb") as handle:
            for number, entry, problems in check_jsonl(handle, decode=decode):
                if problems:
                    _check, message = problems[0]
                    on_damage(FormatError(message, path=path, where=f"line {number}"))
                    continue
                assert entry is not None
                where = Location(line=number)
                labels, multi = entry.labels, entry.multi_label
                if not entry.encoded:
                    yield Item(entry.index, labels, entry.image, entry.path, where, multi), None
                    continue
                # 44 characters of base64 are the image's first 33 bytes: its extension.
                head = binascii.a2b_base64(entry.image[:44])
                deferred = Deferred(entry.image, sniff_extension(head))
                yield Item(entry.index, labels, b"", entry.path, where, multi), deferred

    def finish_image(self, data: Any) -> bytes:
        return binascii.a2b_base64(data)

    def encode(self, item: Item, notes: list[str] | None = None) -> bytes:
        path = item.path if item.path is not None else default_name(item)
        return format_jsonl_line(item.index, item.label, path, item.image).encode("utf-8")

    def writer(self, path: str, outputs: AtomicOutputs) -> DatasetWriter:
        lines = JsonlWriter(outputs.open(path, "wb"), name=path)
        return FileWriter(path, lines, lambda payload, item: lines.write_line(payload, item.index))


class _JsonlSplit(SplitSource):
    def __init__(self, path: str) -> None:
        self.path = path
        with open_input(path, "r", encoding="utf-8-sig", errors="surrogateescape") as handle:
            self.classes = [label_class(entry.labels) for entry in parse_jsonl(handle, path)]

    def copy(
        self,
        assignment: list[int],
        outputs: list[str],
        group: AtomicOutputs,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[int]:
        handles = [group.open(path, "wb") for path in outputs]
        written = [0] * len(outputs)
        number = 0
        with open_input(self.path, "rb") as stream:
            for line in stream:
                if number == 0 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                if not line.strip():
                    continue
                if number >= len(assignment):
                    raise input_changed(self.path)
                split = assignment[number]
                handles[split].write(with_newline(line))
                written[split] += 1
                number += 1
        return written


__all__ = [
    "JsonLines",
    "CONTENT_TYPE",
    "EXTENSION",
    "FIELDS",
    "JsonlEntry",
    "JsonlFileWriter",
    "JsonlWriter",
    "check_jsonl",
    "format_jsonl_line",
    "iter_jsonl_problems",
    "looks_like_jsonl_dataset",
    "sniff_jsonl",
    "parse_jsonl",
    "read_jsonl",
]
