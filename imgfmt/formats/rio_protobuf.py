"""SageMaker RecordIO-protobuf (``application/x-recordio-protobuf``): images as dense tensors.

The format SageMaker's built-in algorithms (linear learner, k-NN, k-means, PCA, ...) read,
as the SageMaker Python SDK's ``write_numpy_to_dense_tensor`` (``sagemaker.amazon.common``)
writes it: a RecordIO file whose every payload is one serialized ``aialgs.data.Record``
(schema: ``imgfmt/proto/record.proto``, the SDK's own, compiled with protoc)::

    Record.features["values"].float32_tensor.values = the pixels, float32
    Record.features["values"].float32_tensor.shape  = [H, W] (grayscale) or [H, W, 3] (colour)
    Record.label["values"].float32_tensor.values    = [label]   (every label of a multi-label line)

Pixels are the decoded image resized to exactly ``--size WxH`` (aspect ratio not kept, as
MNIST-style data wants), upright by its EXIF orientation, grayscale (``--color 0``, one
channel) or RGB (``--color 1``), flattened row by row, channels last: the order of
``numpy.asarray(image).ravel()``, so ``values.reshape(shape)`` is the image again. Values are
the 8-bit intensities 0-255 as floats, not scaled, so the records hold the pixels losslessly
(the algorithms normalise: linear learner's ``normalize_data`` defaults to true).

The shape is the one field the SDK does not write (its dense writer stores bare vectors); the
schema defines it for exactly this ("optional shape which will allow the vector to represent a
matrix ... n-dimensional tensors"), readers that do not look at it still see the same vector,
and it lets ``unpack`` turn records back into images. :func:`write_dense_matrix` writes with
no shape, byte for byte what ``write_numpy_to_dense_tensor`` writes for float32 arrays.

Framing: the SDK's, not dmlc's. ``sagemaker.amazon.common._write_recordio`` writes magic,
length, payload and zero padding, and never splits a payload where it holds the magic (dmlc's
writer does, with continuation flags). We write exactly that, because the SDK's reader,
``read_recordio``, takes the whole length word as the length: it cannot read a record dmlc
has split. dmlc's sequential reader reads both (it follows the length and never scans the
payload); only dmlc's file splitter (a reader started at an arbitrary offset, e.g. one part of
a file read by several workers) scans for the magic and could take an aligned magic inside an
unsplit payload for a record head. A pixel record can never hold one: its floats are whole
numbers 0-255 whose low two bytes are zero and whose top byte is 0x00 or 0x3f-0x43, never the
magic's 0xce, and its protobuf tags and lengths cannot spell 0a 23 d7 ce (a property test
checks random records). For arbitrary arrays the writer logs a warning when a payload does.

Reading accepts both framings (``imgfmt.formats.recordio.read_record`` joins dmlc's pieces and reads
an unsplit record by its length), any of the schema's tensor types (float32, float64, int32;
values come back in their own dtype), sparse tensors (densified with their shape), and
records without a label or without a shape.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any

from imgfmt import images, storage
from imgfmt.errors import FormatError, ImageError, ImgfmtError, UsageError
from imgfmt.formats.base import (
    CheckContext,
    DatasetWriter,
    Deferred,
    FileWriter,
    Format,
    IdFilter,
    IdSelection,
    Item,
    Location,
    OnDamage,
    SplitSource,
    input_changed,
    label_class,
)
from imgfmt.formats.recordio import (
    MAGIC_BYTES,
    MAX_PAYLOAD,
    Record,
    RecordReader,
    aligned_magic_offset,
    read_record,
)
from imgfmt.storage import AtomicFileWriter, AtomicOutputs, open_input, read_range

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

#: The content type of a RecordIO-protobuf channel.
CONTENT_TYPE = "application/x-recordio-protobuf"

#: The feature and label name the SDK and the built-in algorithms use for a vector.
VALUES_KEY = "values"

#: ``--color`` values this format accepts: a fixed channel count per dataset.
COLORS = {0: 1, 1: 3}  # --color -> channels

#: The ``Value`` oneof fields that hold tensors, and the numpy dtype of their values.
TENSOR_DTYPES = {"float32_tensor": "float32", "float64_tensor": "float64", "int32_tensor": "int32"}

_SIZE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


def _record_class() -> Any:
    # Imported lazily: protobuf is needed only by the commands that use this format.
    from imgfmt.proto.record_pb2 import Record

    return Record


@dataclass(frozen=True)
class DenseRecord:
    """One record read back: its number (0-based), byte offset, flat values, shape, labels.

    ``values`` keeps the tensor's dtype (float32 for what imgfmt and the SDK write);
    ``shape`` is None when the record has none (the SDK's dense writer sets none).
    """

    number: int
    offset: int
    values: np.ndarray
    shape: tuple[int, ...] | None
    labels: tuple[float, ...]

    @property
    def array(self) -> np.ndarray:
        """The values in their shape (flat when the record has none)."""
        return self.values.reshape(self.shape) if self.shape else self.values


# --------------------------------------------------------------------------- encoding


def encode_dense(
    values: Any,
    labels: float | Sequence[float] | None = None,
    shape: Sequence[int] | None = None,
) -> bytes:
    """One ``Record`` payload: ``values`` (any array-like, flattened, stored as float32),
    ``labels`` as a float32 label tensor (none when None), ``shape`` if given."""
    import numpy as np

    flat = np.asarray(values, dtype=np.float32).ravel()
    if shape is not None:
        dims = [int(d) for d in shape]
        if any(d < 0 for d in dims) or math.prod(dims) != flat.size:
            raise UsageError(f"shape {dims} does not hold {flat.size} values")
    record = _record_class()()
    tensor = record.features[VALUES_KEY].float32_tensor
    tensor.values.extend(flat.tolist())
    if shape is not None:
        tensor.shape.extend(dims)
    if labels is not None:
        label_values = [labels] if isinstance(labels, (int, float)) else list(labels)
        label_array = np.asarray(label_values, dtype=np.float32)
        record.label[VALUES_KEY].float32_tensor.values.extend(label_array.tolist())
    payload: bytes = record.SerializeToString()
    return payload


def frame(payload: bytes) -> bytes:
    """The record's bytes in the SDK's framing: magic, length, payload, zero padding to 4."""
    size = len(payload)
    if size > MAX_PAYLOAD:
        raise ImgfmtError(
            f"record payload is {size} bytes; RecordIO holds at most {MAX_PAYLOAD} (2**29 - 1)",
            hint="use a smaller --size",
        )
    return MAGIC_BYTES + size.to_bytes(4, "little") + payload + b"\0" * (-size % 4)


# --------------------------------------------------------------------------- decoding


def _tensor_values(value: Any, what: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """The dense values and shape of a ``Value``; FormatError for anything else."""
    import numpy as np

    kind = value.WhichOneof("value")
    if kind not in TENSOR_DTYPES:
        found = f"a {kind} value" if kind else "an empty value"
        raise FormatError(f"{what} is {found}, not a tensor")
    tensor = getattr(value, kind)
    values = np.asarray(tensor.values, dtype=TENSOR_DTYPES[kind])
    shape = tuple(int(d) for d in tensor.shape) or None
    if len(tensor.keys) or (shape is not None and values.size == 0):
        # Sparse: keys hold the flat positions of the values. An all-zero sparse row has
        # neither keys nor values, only its shape.
        if shape is None:
            raise FormatError(f"{what} is a sparse tensor without a shape")
        if len(tensor.keys) != values.size:
            raise FormatError(
                f"{what} is a sparse tensor with {len(tensor.keys)} keys but {values.size} values"
            )
        dense = np.zeros(math.prod(shape), dtype=values.dtype)
        keys = np.asarray(tensor.keys, dtype=np.uint64)
        if keys.size and int(keys.max()) >= dense.size:
            raise FormatError(f"{what}: sparse key {int(keys.max())} is outside shape {shape}")
        dense[keys.astype(np.int64)] = values
        return dense, shape
    if shape is not None and math.prod(shape) != values.size:
        raise FormatError(f"{what} has shape {list(shape)} but {values.size} values")
    return values, shape


def decode_dense(payload: bytes) -> tuple[np.ndarray, tuple[int, ...] | None, tuple[float, ...]]:
    """``(values, shape, labels)`` of one ``Record`` payload; ``FormatError`` (without a
    location: the caller adds it) when it is not a record with a ``values`` tensor."""
    from google.protobuf.message import DecodeError

    record = _record_class()()
    try:
        record.ParseFromString(payload)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise FormatError(
            f"not an aialgs.data.Record protobuf ({err})",
            hint="not a RecordIO-protobuf file, or damaged here",
        ) from err
    if VALUES_KEY not in record.features:
        names = ", ".join(sorted(record.features)) or "none"
        raise FormatError(f'no "values" feature (features: {names})')
    values, shape = _tensor_values(record.features[VALUES_KEY], 'feature "values"')
    labels: tuple[float, ...] = ()
    if VALUES_KEY in record.label:
        label_values, _shape = _tensor_values(record.label[VALUES_KEY], 'label "values"')
        labels = tuple(float(v) for v in label_values)
    return values, shape, labels


def is_rio_protobuf(payload: bytes) -> bool:
    """Whether a RecordIO payload is a protobuf ``Record`` with a ``values`` feature (and so
    not an MXNet image record, whose 24-byte header never parses as one)."""
    try:
        decode_dense(payload)
    except FormatError:
        return False
    return True


#: Bytes read to recognise the format (one small ranged GET on S3).
SNIFF_BYTES = 1 << 16

#: How a serialized ``Record`` whose first feature is ``values`` continues after its first
#: tag and length: the map entry's key (field 1, 6 bytes, "values"), then its value's tag.
_VALUES_ENTRY = b"\x0a\x06" + VALUES_KEY.encode() + b"\x12"


#: Records of the head looked at: one damaged record must not hide the format of the file.
SNIFF_RECORDS = 8


def sniff(path: str) -> bool:
    """Whether a RecordIO file holds protobuf ``Record``s (False for an empty file, an MXNet
    image ``.rec``, or one with no recognisable record at its start).

    Reads only the first :data:`SNIFF_BYTES`: up to :data:`SNIFF_RECORDS` records that fit
    are parsed, and any one that is a ``Record``, or starts like one, decides; a first record
    longer than that is judged by its first bytes (a ``Record`` starts with its ``values``
    feature, as the SDK and imgfmt write it; an MXNet record starts with its image header).
    """
    head = read_range(path, 0, SNIFF_BYTES)
    stream = io.BytesIO(head)
    offset = 0
    for number in range(SNIFF_RECORDS):
        try:
            result = read_record(stream, offset, number, path)
        except FormatError:
            break  # runs past the head, or damaged: judged by its first bytes below
        if result is None:
            return False
        payload, offset = result
        if _starts_like_a_record(payload) or is_rio_protobuf(payload):
            return True
    return _starts_like_a_record(head[offset + 8 :] if offset else head[8:])


def _starts_like_a_record(payload: bytes) -> bool:
    if payload[:1] != b"\x0a":  # field 1 (features), length-delimited
        return False
    end = 1
    while end < 6 and end < len(payload) and payload[end] & 0x80:  # the entry's varint length
        end += 1
    return payload[end + 1 : end + 1 + len(_VALUES_ENTRY)] == _VALUES_ENTRY


# --------------------------------------------------------------------------- writing


class RioProtobufWriter:
    """Append records to a binary stream in the SDK's framing. Closes nothing it did not open.

    ``write`` encodes one image (or vector); ``write_payload`` copies a payload read from
    another file unchanged (for ``split``).
    """

    def __init__(self, stream: IO[bytes], name: str = "<stream>") -> None:
        self._stream = stream
        self.name = name
        self.records_written = 0
        self.bytes_written = 0
        self._warned = False

    def write(
        self,
        values: Any,
        labels: float | Sequence[float] | None = None,
        shape: Sequence[int] | None = None,
    ) -> int:
        """Write one record; returns the byte offset of its head."""
        return self.write_payload(encode_dense(values, labels, shape))

    def write_payload(self, payload: bytes) -> int:
        offset = self.bytes_written
        if not self._warned and aligned_magic_offset(payload) is not None:
            self._warned = True
            log.warning(
                "%s: record %d holds the RecordIO magic at a 4-byte boundary; SageMaker and "
                "dmlc's sequential readers read it, a dmlc reader that starts mid-file may not",
                self.name,
                self.records_written,
            )
        data = frame(payload)
        self._stream.write(data)
        self.bytes_written += len(data)
        self.records_written += 1
        return offset


class RioProtobufFileWriter(AtomicFileWriter, RioProtobufWriter):
    """A RecordIO-protobuf file that appears at its path only when complete (never empty).

    >>> with RioProtobufFileWriter("train.rec") as out:
    ...     out.write(pixels, label, shape=pixels.shape)
    """

    def __init__(self, path: str) -> None:
        self.path = path
        AtomicFileWriter.__init__(self)
        RioProtobufWriter.__init__(self, self._outputs.open(path, "wb"), name=path)


def write_dense_matrix(stream: IO[bytes], array: Any, labels: Any = None) -> int:
    """Each row of a 2-D array as one record without a shape, labels[i] as its label: the
    bytes ``write_numpy_to_dense_tensor`` writes for a float32 array and float32 labels.
    Returns the number of records."""
    import numpy as np

    matrix = np.asarray(array, dtype=np.float32)
    if matrix.ndim != 2:
        raise UsageError(f"expected a 2-D array (one row per record), got {matrix.ndim}-D")
    label_vector = None if labels is None else np.asarray(labels, dtype=np.float32)
    if label_vector is not None and label_vector.shape != (matrix.shape[0],):
        raise UsageError(
            f"{label_vector.shape} labels for {matrix.shape[0]} rows: give one label per row"
        )
    writer = RioProtobufWriter(stream)
    for row_number, row in enumerate(matrix):
        label = None if label_vector is None else float(label_vector[row_number])
        writer.write(row, label)
    return writer.records_written


# --------------------------------------------------------------------------- reading


def iter_records(path: str) -> Iterator[DenseRecord]:
    """Every record of a RecordIO-protobuf file, in order, one at a time.

    Framing damage and records that are not ``Record`` protobufs with a ``values`` tensor
    raise ``FormatError`` naming the file, the record and its byte offset.
    """
    for number, offset, payload in iter_payloads(path):
        try:
            values, shape, labels = decode_dense(payload)
        except FormatError as err:
            err.path, err.where = path, f"record {number} at byte {offset}"
            raise
        yield DenseRecord(number, offset, values, shape, labels)


def iter_payloads(path: str) -> Iterator[tuple[int, int, bytes]]:
    """``(number, offset, payload)`` of every record, undecoded (for copying unchanged)."""
    with open_input(path, "rb") as stream:
        size = storage.input_size(stream)
        offset, number = 0, 0
        while True:
            result = read_record(stream, offset, number, path, size)
            if result is None:
                return
            payload, next_offset = result
            yield number, offset, payload
            offset, number = next_offset, number + 1


def payload_problems(payload: bytes, feature_size: int | None = None) -> list[tuple[str, str]]:
    """What is wrong with one payload, as ``(check, message)`` pairs: ``protobuf`` (not a
    ``Record`` with a ``values`` tensor), ``values`` (not finite, or a size other than
    ``feature_size``, the size of the file's first record), ``label`` (not finite)."""
    return _check_payload(payload, feature_size)[0]


def _check_payload(
    payload: bytes, feature_size: int | None
) -> tuple[list[tuple[str, str]], int | None]:
    """:func:`payload_problems`, and the number of feature values (None: not a record)."""
    import numpy as np

    try:
        values, _shape, labels = decode_dense(payload)
    except FormatError as err:
        return [("protobuf", str(err))], None
    problems: list[tuple[str, str]] = []
    if values.size and not np.isfinite(values).all():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        problems.append(("values", f"{bad} of {values.size} feature values are not finite"))
    if feature_size is not None and values.size != feature_size:
        problems.append(
            ("values", f"{values.size} feature values, but the first record has {feature_size}")
        )
    if not all(math.isfinite(label) for label in labels):
        problems.append(("label", f"label {list(labels)} is not finite"))
    return problems, values.size


def iter_problems(
    path: str, on_record: Callable[[], None] | None = None
) -> Iterator[tuple[str, int | None, str, str]]:
    """Every problem of a RecordIO-protobuf file: ``(where, offset, check, message)``, where
    being ``record N at byte B`` and offset that B. Framing damage
    (check ``framing``) does not stop it: reading resumes at the next record head. Nothing
    raises but a ``StorageError`` for a file that cannot be opened. ``on_record`` is called
    for each intact record read."""
    damage: list[tuple[str, int | None, str, str]] = []

    def damaged(err: FormatError) -> None:
        damage.append((err.where or "", err.offset, "framing", err.reason))

    feature_size: int | None = None
    for record in RecordReader(path, use_index=False).salvage(damaged):
        yield from damage
        damage.clear()
        if on_record is not None:
            on_record()
        where = f"record {record.number} at byte {record.offset}"
        problems, size = _check_payload(record.payload, feature_size)
        for check, message in problems:
            yield where, record.offset, check, message
        if feature_size is None:
            feature_size = size  # the first record's size is the one all others must have
    yield from damage


# --------------------------------------------------------------------------- images


def parse_size(text: str) -> tuple[int, int]:
    """``28x28`` -> ``(width, height)``, both positive."""
    match = _SIZE.fullmatch(text)
    width, height = (int(match[1]), int(match[2])) if match else (0, 0)
    if width < 1 or height < 1:
        raise UsageError(f"cannot read size {text!r}", hint="write it as WIDTHxHEIGHT, e.g. 28x28")
    return width, height


def image_pixels(
    data: bytes,
    size: tuple[int, int],
    color: int = 0,
    name: str = "<image>",
    *,
    max_pixels: int | None = None,
    notes: list[str] | None = None,
) -> np.ndarray:
    """An image file's bytes as the uint8 pixel array a record stores: ``(H, W)`` for
    ``color=0``, ``(H, W, 3)`` for ``color=1``; ``size`` is ``(width, height)``.

    Decoding (EXIF orientation, CMYK / palette / alpha / 16-bit conversion, the decompression
    bomb limit, reduced-size JPEG decoding) is ``imgfmt.images.process_image``'s, so a bad image
    is the same ``ImageError`` as in ``pack``. An image whose shorter edge exceeds ``max(size)``
    is first shrunk there to a shorter edge of ``max(size)`` (fast for large photos); the
    result, kept losslessly (PNG), is then resized to exactly ``size`` with Pillow's bilinear
    filter. An image already at ``size`` keeps its pixels exactly; none is resized twice.
    ``notes`` collects what the decoders said (``imgfmt.decoding.captured``).
    """
    import numpy as np
    from PIL import Image

    from imgfmt import decoding, images

    if color not in COLORS:
        raise UsageError(
            f"color must be 0 (grayscale) or 1 (RGB) for recordio-protobuf, not {color}",
            hint="every record needs the same number of channels",
        )
    width, height = size
    if not data:
        raise ImageError("empty file (0 bytes)", kind=decoding.NOT_IMAGE, path=name)
    # Only the header is read here; process_image below notes what repair_png drops.
    header = decoding.repair_png(data, name, None)
    with (
        decoding.guarded(name, notes, images.format_name(data)),
        images._open(header, name) as probe,
    ):
        shorter = min(probe.size)
    kwargs: dict[str, Any] = {} if max_pixels is None else {"max_pixels": max_pixels}
    options = images.ImageOptions(
        resize=max(size) if shorter > max(size) else 0,
        color=color,
        encoding=images.PNG_ENCODING,
        quality=0,  # the PNG is only handed on: no time spent compressing
        **kwargs,
    )
    png = images.process_image(data, options, name, notes)
    with decoding.guarded(name), Image.open(io.BytesIO(png)) as image:
        # Our own PNG, at most max(size) on its shorter edge: only memory trouble fails here.
        image.load()
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def pixels_to_png(values: np.ndarray, shape: Sequence[int] | None = None) -> bytes:
    """A record's values as a PNG: 2-D (grayscale) or ``(H, W, 1|3|4)``.

    ``shape`` overrides the record's; values are rounded and clipped to 0-255. Values that
    all lie within 0-1, not all whole, are taken as intensities scaled to 0-1 (as in
    SageMaker's MNIST examples) and multiplied by 255 first.
    """
    return png_bytes(pixels_as_uint8(values, shape))


def pixels_as_uint8(values: np.ndarray, shape: Sequence[int] | None = None) -> np.ndarray:
    """The pixels :func:`pixels_to_png` encodes: the values checked, shaped, scaled and
    rounded to ``uint8`` (``UsageError`` when they are no image)."""
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    if shape is not None:
        if math.prod(shape) != array.size:
            raise UsageError(f"shape {list(shape)} does not hold {array.size} values")
        array = array.reshape(tuple(shape))
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise UsageError(
            f"values of shape {list(array.shape)} are not an image",
            hint="give the size (HxW grayscale, HxWx3 colour)",
        )
    finite = array[np.isfinite(array)]
    scaled_to_one = finite.size and finite.min() >= 0 and finite.max() <= 1
    if scaled_to_one and not np.all(finite == finite.round()):
        array = array * 255
    return np.nan_to_num(array, nan=0).round().clip(0, 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """``uint8`` pixels (from :func:`pixels_as_uint8`) as a PNG file."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def guess_shape(count: int) -> tuple[int, ...] | None:
    """A square image shape for ``count`` values with no shape of their own:
    ``(n, n)`` if ``count`` is a square, else ``(n, n, 3)`` if ``count / 3`` is; else None."""
    side = math.isqrt(count)
    if side * side == count and count:
        return (side, side)
    if count % 3 == 0:
        side = math.isqrt(count // 3)
        if side * side * 3 == count and count:
            return (side, side, 3)
    return None


# --------------------------------------------------------------------------- the format


@dataclass(frozen=True)
class RecordIOProtobuf(Format):
    """SageMaker RecordIO-protobuf: each image decoded and resized to ``size`` (width,
    height), its pixels one dense float32 tensor, ``color`` 0 (gray) or 1 (RGB)."""

    size: tuple[int, int] | None = None
    #: 1 RGB (the default, as pack's --color), 0 gray.
    color: int = 1
    max_pixels: int | None = None

    name = "recordio-protobuf"
    extensions = (".rec",)
    summary = "SageMaker RecordIO-protobuf: decoded pixels as dense float32 tensors"
    decodes = True
    float32_labels = True
    needs_list = True
    keeps_unlabeled = True

    def with_image_options(self, options: images.ImageOptions) -> RecordIOProtobuf:
        """Takes ``color`` and ``max_pixels``; the other options do not apply (every image
        is decoded and resized to ``size``)."""
        defaults = images.ImageOptions()
        given = [
            name
            for name in ("pass_through", "resize", "center_crop", "encoding")
            if getattr(options, name) != getattr(defaults, name)
        ]
        if options.quality != images.DEFAULT_QUALITY[options.encoding]:
            given.append("quality")
        if given:
            names = ", ".join(f"`{name}`" for name in given)
            raise UsageError(
                f"{names} {'does' if len(given) == 1 else 'do'} not apply to recordio-protobuf, "
                "which stores decoded pixels resized to `size`"
            )
        return dataclasses.replace(self, color=options.color, max_pixels=options.max_pixels)

    def check_output(self, path: str) -> None:
        super().check_output(path)
        if self.size is None:
            raise UsageError("recordio-protobuf needs `size`, the pixel size WxH, e.g. 28x28")
        if self.color not in COLORS:
            raise UsageError(
                f"recordio-protobuf needs `color` 0 (grayscale) or 1 (RGB), not {self.color}",
                hint="every record needs the same number of channels",
            )

    def sniff(self, path: str) -> bool:
        return sniff(path)

    def check(self, path: str, ctx: CheckContext) -> None:
        """Framing, each ``Record``, finite values and labels, the same feature count in every
        record."""

        def counted() -> None:
            ctx.checked["records"] += 1

        try:
            for where, offset, check, message in iter_problems(path, counted):
                ctx.add(self.problem(path, check, where, message, offset=offset))
        except ImgfmtError as err:
            ctx.add(self.problem(path, "input", "", err.reason))
            return
        if ctx.checked["records"] == 0:
            ctx.add(self.problem(path, "framing", "", "no records: the file is empty"))

    def split_source(self, path: str, label_attribute: str | None = None) -> SplitSource:
        """Each record's class from its labels (``unlabeled`` for none); the copy moves the
        payloads unchanged, in the SDK's framing, and writes beside each output the lines of
        the list beside the input for its records (the map from record to image that
        ``imgfmt predictions`` reads), when there is one."""
        self._no_label_attribute(label_attribute)
        return _ProtobufSplit(path)

    def read(self, path: str, on_damage: OnDamage) -> Iterator[Item]:
        """Each record's pixels as a PNG (its id: the record number); a record of values
        that are no image (a vector, an odd shape) ends the read with ``FormatError``."""
        for record in RecordReader(path, use_index=False).salvage(on_damage):
            found = _record_pixels(record, path, on_damage)
            if found is not None:
                item, pixels = found
                yield replace(item, image=png_bytes(pixels))

    def read_deferred(
        self, path: str, on_damage: OnDamage
    ) -> Iterator[tuple[Item, Deferred | None]] | None:
        """The PNG encoding (most of a read: 15 ms for 224x224x3) left to workers."""
        return self._deferred(path, on_damage)

    @staticmethod
    def _deferred(path: str, on_damage: OnDamage) -> Iterator[tuple[Item, Deferred | None]]:
        for record in RecordReader(path, use_index=False).salvage(on_damage):
            found = _record_pixels(record, path, on_damage)
            if found is not None:
                item, pixels = found
                yield item, Deferred(pixels, ".png")

    def finish_image(self, data: Any) -> bytes:
        return png_bytes(data)

    def read_ids(
        self, path: str, ids: IdSelection | Iterable[int], on_damage: OnDamage
    ) -> Iterator[Item]:
        """The records selected by number, in file order: only those are decoded, and the
        read stops after the last number the selection can hold."""
        wanted = IdFilter(IdSelection.of(ids), path, on_damage)
        last = wanted.selection.last
        records = RecordReader(path, use_index=False).salvage(wanted.on_damage)
        with contextlib.closing(records):  # a read stopped early closes the file now
            for record in records:
                if last is None or record.number > last:
                    break
                if record.number not in wanted.selection:
                    continue
                found = _record_pixels(record, path, wanted.on_damage)
                if found is not None and wanted.keep(found[0].index):
                    yield replace(found[0], image=png_bytes(found[1]))
        wanted.finish()

    def encode(self, item: Item, notes: list[str] | None = None) -> bytes:
        if self.size is None:
            raise UsageError("recordio-protobuf needs `size`, the pixel size WxH, e.g. 28x28")
        pixels = image_pixels(
            item.image, self.size, self.color, item.path or str(item.index),
            max_pixels=self.max_pixels, notes=notes,
        )  # fmt: skip
        labels = item.labels if item.labels else None
        payload = encode_dense(pixels, labels, shape=pixels.shape)
        if len(payload) > MAX_PAYLOAD:
            raise ImageError(
                f"{len(payload)} bytes is more than one record can hold (2**29 - 1)",
                kind="too-large",
            )
        return payload

    def writer(self, path: str, outputs: AtomicOutputs) -> DatasetWriter:
        records = RioProtobufWriter(outputs.open(path, "wb"), name=path)
        # Its records hold no id: the payload alone is written.
        return FileWriter(path, records, lambda payload, _item: records.write_payload(payload))


def _record_pixels(
    record: Record, path: str, on_damage: OnDamage
) -> tuple[Item, np.ndarray] | None:
    """The item of one record (its ``image`` empty) and its pixels, ``uint8`` for a PNG;
    None (reported to ``on_damage``) when it is damaged. ``FormatError`` for values that
    are no image: the file holds none."""
    where = Location(record=record.number, offset=record.offset)
    try:
        values, shape, labels = decode_dense(record.payload)
    except FormatError as err:
        err.path, err.where = path, str(where)
        on_damage(err)
        return None
    shape = shape or guess_shape(values.size)
    hint = "this file holds vectors or tensors, not images; nothing to read as images"
    if shape is None:
        raise FormatError(
            f"{values.size} values with no shape are not a square image",
            path=path,
            where=str(where),
            hint=hint,
        )
    try:
        pixels = pixels_as_uint8(values, shape)
    except UsageError as err:
        raise FormatError(err.message, path=path, where=str(where), hint=hint) from err
    return Item(record.number, labels, b"", None, where), pixels


class _ProtobufSplit(SplitSource):
    def __init__(self, path: str) -> None:
        from imgfmt.formats import lst

        self.path = path
        self.classes, self.offsets = [], []
        for record in iter_records(path):
            self.classes.append(label_class(record.labels))
            self.offsets.append(record.offset)
        beside = storage.sibling(path, ".lst")
        self.entries: list[lst.LstEntry] | None = None
        if storage.is_file(beside):
            entries = list(lst.read_lst(beside))
            if len(entries) == len(self.classes):
                self.entries = entries
            else:
                log.warning(
                    "%s has %d lines for %d records: the split outputs get no list",
                    beside,
                    len(entries),
                    len(self.classes),
                )

    def companions(self, output: str) -> list[str]:
        return [storage.sibling(output, ".lst")] if self.entries is not None else []

    def copy(
        self,
        assignment: list[int],
        outputs: list[str],
        group: AtomicOutputs,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[int]:
        from imgfmt.formats import lst

        writers = [RioProtobufWriter(group.open(path, "wb"), name=path) for path in outputs]
        for number, offset, payload in iter_payloads(self.path):
            if number >= len(assignment) or offset != self.offsets[number]:
                raise input_changed(self.path)
            writers[assignment[number]].write_payload(payload)
            if on_progress:
                on_progress(1)
        if self.entries is not None:
            for split, path in enumerate(outputs):
                chosen = (e for e, s in zip(self.entries, assignment) if s == split)
                lst.write_entries(group.open(storage.sibling(path, ".lst"), "w"), chosen)
        return [writer.records_written for writer in writers]


__all__ = [
    "RecordIOProtobuf",
    "CONTENT_TYPE",
    "DenseRecord",
    "RioProtobufFileWriter",
    "RioProtobufWriter",
    "aligned_magic_offset",
    "decode_dense",
    "encode_dense",
    "frame",
    "guess_shape",
    "image_pixels",
    "is_rio_protobuf",
    "iter_payloads",
    "iter_problems",
    "iter_records",
    "parse_size",
    "payload_problems",
    "pixels_as_uint8",
    "pixels_to_png",
    "png_bytes",
    "sniff",
    "write_dense_matrix",
]
