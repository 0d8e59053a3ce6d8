"""RecordIO-protobuf: the SDK's golden files read both ways, framing, images, checks.

tests/golden/protobuf/ was written by the SageMaker Python SDK itself
(scripts/make_golden_protobuf.py, run under sagemaker 2.x). The live tests at the end run the
SDK again when IMGFMT_SAGEMAKER_PYTHON names a python that has it; they are skipped otherwise.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import image_bytes, leftovers
from hypothesis import given, settings
from hypothesis import strategies as st

from imgfmt.errors import FormatError, ImageError, ImgfmtError, UsageError
from imgfmt.formats import rio_protobuf as rp
from imgfmt.formats.recordio import MAGIC_BYTES, encode_record, pack_image_record

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "protobuf"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text(encoding="utf-8"))["files"]
DTYPES = {"float32_tensor": np.float32, "float64_tensor": np.float64, "int32_tensor": np.int32}


def digit_png(d: int) -> bytes:
    return (GOLDEN / "digits" / str(d) / f"digit{d}.png").read_bytes()


def dense(entry: dict) -> np.ndarray:
    """The dense values the SDK read, as our reader should return them."""
    values = np.asarray(entry["values"], dtype=DTYPES[entry["type"]])
    if not entry["keys"] and (values.size or not entry["shape"]):
        return values
    out = np.zeros(int(np.prod(entry["shape"])), dtype=values.dtype)
    out[entry["keys"]] = values
    return out


# --------------------------------------------------------------------------- golden, read


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reader_reads_every_golden_file_as_the_sdk_does(name: str) -> None:
    records = list(rp.iter_records(str(GOLDEN / name)))
    expected = EXPECTED[name]
    assert len(records) == len(expected)
    for record, entry in zip(records, expected):
        assert record.values.dtype == DTYPES[entry["type"]]
        np.testing.assert_array_equal(record.values, dense(entry))
        assert record.shape == (tuple(entry["shape"]) or None)
        assert record.labels == tuple(entry["labels"])


def test_golden_digits_reshape_to_the_images_of_the_folder() -> None:
    from PIL import Image

    records = list(rp.iter_records(str(GOLDEN / "digits_shape.rec")))
    for d, record in enumerate(records):
        image = np.asarray(Image.open(io.BytesIO(digit_png(d))))
        assert record.array.shape == (28, 28) and record.labels == (float(d),)
        np.testing.assert_array_equal(record.array, image.astype(np.float32))


def test_golden_with_an_aligned_magic_is_one_unsplit_piece_and_reads_whole() -> None:
    data = (GOLDEN / "magic_inside.rec").read_bytes()
    second = data.index(MAGIC_BYTES, 4)
    (lrec,) = struct.unpack_from("<I", data, second + 4)
    assert lrec >> 29 == 0  # the SDK never sets a continuation flag
    payload = data[second + 8 : second + 8 + lrec]
    assert rp.aligned_magic_offset(payload) is not None
    records = list(rp.iter_records(str(GOLDEN / "magic_inside.rec")))
    assert records[1].values[list(records[1].values).index(records[1].values.min())] < -1e9


def test_reader_also_reads_dmlc_escaped_framing(tmp_path: Path) -> None:
    """The same payloads framed by dmlc's writer (split at the aligned magic) read the same."""
    payloads = [p for _n, _o, p in rp.iter_payloads(str(GOLDEN / "magic_inside.rec"))]
    escaped = b"".join(b"".join(bytes(c) for c in encode_record(p)) for p in payloads)
    assert escaped != (GOLDEN / "magic_inside.rec").read_bytes()  # really split
    path = tmp_path / "dmlc.rec"
    path.write_bytes(escaped)
    ours = [(r.values.tolist(), r.labels) for r in rp.iter_records(str(path))]
    sdk = [(r.values.tolist(), r.labels) for r in rp.iter_records(str(GOLDEN / "magic_inside.rec"))]
    assert ours == sdk


# --------------------------------------------------------------------------- golden, write


def test_writer_reproduces_write_numpy_to_dense_tensor_byte_for_byte() -> None:
    matrix = np.stack([r.values for r in rp.iter_records(str(GOLDEN / "digits.rec"))])
    out = io.BytesIO()
    assert rp.write_dense_matrix(out, matrix, np.arange(5)) == 5
    assert out.getvalue() == (GOLDEN / "digits.rec").read_bytes()
    out = io.BytesIO()
    rp.write_dense_matrix(out, np.eye(3, 5) * 0.5)
    assert out.getvalue() == (GOLDEN / "no_labels.rec").read_bytes()


