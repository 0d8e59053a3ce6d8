"""imgfmt convert: any readable format into any writable one, from the command line.

WebDataset conversions are tested with the webdataset library in test_webdataset.py.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import image_bytes, leftovers, make_tree
from PIL import Image

from imgfmt.cli import cli
from imgfmt.formats import rio_protobuf
from imgfmt.formats.recordio import (
    IDX_SUFFIX,
    RecordReader,
    RecordWriter,
    pack_image_record,
    unpack_image_record,
)


def run(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == expect, result.output
    return result.stdout


def records(path: Path) -> list[tuple[int, tuple[float, ...], int, bytes]]:
    """``(id, labels, flag, image)`` of every record, in order."""
    with RecordReader(str(path)) as reader:
        out = []
        for record in reader:
            header, image = unpack_image_record(record.payload)
            out.append((header.id, header.labels, header.flag, image))
    return out


def write_rec(path: Path, items: list[tuple[int, float | tuple[float, ...], bytes]]) -> None:
    with open(path, "wb") as data, open(str(path)[:-4] + IDX_SUFFIX, "w") as index:
        writer = RecordWriter(data, index, name=str(path))
        for key, labels, image in items:
            writer.write(pack_image_record(labels, key, image), key)


@pytest.fixture()
def rec(tmp_path: Path) -> Path:
    """A .rec as pack makes it, with a multi-label record and one holding one label as a
    list (flag 1), which must both survive."""
    photos = make_tree(tmp_path / "photos", {"cat": 3, "dog": 3})
    out = tmp_path / "data" / "all.rec"
    out.parent.mkdir()
    run("pack", str(photos), str(out), "--resize", "24")
    extra = records(out)
    write_rec(
        out,
        [(i, labels[0], image) for i, labels, _flag, image in extra]
        + [(100, (1.0, 0.0, 1.0), extra[0][3]), (101, (3.0,), extra[1][3])],
    )
    return out


def test_rec_to_jsonl_and_back_is_byte_identical(rec: Path, tmp_path: Path) -> None:
    jsonl = tmp_path / "all.jsonl"
    out = run("convert", str(rec), str(jsonl))
    assert out.splitlines()[-1].startswith(
        "converted 8 (recordio -> jsonlines, 0 re-encoded), skipped 0, damaged 0"
    )
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["label"] for line in lines[-2:]] == [[1, 0, 1], [3]]
    assert base64.b64decode(lines[0]["image"]) == records(rec)[0][3]
    back = tmp_path / "back.rec"
    run("convert", str(jsonl), str(back))
    assert back.read_bytes() == rec.read_bytes()
    assert (tmp_path / "back.idx").read_text() == (rec.parent / "all.idx").read_text()


def test_images_the_target_readers_cannot_decode_are_re_encoded(tmp_path: Path) -> None:
    """A GIF in a JSON Lines dataset goes into a .rec as a JPEG (its readers decode JPEG and
    PNG only); the JPEG beside it goes across unchanged."""
    gif = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 30, 30)).save(gif, "GIF")
    jpeg = image_bytes(20, 10)
    jsonl = tmp_path / "mixed.jsonl"
    jsonl.write_text(
        "".join(
            json.dumps(
                {"id": i, "path": f"a/{i}", "label": i, "image": base64.b64encode(b).decode()}
            )
            + "\n"
            for i, b in enumerate([gif.getvalue(), jpeg])
        )
    )
    out = tmp_path / "mixed.rec"
    summary = json.loads(run("convert", str(jsonl), str(out), "--json"))
    assert summary["converted"] == 2 and summary["reencoded"] == 1
    (id0, labels0, _f, image0), (id1, _l, _f1, image1) = records(out)
    assert (id0, labels0) == (0, (0.0,)) and image0[:3] == b"\xff\xd8\xff"
    assert Image.open(io.BytesIO(image0)).size == (20, 10)
    assert image1 == jpeg


def test_image_options_re_encode_every_image(rec: Path, tmp_path: Path) -> None:
    out = tmp_path / "small.jsonl"
    summary = json.loads(run("convert", str(rec), str(out), "--resize", "12", "--json"))
    assert summary["reencoded"] == summary["converted"] == 8
    for line in out.read_text().splitlines():
        image = Image.open(io.BytesIO(base64.b64decode(json.loads(line)["image"])))
        assert min(image.size) == 12


def test_recordio_protobuf_both_ways(rec: Path, tmp_path: Path) -> None:
    digits = tmp_path / "digits.rec"
    run("convert", str(rec), str(digits), "--format", "recordio-protobuf", "--size", "8x6",
        "--color", "0")  # fmt: skip
    stored = list(rio_protobuf.iter_records(str(digits)))
    assert [r.labels for r in stored] == [labels for _id, labels, _flag, _image in records(rec)]
    assert stored[0].array.shape == (6, 8)
    assert not (tmp_path / "digits.idx").exists()
    # Back to MXNet RecordIO: the pixels as PNGs, the record numbers as ids, labels kept.
    back = tmp_path / "back.rec"
    run("convert", str(digits), str(back))
    got = records(back)
    assert [g[0] for g in got] == list(range(8))
    assert [g[1] for g in got] == [r.labels for r in stored]
    assert Image.open(io.BytesIO(got[0][3])).size == (8, 6)


def test_damaged_source_records_are_reported_and_the_rest_converted(
    rec: Path, tmp_path: Path
) -> None:
    data = bytearray(rec.read_bytes())
    offsets = [
        int(line.split("\t")[1])
        for line in (rec.parent / "all.idx").read_text().split("\n")
        if line
    ]
    data[offsets[2]] ^= 0xFF  # the magic of record 2
    rec.write_bytes(bytes(data))
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["convert", str(rec), str(out)])
    assert result.exit_code == 3
    assert "damaged 1" in result.stdout
    assert f"skipped {rec}: record 2 at byte {offsets[2]}: bad magic" in result.stderr
    assert len(out.read_text().splitlines()) == 7
    assert run("convert", str(rec), str(tmp_path / "again.jsonl"), "--allow-skip")


def test_nothing_convertible_fails_with_one_json_object_and_writes_nothing(
    tmp_path: Path,
) -> None:
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text(
        json.dumps({"id": 0, "path": "x", "label": 0, "image": base64.b64encode(b"junk").decode()})
        + "\n"
    )
    out = tmp_path / "x.rec"
    result = CliRunner().invoke(cli, ["convert", str(jsonl), str(out), "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["error"].startswith(f"{jsonl}: nothing could be converted (1 skipped")
    assert summary["skipped_items"][0]["kind"] == "not-image"
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "recordio-protobuf"], "recordio-protobuf needs --size, the pixel size WxH"),
        (
            ["--format", "recordio-protobuf", "--size", "8x8", "--resize", "4"],
            "--resize does not apply to recordio-protobuf, which stores decoded pixels resized "
            "to --size",
        ),
        (["--size", "8x8"], "--size is an option of format recordio-protobuf, not of recordio"),
        (["--shard-records", "3"], "--shard-records is an option of format webdataset, not of"),
    ],
)
def test_options_that_do_not_fit_are_usage_errors(
    rec: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, ["convert", str(rec), str(tmp_path / "o.rec"), *args])
    assert result.exit_code == 2 and message in result.stderr


def test_an_output_whose_extension_does_not_fit_is_a_usage_error(rec: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["convert", str(rec), str(tmp_path / "o.bin")])
    assert result.exit_code == 2
    assert "cannot tell the format to write from" in result.stderr
