"""Image lists as users get them wrong (issue 17): ``verify --decode`` of a list, a wrong or
missing ``--root``, an image (or other binary file) given where a list is expected, and an
S3 endpoint that does not answer at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import image_bytes, leftovers, make_tree

from imgfmt.cli import cli
from imgfmt.formats.recordio import RecordFileWriter, pack_image_record
from imgfmt.ops.pack import pack

ROOT_HINT = "(pass --root, the folder the list's paths are relative to)"
NOT_A_LIST_HINT = "(give the .lst, or the folder of images)"


def invoke(*args: str, code: int) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, (result.output, result.stderr, result.exception)
    assert "Traceback" not in result.output
    return result


def error_line(result: Result) -> str:
    """The run's last stderr line (a usage error prints usage above it)."""
    return result.stderr.strip().splitlines()[-1]


def write_list(path: Path, relatives: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\t{i % 2}.000000\t{rel}\n" for i, rel in enumerate(relatives)))
    return path


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "photos", {"cat": 3, "dog": 3}, size=(40, 30))


@pytest.fixture()
def listed(tmp_path: Path, photos: Path) -> Path:
    """data/x.lst naming the 6 photos, relative to photos/ (not to the list's folder)."""
    names = [f"{c}/img{i}.jpg" for c in ("cat", "dog") for i in range(3)]
    return write_list(tmp_path / "data" / "x.lst", names)


# --------------------------------------------------------------------------- verify --decode


def test_verify_decode_of_a_list_decodes_every_image(photos: Path, listed: Path) -> None:
    good = image_bytes(40, 30, seed=5)
    (photos / "cat" / "img1.jpg").write_bytes(good[:300])  # cut short
    (photos / "dog" / "img2.jpg").write_text("not an image")
    args = ["verify", str(listed), "--root", str(photos)]
    # Without --decode the files are only looked up.
    assert invoke(*args, code=0).stdout.splitlines() == [
        "checked 1 file: 6 lst lines, 6 lst entries, 6 files found: no problems"
    ]
    lines = invoke(*args, "--decode", code=1).stdout.splitlines()
    assert lines[0].startswith(f"{listed}: line 2: {photos / 'cat' / 'img1.jpg'}: truncated JPEG")
    assert lines[1:] == [
        f"{listed}: line 6: {photos / 'dog' / 'img2.jpg'}: not an image (unrecognised format; "
        "starts with 'not an image')",
        "checked 1 file: 6 lst lines, 6 lst entries, 6 files found, 6 images decoded: "
        "2 problems (decode 2)",
    ]
    # The same on one worker as on all cores.
    assert invoke(*args, "--decode", "-j", "1", code=1).stdout.splitlines() == lines


def test_verify_decode_of_a_list_goes_on_past_missing_images(photos: Path, listed: Path) -> None:
    (photos / "dog" / "img0.jpg").unlink()
    result = invoke("verify", str(listed), "--root", str(photos), "--decode", "--json", code=1)
    report = json.loads(result.stdout)
    assert report["checked"] == {
        "lst_lines": 6,
        "lst_entries": 6,
        "files_found": 5,
        "images_decoded": 5,
    }
    assert report["problems"] == [
        {
            "path": str(listed),
            "format": "lst",
            "check": "file",
            "where": "line 4",
            "message": f"image not found: {photos / 'dog' / 'img0.jpg'}",
            "line": 4,
        }
    ]


# --------------------------------------------------------------------------- --root


