"""pack --shard-records / --shard-size: shard names, what each shard holds, the combined
index, and that a failed or impossible sharded pack leaves nothing behind.

RecordIO framing does not depend on where a record sits, so the shards of a dataset joined
in order are byte for byte the unsharded ``.rec``, and the combined index is the unsharded
``.idx``: the strongest check that no record is lost, repeated or moved between shards.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import leftovers, make_tree

from imgfmt.cli import cli
from imgfmt.formats import lst
from imgfmt.formats.recordio import RecordReader, read_idx, unpack_image_record
from imgfmt.ops.shards import ListPlanner, shard_starts


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def ids_of(rec: Path) -> list[int]:
    return [unpack_image_record(r.payload)[0].id for r in RecordReader(str(rec), use_index=False)]


def shards_of(folder: Path, stem: str) -> list[Path]:
    return sorted(folder.glob(f"{stem}-*-of-*.rec"))


@pytest.mark.parametrize(
    ("total", "per_shard", "sizes"),
    [
        (22, 5, [5, 5, 5, 7]),  # a remainder of 2 < 5/2 joins the last shard
        (23, 5, [5, 5, 5, 5, 3]),  # 3 >= 5/2 is a shard of its own
        (20, 5, [5, 5, 5, 5]),
        (3, 5, [3]),
        (1, 1, [1]),
        (7, 2, [2, 2, 2, 1]),  # 1 is not under 2/2
        (7, 3, [3, 4]),
    ],
)
def test_shard_starts_follow_the_list_and_fold_a_small_remainder(
    total: int, per_shard: int, sizes: list[int]
) -> None:
    starts = shard_starts(total, per_shard)
    assert [b - a for a, b in zip(starts, [*starts[1:], total])] == sizes


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "photos", {"cat": 8, "dog": 8, "owl": 6})


def test_shard_records_from_a_folder(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code, output = run("pack", str(photos), str(out / "one.rec"))
    assert code == 0, output
    code, output = run("pack", str(photos), str(out / "train.rec"), "--shard-records", "5")
    assert code == 0, output
    shards = shards_of(out, "train")
    assert [p.name for p in shards] == [f"train-0000{k}-of-00004.rec" for k in range(4)]
    assert f"wrote {out / 'train.combined.idx'} (index of all 4 shards" in output
    # The same shuffled list, cut at positions 5, 10, 15 (22 images: the last shard has 7).
    entries = list(lst.read_lst(str(out / "train.lst")))
    assert [ids_of(p) for p in shards] == [
        [e.index for e in entries[a:b]] for a, b in [(0, 5), (5, 10), (10, 15), (15, 22)]
    ]
    assert b"".join(p.read_bytes() for p in shards) == (out / "one.rec").read_bytes()
    assert (out / "train.combined.idx").read_bytes() == (out / "one.idx").read_bytes()
    for shard in shards:  # each shard is a dataset of its own, with its own index
        assert read_idx(str(shard.with_suffix(".idx"))) == {
            r.key: r.offset
            for r in (
                type("R", (), {"key": unpack_image_record(x.payload)[0].id, "offset": x.offset})
                for x in RecordReader(str(shard), use_index=False)
            )
        }
    assert leftovers(out) == []


def test_shard_records_from_a_list_reads_byte_ranges(photos: Path, tmp_path: Path) -> None:
    """A list with a BOM, CRLF line ends and blank lines: each shard task reads its own
    byte range of it, and gets exactly the entries a whole read gives at those positions."""
    entries = list(lst.list_images(str(photos), recursive=True)[0])
    text = "".join(f"{e.index}\t{e.labels[0]:.6f}\t{e.path}\r\n" for e in entries)
    text = "\ufeff" + text.replace("\r\n", "\r\n\r\n", 3)
    listing = tmp_path / "all.lst"
    listing.write_bytes(text.encode())
    planner = ListPlanner(str(listing), 5)
    whole = list(planner)
    ranges = planner.ranges()
    assert [e for r in ranges for e in r.entries()] == whole == list(lst.read_lst(str(listing)))
    assert [len(r.entries()) for r in ranges] == [5, 5, 5, 7]
    out = tmp_path / "out"
    out.mkdir()
    args = ["--root", str(photos), "--no-shuffle"]
    assert run("pack", str(listing), str(out / "one.rec"), *args)[0] == 0
    code, output = run("pack", str(listing), str(out / "s.rec"), *args, "--shard-records", "5")
    assert code == 0, output
    shards = shards_of(out, "s")
    assert len(shards) == 4
    assert b"".join(p.read_bytes() for p in shards) == (out / "one.rec").read_bytes()
    assert (out / "s.combined.idx").read_bytes() == (out / "one.idx").read_bytes()


def test_a_bad_line_stops_a_sharded_pack_before_any_work(photos: Path, tmp_path: Path) -> None:
    listing = tmp_path / "bad.lst"
    listing.write_text("0\t0\tcat/img0.jpg\n1\t0\n")
    code, output = run("pack", str(listing), str(tmp_path / "s.rec"), "--shard-records", "1")
    assert code != 0
    assert "line 2: expected at least 3 tab-separated fields" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.lst", "photos"]


def test_shard_size_names_and_combined_index(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert run("pack", str(photos), str(out / "one.rec"))[0] == 0
    code, output = run("pack", str(photos), str(out / "s.rec"), "--shard-size", "8k")
    assert code == 0, output
    shards = shards_of(out, "s")
    count = len(shards)
    assert count >= 3
    assert [p.name for p in shards] == [f"s-{k:05d}-of-{count:05d}.rec" for k in range(count)]
    assert b"".join(p.read_bytes() for p in shards) == (out / "one.rec").read_bytes()
    assert (out / "s.combined.idx").read_bytes() == (out / "one.idx").read_bytes()
    assert not list(out.glob("s-0000?.*")), "the names a shard was opened under are gone"


def test_json_names_every_file(photos: Path, tmp_path: Path) -> None:
    code, output = run(
        "pack", "--json", str(photos), str(tmp_path / "t.rec"), "--shard-records", "10"
    )
    assert code == 0, output
    summary = json.loads(output)
    assert summary["outputs"] == [str(tmp_path / f"t-0000{k}-of-00002.rec") for k in range(2)]
    assert summary["indexes"] == [str(tmp_path / f"t-0000{k}-of-00002.idx") for k in range(2)]
    assert summary["combined_index"] == [str(tmp_path / "t.combined.idx")]
    assert summary["packed"] == 22


def test_a_shard_with_no_good_image_fails_whole(photos: Path, tmp_path: Path) -> None:
    """Shard 1 (positions 2-3) holds only broken files: nothing is written, and the error
    names the shard (the other shards' images were packed, then dropped with the rest)."""
    good = sorted((photos / "cat").iterdir())
    (photos / "cat" / "img2.jpg").write_bytes(b"not an image")
    (photos / "cat" / "img3.jpg").write_bytes(b"")
    listing = tmp_path / "l.lst"
    listing.write_text("".join(f"{i}\t0\tcat/{p.name}\n" for i, p in enumerate(good[:6])))
    out = tmp_path / "out"
    out.mkdir()
    code, output = run("pack", str(listing), str(out / "s.rec"), "--root", str(photos),
                       "--shard-records", "2")  # fmt: skip
    assert code == 1
    assert "every image of shard 1 (2 images) was skipped" in output
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shard-records", "5", "--shard-size", "1MB"], "--shard-size and --shard-records"),
        (["--engine", "ray"], "--engine ray runs one task per shard: it needs --shard-records"),
        (["--engine", "ray", "--shard-size", "1MB"], "it needs --shard-records"),
    ],
)
def test_options_that_do_not_fit_exit_2(
    photos: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    code, output = run("pack", str(photos), str(tmp_path / "s.rec"), *extra)
    assert code == 2, output
    assert message in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_a_cluster_that_does_not_answer_is_one_line(photos: Path, tmp_path: Path) -> None:
    """Before any work, and at once: ray.init would retry for minutes, printing warnings."""
    from s3_server import closed_port

    address = f"127.0.0.1:{closed_port()}"
    result = CliRunner().invoke(cli, ["pack", str(photos), str(tmp_path / "s.rec"),
                                      "--shard-records", "5", "--engine", "ray",
                                      "--ray-address", address])  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: cannot reach the Ray cluster at {address}: Connection refused (check "
        "--ray-address / RAY_ADDRESS: ray://head:10001 for Ray Client, head:6379 on a node "
        "of the cluster; or leave it out for a local cluster)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_without_ray_the_engine_says_how_to_install_it(photos: Path, tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
        "from imgfmt.cli import main; sys.argv[0] = 'imgfmt'; main()"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "pack",
            str(photos),
            str(tmp_path / "s.rec"),
            "--shard-records",
            "5",
            "--engine",
            "ray",
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "Error: the Ray engine needs Ray, which is not installed (install it with: pip "
        'install "imgfmt[ray]")'
    )


def test_a_refused_upload_leaves_nothing_on_s3(s3, photos: Path) -> None:
    """Shard 2's data part is refused (403): the run fails, no object appears and no
    multipart upload is left open, though shards 0 and 1 were already staged."""
    s3.upload_tree(photos, "photos")
    s3.proxy.fail(99, method="PUT", match="s-00002-of-00004.rec", status=403)
    code, output = run("--endpoint-url", s3.endpoint, "pack", s3.uri("photos"),
                       s3.uri("out/s.rec"), "--shard-records", "5")  # fmt: skip
    assert code == 1, output
    assert "access denied" in output
    assert s3.keys("out/") == []
    assert s3.uploads() == []


def test_shards_on_s3_match_local(s3, photos: Path, tmp_path: Path) -> None:
    s3.upload_tree(photos, "photos")
    assert run("pack", str(photos), str(tmp_path / "s.rec"), "--shard-records", "5")[0] == 0
    code, output = run("--endpoint-url", s3.endpoint, "pack", s3.uri("photos"),
                       s3.uri("out/s.rec"), "--shard-records", "5")  # fmt: skip
    assert code == 0, output
    local = sorted(p.name for p in tmp_path.glob("s*") if p.is_file())
    assert s3.keys("out/") == [f"out/{name}" for name in local]
    for name in local:
        assert s3.get(f"out/{name}") == (tmp_path / name).read_bytes(), name
    assert s3.uploads() == []


@pytest.mark.interop
def test_mxnet_reads_every_shard_with_its_index(photos: Path, tmp_path: Path, run_mxnet) -> None:
    assert run("pack", str(photos), str(tmp_path / "s.rec"), "--shard-records", "5")[0] == 0
    shards = shards_of(tmp_path, "s")
    code = (
        "import sys, json, hashlib\n"
        "from mxnet import recordio\n"
        "out = []\n"
        "for rec in sys.argv[1:]:\n"
        "    r = recordio.MXIndexedRecordIO(rec[:-4] + '.idx', rec, 'r')\n"
        "    for key in r.keys:\n"
        "        header, image = recordio.unpack(r.read_idx(key))\n"
        "        out.append([rec, key, header.id, float(header.label),\n"
        "                    hashlib.sha1(image).hexdigest()])\n"
        "print(json.dumps(out))\n"
    )
    seen = json.loads(run_mxnet(code, *map(str, shards)))
    ours = []
    import hashlib

    for shard in shards:
        for record in RecordReader(str(shard)):
            header, image = unpack_image_record(record.payload)
            ours.append([str(shard), header.id, header.id, header.label,
                         hashlib.sha1(image).hexdigest()])  # fmt: skip
    assert seen == ours
    assert len(seen) == 22
