"""imgfmt against RecordIO files written by mxnet 1.9.1 itself (tests/golden/recordio/).

The golden files and golden.json come from scripts/make_golden_recordio.py (run under the mxnet
venv); golden.json lists every record's key, offset, payload and image header as mxnet wrote them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from imgfmt.formats.recordio import (
    MAGIC_BYTES,
    IRHeader,
    RecordFileWriter,
    RecordReader,
    pack_image_record,
    read_idx,
    unpack_image_record,
)

GOLDEN_DIR = Path(__file__).resolve().parent / "golden" / "recordio"
DESCRIPTION: dict[str, Any] = json.loads((GOLDEN_DIR / "golden.json").read_text())
CASES = sorted(DESCRIPTION["files"])


def expected_payload(record: dict[str, Any]) -> bytes:
    """The payload golden.json describes (hex, or the recipe of the large record)."""
    if "payload_hex" in record:
        return bytes.fromhex(record["payload_hex"])
    recipe = record["payload_recipe"]
    # The same recipe as scripts/make_golden_recordio.py: SHAKE-256 bytes, magic written over.
    data = bytearray(hashlib.shake_256(recipe["seed"].encode()).digest(recipe["size"]))
    for pos in recipe["magic_at"]:
        data[pos : pos + 4] = MAGIC_BYTES
    payload = bytes(data)
    assert hashlib.sha256(payload).hexdigest() == record["payload_sha256"]
    return payload


def case_paths(case: str) -> tuple[Path, Path]:
    entry = DESCRIPTION["files"][case]
    return GOLDEN_DIR / entry["rec"], GOLDEN_DIR / entry["idx"]


def test_golden_files_are_the_ones_described() -> None:
    assert DESCRIPTION["generator"].endswith("mxnet 1.9.1")
    assert set(CASES) >= {"edge_cases", "images", "multilabel", "empty_only", "magic_only", "large"}
    for case in CASES:
        rec, idx = case_paths(case)
        entry = DESCRIPTION["files"][case]
        assert hashlib.sha256(rec.read_bytes()).hexdigest() == entry["rec_sha256"]
        assert hashlib.sha256(idx.read_bytes()).hexdigest() == entry["idx_sha256"]
    total = sum(path.stat().st_size for path in GOLDEN_DIR.iterdir())
    assert total < 1_500_000, "keep the committed golden files small"


@pytest.mark.parametrize("case", CASES)
def test_sequential_read_matches_mxnet(case: str) -> None:
    rec, _idx = case_paths(case)
    records = DESCRIPTION["files"][case]["records"]
    with RecordReader(str(rec)) as reader:
        got = list(reader)
    assert [r.number for r in got] == list(range(len(records)))
    assert [r.offset for r in got] == [r["offset"] for r in records]
    for record, expected in zip(got, records, strict=True):
        assert len(record.payload) == expected["payload_size"]
        assert record.payload == expected_payload(expected)


@pytest.mark.parametrize("case", CASES)
def test_read_by_key_matches_mxnet(case: str) -> None:
    rec, idx = case_paths(case)
    records = DESCRIPTION["files"][case]["records"]
    assert read_idx(str(idx)) == {r["key"]: r["offset"] for r in records}
    with RecordReader(str(rec)) as reader:
        assert reader.keys() == [r["key"] for r in records]
        # Backwards, so every read seeks.
        for expected in reversed(records):
            assert reader.read_key(expected["key"]) == expected_payload(expected)
            assert reader.read_at(expected["offset"]) == expected_payload(expected)


@pytest.mark.parametrize("case", ["images", "multilabel"])
def test_image_headers_match_mxnet_unpack(case: str) -> None:
    rec, _idx = case_paths(case)
    records = DESCRIPTION["files"][case]["records"]
    with RecordReader(str(rec)) as reader:
        for record, expected in zip(reader, records, strict=True):
            header, image = unpack_image_record(record.payload)
            want = expected["image"]
            assert header == IRHeader(want["flag"], tuple(want["labels"]), want["id"], want["id2"])
            assert image == bytes.fromhex(want["image_hex"])


@pytest.mark.parametrize("case", ["images", "multilabel"])
def test_pack_image_record_equals_mxnet_pack(case: str) -> None:
    for expected in DESCRIPTION["files"][case]["records"]:
        image = expected["image"]
        packed = pack_image_record(
            image["labels_given"], image["id"], bytes.fromhex(image["image_hex"])
        )
        assert packed == expected_payload(expected), expected["key"]


@pytest.mark.parametrize("case", CASES)
def test_writer_reproduces_mxnet_bytes(case: str, tmp_path: Path) -> None:
    rec, idx = case_paths(case)
    records = DESCRIPTION["files"][case]["records"]
    out = tmp_path / rec.name
    with RecordFileWriter(str(out)) as writer:
        offsets = [writer.write(expected_payload(r), key=r["key"]) for r in records]
    assert offsets == [r["offset"] for r in records]
    assert writer.bytes_written == rec.stat().st_size
    assert out.read_bytes() == rec.read_bytes()
    assert out.with_suffix(".idx").read_bytes() == idx.read_bytes()
