"""Write the RecordIO golden files with mxnet 1.9.1 itself (the reference implementation).

Run it under the mxnet venv, from the repository root::

    make .venv-mxnet/.stamp
    .venv-mxnet/bin/python scripts/make_golden_recordio.py

It (re)writes ``tests/golden/recordio/``: one ``NAME.rec``/``NAME.idx`` pair per case, written
with ``mxnet.recordio.MXIndexedRecordIO.write_idx`` (image records packed with
``mxnet.recordio.pack``), and ``golden.json``, which describes every record exactly: its key,
the byte offset mxnet reported for it, its payload (hex; or, for the 1 MB record, a recipe that
regenerates it and its sha256), and for image records the header mxnet's ``unpack`` reads back.
The output is deterministic: running the script again gives the same bytes, so ``git diff`` stays
empty unless mxnet's behaviour (or a case below) changed.

``tests/test_golden_recordio.py`` checks that imgfmt reads every golden file exactly and that its
writer reproduces every ``.rec`` and ``.idx`` byte for byte.

The module imports mxnet only inside ``main()``; the case definitions are plain Python.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "golden" / "recordio"

#: dmlc ``RecordIOWriter::kMagic`` as it lies on disk.
MAGIC = b"\x0a\x23\xd7\xce"

#: Size of the large record: 1 MiB plus 3, so the final piece needs padding.
LARGE_SIZE = (1 << 20) + 3
#: Where the large payload holds the magic: aligned (escaped), unaligned (left alone), and in
#: the last aligned word (an empty last piece would follow, but 3 tail bytes come after it).
LARGE_MAGIC_AT = [0, 4096, 4101, 524288, 524294, LARGE_SIZE - 7]


def pseudo_random(seed: str, size: int) -> bytes:
    """Deterministic, incompressible bytes (SHAKE-256 is stable across Python versions)."""
    return hashlib.shake_256(seed.encode()).digest(size)


def with_magic(data: bytes, positions: list[int]) -> bytes:
    """``data`` with the magic written over it at each position."""
    out = bytearray(data)
    for pos in positions:
        out[pos : pos + 4] = MAGIC
    return bytes(out)


def large_payload(recipe: dict[str, Any]) -> bytes:
    """The payload a ``payload_recipe`` entry of golden.json describes."""
    return with_magic(pseudo_random(recipe["seed"], recipe["size"]), recipe["magic_at"])


def fake_image(seed: str, size: int) -> bytes:
    """Stand-in image bytes shaped like a JPEG (SOI ... EOI); the codec never decodes them."""
    return b"\xff\xd8\xff\xe0" + pseudo_random(seed, size) + b"\xff\xd9"


def f32(value: float) -> float:
    """``value`` as it reads back from a float32 field."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


# Each case: (file stem, records); a record is (key, kind, content).
#   kind "raw":   content is the payload, written as is.
#   kind "image": content is (label or list of labels, image bytes), packed with
#                 mxnet.recordio.pack(IRHeader(0, label, key, 0), image).
#   kind "large": content is a recipe for large_payload().
def cases() -> list[tuple[str, list[tuple[int, str, Any]]]]:
    edge_payloads: list[tuple[int, bytes]] = [
        (40, b""),  # empty: one head, no data
        (3, MAGIC),  # exactly the magic: two empty pieces
        (17, MAGIC + b"tail"),  # magic at offset 0
        (2, b"x" + MAGIC + b"yyy"),  # unaligned (1 mod 4): not escaped
        (9, b"xx" + MAGIC + b"yy"),  # unaligned (2 mod 4)
        (1000, b"xxx" + MAGIC + b"y"),  # unaligned (3 mod 4)
        (7, b"abcdefgh" + MAGIC + b"ijklm"),  # aligned (0 mod 4), inside
        (8, b"abcd" + MAGIC),  # magic in the last aligned word, length % 4 == 0
        (11, b"abcd" + MAGIC + b"xy"),  # magic in the last aligned word, then 2 tail bytes
        (12, MAGIC * 3),  # back to back: first, middle, middle, last (all empty)
        (13, b"abcd" + MAGIC + MAGIC + b"efgh" + MAGIC),  # back to back, then last word
        # one payload with the magic at each alignment 0, 1, 2, 3 (only the first is escaped)
        (14, MAGIC + b"." + MAGIC + b".." + MAGIC + b"..." + MAGIC + b"...."),
        (15, b"a"),  # lengths 1..5: every amount of padding
        (16, b"ab"),
        (18, b"abc"),
        (19, b"abcd"),
        (20, b"abcde"),
        (21, MAGIC[:3]),  # a prefix of the magic is just data
        (22, b"\x00" * 12),  # zeros look like padding but are data
        (2**40 + 5, pseudo_random("edge-random", 257)),  # a large key
    ]
    images: list[tuple[int, float, bytes]] = [
        (5, 3.0, fake_image("img-5", 40)),
        (0, 0.0, fake_image("img-0", 1)),
        (123456, -1.5, fake_image("img-123456", 333)),
        (42, 17672687.0, fake_image("img-42", 17)),  # float32 stores 17672688
        (77, 0.1, fake_image("img-77", 64)),  # not exact in float32
        (9, 999.0, MAGIC + fake_image("img-9", 12)),  # image starts on an aligned magic
        (2**33 + 1, 7.0, b""),  # no image bytes at all
    ]
    multi: list[tuple[int, list[float], bytes]] = [
        (10, [1.0, 0.0, 1.0], fake_image("multi-10", 20)),
        (4, [2.5], fake_image("multi-4", 3)),  # one label still uses flag = 1
        (31, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0], fake_image("multi-31", 90)),
        (8, [0.1, 17672687.0], fake_image("multi-8", 8)),
        (100, [], fake_image("multi-100", 5)),  # empty list: mxnet writes flag 0, label 0
        (2, [5.0, 6.0], MAGIC + fake_image("multi-2", 7)),
    ]
    large_recipe = {"seed": "imgfmt-golden-large", "size": LARGE_SIZE, "magic_at": LARGE_MAGIC_AT}
    return [
        ("edge_cases", [(key, "raw", payload) for key, payload in edge_payloads]),
        ("images", [(key, "image", (label, image)) for key, label, image in images]),
        ("multilabel", [(key, "image", (labels, image)) for key, labels, image in multi]),
        ("empty_only", [(3, "raw", b"")]),
        ("magic_only", [(0, "raw", MAGIC)]),
        ("large", [(1, "raw", b"small before"), (70000, "large", large_recipe), (2, "raw", b"!")]),
    ]