def test_digit_folder_packs_to_the_sdk_golden_bytes(tmp_path: Path) -> None:
    """Acceptance: a folder of 28x28 grayscale digits becomes the records the SDK wrote."""
    out = tmp_path / "digits.rec"
    with rp.RioProtobufFileWriter(str(out)) as writer:
        for d in range(5):
            pixels = rp.image_pixels(digit_png(d), rp.parse_size("28x28"), color=0)
            assert pixels.shape == (28, 28) and pixels.dtype == np.uint8
            writer.write(pixels, d, shape=pixels.shape)
    assert writer.records_written == 5 and writer.bytes_written == out.stat().st_size
    assert out.read_bytes() == (GOLDEN / "digits_shape.rec").read_bytes()
    assert leftovers(tmp_path) == []


def test_colour_images_pack_height_width_channels_as_the_sdk_golden() -> None:
    out = io.BytesIO()
    writer = rp.RioProtobufWriter(out)
    for i, label in enumerate([7, 2]):
        pixels = rp.image_pixels((GOLDEN / f"rgb{i}.png").read_bytes(), (8, 6), color=1)
        assert pixels.shape == (6, 8, 3)
        writer.write(pixels, label, shape=pixels.shape)
    assert out.getvalue() == (GOLDEN / "rgb_shape.rec").read_bytes()


def test_writer_frames_an_aligned_magic_as_the_sdk_does_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = list(rp.iter_records(str(GOLDEN / "magic_inside.rec")))
    out = io.BytesIO()
    with caplog.at_level(logging.WARNING, logger="imgfmt"):
        rp.write_dense_matrix(out, np.stack([r.values for r in records]), [0, 1])
    assert out.getvalue() == (GOLDEN / "magic_inside.rec").read_bytes()
    assert "record 1 holds the RecordIO magic at a 4-byte boundary" in caplog.text


def test_generated_schema_is_the_sdks_file() -> None:
    from imgfmt.proto import record_pb2

    assert record_pb2.DESCRIPTOR.name == "record.proto"
    assert record_pb2.DESCRIPTOR.package == "aialgs.data"
    fields = record_pb2.Float32Tensor.DESCRIPTOR.fields_by_name
    assert [fields[n].number for n in ("values", "keys", "shape")] == [1, 2, 3]
    value_fields = record_pb2.Value.DESCRIPTOR.fields_by_name
    numbers = {n: value_fields[n].number for n in value_fields}
    assert numbers == {"float32_tensor": 2, "float64_tensor": 3, "int32_tensor": 7, "bytes": 9}


# --------------------------------------------------------------------------- properties


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 24),
    st.integers(1, 24),
    st.sampled_from([None, 3]),
    st.integers(0, 65535),
    st.randoms(use_true_random=False),
)
def test_property_pixel_records_round_trip_and_never_hold_an_aligned_magic(
    height: int, width: int, channels: int | None, label: int, rnd
) -> None:
    shape = (height, width) if channels is None else (height, width, channels)
    pixels = np.frombuffer(rnd.randbytes(int(np.prod(shape))), dtype=np.uint8).reshape(shape)
    payload = rp.encode_dense(pixels, label, shape)
    assert rp.aligned_magic_offset(payload) is None
    values, got_shape, labels = rp.decode_dense(payload)
    assert got_shape == shape and labels == (float(label),)
    np.testing.assert_array_equal(values.reshape(shape), pixels)
    assert rp.frame(payload) == b"".join(bytes(c) for c in encode_record(payload))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=12),
        min_size=1,
        max_size=6,
    )
)
def test_property_any_float32_rows_read_back(rows: list[list[float]]) -> None:
    out = io.BytesIO()
    writer = rp.RioProtobufWriter(out)
    for number, row in enumerate(rows):
        writer.write(row, [number, 0.5])
    stream = io.BytesIO(out.getvalue())
    from imgfmt.formats.recordio import read_record

    offset = 0
    for number, row in enumerate(rows):
        result = read_record(stream, offset, number, "mem")
        assert result is not None
        values, shape, labels = rp.decode_dense(result[0])
        assert values.tolist() == np.asarray(row, dtype=np.float32).tolist()
        assert shape is None and labels == (float(number), 0.5)
        offset = result[1]


