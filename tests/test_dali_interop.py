"""Sharded RecordIO read whole by NVIDIA DALI itself (docs/formats.md section 11).

``imgfmt pack SRC OUT.rec --shard-records N`` (or ``--shard-size``) writes the shards
``OUT-00000-of-0000K.rec`` + ``.idx`` and one combined index ``OUT.combined.idx``: every
shard's index lines in shard order, offsets shifted by the size of the shards before. DALI's
``fn.readers.mxnet(path=[every shard], index_path=[OUT.combined.idx])`` then reads the shards
as one dataset. DALI runs in its own venv (``run_dali``), on the CPU: no GPU is needed.

What DALI returns (each record's label and a hash of its image bytes) is compared with what
imgfmt's own reader finds in the shards. Records whose image holds the RecordIO magic (so the
record is split into pieces on disk) sit at the shard boundaries.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import image_bytes
from PIL import Image, PngImagePlugin

from imgfmt.cli import cli
from imgfmt.formats.recordio import MAGIC_BYTES, RecordReader, read_idx, unpack_image_record

pytestmark = pytest.mark.interop

CLASSES = 3
SHARD_RECORDS = 5
#: 22 records in shards of 5: the remainder of 2 is under 5/2, so it joins the last shard.
IMAGES = 22
#: List positions whose image holds the magic: the last record of shard 0, the first of
#: shard 1, and the very last record (whose span runs to the end of the last file).
MAGIC_POSITIONS = (4, 5, IMAGES - 1)


def expected_shard_counts(total: int, per_shard: int) -> list[int]:
    """``--shard-records``: shards of ``per_shard``; a remainder under half a shard is
    folded into the last one."""
    counts = [per_shard] * (total // per_shard)
    remainder = total % per_shard
    if remainder:
        if counts and 2 * remainder < per_shard:
            counts[-1] += remainder
        else:
            counts.append(remainder)
    return counts


def magic_png(seed: int) -> bytes:
    """A small PNG whose tEXt chunk holds the magic at all four alignments, so that one copy
    sits on an aligned word of the record payload and the writer must split the record."""
    image = Image.new("RGB", (9 + seed % 4, 7), (seed * 37 % 256, 90, 200))
    magic = MAGIC_BYTES.decode("latin-1")
    info = PngImagePlugin.PngInfo()
    info.add_text("note", magic + "a" + magic + "bb" + magic + "ccc" + magic)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def has_aligned_magic(payload: bytes) -> bool:
    """Whether the RecordIO writer splits this payload (a magic at an aligned offset)."""
    return any(payload[at : at + 4] == MAGIC_BYTES for at in range(0, len(payload) - 3, 4))


def make_images(root: Path, count: int, magic_at: tuple[int, ...], size: tuple[int, int]) -> list:
    """``root/c<label>/img<i>.<ext>`` with label ``i % CLASSES``, JPEGs and PNGs, the magic
    PNG at ``magic_at``; returns ``(relative path, label)`` in position order."""
    made = []
    for i in range(count):
        label = i % CLASSES
        if i in magic_at:
            name, data = f"c{label}/img{i}.png", magic_png(i)
        elif i % 4 == 3:
            name, data = f"c{label}/img{i}.png", image_bytes(*size, seed=i, fmt="PNG")
        else:
            name, data = f"c{label}/img{i}.jpg", image_bytes(*size, seed=i)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        made.append((name, label))
    return made


def imgfmt(*args: str) -> None:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def shards_of(out_rec: Path) -> list[Path]:
    """The shards pack wrote for ``out_rec``, in order, checking their names and indexes."""
    stem = out_rec.name.removesuffix(".rec")
    found = sorted(p.name for p in out_rec.parent.glob(f"{stem}-*.rec"))
    assert found, f"no shard {stem}-00000-of-*.rec beside {out_rec}"
    match = re.fullmatch(rf"{re.escape(stem)}-\d{{5}}-of-(\d{{5}})\.rec", found[0])
    assert match, found
    count = int(match.group(1))
    assert found == [f"{stem}-{k:05d}-of-{count:05d}.rec" for k in range(count)]
    shards = [out_rec.parent / name for name in found]
    for shard in shards:
        assert shard.with_suffix(".idx").is_file(), shard
    return shards


def combined_index(shards: list[Path]) -> str:
    """What ``OUT.combined.idx`` must hold: the shards' index lines, offsets shifted."""
    lines, base = [], 0
    for shard in shards:
        for key, offset in read_idx(str(shard.with_suffix(".idx"))).items():
            lines.append(f"{key}\t{offset + base}\n")
        base += shard.stat().st_size
    return "".join(lines)