def main() -> int:
    import mxnet
    from mxnet import recordio

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    description: dict[str, Any] = {
        "generator": f"scripts/make_golden_recordio.py with mxnet {mxnet.__version__}",
        "files": {},
    }
    for stem, records in cases():
        rec_path, idx_path = OUT_DIR / f"{stem}.rec", OUT_DIR / f"{stem}.idx"
        writer = recordio.MXIndexedRecordIO(str(idx_path), str(rec_path), "w")
        entries: list[dict[str, Any]] = []
        for key, kind, content in records:
            entry: dict[str, Any] = {"key": key, "offset": writer.tell()}
            if kind == "image":
                labels, image = content
                payload = recordio.pack(recordio.IRHeader(0, labels, key, 0), image)
                if isinstance(labels, list) and labels:
                    header = {"flag": len(labels), "labels": [f32(v) for v in labels]}
                else:
                    header = {"flag": 0, "labels": [f32(labels) if labels != [] else 0.0]}
                entry["image"] = {
                    "labels_given": labels,
                    **header,
                    "id": key,
                    "id2": 0,
                    "image_hex": image.hex(),
                }
            elif kind == "large":
                payload = large_payload(content)
                entry["payload_recipe"] = content
            else:
                payload = content
            if kind != "large":
                entry["payload_hex"] = payload.hex()
            entry["payload_size"] = len(payload)
            entry["payload_sha256"] = hashlib.sha256(payload).hexdigest()
            writer.write_idx(key, payload)
            entries.append(entry)
        writer.close()
        check_with_mxnet(recordio, rec_path, idx_path, records, entries)
        description["files"][stem] = {
            "rec": rec_path.name,
            "idx": idx_path.name,
            "rec_sha256": hashlib.sha256(rec_path.read_bytes()).hexdigest(),
            "idx_sha256": hashlib.sha256(idx_path.read_bytes()).hexdigest(),
            "records": entries,
        }
    (OUT_DIR / "golden.json").write_text(json.dumps(description, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT_DIR.iterdir())
    print(f"wrote {len(description['files'])} cases to {OUT_DIR} ({total} bytes)")
    return 0


def check_with_mxnet(
    recordio: Any,
    rec_path: Path,
    idx_path: Path,
    records: list[tuple[int, str, Any]],
    entries: list[dict[str, Any]],
) -> None:
    """Read the files back with mxnet, so a golden file is never written wrong unnoticed."""
    reader = recordio.MXIndexedRecordIO(str(idx_path), str(rec_path), "r")
    for (key, _kind, _content), entry in zip(records, entries, strict=True):
        payload = reader.read_idx(key)
        assert hashlib.sha256(payload).hexdigest() == entry["payload_sha256"], (rec_path, key)
        assert reader.idx[key] == entry["offset"], (rec_path, key)
        if "image" in entry:
            header, image = recordio.unpack(payload)
            assert header.flag == entry["image"]["flag"]
            assert image.hex() == entry["image"]["image_hex"]
    reader.close()


if __name__ == "__main__":
    sys.exit(main())
