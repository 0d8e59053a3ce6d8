"""RecordIO both ways with mxnet 1.9.1 itself, on freshly generated random records.

(a) imgfmt writes, mxnet reads (``MXIndexedRecordIO.read_idx`` for every key, ``MXRecordIO``
sequentially, ``recordio.unpack`` for image records); (b) mxnet writes (``write_idx``, ``pack``),
imgfmt reads and re-writes the same bytes. Records travel between the two pythons as JSON with
hex payloads, in files under ``tmp_path``.
"""

from __future__ import annotations

import json
import random
import struct
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

pytestmark = pytest.mark.interop

SEEDS = [20240601, 7]

# Labels whose float32 form differs from the given value are included on purpose.
TRICKY_LABELS = [0.0, 1.0, -1.5, 0.1, 17672687.0, 2.0**24 + 1, 1e-8, 3.4e38]


def float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def random_bytes(rng: random.Random) -> bytes:
    """Random data of a random size (0 included), holding the magic at random alignments."""
    size = rng.choice([0, 0, 1, 2, 3, 4, 5, rng.randrange(64), rng.randrange(5000), 70_001])
    data = bytearray(rng.randbytes(size))
    if size >= 4:
        for _ in range(rng.choice([0, 1, 2, 5])):
            at = rng.randrange(size - 3)
            data[at : at + 4] = MAGIC_BYTES
        if rng.random() < 0.3:  # an aligned magic, maybe in the last aligned word
            at = rng.choice([0, (size // 4 - 1) * 4, rng.randrange(size // 4) * 4])
            data[at : at + 4] = MAGIC_BYTES
        if rng.random() < 0.2 and size >= 12:  # back to back
            at = rng.randrange((size - 8) // 4) * 4
            data[at : at + 8] = MAGIC_BYTES * 2
    return bytes(data)


def random_label(rng: random.Random) -> float:
    return rng.choice(TRICKY_LABELS) if rng.random() < 0.4 else rng.uniform(-1000.0, 1000.0)


def random_records(seed: int, count: int = 120) -> list[dict[str, Any]]:
    """Records of three kinds: raw payloads, single-label and multi-label image records."""
    rng = random.Random(seed)
    keys = rng.sample(range(2**40), count)
    records: list[dict[str, Any]] = []
    for key in keys:
        kind = rng.choice(["raw", "single", "multi"])
        record: dict[str, Any] = {"key": key, "kind": kind}
        if kind == "raw":
            record["payload_hex"] = random_bytes(rng).hex()
        else:
            record["image_hex"] = random_bytes(rng).hex()
            if kind == "single":
                record["label"] = random_label(rng)
            else:
                record["label"] = [random_label(rng) for _ in range(rng.randint(1, 6))]
        records.append(record)
    return records


def our_payload(record: dict[str, Any]) -> bytes:
    if record["kind"] == "raw":
        return bytes.fromhex(record["payload_hex"])
    return pack_image_record(record["label"], record["key"], bytes.fromhex(record["image_hex"]))


def expected_header(record: dict[str, Any]) -> IRHeader:
    label = record["label"]
    if isinstance(label, list):
        return IRHeader(len(label), tuple(float32(v) for v in label), record["key"], 0)
    return IRHeader(0, (float32(label),), record["key"], 0)


MXNET_READS = r"""
import json, sys
from mxnet import recordio

rec, idx, kinds_path, out = sys.argv[1:5]
kinds = json.load(open(kinds_path))

indexed = recordio.MXIndexedRecordIO(idx, rec, "r")
by_key = {str(key): indexed.read_idx(key).hex() for key in indexed.keys}
keys = list(indexed.keys)
indexed.close()

sequential = []
reader = recordio.MXRecordIO(rec, "r")
while True:
    item = reader.read()
    if item is None:
        break
    sequential.append(item)
reader.close()

unpacked = []
for kind, payload in zip(kinds, sequential):
    if kind == "raw":
        unpacked.append(None)
        continue
    header, image = recordio.unpack(payload)
    label = header.label.tolist() if header.flag > 0 else [float(header.label)]
    unpacked.append({"flag": int(header.flag), "labels": label, "id": int(header.id),
                     "id2": int(header.id2), "image_hex": image.hex()})

json.dump({"keys": keys, "by_key": by_key, "sequential": [p.hex() for p in sequential],
           "unpacked": unpacked}, open(out, "w"))
"""


@pytest.mark.interop
@pytest.mark.parametrize("seed", SEEDS)
def test_mxnet_reads_what_we_write(run_mxnet: Any, tmp_path: Path, seed: int) -> None:
    records = random_records(seed)
    payloads = [our_payload(record) for record in records]
    rec = tmp_path / "ours.rec"
    with RecordFileWriter(str(rec)) as writer:
        for record, payload in zip(records, payloads, strict=True):
            writer.write(payload, key=record["key"])
    kinds = tmp_path / "kinds.json"
    kinds.write_text(json.dumps([record["kind"] for record in records]))
    out = tmp_path / "mxnet.json"

    run_mxnet(MXNET_READS, str(rec), str(tmp_path / "ours.idx"), str(kinds), str(out))

    seen = json.loads(out.read_text())
    assert seen["keys"] == [record["key"] for record in records]
    assert seen["by_key"] == {
        str(record["key"]): payload.hex() for record, payload in zip(records, payloads, strict=True)
    }
    assert seen["sequential"] == [payload.hex() for payload in payloads]
    for record, unpacked in zip(records, seen["unpacked"], strict=True):
        if record["kind"] == "raw":
            continue
        want = expected_header(record)
        got = IRHeader(unpacked["flag"], tuple(unpacked["labels"]), unpacked["id"], unpacked["id2"])
        assert got == want, record["key"]
        assert unpacked["image_hex"] == record["image_hex"]


MXNET_WRITES = r"""
import json, sys
from mxnet import recordio

records_path, rec, idx, out = sys.argv[1:5]
writer = recordio.MXIndexedRecordIO(idx, rec, "w")
written = []
for record in json.load(open(records_path)):
    if record["kind"] == "raw":
        payload = bytes.fromhex(record["payload_hex"])
    else:
        header = recordio.IRHeader(0, record["label"], record["key"], 0)
        payload = recordio.pack(header, bytes.fromhex(record["image_hex"]))
    writer.write_idx(record["key"], payload)
    written.append(payload.hex())
writer.close()
json.dump(written, open(out, "w"))
"""


@pytest.mark.interop
@pytest.mark.parametrize("seed", SEEDS)
def test_we_read_and_rewrite_what_mxnet_writes(run_mxnet: Any, tmp_path: Path, seed: int) -> None:
    records = random_records(seed + 1)
    records_path = tmp_path / "records.json"
    records_path.write_text(json.dumps(records))
    rec, idx, out = tmp_path / "mx.rec", tmp_path / "mx.idx", tmp_path / "written.json"

    run_mxnet(MXNET_WRITES, str(records_path), str(rec), str(idx), str(out))

    mxnet_payloads = [bytes.fromhex(text) for text in json.loads(out.read_text())]
    # mxnet.recordio.pack and our pack_image_record agree byte for byte.
    assert mxnet_payloads == [our_payload(record) for record in records]

    keys = [record["key"] for record in records]
    with RecordReader(str(rec)) as reader:
        assert [r.payload for r in reader] == mxnet_payloads
        assert reader.keys() == keys
        for key, payload in reversed(list(zip(keys, mxnet_payloads, strict=True))):
            assert reader.read_key(key) == payload
    offsets = list(read_idx(str(idx)).values())
    for record, payload in zip(records, mxnet_payloads, strict=True):
        if record["kind"] != "raw":
            header, image = unpack_image_record(payload)
            assert header == expected_header(record)
            assert image.hex() == record["image_hex"]

    again = tmp_path / "again.rec"
    with RecordFileWriter(str(again)) as writer:
        assert [
            writer.write(p, key=k) for k, p in zip(keys, mxnet_payloads, strict=True)
        ] == offsets
    assert again.read_bytes() == rec.read_bytes()
    assert (tmp_path / "again.idx").read_bytes() == idx.read_bytes()
