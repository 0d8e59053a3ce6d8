"""The batch-inference formats from the command line: pack --format jsonlines and
recordio-protobuf, and unpack, verify and split on both (imgfmt.formats.jsonlines and
imgfmt.formats.rio_protobuf are tested as a library in test_jsonlines.py and
test_rio_protobuf.py)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import leftovers, make_tree
from PIL import Image

from imgfmt.cli import cli
from imgfmt.formats import rio_protobuf

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden" / "protobuf"


def run(*args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.stdout


def fail(*args: str, expect: int) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == expect, result.output
    return result.stderr


def files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix not in (".lst", ".tsv")
    }


# --------------------------------------------------------------------------- recordio-protobuf


def test_digit_folder_packs_to_the_bytes_the_sagemaker_sdk_writes(tmp_path: Path) -> None:
    # golden/protobuf/digits_shape.rec was written by the SDK (scripts/make_golden_protobuf.py)
    # from these five 28x28 grayscale digits, labels 0-4, with shape [28, 28].
    out = tmp_path / "digits.rec"
    run(
        "pack", str(GOLDEN / "digits"), str(out),
        "--format", "recordio-protobuf", "--size", "28x28", "--color", "0", "--no-shuffle",
    )  # fmt: skip
    assert out.read_bytes() == (GOLDEN / "digits_shape.rec").read_bytes()
    assert not (tmp_path / "digits.idx").exists()  # SageMaker reads no index
    records = list(rio_protobuf.iter_records(str(out)))
    assert [r.labels for r in records] == [(0.0,), (1.0,), (2.0,), (3.0,), (4.0,)]
    for digit, record in enumerate(records):
        png = GOLDEN / "digits" / str(digit) / f"digit{digit}.png"
        with Image.open(png) as image:
            assert np.array_equal(record.array, np.asarray(image, dtype=np.float32))


def test_rgb_records_are_resized_to_the_size_with_channels_last(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 2, "b": 1}, size=(64, 48))
    out = tmp_path / "rgb.rec"
    summary = json.loads(
        run(
            "pack",
            str(photos),
            str(out),
            "--format",
            "recordio-protobuf",
            "--size",
            "16x12",
            "--json",
        )  # fmt: skip
    )
    assert summary["packed"] == 3 and summary["outputs"] == [str(out)]
    records = list(rio_protobuf.iter_records(str(out)))
    assert [r.shape for r in records] == [(12, 16, 3)] * 3
    assert sorted(r.labels for r in records) == [(0.0,), (0.0,), (1.0,)]
    assert all(r.values.dtype == np.float32 and r.values.max() <= 255 for r in records)


@pytest.mark.interop
def test_the_sdk_reads_a_packed_digit_folder_to_the_same_arrays_and_labels(
    tmp_path: Path, sagemaker_python: str
) -> None:
    python = sagemaker_python
    out = tmp_path / "digits.rec"
    run("pack", str(GOLDEN / "digits"), str(out), "--format", "recordio-protobuf",
        "--size", "28x28", "--color", "0")  # fmt: skip
    code = """
        import json, sys
        from sagemaker.amazon.common import read_records
        with open(sys.argv[1], "rb") as f:
            records = read_records(f)
        print(json.dumps([[list(r.features["values"].float32_tensor.values),
                           list(r.features["values"].float32_tensor.shape),
                           list(r.label["values"].float32_tensor.values)] for r in records]))
    """
    proc = subprocess.run(
        [python, "-c", textwrap.dedent(code), str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "SAGEMAKER_SUPPRESS_V2_WARNING": "1"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sdk = json.loads(proc.stdout.splitlines()[-1])
    ours = list(rio_protobuf.iter_records(str(out)))
    assert len(sdk) == len(ours) == 5
    for (values, shape, labels), record in zip(sdk, ours):
        assert values == record.values.tolist() and tuple(shape) == record.shape
        assert tuple(labels) == record.labels


def test_protobuf_unpacks_to_pngs_that_pack_back_to_the_same_bytes(tmp_path: Path) -> None:
    first = tmp_path / "d.rec"
    run("pack", str(GOLDEN / "digits"), str(first), "--format", "recordio-protobuf",
        "--size", "28x28", "--color", "0")  # fmt: skip
    summary = json.loads(run("unpack", str(first), str(tmp_path / "out"), "--json"))
    assert summary["format"] == "recordio-protobuf" and summary["written"] == 5
    names = sorted(files(tmp_path / "out"))
    assert all(n.endswith(".png") for n in names) and len(names) == 5
    again = tmp_path / "again.rec"
    run("pack", str(tmp_path / "out" / "d.lst"), str(again), "--root", str(tmp_path / "out"),
        "--format", "recordio-protobuf", "--size", "28x28", "--color", "0")  # fmt: skip
    assert again.read_bytes() == first.read_bytes()


def test_protobuf_options_that_do_not_apply_are_usage_errors(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 1})
    out = str(tmp_path / "x.rec")
    pb = ("pack", str(photos), out, "--format", "recordio-protobuf")
    assert "needs --size" in fail(*pb, expect=2)
    assert "--resize does not apply" in fail(*pb, "--size", "8x8", "--resize", "9", expect=2)
    assert "--color 0" in fail(*pb, "--size", "8x8", "--color", "-1", expect=2)
    assert "write it as WIDTHxHEIGHT" in fail(*pb, "--size", "8by8", expect=2)
    assert "--size is an option of format recordio-protobuf, not of recordio" in fail(
        "pack", str(photos), out, "--size", "8x8", expect=2
    )
    assert os.listdir(tmp_path) == ["photos"]


def test_a_bad_image_is_skipped_by_name_and_the_rest_packed(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 3})
    (photos / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "x.rec"
    result = CliRunner().invoke(
        cli,
        ["pack", str(photos), str(out), "--format", "recordio-protobuf", "--size", "8x8"],
    )
    assert result.exit_code == 3
    assert "broken.jpg" in result.stderr and "--allow-skip" in result.stderr
    assert len(list(rio_protobuf.iter_records(str(out)))) == 3


# --------------------------------------------------------------------------- jsonlines


def test_jsonl_lines_hold_id_path_label_and_the_image_bytes(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"cat": 2, "dog": 1})
    out = tmp_path / "test.jsonl"
    run("pack", str(photos), str(out), "--pass-through", "--no-shuffle")
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [list(obj) for obj in lines] == [["id", "path", "label", "image"]] * 3
    assert [(o["id"], o["path"], o["label"]) for o in lines] == [
        (0, "cat/img0.jpg", 0),
        (1, "cat/img1.jpg", 0),
        (2, "dog/img0.jpg", 1),
    ]
    for obj in lines:
        assert base64.b64decode(obj["image"]) == (photos / obj["path"]).read_bytes()


def test_jsonl_round_trips_through_unpack_to_the_same_bytes(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"cat": 3, "dog": 2})
    first = tmp_path / "test.jsonl"
    run("pack", str(photos), str(first), "--resize", "24")
    run("unpack", str(first), str(tmp_path / "out"))
    # Each image keeps its own path; the bytes are the ones in the lines.
    assert sorted(files(tmp_path / "out")) == sorted(
        str(p.relative_to(photos)) for p in photos.rglob("*.jpg")
    )
    again = tmp_path / "again.jsonl"
    run("pack", str(tmp_path / "out" / "test.lst"), str(again), "--root",
        str(tmp_path / "out"), "--pass-through")  # fmt: skip
    assert again.read_bytes() == first.read_bytes()


def test_jsonl_unpack_never_writes_outside_the_folder(tmp_path: Path) -> None:
    src = tmp_path / "evil.jsonl"
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 20).decode()
    src.write_text(
        json.dumps({"id": 0, "path": "../../escape.png", "label": 1, "image": image}) + "\n"
    )
    run("unpack", str(src), str(tmp_path / "out"))
    assert not (tmp_path.parent / "escape.png").exists()
    assert sorted(files(tmp_path / "out")) == ["1/0.png"]


# --------------------------------------------------------------------------- verify, split


def test_verify_tells_the_formats_apart_and_names_the_damage(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 2, "b": 2})
    jsonl, pb = tmp_path / "t.jsonl", tmp_path / "t.rec"
    run("pack", str(photos), str(jsonl))
    run("pack", str(photos), str(pb), "--format", "recordio-protobuf", "--size", "8x8")
    report = json.loads(run("verify", str(jsonl), str(pb), "--decode", "--json"))
    assert report["ok"] and [f["kind"] for f in report["files"]] == [
        "jsonlines",
        "recordio-protobuf",
    ]
    assert report["checked"]["jsonl_lines"] == 4 and report["checked"]["images_decoded"] == 4
    assert report["checked"]["records"] == 4

    lines = jsonl.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"image":"', '"image":"@@')
    jsonl.write_text("".join(lines))
    pb.write_bytes(pb.read_bytes()[:-30])
    out = run("verify", str(jsonl), str(pb), expect=1).splitlines()
    assert out[0].startswith(f"{jsonl}: line 3: ") and "base64" in out[0]
    assert out[1].startswith(f"{pb}: record 3 at byte ") and "file ends inside" in out[1]


def test_split_copies_jsonl_lines_and_protobuf_records_unchanged(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 5, "b": 5})
    jsonl, pb = tmp_path / "all.jsonl", tmp_path / "all.rec"
    run("pack", str(photos), str(jsonl))
    run("pack", str(photos), str(pb), "--format", "recordio-protobuf", "--size", "8x8")
    run("split", str(jsonl), str(tmp_path / "j"), "--train-ratio", "0.6")
    parts = [(tmp_path / f"j_{s}.jsonl").read_text().splitlines() for s in ("train", "val")]
    assert [len(p) for p in parts] == [6, 4]
    assert sorted(parts[0] + parts[1]) == sorted(jsonl.read_text().splitlines())

    summary = json.loads(
        run("split", str(pb), str(tmp_path / "p"), "--train-ratio", "0.6", "--json")
    )
    assert summary["format"] == "recordio-protobuf"
    payloads = {p for _n, _o, p in rio_protobuf.iter_payloads(str(pb))}
    got = [
        p
        for s in ("train", "val")
        for _n, _o, p in rio_protobuf.iter_payloads(str(tmp_path / f"p_{s}.rec"))
    ]
    assert len(got) == 10 and set(got) == payloads
    assert not (tmp_path / "p_train.idx").exists()
    assert leftovers(tmp_path) == []


def test_unpack_skips_damaged_lines_and_records_and_writes_every_intact_image(
    tmp_path: Path,
) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 3, "b": 3})
    jsonl, pb = tmp_path / "t.jsonl", tmp_path / "t.rec"
    run("pack", str(photos), str(jsonl), "--no-shuffle")
    run("pack", str(photos), str(pb), "--format", "recordio-protobuf", "--size", "8x8",
        "--no-shuffle")  # fmt: skip
    lines = jsonl.read_text().splitlines(keepends=True)
    jsonl.write_text("".join(lines[:2] + ["{not json\n"] + lines[2:]))
    payloads = list(rio_protobuf.iter_payloads(str(pb)))
    data = bytearray(pb.read_bytes())
    data[payloads[1][1] + 8] ^= 0xFF  # record 1's protobuf, framing intact
    pb.write_bytes(bytes(data))

    result = CliRunner().invoke(cli, ["unpack", str(jsonl), str(tmp_path / "j")])
    assert result.exit_code == 3
    assert f"{jsonl}: line 3: not valid JSON" in result.stderr
    assert len((tmp_path / "j" / "t.lst").read_text().splitlines()) == 6
    assert len(files(tmp_path / "j")) == 6

    summary = CliRunner().invoke(cli, ["unpack", str(pb), str(tmp_path / "p"), "--json"])
    assert summary.exit_code == 3
    report = json.loads(summary.stdout)
    assert report["written"] == 5 and report["damaged"] == 1
    assert report["damaged_items"][0].startswith(f"{pb}: record 1 at byte {payloads[1][1]}: ")


# --------------------------------------------------------------------------- review findings


def test_a_damaged_first_record_does_not_hide_the_protobuf_format(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 4, "b": 4})
    pb = tmp_path / "t.rec"
    run("pack", str(photos), str(pb), "--format", "recordio-protobuf", "--size", "8x8")
    data = bytearray(pb.read_bytes())
    data[8 + 10 : 8 + 38] = b"\xff" * 28  # record 0's protobuf, framing intact
    pb.write_bytes(bytes(data))
    report = json.loads(run("verify", str(pb), "--json", expect=1))
    assert report["files"][0]["kind"] == "recordio-protobuf" and report["problem_count"] == 1
    result = CliRunner().invoke(cli, ["unpack", str(pb), str(tmp_path / "o"), "--json"])
    assert result.exit_code == 3 and json.loads(result.stdout)["written"] == 7


def test_verify_of_protobuf_goes_on_after_framing_damage(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 6})
    pb = tmp_path / "t.rec"
    run("pack", str(photos), str(pb), "--format", "recordio-protobuf", "--size", "8x8")
    heads = [offset for _n, offset, _p in rio_protobuf.iter_payloads(str(pb))]
    data = bytearray(pb.read_bytes())
    data[heads[3]] ^= 0xFF
    pb.write_bytes(bytes(data))
    report = json.loads(run("verify", str(pb), "--json", expect=1))
    assert report["checked"]["records"] == 5 and report["problems_by_check"] == {"framing": 1}
    assert report["problems"][0]["where"] == f"record 3 at byte {heads[3]}"


def test_a_damaged_first_line_does_not_make_a_jsonl_dataset_a_manifest(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 3})
    jsonl = tmp_path / "t.jsonl"
    run("pack", str(photos), str(jsonl))
    lines = jsonl.read_text().splitlines(keepends=True)
    jsonl.write_text(lines[0][:50] + "\n" + "".join(lines[1:]))
    report = json.loads(run("verify", str(jsonl), "--json", expect=1))
    assert report["files"][0]["kind"] == "jsonlines" and report["problem_count"] == 1


def test_jsonl_lines_sharing_a_path_both_unpack(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 2})
    jsonl = tmp_path / "t.jsonl"
    run("pack", str(photos), str(jsonl), "--no-shuffle", "--pass-through")
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    lines[1]["path"] = lines[0]["path"]
    jsonl.write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    result = CliRunner().invoke(cli, ["unpack", str(jsonl), str(tmp_path / "o")])
    assert result.exit_code == 0 and "already written" in result.stderr
    written = files(tmp_path / "o")
    assert sorted(written) == ["a/img0.1.jpg", "a/img0.jpg"]
    assert written["a/img0.1.jpg"] == (photos / "a" / "img1.jpg").read_bytes()


def test_pack_lists_exactly_what_it_packed_so_predictions_line_up(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 3, "b": 2})
    (photos / "a" / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "t.rec"
    run("pack", str(photos), str(out), "--format", "recordio-protobuf", "--size", "8x8",
        "--allow-skip")  # fmt: skip
    listed = (tmp_path / "t.lst").read_text().splitlines()
    assert len(listed) == 5 and not any("broken" in line for line in listed)
    pred = tmp_path / "t.out"
    pred.write_text('{"prediction": [0.9, 0.1]}\n' * 5)
    summary = json.loads(run("predictions", str(pred), str(tmp_path / "t.lst"), "--json"))
    assert summary["images"] == 5
    assert "must be the .lst" in fail("predictions", str(pred), str(out), expect=2)


def test_jsonl_keeps_big_integer_labels_without_a_float32_warning(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 1})
    listing = tmp_path / "big.lst"
    listing.write_text("0\t16777217.000000\ta/img0.jpg\n")
    result = CliRunner().invoke(
        cli, ["pack", str(listing), str(tmp_path / "b.jsonl"), "--root", str(photos)]
    )
    assert result.exit_code == 0 and "float32" not in result.stderr
    assert json.loads((tmp_path / "b.jsonl").read_text())["label"] == 16777217
    result = CliRunner().invoke(
        cli, ["pack", str(listing), str(tmp_path / "b.rec"), "--root", str(photos)]
    )
    assert "float32" in result.stderr


def test_protobuf_from_a_list_writes_the_list_of_what_it_packed(tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"a": 2, "b": 2})
    (photos / "a" / "zz.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    run("lst-gen", str(photos), str(tmp_path / "all"), "--recursive", "--no-shuffle")
    out = tmp_path / "out" / "d.rec"
    out.parent.mkdir()
    result = CliRunner().invoke(
        cli,
        ["pack", str(tmp_path / "all.lst"), str(out), "--format", "recordio-protobuf",
         "--size", "8x8", "--root", str(photos), "--allow-skip", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["lists"] == [str(tmp_path / "out" / "d.lst")]
    listed = (tmp_path / "out" / "d.lst").read_text().splitlines()
    assert len(listed) == len(list(rio_protobuf.iter_records(str(out)))) == 4
    assert not any("zz.jpg" in line for line in listed)
