"""S3 everywhere: every command on s3:// URIs, against a real HTTP S3 server.

The server is moto's, in a child process, behind a proxy that counts requests and injects
faults (``tests/s3_server.py``, started by the ``s3`` fixture in ``conftest.py``). boto3
really speaks HTTP to it: nothing is patched. CLI runs pass ``--endpoint-url`` as a user
of MinIO would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import S3_TEST_SECRET
from helpers import JPEG_MAGIC, image_bytes, leftovers, make_tree
from helpers import only_error_line as error_line
from helpers import run_s3 as run

from imgfmt import s3 as s3_module
from imgfmt.cli import cli
from imgfmt.formats.recordio import RecordFileWriter, pack_image_record

DATE = "2026-01-01T00:00:00"


def tree_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def s3_files(s3, prefix: str) -> dict[str, bytes]:
    return {key[len(prefix) + 1 :]: s3.get(key) for key in s3.keys(prefix + "/")}


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """Classes at two depths, a non-image file, a non-ASCII name."""
    root = make_tree(tmp_path / "photos", {"cat": 5, "dog": 4, "birds/owl": 3}, size=(40, 30))
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / "Ünïcode name.jpg").write_bytes(image_bytes(30, 40, seed=99))
    return root


# --------------------------------------------------------------------------- acceptance


def test_whole_flow_on_s3_is_byte_identical_to_local(s3, photos: Path, tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    s3.upload_tree(photos, "photos")
    src, out = s3.uri("photos"), s3.uri("out")

    # lst-gen from a prefix: same .lst and class map bytes as from the local folder.
    run(s3, "lst-gen", str(photos), str(local / "all"), "--recursive", "--train-ratio", "0.75")
    run(s3, "lst-gen", src, f"{out}/all", "--recursive", "--train-ratio", "0.75")
    for name in ("all_train.lst", "all_val.lst", "all.classes.tsv"):
        assert s3.get(f"out/{name}") == (local / name).read_bytes(), name

    # pack S3 -> S3, decoding and resizing in worker processes: the same records.
    common = ["--resize", "24", "-j", "2"]
    run(
        s3,
        "pack",
        str(local / "all_train.lst"),
        str(local / "train.rec"),
        "--root",
        str(photos),
        *common,
    )
    run(s3, "pack", f"{out}/all_train.lst", f"{out}/train.rec", "--root", src, *common)
    for name in ("train.rec", "train.idx", "train.classes.tsv"):
        assert s3.get(f"out/{name}") == (local / name).read_bytes(), name
    # ... and a folder straight to a .rec (pass-through, threads).
    run(s3, "pack", str(photos), str(local / "folder.rec"), "--pass-through")
    run(s3, "pack", src, f"{out}/folder.rec", "--pass-through")
    for name in ("folder.rec", "folder.idx", "folder.lst", "folder.classes.tsv"):
        assert s3.get(f"out/{name}") == (local / name).read_bytes(), name

    # verify the S3 result in place.
    result = run(
        s3, "verify", f"{out}/train.rec", "--decode", f"{out}/all_train.lst", "--root", src
    )
    assert "no problems" in result.output
    assert "files found" in result.output

    # unpack the S3 result into a prefix, and into a local folder: the same files.
    run(s3, "unpack", str(local / "train.rec"), str(local / "unpacked"))
    run(s3, "unpack", f"{out}/train.rec", f"{out}/unpacked")
    run(s3, "unpack", f"{out}/train.rec", str(tmp_path / "from-s3"))
    expected = tree_files(local / "unpacked")
    assert s3_files(s3, "out/unpacked") == expected
    assert tree_files(tmp_path / "from-s3") == expected

    # manifest-gen from a prefix: source-ref is each object's own URI.
    run(
        s3,
        "manifest-gen",
        str(photos),
        str(local / "photos.manifest"),
        "--s3-prefix",
        src,
        "--creation-date",
        DATE,
    )
    run(s3, "manifest-gen", src, f"{out}/photos.manifest", "--creation-date", DATE)
    manifest = (local / "photos.manifest").read_bytes()
    assert s3.get("out/photos.manifest") == manifest
    assert f'"source-ref":"{src}/birds/owl/img0.jpg"'.encode() in manifest

    # split of an S3 list, and of an S3 .rec.
    run(s3, "split", str(local / "folder.lst"), str(local / "part"), "--test-ratio", "0.1")
    run(s3, "split", f"{out}/folder.lst", f"{out}/part", "--test-ratio", "0.1")
    run(s3, "split", str(local / "train.rec"), str(local / "recpart"))
    run(s3, "split", f"{out}/train.rec", f"{out}/recpart")
    for name in (
        "part_train.lst",
        "part_val.lst",
        "part_test.lst",
        "part.classes.tsv",
        "recpart_train.rec",
        "recpart_train.idx",
        "recpart_val.rec",
        "recpart_val.idx",
    ):
        assert s3.get(f"out/{name}") == (local / name).read_bytes(), name

    # manifest-to-lst reads a manifest from S3 and writes the list back there.
    run(
        s3,
        "manifest-to-lst",
        str(local / "photos.manifest"),
        str(local / "back"),
        "--s3-prefix",
        src,
    )
    run(s3, "manifest-to-lst", f"{out}/photos.manifest", f"{out}/back", "--s3-prefix", src)
    assert s3.get("out/back.lst") == (local / "back.lst").read_bytes()
    assert s3.uploads() == [] and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- request bounds


def test_listing_more_than_a_page_paginates(s3, tmp_path: Path) -> None:
    root = tmp_path / "many"
    for i in range(1100):  # tiny files: lst-gen lists, it does not decode
        folder = root / f"c{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}.jpg").write_bytes(b"x")
    s3.upload_tree(root, "many")
    run(s3, "lst-gen", str(root), str(tmp_path / "many"), "--recursive")
    s3.proxy.reset()
    run(s3, "lst-gen", s3.uri("many"), s3.uri("lists/many"), "--recursive")
    assert s3.get("lists/many.lst") == (tmp_path / "many.lst").read_bytes()
    pages = s3.proxy.seen("GET", "list-type=2")
    assert len(pages) == 2  # 1,100 keys: two pages of at most 1,000, one listing only
    assert sum("continuation-token" in page.query for page in pages) == 1
    assert s3.proxy.count("GET", "/many/") == 0  # no object was read


def test_unpack_some_ids_reads_just_those_records(s3, tmp_path: Path) -> None:
    image = image_bytes(8, 8)
    rec = tmp_path / "big.rec"
    with RecordFileWriter(str(rec)) as writer:
        for i in range(2000):
            writer.write(pack_image_record(float(i % 5), i, image), key=i)
    s3.put("data/big.rec", rec.read_bytes())
    s3.put("data/big.idx", rec.with_suffix(".idx").read_bytes())
    run(s3, "unpack", str(rec), str(tmp_path / "local"), "--ids", "10-18,1999")
    s3.proxy.reset()
    run(s3, "unpack", s3.uri("data/big.rec"), str(tmp_path / "remote"), "--ids", "10-18,1999")
    assert tree_files(tmp_path / "remote") == tree_files(tmp_path / "local")
    gets = s3.proxy.seen("GET", "/data/big.")
    record_reads = [g for g in gets if g.path.endswith(".rec")]
    assert len(record_reads) == 10 and len(gets) <= 12, gets
    # Each read is one bounded range of one record: no download of the file.
    size = rec.stat().st_size
    spans = []
    for get in record_reads:
        assert get.range is not None
        start, _dash, end = get.range.removeprefix("bytes=").partition("-")
        spans.append((int(end) if end else size - 1) - int(start) + 1)
    assert sum(spans) < size / 100
    assert len(s3.proxy.requests) <= 16  # with HEADs for the .rec, .idx and class map


def test_sequential_reads_stream_one_get(s3, tmp_path: Path) -> None:
    rec = tmp_path / "seq.rec"
    with RecordFileWriter(str(rec)) as writer:
        for i in range(300):
            writer.write(pack_image_record(0.0, i, image_bytes(8, 8)), key=i)
    s3.put("seq.rec", rec.read_bytes())  # no .idx: unpack reads it front to back
    for command in (
        ["unpack", s3.uri("seq.rec"), str(tmp_path / "out")],
        ["verify", s3.uri("seq.rec")],
    ):
        s3.proxy.reset()
        run(s3, *command)
        gets = s3.proxy.seen("GET", "/seq.rec")
        # One stream; without an .idx, one small ranged GET of the head first tells an MXNet
        # .rec from a RecordIO-protobuf one.
        assert [g.range for g in gets] == ["bytes=0-65535", None], gets


def test_pack_to_s3_streams_a_multipart_upload(s3, tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    (blobs / "a").mkdir(parents=True)
    for i in range(3):  # pass-through stores bytes as they are: 12 MiB of records
        (blobs / "a" / f"{i}.jpg").write_bytes(JPEG_MAGIC + os.urandom(4 << 20))
    run(s3, "pack", str(blobs), str(tmp_path / "big.rec"), "--pass-through", "--no-shuffle")
    run(s3, "pack", str(blobs), s3.uri("big.rec"), "--pass-through", "--no-shuffle")
    assert s3.get("big.rec") == (tmp_path / "big.rec").read_bytes()
    assert s3.get("big.idx") == (tmp_path / "big.idx").read_bytes()
    parts = s3.proxy.seen("PUT", "partNumber=")
    assert len(parts) == 3  # 5 MiB parts: 5 + 5 + the last 2
    assert s3.proxy.count("POST", "uploads") == 1  # one CreateMultipartUpload
    assert s3.proxy.count("POST", "uploadId=") == 1  # one CompleteMultipartUpload
    assert s3.proxy.count("PUT", "/big.idx") == 1  # the small .idx: one PutObject
    assert s3.uploads() == []


def test_pack_from_s3_fetches_images_concurrently(s3, photos: Path, tmp_path: Path) -> None:
    s3.upload_tree(photos, "photos")
    run(s3, "pack", s3.uri("photos"), str(tmp_path / "x.rec"), "--pass-through", "-j", "1")
    gets = s3.proxy.seen("GET", "/photos/")
    assert len(gets) == 13  # each image once
    run(s3, "pack", str(photos), str(tmp_path / "y.rec"), "--pass-through", "-j", "1")
    assert (tmp_path / "x.rec").read_bytes() == (tmp_path / "y.rec").read_bytes()


# --------------------------------------------------------------------------- nothing half-made


def test_failed_pack_aborts_the_upload_and_leaves_nothing(s3, tmp_path: Path) -> None:
    blobs = tmp_path / "blobs" / "a"
    blobs.mkdir(parents=True)
    for i in range(3):
        (blobs / f"{i}.jpg").write_bytes(JPEG_MAGIC + os.urandom(3 << 20))
    # The second part fails every time: the run fails, the upload is aborted.
    s3.proxy.fail(99, method="PUT", match="partNumber=2", status=500)
    result = run(s3, "pack", str(blobs.parent), s3.uri("out/x.rec"), "--pass-through", code=1)
    line = error_line(result)
    assert (
        line.startswith(f"Error: {s3.uri('out/x.rec')}: S3 kept failing") and "3 attempts" in line
    )
    assert s3.proxy.count("DELETE", "uploadId=") == 1  # AbortMultipartUpload
    assert s3.uploads() == [] and s3.keys("out/") == []


def test_interrupted_pack_aborts_the_upload(s3, tmp_path: Path) -> None:
    from imgfmt.ops.pack import pack

    blobs = tmp_path / "blobs" / "a"
    blobs.mkdir(parents=True)
    for i in range(4):
        (blobs / f"{i}.jpg").write_bytes(JPEG_MAGIC + os.urandom(3 << 20))
    done = []

    def interrupt(n: int) -> None:
        done.append(n)
        if len(done) == 3:  # after a part went up
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pack(
            str(blobs.parent),
            s3.uri("out/x.rec"),
            options=_pass_through(),
            workers=1,
            on_progress=interrupt,
        )
    assert s3.proxy.count("PUT", "partNumber=1") == 1
    assert s3.uploads() == [] and s3.keys("out/") == []


def _pass_through():
    from imgfmt.images import ImageOptions

    return ImageOptions(pass_through=True)


# --------------------------------------------------------------------------- faults


def test_transient_failures_are_retried(s3, photos: Path, tmp_path: Path) -> None:
    s3.upload_tree(photos, "photos")
    run(s3, "pack", str(photos), str(tmp_path / "local.rec"), "--resize", "20")
    proxy = s3.proxy
    rules = [
        proxy.fail(1, method="GET", match="list-type=2", status=500),
        proxy.fail(2, method="GET", match="/photos/cat/", status=503),
        proxy.fail(1, method="GET", match="/photos/dog/", mode="drop"),
        proxy.fail(1, method="GET", match="/photos/birds/", mode="cut"),
        proxy.fail(1, method="PUT", match="/out.idx", mode="drop"),
        proxy.fail(1, method="PUT", match="/out.lst", status=500),
    ]
    run(s3, "pack", s3.uri("photos"), s3.uri("out.rec"), "--resize", "20", "-j", "2")
    assert [rule.hits for rule in rules] == [rule.times for rule in rules]
    assert s3.get("out.rec") == (tmp_path / "local.rec").read_bytes()
    assert s3.get("out.idx") == (tmp_path / "local.idx").read_bytes()


def test_a_stream_cut_short_is_reopened_where_it_broke(s3, tmp_path: Path) -> None:
    rec = tmp_path / "seq.rec"
    with RecordFileWriter(str(rec)) as writer:
        for i in range(200):
            writer.write(pack_image_record(0.0, i, os.urandom(5000)), key=i)
    s3.put("seq.rec", rec.read_bytes())
    s3.put("seq.idx", rec.with_suffix(".idx").read_bytes())  # so the one GET is the stream
    s3.proxy.fail(1, method="GET", match="/seq.rec", mode="cut")
    result = run(s3, "verify", s3.uri("seq.rec"))
    assert "no problems" in result.output
    gets = s3.proxy.seen("GET", "/seq.rec")
    assert len(gets) == 2 and gets[1].range is not None  # reopened at the byte it broke


# --------------------------------------------------------------------------- errors


def test_missing_bucket_and_key_are_one_line(s3, photos: Path, tmp_path: Path) -> None:
    result = run(s3, "unpack", "s3://imgfmt-no-such-bucket/x.rec", str(tmp_path / "o"), code=1)
    assert error_line(result) == (
        "Error: s3://imgfmt-no-such-bucket/x.rec: bucket 'imgfmt-no-such-bucket' does not exist "
        "(check the bucket name, and --endpoint-url / --region)"
    )
    result = run(s3, "unpack", s3.uri("nope.rec"), str(tmp_path / "o"), code=1)
    assert error_line(result) == (
        f"Error: {s3.uri('nope.rec')}: no such file (check the path of the .rec)"
    )
    result = run(s3, "lst-gen", s3.uri("nothing"), str(tmp_path / "x"), "--recursive", code=1)
    assert error_line(result) == (
        f"Error: {s3.uri('nothing')}: no objects under this prefix (check the prefix)"
    )
    result = run(s3, "split", s3.uri("nope.lst"), str(tmp_path / "x"), code=1)
    assert error_line(result).startswith(f"Error: {s3.uri('nope.lst')}: no such object")
    result = run(s3, "pack", str(photos), "s3://imgfmt-no-such-bucket/x.rec", code=1)
    assert "bucket 'imgfmt-no-such-bucket' does not exist" in error_line(result)
    assert s3.proxy.count("GET", "list-type=2") == 1  # the one lst-gen above; pack read nothing


def test_access_denied_is_one_line(s3, tmp_path: Path) -> None:
    s3.put("photos/a/x.jpg", image_bytes(8, 8))
    s3.proxy.fail(99, match=f"/{s3.bucket}", status=403)
    result = run(s3, "lst-gen", s3.uri("photos"), str(tmp_path / "x"), "--recursive", code=1)
    assert error_line(result) == (
        f"Error: {s3.uri('photos')}: access denied "
        "(check that the credentials (--profile, AWS_PROFILE) may use this bucket)"
    )


def test_no_credentials_is_one_line(s3, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    s3_module.reset()  # the cached client holds the old credentials
    try:
        result = run(s3, "verify", s3.uri("x.rec"), code=1)
        assert result.stdout.splitlines()[0] == (
            f"{s3.uri('x.rec')}: no AWS credentials found (set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass --profile)"
        )
        result = run(s3, "unpack", s3.uri("x.rec"), str(tmp_path), code=1)
        assert error_line(result) == (
            f"Error: {s3.uri('x.rec')}: no AWS credentials found (set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass --profile)"
        )
    finally:
        s3_module.reset()
    assert s3.proxy.requests == []  # nothing unsigned was sent


def test_unreachable_endpoint_is_one_line_without_traceback(s3, tmp_path: Path) -> None:
    from s3_server import closed_port

    port = closed_port()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "imgfmt",
            "--endpoint-url",
            f"http://127.0.0.1:{port}",
            "unpack",
            "s3://bkt/data/x.rec",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"Error: s3://bkt/data/x.rec: cannot connect to http://127.0.0.1:{port} (tried 3 times) "
        "(check --endpoint-url / AWS_ENDPOINT_URL and the network)"
    ]


def test_the_secret_key_never_appears(s3, photos: Path, tmp_path: Path) -> None:
    s3.upload_tree(photos, "photos")
    outputs = []
    for args, code in (
        (["-v", "pack", s3.uri("photos"), s3.uri("x.rec"), "--json"], 0),
        (["-v", "verify", s3.uri("x.rec"), "--json"], 0),
        (["-v", "unpack", s3.uri("missing.rec"), str(tmp_path / "o")], 1),
        (["-v", "lst-gen", "s3://imgfmt-no-such-bucket/p", str(tmp_path / "l")], 1),
    ):
        result = run(s3, *args, code=code)
        outputs.append(result.output + result.stderr)
    s3.proxy.fail(5, status=403)
    result = run(s3, "-v", "unpack", s3.uri("x.rec"), str(tmp_path / "o"), code=1)
    outputs.append(result.output + result.stderr)
    assert "Traceback" in outputs[-1]  # -v shows it, and still no secret in it
    for text in outputs:
        assert S3_TEST_SECRET not in text
        assert "X-Amz-Signature" not in text and "Signature=" not in text


def test_verify_reports_a_missing_object_and_lst_gen_hints_at_recursive(s3, photos: Path) -> None:
    result = run(s3, "verify", s3.uri("gone.rec"), code=1)
    assert result.stdout.splitlines()[0] == f"{s3.uri('gone.rec')}: no such object (check the key)"
    s3.upload_tree(photos, "photos")
    result = run(s3, "lst-gen", s3.uri("photos"), s3.uri("l/x"), code=2)
    assert error_line(result).endswith("(images in class sub-folders need --recursive)")
    assert s3.keys("l/") == []


def test_unknown_profile_is_one_line(s3, tmp_path: Path) -> None:
    result = run(
        s3, "--profile", "no-such-profile", "unpack", s3.uri("x.rec"), str(tmp_path), code=1
    )
    assert error_line(result) == (
        f"Error: {s3.uri('x.rec')}: AWS profile 'no-such-profile' not found "
        "(check --profile / AWS_PROFILE against ~/.aws/config)"
    )


def test_endpoint_from_the_environment(s3, photos: Path, monkeypatch) -> None:
    s3.upload_tree(photos, "photos")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)  # as the AWS CLI reads it
    s3_module.reset()
    try:
        result = CliRunner().invoke(
            cli, ["lst-gen", s3.uri("photos"), s3.uri("l/x"), "--recursive"]
        )
    finally:
        s3_module.reset()
    assert result.exit_code == 0, result.output
    assert s3.keys("l/") == [f"l/{name}" for name in ("x.classes.tsv", "x.lst")]


def test_empty_objects_and_index_past_the_end_are_damage_not_raw_errors(s3, tmp_path: Path) -> None:
    s3.put("e/empty.rec", b"")
    result = run(s3, "unpack", s3.uri("e/empty.rec"), str(tmp_path / "e"), code=1)
    assert (
        error_line(result) == f"Error: {s3.uri('e/empty.rec')}: holds no records; nothing written"
    )
    rec = tmp_path / "cut.rec"
    with RecordFileWriter(str(rec)) as writer:
        for i in range(6):
            writer.write(pack_image_record(0.0, i, image_bytes(8, 8, seed=i)), key=i)
    index = rec.with_suffix(".idx").read_text().splitlines()
    offsets = [int(line.split("\t")[1]) for line in index]
    s3.put("e/cut.rec", rec.read_bytes()[: offsets[4]])
    s3.put("e/cut.idx", rec.with_suffix(".idx").read_bytes())
    result = run(s3, "unpack", s3.uri("e/cut.rec"), str(tmp_path / "c"), "--ids", "1,4", code=3)
    assert f"byte {offsets[4]}: offset {offsets[4]} is past the end of the file" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in (tmp_path / "c").rglob("*.*")) == ["1.jpg", "cut.lst"]