def test_pack_with_a_root_that_holds_none_of_the_images_is_one_error(
    tmp_path: Path, listed: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    out = tmp_path / "out.rec"
    result = invoke("pack", str(listed), str(out), "--root", f"{wrong}/", code=1)
    assert result.stderr.splitlines() == [
        f"Error: none of the 6 images of {listed} is under {wrong}/ (the first, "
        f"{wrong}/cat/img0.jpg, does not exist) {ROOT_HINT}"
    ]
    assert not out.exists() and leftovers(tmp_path) == []


def test_pack_without_root_names_the_lists_folder(listed: Path, tmp_path: Path) -> None:
    result = invoke("pack", str(listed), str(tmp_path / "out.rec"), code=1)
    folder = listed.parent
    assert error_line(result) == (
        f"Error: none of the 6 images of {listed} is under the list's folder {folder} "
        f"(the first, {folder / 'cat' / 'img0.jpg'}, does not exist) {ROOT_HINT}"
    )


def test_a_root_that_does_not_exist_is_a_usage_error(tmp_path: Path, listed: Path) -> None:
    nowhere = tmp_path / "nowhere"
    expected = (
        f"Error: the --root folder {nowhere} does not exist (give the folder the list's paths "
        "are relative to)"
    )
    result = invoke("pack", str(listed), str(tmp_path / "o.rec"), "--root", str(nowhere), code=2)
    assert error_line(result) == expected
    result = invoke("verify", str(listed), "--root", str(nowhere), code=2)
    assert error_line(result) == expected
    assert result.stdout == ""


def test_verify_with_a_wrong_root_is_one_problem(tmp_path: Path, listed: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    rec = tmp_path / "d.rec"
    with RecordFileWriter(str(rec)) as writer:
        writer.write(pack_image_record(0.0, 0, image_bytes(8, 8)), key=0)
    # The other inputs are still verified.
    result = invoke("verify", str(listed), str(rec), "--root", str(wrong), code=1)
    assert result.stdout.splitlines() == [
        f"{listed}: none of the 6 images of {listed} is under {wrong} (the first, "
        f"{wrong / 'cat' / 'img0.jpg'}, does not exist) {ROOT_HINT}",
        "checked 2 files: 6 lst lines, 6 lst entries, 0 files found, 1 record, 1 index entry: "
        "1 problem (root 1)",
    ]


def test_a_root_with_some_of_the_images_keeps_one_line_per_missing_image(
    tmp_path: Path, photos: Path
) -> None:
    # The first six are missing (more than are looked up first), the last is there.
    names = [f"gone/{i}.jpg" for i in range(6)] + ["cat/img0.jpg"]
    listed = write_list(tmp_path / "some.lst", names)
    lines = invoke("verify", str(listed), "--root", str(photos), code=1).stdout.splitlines()
    assert lines == [
        *(
            f"{listed}: line {i + 1}: image not found: {photos / 'gone' / f'{i}.jpg'}"
            for i in range(6)
        ),
        "checked 1 file: 7 lst lines, 7 lst entries, 1 file found: 6 problems (file 6)",
    ]
    result = pack(str(listed), str(tmp_path / "some.rec"), root=str(photos), workers=1)
    assert result.packed == 1
    assert [s.path for s in result.skipped] == [str(photos / "gone" / f"{i}.jpg") for i in range(6)]


def test_a_short_list_with_its_image_missing_is_the_root_too(tmp_path: Path) -> None:
    listed = write_list(tmp_path / "one.lst", ["a.jpg"])
    result = invoke("verify", str(listed), code=1)
    assert result.stdout.splitlines()[0] == (
        f"{listed}: the image of {listed} is not under the list's folder {tmp_path} "
        f"({tmp_path / 'a.jpg'} does not exist) {ROOT_HINT}"
    )


# --------------------------------------------------------------------------- not a list


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (image_bytes(16, 16), "a JPEG image"),
        (image_bytes(16, 16, fmt="PNG"), "a PNG image"),
        (image_bytes(16, 16, fmt="GIF"), "a GIF image"),
        (b"\x0a\x23\xd7\xce" + bytes(12), "a RecordIO file (.rec)"),
        (b"PK\x03\x04\x14\x00\x00\x00" + bytes(30), "a binary file"),
    ],
)
def test_an_image_given_as_a_list_says_what_it_is(
    tmp_path: Path, content: bytes, what: str
) -> None:
    cat = tmp_path / "cat.jpg"
    cat.write_bytes(content)
    result = invoke("pack", str(cat), str(tmp_path / "o.rec"), code=1)
    assert result.stderr.splitlines() == [
        f"Error: {cat}: this is {what}, not an image list (.lst) {NOT_A_LIST_HINT}"
    ]


