"""--dry-run of pack, convert, unpack and split: the run's checks, then what it would write
(each output as the run names it, with the images it would hold), and nothing touched.

Every case runs the dry run, checks that the tree (or bucket) is as it was, then runs the
command for real and checks that the dry run named exactly what it wrote, with the same
counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import make_tree

from imgfmt import formats, storage
from imgfmt.cli import cli
from imgfmt.errors import FormatError

HEADER = "dry run: nothing written"


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, (result.output, result.stderr, result.exception)
    return result


def dry(*args: str) -> dict:
    """The ``--json`` summary of a dry run of ``args`` (which must exit 0)."""
    summary = json.loads(run(*args, "--dry-run", "--json").stdout)
    assert summary["dry_run"] is True
    return summary


def snapshot(folder: Path) -> dict[str, int]:
    """Every file and folder under ``folder`` (hidden ones too), with its mtime: what a dry
    run must leave as it found it."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def files_under(folder: Path) -> set[str]:
    return {p.as_posix() for p in folder.rglob("*") if p.is_file()}


def items_in(path: str) -> int:
    """The items a written file holds: a list's lines, a dataset's items."""
    if path.endswith(".lst"):
        return len(Path(path).read_text().splitlines())

    def damaged(err: FormatError) -> None:
        raise err

    return sum(1 for _item in formats.existing(path).read(path, damaged))


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "photos", {"cat": 5, "dog": 4, "emu": 3}, size=(32, 24))


@pytest.fixture
def dataset(photos: Path, tmp_path: Path) -> Path:
    """``data/all.rec`` + ``.idx``, with its list and class map beside it."""
    out = tmp_path / "data" / "all.rec"
    run("pack", str(photos), str(out), "--pass-through", "--no-shuffle")
    return out


# --------------------------------------------------------------------------- pack


@pytest.mark.parametrize(
    "out, options",
    [
        ("all.rec", []),
        ("all.rec", ["--shard-records", "5"]),
        ("all.rec", ["--chunks", "2"]),
        ("all.rec", ["--format", "recordio-protobuf", "--size", "8x8", "--shard-records", "4"]),
        ("all.jsonl", []),
        ("all.tar", []),
        ("all.tar", ["--shard-records", "5"]),
    ],
)
def test_pack_dry_run_names_what_the_run_writes(
    photos: Path, tmp_path: Path, out: str, options: list[str]
) -> None:
    target = tmp_path / "out" / "sub" / out  # neither folder exists yet
    before = snapshot(tmp_path)
    plan = dry("pack", str(photos), str(target), *options)
    assert snapshot(tmp_path) == before  # no file, no folder, no temporary file
    assert plan["folders"] == [str(target.parent)]
    assert plan["packed"] == 12

    result = json.loads(run("pack", str(photos), str(target), *options, "--json").stdout)
    for key in ("outputs", "indexes", "combined_index", "lists"):
        assert plan[key] == result[key], key
    assert plan["packed"] == result["packed"]
    planned = {plan["class_map"], *plan["outputs"], *plan["indexes"], *plan["lists"]}
    assert files_under(target.parent) == planned | set(plan["combined_index"])
    assert plan["counts"] == {path: items_in(path) for path in plan["outputs"] + plan["lists"]}