# --------------------------------------------------------------------------- errors, checks


def test_an_mxnet_image_rec_is_not_recordio_protobuf(tmp_path: Path) -> None:
    path = tmp_path / "images.rec"
    payload = pack_image_record(3.0, 0, image_bytes(8, 8))
    path.write_bytes(b"".join(bytes(c) for c in encode_record(payload)))
    assert not rp.sniff(str(path))
    assert rp.sniff(str(GOLDEN / "digits.rec"))
    multi = pack_image_record([1.0, 0.0, 1.0] * 4, 7, b"\x89PNG....")
    assert not rp.is_rio_protobuf(multi)
    with pytest.raises(FormatError) as err:
        list(rp.iter_records(str(path)))
    assert str(err.value).startswith(
        f"{path}: record 0 at byte 0: not an aialgs.data.Record protobuf"
    )


def test_a_record_without_values_is_named(tmp_path: Path) -> None:
    from imgfmt.proto.record_pb2 import Record

    record = Record()
    record.features["pixels"].float32_tensor.values.extend([1.0])
    ok = rp.frame(rp.encode_dense([1.0, 2.0], 0))
    path = tmp_path / "odd.rec"
    path.write_bytes(ok + rp.frame(record.SerializeToString()))
    with pytest.raises(FormatError) as err:
        list(rp.iter_records(str(path)))
    where = f"record 1 at byte {len(ok)}"
    assert str(err.value) == f'{path}: {where}: no "values" feature (features: pixels)'


def test_truncated_file_is_a_framing_error_with_its_offset(tmp_path: Path) -> None:
    data = (GOLDEN / "digits.rec").read_bytes()
    path = tmp_path / "cut.rec"
    path.write_bytes(data[:-10])
    with pytest.raises(FormatError) as err:
        list(rp.iter_records(str(path)))
    assert str(err.value).startswith(f"{path}: record 4 at byte 12736: file ends inside a record")


def test_problems_lists_bad_values_sizes_labels_and_stops_at_framing(tmp_path: Path) -> None:
    path = tmp_path / "bad.rec"
    path.write_bytes(
        rp.frame(rp.encode_dense([1.0, 2.0, 3.0], 0))
        + rp.frame(rp.encode_dense([1.0, float("inf"), 3.0], 1))
        + rp.frame(rp.encode_dense([1.0, 2.0], float("nan")))
        + rp.frame(b"\x00\x01\x02")
        + MAGIC_BYTES
        + b"\x10\x00"
    )
    problems = list(rp.iter_problems(str(path)))
    assert [(where.split(" at ")[0], check) for where, _offset, check, _m in problems] == [
        ("record 1", "values"),
        ("record 2", "values"),
        ("record 2", "label"),
        ("record 3", "protobuf"),
        ("record 4", "framing"),
    ]
    # The offset is given as a number: a record's head, for a program to seek to.
    assert [offset for where, offset, _c, _m in problems] == [
        int(where.rsplit(" ", 1)[1]) for where, _o, _c, _m in problems
    ]
    assert problems[0][3] == "1 of 3 feature values are not finite"
    assert problems[1][3] == "2 feature values, but the first record has 3"
    assert list(rp.iter_problems(str(GOLDEN / "digits_shape.rec"))) == []


def test_file_writer_is_atomic_and_never_empty(tmp_path: Path) -> None:
    out = tmp_path / "t.rec"
    with pytest.raises(RuntimeError), rp.RioProtobufFileWriter(str(out)) as writer:
        writer.write([1.0], 0)
        raise RuntimeError("stop")
    with pytest.raises(ImgfmtError, match="refusing to create an empty dataset"):
        with rp.RioProtobufFileWriter(str(out)):
            pass
    assert not out.exists() and leftovers(tmp_path) == []


def test_encode_refuses_a_shape_that_does_not_fit() -> None:
    with pytest.raises(UsageError, match=r"shape \[2, 2\] does not hold 3 values"):
        rp.encode_dense([1, 2, 3], 0, shape=(2, 2))


@pytest.mark.parametrize("text", ["28", "0x28", "28x", "axb", "28x-1"])
def test_parse_size_refuses_what_is_not_w_x_h(text: str) -> None:
    with pytest.raises(UsageError, match="write it as WIDTHxHEIGHT"):
        rp.parse_size(text)