def sample(payload: bytes) -> dict[str, Any]:
    """A record as the DALI snippet reports one: its labels and its image's hash."""
    header, image = unpack_image_record(payload)
    return {"label": list(header.labels), "sha256": hashlib.sha256(image).hexdigest()}


def records_of(shards: list[Path]) -> list[list[bytes]]:
    """Every shard's record payloads, read with imgfmt's reader."""
    out = []
    for shard in shards:
        with RecordReader(str(shard)) as reader:
            out.append([record.payload for record in reader])
    return out


def as_counter(samples: list[dict[str, Any]]) -> Counter:
    return Counter((tuple(s["label"]), s["sha256"]) for s in samples)


DALI_READS = r"""
import hashlib, json, sys
import numpy as np
import nvidia.dali
from nvidia.dali import fn, pipeline_def

job = json.load(open(sys.argv[1]))

def read(shard_id, num_shards):
    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def pipeline():
        data, label = fn.readers.mxnet(
            path=job["paths"], index_path=[job["index"]], random_shuffle=False,
            shard_id=shard_id, num_shards=num_shards, name="reader")
        if job["decode"]:
            return data, label, fn.decoders.image(data, device="cpu")
        return data, label

    pipe = pipeline()
    pipe.build()
    total = pipe.reader_meta("reader")["epoch_size"]
    # Reader k of n reads records [total*k//n, total*(k+1)//n) of the index's order.
    count = total * (shard_id + 1) // num_shards - total * shard_id // num_shards
    samples = []
    for _ in range(count):
        outputs = pipe.run()
        data = np.array(outputs[0][0]).tobytes()
        got = {"label": np.array(outputs[1][0]).reshape(-1).tolist(),
               "sha256": hashlib.sha256(data).hexdigest()}
        if job["decode"]:
            pixels = np.array(outputs[2][0])
            got["shape"] = list(pixels.shape)
            got["pixels"] = hashlib.sha256(pixels.tobytes()).hexdigest()
        samples.append(got)
    return {"epoch_size": total, "samples": samples}

readers = [read(k, n) for k, n in job["readers"]]
json.dump({"version": nvidia.dali.__version__, "readers": readers}, open(job["out"], "w"))
"""


