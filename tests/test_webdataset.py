"""WebDataset tar shards: what the ``webdataset`` library reads from imgfmt's shards, what
imgfmt reads from ``webdataset.ShardWriter``'s, round trips, sharding, damage, atomicity."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from helpers import image_bytes, leftovers
from PIL import Image

from imgfmt.errors import FormatError, ImageError, StorageError, UsageError
from imgfmt.formats import get, webdataset_first_shard
from imgfmt.formats.base import Item, Location
from imgfmt.formats.webdataset import WebDataset, dataset_shards, expand_braces, shard_path
from imgfmt.storage import AtomicOutputs

wds = pytest.importorskip("webdataset")


def jpeg(seed: int) -> bytes:
    return image_bytes(16, 12, seed=seed)


def png(seed: int) -> bytes:
    return image_bytes(12, 10, seed=seed, fmt="PNG")


def write(fmt: WebDataset, path: Path | str, items: list[Item]) -> list[str]:
    """Write ``items`` as the dataset ``path``; the shard paths, in order."""
    with AtomicOutputs() as outputs:
        writer = fmt.writer(str(path), outputs)
        for item in items:
            writer.append(fmt.encode(item), item)
        writer.finish()
    assert writer.records_written == len(items)
    if not str(path).startswith("s3://"):
        assert writer.bytes_written == sum(Path(p).stat().st_size for p in writer.outputs)
    return writer.outputs


def read(path: Path | str) -> tuple[list[Item], list[FormatError]]:
    damage: list[FormatError] = []
    items = list(WebDataset().read(str(path), damage.append))
    return items, damage


def fields(item: Item) -> tuple[int, tuple[float, ...], str | None, bytes]:
    return item.index, item.labels, item.path, item.image


def members(shard: str) -> list[tuple[str, int]]:
    """Name and header offset of each member of a tar."""
    with tarfile.open(shard) as tar:
        return [(m.name, m.offset) for m in tar.getmembers()]


def seven_items() -> list[Item]:
    return [
        Item(0, (3.0,), jpeg(0), "cat/a.jpg"),
        Item(1, (1.0, 0.0, 1.0), png(1), "both/b.png", multi_label=True),
        Item(2, (), jpeg(2), "none/c.jpg"),
        Item(5, (2.5,), png(5), None),
        Item(7, (0.0,), jpeg(7), "cat/été.jpg"),
        Item(8, (12.0,), jpeg(8), "dog/d.jpg"),
        Item(10, (4.0,), png(10), "e.png"),
    ]


# --------------------------------------------------------------------------- the library reads ours


def test_webdataset_library_reads_imgfmt_shards(tmp_path: Path) -> None:
    items = seven_items()
    shards = write(WebDataset(shard_records=3), tmp_path / "train.tar", items)
    assert [Path(p).name for p in shards] == [
        "train-000000.tar",
        "train-000001.tar",
        "train-000002.tar",
    ]
    assert [len(members(s)) for s in shards] == [3 + 2 + 2, 2 + 3 + 3, 3]
    json_offset = 1024 + 512 + 512 * -(-len(items[0].image) // 512)
    assert members(shards[0])[:3] == [
        ("000000.cls", 0),
        ("000000.jpg", 1024),
        ("000000.json", json_offset),
    ]

    samples = list(wds.WebDataset(shards, shardshuffle=False))
    assert [s["__key__"] for s in samples] == [
        "000000", "000001", "000002", "000005", "000007", "000008", "000010",
    ]  # fmt: skip
    assert [s.get("cls") for s in samples] == [b"3", None, None, None, b"0", b"12", b"4"]
    assert [json.loads(s["json"]) for s in samples] == [
        {"id": 0, "labels": [3], "path": "cat/a.jpg"},
        {"id": 1, "labels": [1, 0, 1], "path": "both/b.png"},
        {"id": 2, "labels": [], "path": "none/c.jpg"},
        {"id": 5, "labels": [2.5], "path": None},
        {"id": 7, "labels": [0], "path": "cat/été.jpg"},
        {"id": 8, "labels": [12], "path": "dog/d.jpg"},
        {"id": 10, "labels": [4], "path": "e.png"},
    ]
    assert samples[4]["json"] == '{"id":7,"labels":[0],"path":"cat/été.jpg"}'.encode()
    assert [s.get("jpg") or s.get("png") for s in samples] == [i.image for i in items]
    assert [sorted(k for k in s if not k.startswith("__")) for s in samples][:2] == [
        ["cls", "jpg", "json"],
        ["json", "png"],
    ]

    decoded = wds.WebDataset(shards, shardshuffle=False).decode("pil").to_tuple("jpg;png", "json")
    got = [(image.size, image.mode, meta["id"], image.tobytes()) for image, meta in decoded]
    assert [g[:3] for g in got] == [
        ((16, 12), "RGB", 0), ((12, 10), "RGB", 1), ((16, 12), "RGB", 2), ((12, 10), "RGB", 5),
        ((16, 12), "RGB", 7), ((16, 12), "RGB", 8), ((12, 10), "RGB", 10),
    ]  # fmt: skip
    pixels = [Image.open(io.BytesIO(i.image)).convert("RGB").tobytes() for i in items]
    assert [g[3] for g in got] == pixels
    # The documented PyTorch pipeline, over the single-label samples (those with a .cls).
    labelled = wds.WebDataset(shards, shardshuffle=False).select(lambda s: "cls" in s)
    pairs = labelled.decode("pil").to_tuple("jpg;png", "cls")
    assert [(image.size, cls) for image, cls in pairs] == [
        ((16, 12), 3),
        ((16, 12), 0),
        ((16, 12), 12),
        ((12, 10), 4),
    ]


def test_members_are_those_webdataset_tarwriter_writes() -> None:
    """Same bytes as ``TarWriter(user="", group="", mtime=0)`` for the same sample: ustar,
    mode 0o444, uid/gid 0, no names, mtime 0, members sorted by extension."""
    item = Item(42, (3.0,), jpeg(4), "cat/x.jpg")
    payload = WebDataset().encode(item)
    stream = io.BytesIO()
    writer = wds.TarWriter(stream, user="", group="", mtime=0)
    sample = {
        "__key__": "000042",
        "jpg": item.image,
        "cls": b"3",
        "json": b'{"id":42,"labels":[3],"path":"cat/x.jpg"}',
    }
    writer.write(sample)
    writer.close()
    assert stream.getvalue()[: len(payload)] == payload
    assert set(stream.getvalue()[len(payload) :]) == {0}  # then only the end blocks
    with tarfile.open(fileobj=io.BytesIO(payload + bytes(1024))) as tar:
        infos = tar.getmembers()
    assert [(i.name, i.mode, i.uid, i.gid, i.uname, i.gname, i.mtime) for i in infos] == [
        (name, 0o444, 0, 0, "", "", 0) for name in ("000042.cls", "000042.jpg", "000042.json")
    ]
    assert payload[257:265] == b"ustar\x0000"
    assert len(payload) == 3 * 512 + 512 + 512 * -(-len(item.image) // 512) + 512


# --------------------------------------------------------------------------- we read the library's


def write_with_shardwriter(folder: Path) -> list[dict[str, object]]:
    samples: list[dict[str, object]] = []
    for n in range(10):
        sample: dict[str, object] = {"__key__": f"{n:06d}", "jpg": jpeg(n), "cls": n % 4}
        if n % 3 == 0:
            sample["json"] = {"id": 100 + n, "caption": f"number {n}"}
        if n == 7:
            sample["__key__"] = "img_seven"
        samples.append(sample)
    with wds.ShardWriter(str(folder / "wds-%06d.tar"), maxcount=4, verbose=0) as sink:
        for sample in samples:
            sink.write(dict(sample))
    return samples


def test_imgfmt_reads_shardwriter_shards_by_name_and_by_pattern(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    samples = write_with_shardwriter(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "wds-000000.tar",
        "wds-000001.tar",
        "wds-000002.tar",
    ]
    expected = [
        (100, (0.0,), "000000.jpg", samples[0]["jpg"]),
        (1, (1.0,), "000001.jpg", samples[1]["jpg"]),
        (2, (2.0,), "000002.jpg", samples[2]["jpg"]),
        (103, (3.0,), "000003.jpg", samples[3]["jpg"]),
        (4, (0.0,), "000004.jpg", samples[4]["jpg"]),
        (5, (1.0,), "000005.jpg", samples[5]["jpg"]),
        (106, (2.0,), "000006.jpg", samples[6]["jpg"]),
        (7, (3.0,), "img_seven.jpg", samples[7]["jpg"]),  # no digits: its sample number
        (8, (0.0,), "000008.jpg", samples[8]["jpg"]),
        (109, (1.0,), "000009.jpg", samples[9]["jpg"]),
    ]
    pattern = tmp_path / "wds-{000000..000002}.tar"
    for source in (tmp_path / "wds.tar", pattern):
        items, damage = read(source)
        assert [fields(i) for i in items] == expected
        assert damage == []
    items, _ = read(tmp_path / "wds.tar")
    third = dict(members(str(tmp_path / "wds-000000.tar")))["000003.cls"]
    assert [i.where for i in items[3:5]] == [
        Location(record=3, offset=third, file=str(tmp_path / "wds-000000.tar")),
        Location(record=4, offset=0, file=str(tmp_path / "wds-000001.tar")),
    ]

    monkeypatch.setitem(sys.modules, "braceexpand", None)  # not installed: our own expansion
    items, damage = read(pattern)
    assert [fields(i) for i in items] == expected and damage == []
    items, damage = read(tmp_path / "wds-{000002,000000}.tar")
    assert [i.index for i in items] == [8, 109, 100, 1, 2, 103] and damage == []


def test_brace_expansion_without_braceexpand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "braceexpand", None)
    assert list(expand_braces("s3://b/x-{000008..000011}.tar")) == [
        "s3://b/x-000008.tar",
        "s3://b/x-000009.tar",
        "s3://b/x-000010.tar",
        "s3://b/x-000011.tar",
    ]
    assert list(expand_braces("{a,b}-{1..2}-{x}.tar")) == [
        "a-1-{x}.tar",
        "a-2-{x}.tar",
        "b-1-{x}.tar",
        "b-2-{x}.tar",
    ]
    assert list(expand_braces("t-{3..1}.tar")) == ["t-3.tar", "t-2.tar", "t-1.tar"]


# --------------------------------------------------------------------------- round trips


def test_round_trip_gives_back_the_items_and_the_same_bytes(tmp_path: Path) -> None:
    items = [
        *seven_items(),
        Item(11, (), image_bytes(8, 8, seed=3, fmt="GIF", mode="P"), "anim/g.gif"),
        Item(12, (-1.0, 2.5), image_bytes(8, 8, seed=4, fmt="WEBP"), None, multi_label=True),
        Item(1234567, (7.0,), jpeg(9), "big/id.jpg"),
    ]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write(WebDataset(shard_records=4), tmp_path / "a" / "train.tar", items)
    again = write(WebDataset(shard_records=4), tmp_path / "b" / "train.tar", items)
    assert [Path(p).read_bytes() for p in first] == [Path(p).read_bytes() for p in again]
    assert [name for name, _ in members(first[2])] == [
        "000012.json",
        "000012.webp",
        "1234567.cls",
        "1234567.jpg",
        "1234567.json",
    ]

    got, damage = read(tmp_path / "a" / "train.tar")
    assert damage == []
    assert [fields(i) for i in got] == [fields(i) for i in items]
    assert [i.multi_label for i in got] == [False, True] + [False] * 6 + [True, False]
    assert [i.where.record if i.where else None for i in got] == list(range(10))


def test_an_image_only_pillow_knows_is_named_by_its_format_and_no_image_is_refused(
    tmp_path: Path,
) -> None:
    """A TGA (no signature of its own) is stored as .tga and reads back as an image; bytes
    that are no image are not stored (a member no reader could decode): ImageError."""
    from PIL import Image

    tga = io.BytesIO()
    Image.new("RGB", (4, 3), (9, 8, 7)).save(tga, "TGA")
    items = [Item(0, (1.0,), jpeg(0)), Item(1, (2.0,), tga.getvalue(), "a.tga")]
    shards = write(WebDataset(), tmp_path / "odd.tar", items)
    assert [name for name, _ in members(shards[0])][3:] == [
        "000001.cls",
        "000001.json",
        "000001.tga",
    ]
    got, damage = read(shards[0])
    assert [fields(i) for i in got] == [fields(i) for i in items] and damage == []
    with pytest.raises(ImageError) as err:
        WebDataset().encode(Item(2, (0.0,), b"not an image at all", "odd.dat"))
    assert err.value.kind == "not-image"


def test_an_empty_dataset_is_one_empty_tar(tmp_path: Path) -> None:
    shards = write(WebDataset(), tmp_path / "empty.tar", [])
    assert shards == [str(tmp_path / "empty-000000.tar")]
    assert Path(shards[0]).read_bytes() == bytes(1024)
    assert read(tmp_path / "empty.tar") == ([], [])


# --------------------------------------------------------------------------- sharding


def test_shard_size_rolls_over_before_a_sample_that_would_not_fit(tmp_path: Path) -> None:
    items = [Item(i, (1.0,), jpeg(i), f"{i}.jpg") for i in range(5)]
    sizes = [len(WebDataset().encode(i)) for i in items]
    assert len(set(sizes)) == 1  # same-sized samples: 5 of them
    limit = 2 * sizes[0] + 1024  # two samples and the end blocks fit exactly

    shards = write(WebDataset(shard_size=limit), tmp_path / "s.tar", items)
    assert [[int(name[:6]) for name, _ in members(s)][::3] for s in shards] == [[0, 1], [2, 3], [4]]
    assert [Path(s).stat().st_size for s in shards] == [limit, limit, sizes[0] + 1024]

    (tmp_path / "under").mkdir()
    shards = write(WebDataset(shard_size=limit - 1), tmp_path / "under" / "s.tar", items)
    assert [len(members(s)) for s in shards] == [3] * 5

    # A sample larger than shard_size still gets a shard, alone.
    (tmp_path / "tiny").mkdir()
    shards = write(WebDataset(shard_size=1), tmp_path / "tiny" / "s.tar", items[:3])
    assert [len(members(s)) for s in shards] == [3, 3, 3]
    assert [Path(s).stat().st_size for s in shards] == [sizes[0] + 1024] * 3

    # shard_records and shard_size together: whichever comes first.
    (tmp_path / "both").mkdir()
    both = WebDataset(shard_records=3, shard_size=limit)
    shards = write(both, tmp_path / "both" / "s.tar", items)
    assert [len(members(s)) // 3 for s in shards] == [2, 2, 1]
    (tmp_path / "records").mkdir()
    shards = write(
        WebDataset(shard_records=1, shard_size=10 * limit),
        tmp_path / "records" / "s.tar",
        items[:2],
    )
    assert [len(members(s)) // 3 for s in shards] == [1, 1]


def test_a_repeated_id_is_refused(tmp_path: Path) -> None:
    fmt = WebDataset()
    path = str(tmp_path / "dup.tar")
    with pytest.raises(FormatError) as err, AtomicOutputs() as outputs:
        writer = fmt.writer(path, outputs)
        for item in (Item(3, (0.0,), jpeg(0)), Item(4, (0.0,), jpeg(1)), Item(3, (1.0,), jpeg(2))):
            writer.append(fmt.encode(item), item)
    assert str(err.value) == (
        f"{path}: id 3 is used twice "
        "(ids (the .lst index column) must be unique: each is a sample's key)"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"shard_records": 0}, "shard_records must be a whole number of at least 1, not 0"),
        ({"shard_size": -5}, "shard_size must be a whole number of at least 1, not -5"),
    ],
)
def test_options_are_checked(options: dict[str, int], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        get("webdataset", **options)


def test_a_negative_id_cannot_be_a_key() -> None:
    with pytest.raises(UsageError, match="id -1 is negative"):
        WebDataset().encode(Item(-1, (), jpeg(0)))


# --------------------------------------------------------------------------- damage


def test_a_truncated_shard_is_read_to_the_damage_then_the_next_shard(tmp_path: Path) -> None:
    items = [Item(i, (float(i),), jpeg(i), f"{i}.jpg") for i in range(6)]
    shards = write(WebDataset(shard_records=3), tmp_path / "t.tar", items)
    layout = members(shards[0])
    jpg_offset = dict(layout)["000002.jpg"]
    Path(shards[0]).write_bytes(Path(shards[0]).read_bytes()[: jpg_offset + 700])

    got, damage = read(tmp_path / "t.tar")
    assert [fields(i) for i in got] == [fields(i) for i in items if i.index != 2]
    assert [str(d) for d in damage] == [
        f"{shards[0]}: byte {jpg_offset}: member '000002.jpg' is cut short or damaged: "
        "unexpected end of data; its sample is skipped "
        "(the shard is truncated, as by an interrupted copy: copy it again)"
    ]
    assert damage[0].path == shards[0]

    # Cut at a member boundary: the sample before may be incomplete, and is skipped.
    Path(shards[0]).write_bytes(Path(shards[0]).read_bytes()[:jpg_offset])
    got, damage = read(shards[0])
    assert [i.index for i in got] == [0, 1]  # sample 2 holds only its .cls: skipped
    assert [(d.path, d.where) for d in damage] == [(shards[0], f"byte {jpg_offset}")]
    assert "ends here, without its end-of-archive blocks; sample '000002'" in str(damage[0])


def test_a_damaged_header_and_a_file_that_is_no_tar(tmp_path: Path) -> None:
    shards = write(WebDataset(), tmp_path / "d.tar", [Item(i, (), jpeg(i)) for i in range(3)])
    data = bytearray(Path(shards[0]).read_bytes())
    offset = dict(members(shards[0]))["000002.jpg"]
    data[offset + 20] ^= 0xFF  # its header's checksum no longer matches
    Path(shards[0]).write_bytes(data)
    got, damage = read(shards[0])
    assert [i.index for i in got] == [0]  # sample 1 may have had more members: skipped
    assert [str(d) for d in damage] == [
        f"{shards[0]}: byte {offset}: damaged member header: bad checksum; sample '000001' "
        "before it may be incomplete and is skipped (the shard is damaged from here on)"
    ]
    (tmp_path / "no.tar").write_bytes(b"just text, no tar" * 40)
    assert [str(d) for d in read(tmp_path / "no.tar")[1]] == [
        f"{tmp_path / 'no.tar'}: byte 0: not a tar file: invalid header "
        "(a shard is an uncompressed tar file)"
    ]


def test_a_sample_without_an_image_is_reported_and_skipped(tmp_path: Path) -> None:
    shard = tmp_path / "x-000000.tar"
    with wds.TarWriter(str(shard)) as sink:
        sink.write({"__key__": "a", "jpg": jpeg(0), "cls": b"1"})
        sink.write({"__key__": "b", "txt": b"a caption", "cls": b"2"})
        sink.write({"__key__": "c", "input.png": png(2), "json": b'{"labels":[5,6]}'})
        sink.write({"__key__": "d", "jpg": jpeg(3), "json": b'{"labels":"cat"}'})
        sink.write({"__key__": "e", "jpg": jpeg(4), "cls": b"seven"})
        sink.write({"__key__": "f", "jpg": jpeg(5), "json": b"{not json"})
        sink.write({"__key__": "g", "jpeg": jpeg(6), "cls": b" 4\n"})
    got, damage = read(shard)
    assert [fields(i) for i in got] == [
        (0, (1.0,), "a.jpg", jpeg(0)),
        (2, (5.0, 6.0), "c.input.png", png(2)),
        (6, (4.0,), "g.jpeg", jpeg(6)),
    ]
    offsets = [offset for name, offset in members(str(shard)) if name.endswith(".cls")]
    assert [(d.where, d.message) for d in damage] == [
        (f"record 1 at byte {offsets[1]}", "sample 'b': no image member (it has .cls, .txt)"),
        (
            f"record 3 at byte {members(str(shard))[6][1]}",
            "sample 'd': its .json \"labels\" 'cat' are not finite numbers",
        ),
        (f"record 4 at byte {offsets[2]}", "sample 'e': its .cls member 'seven' is not a number"),
        (
            f"record 5 at byte {members(str(shard))[10][1]}",
            "sample 'f': its .json member is not UTF-8 JSON",
        ),
    ]
    assert all(d.path == str(shard) for d in damage)


def test_a_shard_missing_from_the_numbering_is_reported(tmp_path: Path) -> None:
    items = [Item(i, (), jpeg(i)) for i in range(4)]
    shards = write(WebDataset(shard_records=1), tmp_path / "m.tar", items)
    Path(shards[1]).unlink()
    Path(shards[2]).unlink()
    got, damage = read(tmp_path / "m.tar")
    assert [i.index for i in got] == [0, 3]
    assert [str(d) for d in damage] == [
        f"{tmp_path / 'm.tar'}: shard m-000001.tar to m-000002.tar is missing from the dataset "
        "(the shards around it are read; copy the missing one again)"
    ]
    with pytest.raises(StorageError, match="no such file, and no shards n-000000.tar"):
        read(tmp_path / "n.tar")


def test_a_file_named_like_the_dataset_is_read_alone(tmp_path: Path) -> None:
    write(WebDataset(), tmp_path / "d.tar", [Item(1, (), jpeg(1))])
    single = write(WebDataset(), tmp_path / "other.tar", [Item(9, (), jpeg(9))])
    Path(single[0]).rename(tmp_path / "d.tar")
    assert [i.index for i in read(tmp_path / "d.tar")[0]] == [9]
    assert dataset_shards(str(tmp_path / "d.tar")) == [(0, str(tmp_path / "d-000000.tar"))]


def test_sniff_and_shard_names(tmp_path: Path) -> None:
    write(WebDataset(), tmp_path / "s.tar", [Item(1, (), jpeg(1))])
    (tmp_path / "fake.tar").write_bytes(bytes(2048))
    fmt = WebDataset()
    assert fmt.sniff(str(tmp_path / "s.tar")) and fmt.sniff(str(tmp_path / "s-000000.tar"))
    assert fmt.sniff(str(tmp_path / "s-{000000..000001}.tar"))
    assert not fmt.sniff(str(tmp_path / "fake.tar")) and not fmt.sniff(str(tmp_path / "t.tar"))
    assert shard_path("s3://b/out/train.tar", 12) == "s3://b/out/train-000012.tar"
    assert shard_path("out/train.tar", 0) == webdataset_first_shard("out/train.tar")


# --------------------------------------------------------------------------- S3


def test_shards_on_s3_are_written_listed_and_streamed(s3: Any, tmp_path: Path) -> None:
    items = seven_items()
    local = write(WebDataset(shard_records=3), tmp_path / "train.tar", items)
    remote = write(WebDataset(shard_records=3), s3.uri("out/train.tar"), items)
    assert remote == [s3.uri(f"out/train-00000{n}.tar") for n in range(3)]
    assert [s3.get(f"out/train-00000{n}.tar") for n in range(3)] == [
        Path(p).read_bytes() for p in local
    ]
    s3.put("out/train-000000.tar.bak", b"not a shard")  # beside them, and not one of them
    for source in (s3.uri("out/train.tar"), s3.uri("out/train-{000000..000002}.tar")):
        s3.proxy.reset()
        got, damage = read(source)
        assert [fields(i) for i in got] == [fields(i) for i in items] and damage == []
        # Streamed: one GET per shard, no ranged re-reads.
        gets = s3.proxy.seen("GET", "/out/train-")
        assert sorted(g.path.rsplit("/", 1)[1] for g in gets) == [
            f"train-00000{n}.tar" for n in range(3)
        ]
        assert all(g.range is None or g.range.startswith("bytes=0-") for g in gets)
    assert WebDataset().sniff(s3.uri("out/train.tar"))

    jpg = dict(members(local[1]))["000007.jpg"]
    s3.put("out/train-000001.tar", Path(local[1]).read_bytes()[: jpg + 600])  # cut in its data
    got, damage = read(s3.uri("out/train.tar"))
    assert [i.index for i in got] == [0, 1, 2, 5, 10]
    assert [(d.path, d.where) for d in damage] == [(s3.uri("out/train-000001.tar"), f"byte {jpg}")]


# --------------------------------------------------------------------------- atomicity


def test_nothing_appears_when_the_group_is_aborted(tmp_path: Path) -> None:
    fmt = WebDataset(shard_records=1)
    with pytest.raises(RuntimeError, match="interrupted"), AtomicOutputs() as outputs:
        writer = fmt.writer(str(tmp_path / "a.tar"), outputs)
        for item in [Item(i, (), jpeg(i)) for i in range(3)]:
            writer.append(fmt.encode(item), item)
        assert len(writer.outputs) == 3
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == [] and leftovers(tmp_path) == []