def test_parse_size_reads_width_then_height() -> None:
    assert rp.parse_size("32x24") == (32, 24) and rp.parse_size(" 28X28 ") == (28, 28)


# --------------------------------------------------------------------------- images


def test_image_pixels_resizes_to_exactly_width_by_height() -> None:
    big = image_bytes(640, 480)
    assert rp.image_pixels(big, (32, 24), color=1).shape == (24, 32, 3)
    assert rp.image_pixels(big, (20, 40), color=0).shape == (40, 20)
    assert rp.image_pixels(image_bytes(10, 10), (32, 24), color=0).shape == (24, 32)


def test_image_pixels_refuses_unchanged_colour_and_reports_bad_images() -> None:
    with pytest.raises(UsageError, match="color must be 0 .grayscale. or 1 .RGB."):
        rp.image_pixels(digit_png(0), (28, 28), color=-1)
    with pytest.raises(ImageError) as err:
        rp.image_pixels(b"not an image at all", (28, 28), name="x/bad.jpg")
    assert str(err.value) == (
        "x/bad.jpg: not an image (unrecognised format; starts with 'not an image at ')"
    )
    with pytest.raises(ImageError, match="empty file"):
        rp.image_pixels(b"", (28, 28), name="x/empty.jpg")


def test_pixels_to_png_gives_the_pixels_back() -> None:
    from PIL import Image

    for record in rp.iter_records(str(GOLDEN / "rgb_shape.rec")):
        png = rp.pixels_to_png(record.values, record.shape)
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), record.array)
    scaled = np.array([[0.0, 0.5], [1.0, 0.25]])
    image = np.asarray(Image.open(io.BytesIO(rp.pixels_to_png(scaled))))
    assert image.tolist() == [[0, 128], [255, 64]]
    with pytest.raises(UsageError, match="not an image"):
        rp.pixels_to_png(np.zeros(10), (1, 2, 5))


def test_guess_shape_for_records_without_one() -> None:
    assert rp.guess_shape(784) == (28, 28)
    assert rp.guess_shape(2352) == (28, 28, 3)
    assert rp.guess_shape(10) is None and rp.guess_shape(0) is None


# --------------------------------------------------------------------------- the SDK, live


def _run_sdk(python: str, code: str, *args: str) -> str:
    env = {**os.environ, "SAGEMAKER_SUPPRESS_V2_WARNING": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [python, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()[-1]  # the SDK prints its own config notes first


@pytest.mark.interop
def test_sdk_reads_our_image_records_to_the_same_arrays_and_labels(
    tmp_path: Path, sagemaker_python: str
) -> None:
    python = sagemaker_python
    out = tmp_path / "ours.rec"
    arrays = []
    with rp.RioProtobufFileWriter(str(out)) as writer:
        for i in range(4):
            pixels = rp.image_pixels(image_bytes(40, 30, seed=i), (12, 10), color=i % 2)
            arrays.append(pixels)
            writer.write(pixels, i * 2, shape=pixels.shape)
    code = """
        import json, sys
        from sagemaker.amazon.common import read_records
        with open(sys.argv[1], "rb") as f:
            records = read_records(f)
        print(json.dumps([
            {"values": list(r.features["values"].float32_tensor.values),
             "shape": list(r.features["values"].float32_tensor.shape),
             "labels": list(r.label["values"].float32_tensor.values)}
            for r in records]))
    """
    got = json.loads(_run_sdk(python, code, str(out)))
    assert len(got) == 4
    for i, (record, pixels) in enumerate(zip(got, arrays)):
        assert record["shape"] == list(pixels.shape) and record["labels"] == [float(i * 2)]
        assert record["values"] == pixels.astype(np.float32).ravel().tolist()


@pytest.mark.interop
def test_sdk_and_imgfmt_schemas_load_into_one_process(sagemaker_python: str) -> None:
    python = sagemaker_python
    code = """
        from sagemaker.amazon.record_pb2 import Record as Sdk
        from imgfmt.proto.record_pb2 import Record as Ours
        import imgfmt.formats.rio_protobuf
        assert Sdk.DESCRIPTOR is Ours.DESCRIPTOR
        print("ok")
    """
    assert _run_sdk(python, code) == "ok"