def test_every_command_that_reads_a_list_says_it_is_an_image(tmp_path: Path) -> None:
    fake = tmp_path / "photo.lst"  # a JPEG under a list's name
    fake.write_bytes(image_bytes(16, 16))
    expected = f"{fake}: this is a JPEG image, not an image list (.lst) {NOT_A_LIST_HINT}"
    pred = tmp_path / "pred.jsonl"
    pred.write_text('{"prediction": [0.1, 0.9]}\n')
    for args in (
        ["pack", str(fake), str(tmp_path / "o.rec")],
        ["split", str(fake), str(tmp_path / "sp"), "--train-ratio", "0.5"],
        ["manifest-gen", str(fake), str(tmp_path / "m.manifest"), "--s3-prefix", "s3://b/p"],
        ["predictions", str(pred), str(fake)],
    ):
        assert invoke(*args, code=1).stderr.splitlines() == [f"Error: {expected}"], args
    # verify reports it as the list's one problem.
    assert invoke("verify", str(fake), code=1).stdout.splitlines() == [
        expected,
        "checked 1 file: nothing readable: 1 problem (lst 1)",
    ]


def test_text_that_is_not_utf8_is_still_a_bad_line(tmp_path: Path) -> None:
    utf16 = tmp_path / "u16.lst"
    utf16.write_text("0\t1\ta.jpg\n", encoding="utf-16")
    result = invoke("pack", str(utf16), str(tmp_path / "o.rec"), code=1)
    assert result.stderr.splitlines() == [
        f"Error: {utf16}: this list is UTF-16 text, not UTF-8 (save the list as UTF-8)"
    ]
    latin = tmp_path / "latin.lst"
    latin.write_bytes(b"0\t1\tcaf\xe9.jpg\n")
    result = invoke("pack", str(latin), str(tmp_path / "o.rec"), code=1)
    assert result.stderr.splitlines() == [
        f"Error: {latin}: line 1: not valid UTF-8: '0\\t1\\tcaf\\udce9.jpg' "
        "(save the list as UTF-8)"
    ]


# --------------------------------------------------------------------------- S3


def s3_run(s3, *args: str, code: int) -> Result:
    return invoke("--endpoint-url", s3.endpoint, *args, code=code)


def test_verify_decode_of_a_list_on_s3(s3, photos: Path, listed: Path) -> None:
    (photos / "dog" / "img1.jpg").write_bytes(image_bytes(40, 30, seed=1)[:200])
    s3.upload_tree(photos, "photos")
    s3.put("data/x.lst", listed.read_bytes())
    root = s3.uri("photos")
    result = s3_run(s3, "verify", s3.uri("data/x.lst"), "--root", root, "--decode", code=1)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{s3.uri('data/x.lst')}: line 5: {root}/dog/img1.jpg: truncated")
    assert lines[1:] == [
        "checked 1 file: 6 lst lines, 6 lst entries, 6 files found, 6 images decoded: "
        "1 problem (decode 1)"
    ]
    # Each image fetched once; the root listed twice: does it exist (before anything is
    # read), and which images are there (one listing for every line).
    assert s3.proxy.count("GET", "/photos/") == 6
    assert s3.proxy.count("GET", "list-type=2") == 2