def dali_read(
    run_dali: Any,
    tmp_path: Path,
    shards: list[Path],
    index: Path,
    readers: list[tuple[int, int]],
    decode: bool = False,
) -> list[dict[str, Any]]:
    """Read with DALI's ``fn.readers.mxnet`` once per ``(shard_id, num_shards)`` in
    ``readers``, each for its share of one epoch; returns each reader's epoch size and samples."""
    job, out = tmp_path / "dali-job.json", tmp_path / "dali-out.json"
    job.write_text(
        json.dumps(
            {
                "paths": [str(shard) for shard in shards],
                "index": str(index),
                "readers": readers,
                "decode": decode,
                "out": str(out),
            }
        )
    )
    run_dali(DALI_READS, str(job))
    return json.loads(out.read_text())["readers"]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A list of IMAGES images packed with ``--shard-records SHARD_RECORDS --pass-through``."""
    tmp = tmp_path_factory.mktemp("dali")
    photos = tmp / "photos"
    made = make_images(photos, IMAGES, MAGIC_POSITIONS, size=(20, 14))
    lst = tmp / "set.lst"
    lst.write_text("".join(f"{i}\t{label}\t{name}\n" for i, (name, label) in enumerate(made)))
    out = tmp / "out"
    out.mkdir()
    imgfmt(
        "pack",
        str(lst),
        str(out / "set.rec"),
        "--root",
        str(photos),
        "--pass-through",
        "--shard-records",
        str(SHARD_RECORDS),
    )
    shards = shards_of(out / "set.rec")
    records = records_of(shards)
    assert [len(r) for r in records] == expected_shard_counts(IMAGES, SHARD_RECORDS)
    flat = [payload for shard in records for payload in shard]
    # Shard k holds list positions [k*N, ...): the magic records are at the boundaries, split.
    assert [unpack_image_record(p)[0].id for p in flat] == list(range(IMAGES))
    assert [i for i, p in enumerate(flat) if has_aligned_magic(p)] == list(MAGIC_POSITIONS)
    sources = [(photos / name).read_bytes() for name, _ in made]
    assert [unpack_image_record(p)[1] for p in flat] == sources  # pass-through: unchanged
    return {
        "shards": shards,
        "index": out / "set.combined.idx",
        "records": records,
        "samples": [sample(p) for p in flat],
    }


def test_dali_reads_every_record_of_every_shard_once(
    run_dali: Any, tmp_path: Path, sharded: dict[str, Any]
) -> None:
    shards, index, want = sharded["shards"], sharded["index"], sharded["samples"]
    assert index.read_text() == combined_index(shards)

    (reader,) = dali_read(run_dali, tmp_path, shards, index, [(0, 1)], decode=True)

    assert reader["epoch_size"] == IMAGES
    got = [{"label": s["label"], "sha256": s["sha256"]} for s in reader["samples"]]
    assert as_counter(got) == as_counter(want)
    assert got == want  # and, unshuffled, in shard order
    # DALI's CPU decoder decodes every image, the split (magic-holding) PNGs included;
    # a PNG to the same pixels as Pillow.
    for payload, seen in zip(
        (p for shard in sharded["records"] for p in shard), reader["samples"], strict=True
    ):
        image = unpack_image_record(payload)[1]
        pixels = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
        assert seen["shape"] == list(pixels.shape)
        if image.startswith(b"\x89PNG"):
            assert seen["pixels"] == hashlib.sha256(pixels.tobytes()).hexdigest()


@pytest.mark.parametrize("num_shards", [2, 3])
def test_dali_readers_sharded_n_ways_read_every_record_once(
    run_dali: Any, tmp_path: Path, sharded: dict[str, Any], num_shards: int
) -> None:
    want = sharded["samples"]
    readers = dali_read(
        run_dali,
        tmp_path,
        sharded["shards"],
        sharded["index"],
        [(k, num_shards) for k in range(num_shards)],
    )

    union: Counter = Counter()
    for k, reader in enumerate(readers):
        assert reader["epoch_size"] == IMAGES
        # Reader k reads [N*k//n, N*(k+1)//n) of the combined order, across shard boundaries.
        start, stop = IMAGES * k // num_shards, IMAGES * (k + 1) // num_shards
        assert reader["samples"] == want[start:stop], k
        union.update(as_counter(reader["samples"]))
    assert union == as_counter(want)


def test_dali_reads_a_shard_size_pack_whole(run_dali: Any, tmp_path: Path) -> None:
    count = 23
    photos = tmp_path / "photos"
    made = make_images(photos, count, (count // 2,), size=(128, 96))
    out = tmp_path / "out"
    out.mkdir()
    # A folder SOURCE (listed and shuffled by pack itself).
    imgfmt("pack", str(photos), str(out / "set.rec"), "--pass-through", "--shard-size", "20k")
    shards = shards_of(out / "set.rec")
    assert len(shards) >= 3, [shard.stat().st_size for shard in shards]
    index = out / "set.combined.idx"
    assert index.read_text() == combined_index(shards)
    want = [sample(p) for shard in records_of(shards) for p in shard]
    assert len(want) == count
    sources = Counter(hashlib.sha256((photos / name).read_bytes()).hexdigest() for name, _ in made)
    assert Counter(s["sha256"] for s in want) == sources

    (reader,) = dali_read(run_dali, tmp_path, shards, index, [(0, 1)])

    assert reader["epoch_size"] == count
    assert as_counter(reader["samples"]) == as_counter(want)


def test_dali_given_only_the_first_shards_index_silently_reads_that_shard_alone(
    run_dali: Any, tmp_path: Path, sharded: dict[str, Any]
) -> None:
    """Why the combined index exists: with every shard in ``path`` but shard 0's own
    ``.idx``, DALI raises nothing and reads shard 0's records only, epoch after epoch (the
    last one's span runs over the other files, and only its first record is parsed)."""
    shards, records = sharded["shards"], sharded["records"]
    first = [sample(p) for p in records[0]]
    assert len(shards) > 1

    (reader,) = dali_read(run_dali, tmp_path, shards, shards[0].with_suffix(".idx"), [(0, 1)])

    assert reader["epoch_size"] == len(records[0]) == SHARD_RECORDS
    assert reader["samples"] == first