def test_pack_dry_run_summary(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "all.rec"
    text = run("pack", str(photos), str(out), "--shard-records", "5", "--dry-run").stdout
    shard = str(tmp_path / "out" / "all-{}-of-00002.{}")
    assert text.splitlines() == [
        HEADER,
        f"would create folder {out.parent}",
        f"would write {tmp_path}/out/all.classes.tsv (class map)",
        f"would write {tmp_path}/out/all.lst (12 images)",
        f"would write {shard.format('00000', 'rec')} + {shard.format('00000', 'idx')} (5 images)",
        f"would write {shard.format('00001', 'rec')} + {shard.format('00001', 'idx')} (7 images)",
        f"would write {tmp_path}/out/all.combined.idx (index of all 2 shards, for NVIDIA DALI)",
        "would pack 12 images (none read yet)",
    ]
    assert not out.parent.exists()


def test_pack_dry_run_of_a_list_reads_no_image(
    dataset: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(paths: object) -> None:
        raise AssertionError("a dry run read an image")

    monkeypatch.setattr(storage, "read_many", no_reading)
    source = str(dataset.with_suffix(".lst"))
    out = tmp_path / "packed" / "train.rec"
    before = snapshot(tmp_path)
    plan = dry("pack", source, str(out), "--root", str(photos), "--shard-records", "4")
    assert snapshot(tmp_path) == before
    # The class map found beside the list is copied beside the output; the list itself
    # is the source: no list is written.
    assert plan["class_map"] == str(tmp_path / "packed" / "train.classes.tsv")
    assert plan["lists"] == []
    assert list(plan["counts"].values()) == [4, 4, 4]
    monkeypatch.undo()
    run("pack", source, str(out), "--root", str(photos), "--shard-records", "4")
    assert files_under(out.parent) == {
        plan["class_map"],
        *plan["outputs"],
        *plan["indexes"],
        *plan["combined_index"],
    }


def test_pack_dry_run_counts_images_it_does_not_read(photos: Path, tmp_path: Path) -> None:
    """Damaged images are found by reading them: a dry run counts them, the run skips them."""
    (photos / "cat" / "img0.jpg").write_bytes(b"not an image")
    plan = dry("pack", str(photos), str(tmp_path / "out.rec"))
    assert plan["packed"] == 12
    result = run("pack", str(photos), str(tmp_path / "out.rec"), "--json", code=3)
    assert json.loads(result.stdout)["packed"] == 11


def test_pack_dry_run_by_size_names_shards_by_pattern(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.rec"
    plan = dry("pack", str(photos), str(out), "--shard-size", "2kB")
    assert plan["outputs"] == [str(tmp_path / "all-*.rec")]
    assert plan["indexes"] == [str(tmp_path / "all-*.idx")]
    assert plan["combined_index"] == [str(tmp_path / "all.combined.idx")]
    assert plan["counts"][plan["outputs"][0]] == 12 and plan["shard_size"] == 2000
    text = run("pack", str(photos), str(out), "--shard-size", "2kB", "--dry-run").stdout
    assert f"would write shards of about 2.0 KB, {tmp_path}/all-*.rec + " in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]
    result = json.loads(run("pack", str(photos), str(out), "--shard-size", "2kB", "--json").stdout)
    assert len(result["outputs"]) > 1
    assert all(Path(p).match("all-*.rec") for p in result["outputs"])
    assert sum(items_in(p) for p in result["outputs"]) == 12


@pytest.mark.parametrize(
    "args",
    [
        ["{photos}", "{out}/x.rec", "--pass-through", "--resize", "8"],  # usage: exit 2
        ["{photos}", "{out}/x.rec", "--format", "recordio-protobuf"],  # no --size: exit 2
        ["{photos}", "{out}/x.tar", "--shard-size", "1MB", "--engine", "ray"],  # exit 2
        ["{data}/all.lst", "{out}/x.rec", "--root", "{out}/nowhere"],  # root: exit 2
        ["{data}/all.lst", "{out}/x.rec", "--include", "*.jpg"],  # a list: exit 2
        ["{tmp}/missing.lst", "{out}/x.rec"],  # no such list: exit 1
        ["{data}/bad.lst", "{out}/x.rec", "--root", "{photos}"],  # a bad line: exit 1
        ["{photos}", "{data}/all.rec/x.rec"],  # a file where a folder must be: exit 1
        ["{photos}", "{data}/shards.tar"],  # shards of that name there: exit 2
    ],
)
def test_pack_dry_run_fails_as_the_run_fails(
    photos: Path, dataset: Path, tmp_path: Path, args: list[str]
) -> None:
    data = dataset.parent
    (data / "bad.lst").write_text("0\t1\tcat/img0.jpg\nnot a line\n")
    (data / "shards-000000.tar").write_bytes(b"")
    names = {"photos": photos, "data": data, "out": tmp_path / "out", "tmp": tmp_path}
    args = [arg.format(**names) for arg in args]
    before = snapshot(tmp_path)
    planned = CliRunner().invoke(cli, ["pack", *args, "--dry-run"])
    assert snapshot(tmp_path) == before
    real = CliRunner().invoke(cli, ["pack", *args])
    assert planned.exit_code == real.exit_code != 0
    assert planned.stderr == real.stderr
    assert "Traceback" not in planned.stderr


# --------------------------------------------------------------------------- convert


@pytest.mark.parametrize(
    "out, options",
    [
        ("conv/all.jsonl", []),
        ("conv/all.tar", ["--shard-records", "5"]),
        ("conv/digits.rec", ["--format", "recordio-protobuf", "--size", "8x8"]),
    ],
)
def test_convert_dry_run_names_what_the_run_writes(
    dataset: Path, tmp_path: Path, out: str, options: list[str]
) -> None:
    target = tmp_path / out
    before = snapshot(tmp_path)
    plan = dry("convert", str(dataset), str(target), *options)
    assert snapshot(tmp_path) == before
    assert (plan["items"], plan["counted_by"], plan["source_format"]) == (12, "index", "recordio")
    assert plan["folders"] == [str(target.parent)]
    result = json.loads(run("convert", str(dataset), str(target), *options, "--json").stdout)
    assert plan["outputs"] == result["outputs"] and plan["converted"] == result["converted"]
    carried = {plan["class_map"]} if plan["class_map"] else set()
    assert files_under(target.parent) == set(plan["outputs"]) | carried
    assert plan["counts"] == {path: items_in(path) for path in plan["outputs"]}


def test_convert_dry_run_counts_by_reading_without_an_index(dataset: Path, tmp_path: Path) -> None:
    shards = tmp_path / "shards" / "all.tar"
    run("convert", str(dataset), str(shards), "--shard-records", "5")
    back = tmp_path / "back" / "all.rec"
    before = snapshot(tmp_path)
    text = run("convert", str(shards), str(back), "--dry-run").stdout
    assert snapshot(tmp_path) == before
    assert text.splitlines() == [
        HEADER,
        f"{shards}: 12 items (webdataset, counted by reading it)",
        f"would create folder {back.parent}",
        f"would write {back} + {back.with_suffix('.idx')} (12 images)",
        f"would write {back.with_suffix('.classes.tsv')} (the class map, copied)",
        "would convert 12 items (webdataset -> recordio); skip 0, damaged 0 (no image decoded yet)",
    ]
    plan = dry("convert", str(shards), str(tmp_path / "again.tar"), "--shard-size", "3kB")
    assert plan["counted_by"] == "read" and plan["unlabeled"] == 0
    assert plan["outputs"] == [str(tmp_path / "again-*.tar")] and plan["shard_size"] == 3000
    assert plan["counts"] == {str(tmp_path / "again-*.tar"): 12}


def test_convert_dry_run_fails_as_the_run_fails(dataset: Path, tmp_path: Path) -> None:
    for args in (
        [str(dataset), str(tmp_path / "x.rec"), "--shard-records", "5"],  # webdataset only: 2
        [str(tmp_path / "missing.rec"), str(tmp_path / "x.jsonl")],  # 1
        [str(dataset), str(tmp_path / "x.bin")],  # no format: 2
    ):
        planned = CliRunner().invoke(cli, ["convert", *args, "--dry-run"])
        real = CliRunner().invoke(cli, ["convert", *args])
        assert planned.exit_code == real.exit_code != 0
        assert planned.stderr == real.stderr


# --------------------------------------------------------------------------- unpack


@pytest.mark.parametrize("options", [[], ["--ids", "2-9", "--limit", "5"], ["--ids", "0,11"]])
def test_unpack_dry_run_counts_what_the_run_writes(
    dataset: Path, tmp_path: Path, options: list[str]
) -> None:
    outdir = tmp_path / "unpacked"
    before = snapshot(tmp_path)
    plan = dry("unpack", str(dataset), str(outdir), *options)
    assert snapshot(tmp_path) == before
    assert plan["folders"] == [str(outdir)]
    result = json.loads(run("unpack", str(dataset), str(outdir), *options, "--json").stdout)
    for key in ("outdir", "format", "list", "written", "bytes", "classes", "damaged"):
        assert plan[key] == result[key], key
    images = {p for p in files_under(outdir) if not p.endswith((".lst", ".tsv"))}
    assert len(images) == plan["written"]
    for folder, count in plan["classes"].items():
        assert len(list((outdir / folder).iterdir())) == count
    assert files_under(outdir) - images == {plan["list"], plan["class_map"]}


def test_unpack_dry_run_summary(dataset: Path, tmp_path: Path) -> None:
    outdir = tmp_path / "unpacked"
    text = run("unpack", str(dataset), str(outdir), "--limit", "7", "--dry-run").stdout
    assert text.splitlines() == [
        HEADER,
        f"would create folder {outdir}",
        f"would write {outdir}/cat/ (5 images)",
        f"would write {outdir}/dog/ (2 images)",
        f"would write {outdir}/all.lst (7 images)",
        f"would write {outdir}/all.classes.tsv (class map)",
        f"would unpack 7 images ({_kb(dataset, 7)}) into 2 folders under {outdir}; 0 damaged",
    ]
    assert not outdir.exists()
    run("unpack", str(dataset), str(outdir), "--ids", "99", "--dry-run", code=2)
    assert not outdir.exists()


def _kb(dataset: Path, count: int) -> str:
    """What the first ``count`` images of ``dataset`` weigh, as summaries say it."""
    from imgfmt.text import human_bytes

    def damaged(err: FormatError) -> None:
        raise err

    items = formats.existing(str(dataset)).read(str(dataset), damaged)
    return human_bytes(sum(len(next(items).image) for _n in range(count)))


# --------------------------------------------------------------------------- split


@pytest.mark.parametrize("source", ["all.rec", "all.lst", "all.tar"])
def test_split_dry_run_plans_what_the_run_writes(
    dataset: Path, tmp_path: Path, source: str
) -> None:
    if source == "all.tar":
        run("convert", str(dataset), str(dataset.with_suffix(".tar")))
    path = str(dataset.with_suffix(Path(source).suffix))
    prefix = tmp_path / "parts" / "photos"
    args = ["split", path, str(prefix), "--train-ratio", "0.5", "--test-ratio", "0.25"]
    before = snapshot(tmp_path)
    plan = dry(*args)
    assert snapshot(tmp_path) == before
    assert plan.pop("folders") == [str(prefix.parent)]
    plan.pop("dry_run")
    result = json.loads(run(*args, "--json").stdout)
    assert plan == result  # the same outputs, counts per split and class, class map


def test_split_dry_run_summary(dataset: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "parts" / "photos"
    text = run("split", str(dataset), str(prefix), "--dry-run").stdout
    p = str(prefix)
    assert text.splitlines() == [
        HEADER,
        f"would create folder {prefix.parent}",
        f"would write {p}_train.rec + {p}_train.idx (10 images; 0: 4, 1: 3, 2: 3)",
        f"would write {p}_val.rec + {p}_val.idx (2 images; 0: 1, 1: 1)",
        f"would write {p}.classes.tsv (class map, copied from {dataset.parent}/all.classes.tsv)",
        "12 in, 12 out: train 10, val 2 (3 classes, stratified by class, seed 100); "
        "nothing lost, nothing duplicated",
    ]
    assert not prefix.parent.exists()


def test_split_dry_run_fails_as_the_run_fails(dataset: Path, tmp_path: Path) -> None:
    shards = tmp_path / "part_train-000000.tar"
    run("convert", str(dataset), str(dataset.with_suffix(".tar")))
    shards.write_bytes(b"")  # a dataset of the train output's name is there
    (dataset.parent / "all_train.lst").write_bytes(dataset.with_suffix(".lst").read_bytes())
    for args in (
        [str(dataset.with_suffix(".tar")), str(tmp_path / "part")],  # 2
        [str(dataset), str(tmp_path / "part"), "--train-ratio", "1"],  # 2
        [str(dataset.parent / "all_train.lst"), str(dataset.with_suffix(""))],  # itself: 2
        [str(tmp_path / "missing.rec"), str(tmp_path / "part")],  # 1
    ):
        before = snapshot(tmp_path)
        planned = CliRunner().invoke(cli, ["split", *args, "--dry-run"])
        assert snapshot(tmp_path) == before
        real = CliRunner().invoke(cli, ["split", *args])
        assert planned.exit_code == real.exit_code != 0, args
        assert planned.stderr == real.stderr


# --------------------------------------------------------------------------- S3


def test_dry_runs_on_s3_write_nothing(s3, photos: Path, tmp_path: Path) -> None:
    """Reads and HEADs only: no PutObject, no multipart upload, nothing in the bucket."""
    s3.upload_tree(photos, "photos")
    data = tmp_path / "data" / "all.rec"
    run("pack", str(photos), str(data), "--pass-through")
    for name in ("all.rec", "all.idx", "all.lst", "all.classes.tsv"):
        s3.put(f"data/{name}", (data.parent / name).read_bytes())
    keys = s3.keys()
    s3.proxy.reset()

    def s3_dry(*args: str) -> dict:
        result = run("--endpoint-url", s3.endpoint, *args, "--dry-run", "--json")
        return json.loads(result.stdout)

    plan = s3_dry("pack", s3.uri("photos"), s3.uri("out/all.rec"), "--shard-records", "5")
    assert plan["counts"] == {
        s3.uri("out/all-00000-of-00002.rec"): 5,
        s3.uri("out/all-00001-of-00002.rec"): 7,
        s3.uri("out/all.lst"): 12,
    }
    assert s3.proxy.count("GET", "/photos/cat/") == 0  # listed, never read
    convert = s3_dry("convert", s3.uri("data/all.rec"), s3.uri("out/all.tar"))
    assert convert["counted_by"] == "index" and convert["items"] == 12
    assert s3.proxy.count("GET", "/data/all.rec") == 0  # counted through the .idx
    unpacked = s3_dry("unpack", s3.uri("data/all.rec"), s3.uri("out/unpacked"), "--limit", "3")
    assert unpacked["written"] == 3
    split = s3_dry("split", s3.uri("data/all.rec"), s3.uri("out/part"))
    assert split["total_out"] == 12
    writes = [r for r in s3.proxy.seen() if r.method in ("PUT", "POST", "DELETE")]
    assert writes == []
    assert s3.keys() == keys and s3.uploads() == []

    run("--endpoint-url", s3.endpoint, "pack", s3.uri("photos"), s3.uri("out/all.rec"),
        "--shard-records", "5")  # fmt: skip
    written = {s3.uri(key) for key in s3.keys("out/")}
    assert written == {
        *plan["outputs"], *plan["indexes"], *plan["combined_index"], *plan["lists"],
        plan["class_map"],
    }  # fmt: skip