def test_images_that_cannot_be_read_at_all_are_one_problem(s3, photos: Path, listed: Path) -> None:
    s3.upload_tree(photos, "photos")
    root = s3.uri("photos")
    s3.proxy.fail(99, method="GET", match="/photos/", status=403)
    result = s3_run(s3, "verify", str(listed), "--root", root, "--decode", code=1)
    assert result.stdout.splitlines() == [
        f"{listed}: cannot read the images to decode them: {root}/cat/img0.jpg: access denied "
        "(check that the credentials (--profile, AWS_PROFILE) may use this bucket)",
        "checked 1 file: 6 lst lines, 6 lst entries, 6 files found, 0 images decoded: "
        "1 problem (file 1)",
    ]


def test_pack_from_s3_looks_up_a_few_images_to_tell_a_wrong_root(
    s3, tmp_path: Path, photos: Path
) -> None:
    make_tree(photos, {"emu": 6})  # 12 images in all
    s3.upload_tree(photos, "photos")
    s3.put("other/readme.txt", b"not the photos")
    names = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.jpg"))
    listed = write_list(tmp_path / "x.lst", names)
    # The right root: the first image found is enough.
    s3_run(
        s3,
        "pack",
        str(listed),
        str(tmp_path / "ok.rec"),
        "--root",
        s3.uri("photos"),
        "--pass-through",
        code=0,
    )
    assert s3.proxy.count("HEAD") == 1
    s3.proxy.reset()
    wrong = s3.uri("other")
    result = s3_run(s3, "pack", str(listed), str(tmp_path / "o.rec"), "--root", wrong, code=1)
    assert result.stderr.splitlines() == [
        f"Error: none of 10 sampled from the 12 images of {listed} is under {wrong} (the first, "
        f"{wrong}/{names[0]}, does not exist) {ROOT_HINT}"
    ]
    # 5 first images, 5 drawn from the rest, and one listing to see the root exists.
    assert s3.proxy.count("HEAD") == 10
    assert s3.proxy.count("GET", "list-type=2") == 1
    assert s3.proxy.count("GET", "/other/") == 0  # nothing was read
    result = s3_run(
        s3, "pack", str(listed), str(tmp_path / "o.rec"), "--root", s3.uri("nope"), code=2
    )
    assert error_line(result) == (
        f"Error: the --root folder {s3.uri('nope')} does not exist (give the folder the list's "
        "paths are relative to)"
    )


def test_an_s3_endpoint_that_does_not_answer_stops_verify(s3, tmp_path: Path) -> None:
    from s3_server import closed_port

    endpoint = f"http://127.0.0.1:{closed_port()}"
    expected = [
        f"Error: cannot reach the S3 endpoint {endpoint}: connection refused (check --endpoint-url)"
    ]
    rec = tmp_path / "d.rec"
    with RecordFileWriter(str(rec)) as writer:
        writer.write(pack_image_record(0.0, 0, image_bytes(8, 8)), key=0)
    for args in (
        ["verify", "s3://b/x.rec"],
        ["verify", str(rec), "s3://b/x.rec", "--decode"],  # not a problem of one file
        ["verify", "s3://b/x.lst"],
        ["verify", "s3://b/data.jsonl"],
        ["verify", str(write_list(tmp_path / "x.lst", ["a.jpg"])), "--root", "s3://b/photos"],
    ):
        result = invoke("--endpoint-url", endpoint, *args, code=1)
        assert result.stderr.splitlines() == expected, args
        assert result.stdout == ""
    result = invoke(
        "--endpoint-url",
        "http://imgfmt-no-such-host.invalid:9000",
        "verify",
        "s3://b/x.rec",
        code=1,
    )
    assert result.stderr.splitlines() == [
        "Error: cannot reach the S3 endpoint http://imgfmt-no-such-host.invalid:9000: its host "
        "name is not found (check --endpoint-url)"
    ]
    # An endpoint that answers: a missing object is a problem of its file, and verify goes on.
    result = s3_run(s3, "verify", s3.uri("gone.rec"), str(rec), code=1)
    assert result.stdout.splitlines() == [
        f"{s3.uri('gone.rec')}: no such object (check the key)",
        "checked 2 files: 1 record, 1 index entry: 1 problem (input 1)",
    ]
