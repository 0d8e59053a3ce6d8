"""Write tests/golden/protobuf/ with the SageMaker Python SDK itself (not with imgfmt).

Run it under a python that has the SDK (v2, where ``sagemaker.amazon.common`` lives) and scipy,
outside the project's venv::

    python3 -m venv /tmp/sgvenv && /tmp/sgvenv/bin/pip install "sagemaker<3" scipy
    SAGEMAKER_SUPPRESS_V2_WARNING=1 /tmp/sgvenv/bin/python scripts/make_golden_protobuf.py

Everything is deterministic: the images are drawn from a fixed 5x7 digit font, with no random
numbers, so a rerun writes the same bytes. What it writes (``expected.json`` lists each .rec's
records as the SDK's own ``read_records`` reads them back):

- ``digits/<d>/digit<d>.png``: five 28x28 grayscale digits 0-4 (8-bit PNG, a minimal encoder
  below: the SDK venv has no Pillow), the folder ``imgfmt pack`` turns into records.
- ``digits.rec``: their pixels as a float32 5x784 matrix with float32 labels 0-4, written by
  ``write_numpy_to_dense_tensor``: bare vectors, as for linear learner or k-NN.
- ``digits_shape.rec``: the same records with ``shape = [28, 28]``, built with the SDK's
  ``Record`` and framed with its ``_write_recordio``: what imgfmt writes for these images.
- ``rgb_shape.rec``: two 6x8 RGB images, ``shape = [6, 8, 3]`` (height, width, channels).
- ``float64_int_labels.rec``: a float64 matrix with int64 labels (the SDK picks float64 and
  int32 tensors for those dtypes).
- ``no_labels.rec``: float32 rows without labels.
- ``sparse.rec``: ``write_spmatrix_to_sparse_tensor`` (keys and shape).
- ``magic_inside.rec``: a record whose payload holds the RecordIO magic at a 4-byte boundary,
  which the SDK writes unescaped (one piece, no continuation flags).
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import zlib

import google.protobuf
import numpy as np
import sagemaker
import scipy.sparse
from sagemaker.amazon.common import (
    read_records,
    write_numpy_to_dense_tensor,
    write_spmatrix_to_sparse_tensor,
)
from sagemaker.amazon.record_pb2 import Record
from sagemaker.serializer_utils import _write_recordio

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "golden", "protobuf")
MAGIC = struct.pack("<I", 0xCED7230A)

# A 5x7 font for 0-4: one string per row, "#" on.
FONT = {
    0: [" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "],
    1: ["  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "],
    2: [" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"],
    3: ["#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "],
    4: ["   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "],
}


def digit(d: int) -> np.ndarray:
    """28x28 uint8: the glyph scaled 4x at (4, 0), over a faint gradient (every value 0-255
    occurs somewhere across the set, so pixel order and value mapping are both pinned)."""
    y, x = np.mgrid[0:28, 0:28]
    image = ((x * 3 + y * 5 + d * 17) % 64).astype(np.uint8)
    for row, text in enumerate(FONT[d]):
        for col, char in enumerate(text):
            if char == "#":
                top, left = row * 4, 4 + col * 4
                image[top : top + 4, left : left + 4] = 192 + (row * 5 + col + d * 7) % 64
    return image


def png(pixels: np.ndarray) -> bytes:
    """A minimal 8-bit PNG (grayscale or RGB), no filtering."""
    height, width = pixels.shape[:2]
    color_type = 0 if pixels.ndim == 2 else 2
    raw = b"".join(b"\0" + pixels[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def shaped_records(arrays: list[np.ndarray], labels: list[float]) -> bytes:
    buffer = io.BytesIO()
    record = Record()
    for array, label in zip(arrays, labels):
        record.Clear()
        tensor = record.features["values"].float32_tensor
        tensor.values.extend(array.astype(np.float32).ravel())
        tensor.shape.extend(array.shape)
        record.label["values"].float32_tensor.values.extend([np.float32(label)])
        _write_recordio(buffer, record.SerializeToString())
    return buffer.getvalue()


def matrix_records(array: np.ndarray, labels: np.ndarray | None) -> bytes:
    buffer = io.BytesIO()
    write_numpy_to_dense_tensor(buffer, array, labels)
    return buffer.getvalue()


def magic_records() -> bytes:
    """Two rows; the second holds the float whose bytes are the magic, placed where it falls
    on a 4-byte boundary of the payload."""
    magic_float = np.frombuffer(MAGIC, dtype="<f4")[0]
    for position in range(8):
        row = np.arange(8, dtype=np.float32)
        row[position] = magic_float
        data = matrix_records(np.stack([np.ones(8, np.float32), row]), np.array([0, 1], "f4"))
        second = data[data.index(MAGIC, 4) :]  # the second record's head
        payload = second[8 : 8 + struct.unpack_from("<I", second, 4)[0]]
        hit = payload.find(MAGIC)
        if hit != -1 and hit % 4 == 0:
            return data
    raise SystemExit("no position puts the magic on a 4-byte boundary")


def describe(data: bytes) -> list[dict]:
    """The records as the SDK reads them back."""
    out = []
    for record in read_records(io.BytesIO(data)):
        value = record.features["values"]
        kind = value.WhichOneof("value")
        tensor = getattr(value, kind)
        entry: dict = {
            "type": kind,
            "values": [float(v) for v in tensor.values],
            "keys": [int(k) for k in tensor.keys],
            "shape": [int(s) for s in tensor.shape],
            "labels": [],
        }
        if "values" in record.label:
            label = record.label["values"]
            entry["label_type"] = label.WhichOneof("value")
            entry["labels"] = [float(v) for v in getattr(label, entry["label_type"]).values]
        out.append(entry)
    return out


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    digits = [digit(d) for d in range(5)]
    for d, pixels in enumerate(digits):
        folder = os.path.join(OUT, "digits", str(d))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"digit{d}.png"), "wb") as handle:
            handle.write(png(pixels))
    rgb = [
        np.stack(
            [(np.arange(48).reshape(6, 8) * (3 + c) + 40 * c + 97 * i) % 256 for c in range(3)],
            axis=2,
        ).astype(np.uint8)
        for i in range(2)
    ]
    for i, pixels in enumerate(rgb):
        with open(os.path.join(OUT, f"rgb{i}.png"), "wb") as handle:
            handle.write(png(pixels))
    matrix = np.stack([d.ravel() for d in digits]).astype(np.float32)
    steps = np.linspace(-2.5, 2.5, 12)
    cases = {
        "digits.rec": matrix_records(matrix, np.arange(5, dtype=np.float32)),
        "digits_shape.rec": shaped_records(digits, [0, 1, 2, 3, 4]),
        "rgb_shape.rec": shaped_records(rgb, [7, 2]),
        "float64_int_labels.rec": matrix_records(
            np.stack([steps, steps**2, -steps]).astype(np.float64), np.array([3, 1, 2], dtype=int)
        ),
        "no_labels.rec": matrix_records(np.eye(3, 5, dtype=np.float32) * 0.5, None),
        "magic_inside.rec": magic_records(),
    }
    sparse = io.BytesIO()
    write_spmatrix_to_sparse_tensor(
        sparse,
        scipy.sparse.csr_matrix(np.array([[0, 1.5, 0, 0, 2], [0, 0, 0, 0, 0], [4, 0, 0, 0, 0]])),
        np.array([1.0, 0.0, 1.0]),
    )
    cases["sparse.rec"] = sparse.getvalue()
    expected = {
        "made_by": {
            "sagemaker": sagemaker.__version__,
            "protobuf": google.protobuf.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
        "files": {},
    }
    for name, data in cases.items():
        with open(os.path.join(OUT, name), "wb") as handle:
            handle.write(data)
        expected["files"][name] = describe(data)
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as handle:
        json.dump(expected, handle, sort_keys=True, separators=(",", ":"))
        handle.write("\n")
    print(f"wrote {len(cases)} .rec files, 7 PNGs and expected.json to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
